//! Keeping workloads apart: each workload's JetStream resources (KV buckets,
//! object stores) carry its name, so one provider serves many without mixing data.

use crate::Caller;

/// Names per-workload resources `trellis_<lattice>_<workload>_<name>`. Workload
/// names are DNS labels (no `_`), so a name never reads as another workload's.
#[derive(Debug, Clone)]
pub struct WorkloadScope {
    prefix: String,
}

impl WorkloadScope {
    /// Resources of `lattice`.
    pub fn new(lattice: &str) -> Self {
        WorkloadScope {
            prefix: format!("trellis_{lattice}_"),
        }
    }

    /// The resource `caller`'s workload means by `name`; `what` ("bucket",
    /// "container") names it in the error when `name` is not a valid one.
    pub fn resource(&self, caller: &Caller, what: &str, name: &str) -> Result<String, NameError> {
        check_name(what, name)?;
        Ok(format!("{}{}_{name}", self.prefix, caller.workload))
    }

    /// The name `caller` used for the resource `full`, if `full` is its workload's.
    pub fn local<'a>(&self, caller: &Caller, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&self.prefix)?
            .strip_prefix(caller.workload.as_str())?
            .strip_prefix('_')
    }
}

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

    fn caller(workload: &str) -> Caller {
        Caller {
            workload: workload.into(),
            component: "c".into(),
            binding: String::new(),
            config: Default::default(),
            traceparent: None,
        }
    }

    #[test]
    fn names_belong_to_one_workload() {
        let scope = WorkloadScope::new("default");
        let full = scope
            .resource(&caller("shop"), "bucket", "cart")
            .unwrap_or_default();
        assert_eq!(full, "trellis_default_shop_cart");
        assert_eq!(scope.local(&caller("shop"), &full), Some("cart"));
        assert_eq!(scope.local(&caller("sho"), &full), None);
        assert_eq!(scope.local(&caller("shop-2"), &full), None);
        let bad = scope.resource(&caller("shop"), "container", "a.b");
        assert_eq!(
            bad.map_err(|e| e.to_string()),
            Err("container `a.b` is not a valid name: use letters, digits, `-` and `_`".into())
        );
    }
}
