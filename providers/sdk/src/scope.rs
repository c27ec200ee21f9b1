//! Names guests choose (buckets, containers, consumers) that end up in
//! JetStream keys, object names and consumer names: checked before use, so a
//! name never reads as another workload's.

/// A name a guest chose that cannot name a JetStream resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{name}` is not a valid name: use letters, digits, `-` and `_`")]
pub struct NameError {
    /// What it was to name ("bucket", "consumer").
    pub what: String,
    /// The name given.
    pub name: String,
}

/// Whether `name` may name a JetStream resource (letters, digits, `-`, `_`);
/// `what` ("bucket", "consumer") names it in the error.
pub fn check_name(what: &str, name: &str) -> Result<(), NameError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(NameError {
            what: what.to_string(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_add_a_separator_are_refused() {
        assert!(check_name("bucket", "cart_2-b").is_ok());
        for bad in ["", "a.b", "a/b", "a b", "*"] {
            assert!(check_name("bucket", bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_name("container", "a.b").map_err(|e| e.to_string()),
            Err("container `a.b` is not a valid name: use letters, digits, `-` and `_`".into())
        );
    }
}
