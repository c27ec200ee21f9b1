//! Head sampling, decided by Trellis wherever a trace can start (an HTTP
//! request, a wRPC call, a message, a scheduler pass) from the standard
//! `OTEL_TRACES_SAMPLER[_ARG]` variables.
//!
//! Deciding before the span exists is what makes sampling cheap: an unsampled
//! entry's span is made at the [`UNTRACED`] target, which the exporting layer
//! never sees, so it costs what a span costs with telemetry off. Whatever it
//! calls is told "not sampled" by a `traceparent` whose sampled flag is clear.

use std::sync::OnceLock;

use tracing::Span;

/// The target of spans kept for logs but never exported: the span of an
/// unsampled request. Use [`entry_span!`](crate::entry_span) to make one.
pub const UNTRACED: &str = "trellis::untraced";

/// How a trace without a (sampled or unsampled) parent is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    Always,
    Never,
    Ratio(f64),
}

/// The sampler `OTEL_TRACES_SAMPLER` names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Policy {
    root: Root,
    /// `parentbased_*`: a caller's decision wins over the root's.
    follows_parent: bool,
}

/// Why `OTEL_TRACES_SAMPLER[_ARG]` were refused.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// A sampler this process does not implement.
    #[error(
        "OTEL_TRACES_SAMPLER={0:?} is not supported; use always_on, always_off, traceidratio, \
         parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
    )]
    Unknown(String),
    /// A ratio that is no number in [0, 1].
    #[error("OTEL_TRACES_SAMPLER_ARG={0:?} is not a ratio between 0 and 1")]
    Ratio(String),
}

static POLICY: OnceLock<Policy> = OnceLock::new();

impl Policy {
    /// The policy the environment names (default `parentbased_always_on`).
    pub(crate) fn from_env() -> Result<Policy, SamplerError> {
        let name = std::env::var("OTEL_TRACES_SAMPLER").ok();
        let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
        Policy::parse(name.as_deref(), arg.as_deref())
    }

    fn parse(name: Option<&str>, arg: Option<&str>) -> Result<Policy, SamplerError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let name = name.unwrap_or("parentbased_always_on");
        let (follows_parent, root) = match name.strip_prefix("parentbased_") {
            Some(root) => (true, root),
            None => (false, name),
        };
        let root = match root {
            "always_on" => Root::Always,
            "always_off" => Root::Never,
            // The specification's default ratio is 1.
            "traceidratio" => Root::Ratio(match arg.map(str::trim) {
                None | Some("") => 1.0,
                Some(text) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| SamplerError::Ratio(text.to_string()))?,
            }),
            _ => return Err(SamplerError::Unknown(name.to_string())),
        };
        Ok(Policy {
            root,
            follows_parent,
        })
    }

    fn decide(&self, parent: Option<bool>) -> bool {
        match (self.follows_parent, parent) {
            (true, Some(sampled)) => sampled,
            _ => match self.root {
                Root::Always => true,
                Root::Never => false,
                Root::Ratio(ratio) => fastrand::f64() < ratio,
            },
        }
    }

    /// Makes this the process's policy; the first one set stays.
    pub(crate) fn install(self) {
        let _ = POLICY.set(self);
    }
}

/// Whether a trace starting here is sampled, given the caller's decision
/// (`None` when it sent no valid `traceparent`); always false while no spans
/// are exported.
pub fn sample(parent: Option<bool>) -> bool {
    crate::traces_exported() && POLICY.get().is_some_and(|p| p.decide(parent))
}

/// The sampled flag of a well-formed version-00 `traceparent`, or `None` for
/// anything else (which the W3C rules say to ignore).
pub fn traceparent_sampled(value: &str) -> Option<bool> {
    let bytes = value.as_bytes();
    let hex = |range: std::ops::Range<usize>| {
        bytes[range.clone()].iter().all(u8::is_ascii_hexdigit)
            && bytes[range].iter().any(|b| *b != b'0')
    };
    let shaped = bytes.len() == 55
        && value.starts_with("00-")
        && bytes[35] == b'-'
        && bytes[52] == b'-'
        && hex(3..35)
        && hex(36..52)
        && bytes[53..55].iter().all(u8::is_ascii_hexdigit);
    if !shaped {
        return None;
    }
    let flags = u8::from_str_radix(&value[53..55], 16).ok()?;
    Some(flags & 1 == 1)
}

