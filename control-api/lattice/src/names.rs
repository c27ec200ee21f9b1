//! Names that become NATS subject tokens and bucket names. Each kind has one
//! rule, checked where the name enters a process (flags, announcements), so
//! no name can add a token to a subject or make two bucket names collide
//! (`_` joins the parts of bucket names, `.` the tokens of subjects).

/// What a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A lattice (`--lattice`): a DNS label.
    Lattice,
    /// A provider (`--name`, `provider:` bindings): a DNS label.
    Provider,
    /// A host ID (`--id`, or its nkey public key): letters, digits and `-`.
    Host,
    /// A JetStream domain (`--js-domain`), which is also a leaf site's name:
    /// a DNS label, one token of `$JS.<domain>.API`.
    Domain,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::Lattice => "lattice name",
            NameKind::Provider => "provider name",
            NameKind::Host => "host ID",
            NameKind::Domain => "JetStream domain",
        })
    }
}

/// A name its kind does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{name}` is not valid: {rule}")]
pub struct InvalidName {
    /// What it was to name.
    pub kind: NameKind,
    /// The name given.
    pub name: String,
    /// The rule it broke.
    pub rule: &'static str,
}

/// Checks `name` against its kind's rule.
pub fn check_name(kind: NameKind, name: &str) -> Result<(), InvalidName> {
    let (ok, rule) = match kind {
        NameKind::Lattice | NameKind::Provider | NameKind::Domain => (
            !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.starts_with('-')
                && !name.ends_with('-'),
            "use 1 to 63 lowercase letters, digits and dashes, not starting or ending with a dash",
        ),
        NameKind::Host => (
            !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "use 1 to 64 letters, digits and dashes",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            kind,
            name: name.to_string(),
            rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_add_tokens_or_collide_are_refused() {
        for ok in ["default", "edge-1", "a"] {
            assert!(check_name(NameKind::Lattice, ok).is_ok(), "{ok}");
        }
        for bad in ["", "a_b", "a.b", "A", "-a", "a-", ">", "*", "a b"] {
            assert!(check_name(NameKind::Lattice, bad).is_err(), "{bad}");
            assert!(check_name(NameKind::Provider, bad).is_err(), "{bad}");
        }
        assert!(check_name(NameKind::Host, "H1").is_ok());
        assert!(check_name(NameKind::Host, "UABC-12").is_ok());
        for bad in ["", "h.1", "h*", "h>", "h_1", "h 1"] {
            assert!(check_name(NameKind::Host, bad).is_err(), "{bad}");
        }
    }
}
