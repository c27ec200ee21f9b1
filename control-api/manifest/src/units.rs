//! Human units in manifests: byte sizes (`64MiB`) and durations (`250ms`).

use std::time::Duration;

/// Why a size or duration does not parse; the message names the text at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// No number where one must start the value.
    #[error("`{text}` is not a {what}")]
    NotANumber {
        /// The text given.
        text: String,
        /// "size" or "duration".
        what: &'static str,
    },
    /// A unit this kind of value does not have.
    #[error("unknown {what} unit `{unit}`")]
    UnknownUnit {
        /// The unit given.
        unit: String,
        /// "size" or "duration".
        what: &'static str,
    },
    /// A duration without a unit, which would be ambiguous.
    #[error("`{0}` has no unit")]
    NoUnit(String),
    /// A size past what 64 bits hold.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// Parses `512KiB`, `64MiB`, `1GiB`, `10MB` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text, "size")?;
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(UnitError::UnknownUnit {
                unit: other.to_string(),
                what: "size",
            });
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| UnitError::TooLarge(text.trim().to_string()))
}

/// Splits `64MiB` into `(64, "MiB")`; `what` names the kind of value in errors.
fn split_number<'a>(text: &'a str, what: &'static str) -> Result<(u64, &'a str), UnitError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number = digits.parse().map_err(|_| UnitError::NotANumber {
        text: text.to_string(),
        what,
    })?;
    Ok((number, unit.trim()))
}

/// Parses `250ms`, `5s`, `2m` or `1h`; a bare number is refused as ambiguous.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let (number, unit) = split_number(text, "duration")?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(number.saturating_mul(3600))),
        "" => Err(UnitError::NoUnit(text.trim().to_string())),
        other => Err(UnitError::UnknownUnit {
            unit: other.to_string(),
            what: "duration",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("64 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }
}