/// A fresh `traceparent` that tells the callee the trace is not sampled.
pub fn unsampled_traceparent() -> String {
    let trace = fastrand::u128(1..);
    let span = fastrand::u64(1..);
    format!("00-{trace:032x}-{span:016x}-00")
}

/// Whether the current span's trace is sampled; `None` with no current span.
/// An [`UNTRACED`] span is a trace decided against.
pub fn current_sampling() -> Option<bool> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let current = Span::current();
    if current.is_none() {
        return None;
    }
    if current.metadata().is_some_and(|m| m.target() == UNTRACED) {
        return Some(false);
    }
    Some(current.context().span().span_context().is_sampled())
}

/// An `info` span that is exported when `$sampled` is true and otherwise
/// lives only for logs (at [`UNTRACED`]): the one way to make the span of
/// something where a trace may start.
#[macro_export]
macro_rules! entry_span {
    ($sampled:expr, $name:literal, $($fields:tt)*) => {
        if $sampled {
            ::tracing::info_span!($name, $($fields)*)
        } else {
            ::tracing::info_span!(target: $crate::UNTRACED, $name, $($fields)*)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_are_read_as_the_specification_names_them() -> Result<(), SamplerError> {
        let policy = |name, arg| Policy::parse(name, arg);
        let default = policy(None, None)?;
        assert_eq!(
            default,
            Policy {
                root: Root::Always,
                follows_parent: true
            }
        );
        let tenth = policy(Some("parentbased_traceidratio"), Some("0.1"))?;
        assert_eq!(tenth.root, Root::Ratio(0.1));
        assert!(tenth.follows_parent);
        assert_eq!(policy(Some("traceidratio"), None)?.root, Root::Ratio(1.0));
        assert!(!policy(Some("always_off"), None)?.follows_parent);
        assert!(matches!(
            policy(Some("jaeger_remote"), None),
            Err(SamplerError::Unknown(_))
        ));
        for bad in ["1.5", "-0.1", "NaN", "a tenth"] {
            assert!(
                matches!(
                    policy(Some("traceidratio"), Some(bad)),
                    Err(SamplerError::Ratio(_))
                ),
                "{bad}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_parent_based_policy_follows_the_caller_and_others_do_not() -> Result<(), SamplerError> {
        let follows = Policy::parse(Some("parentbased_always_off"), None)?;
        assert!(follows.decide(Some(true)));
        assert!(!follows.decide(Some(false)));
        assert!(!follows.decide(None));
        let own = Policy::parse(Some("always_on"), None)?;
        assert!(own.decide(Some(false)));
        let none = Policy::parse(Some("traceidratio"), Some("0"))?;
        assert!((0..1000).all(|_| !none.decide(None)));
        let half = Policy::parse(Some("traceidratio"), Some("0.5"))?;
        let kept = (0..10_000).filter(|_| half.decide(None)).count();
        assert!((4_000..6_000).contains(&kept), "{kept} of 10000 kept");
        Ok(())
    }

    #[test]
    fn only_well_formed_traceparents_have_a_flag() {
        let id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        assert_eq!(traceparent_sampled(&format!("{id}-01")), Some(true));
        assert_eq!(traceparent_sampled(&format!("{id}-00")), Some(false));
        assert_eq!(traceparent_sampled(&format!("{id}-03")), Some(true));
        let zeros = format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32));
        for bad in [
            "garbage",
            zeros.as_str(),
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        ] {
            assert_eq!(traceparent_sampled(bad), None, "{bad}");
        }
        let made = unsampled_traceparent();
        assert_eq!(traceparent_sampled(&made), Some(false), "{made}");
    }

    #[test]
    fn nothing_is_sampled_while_nothing_is_exported() {
        assert!(!sample(Some(true)));
        assert!(!sample(None));
    }
}
