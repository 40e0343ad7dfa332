//! Durations as written in the config file and the API: humantime strings such
//! as `"15d"`, `"36h"`, `"90s"`.
//!
//! One type serves both directions so a policy prints back exactly as an
//! operator would write it (`check-config`, policy versions).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A non-negative span of time parsed with `humantime` ("15d", "1h 30m").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub std::time::Duration);

impl Dur {
    /// Builds a duration from whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Dur(std::time::Duration::from_secs(secs))
    }

    /// The same span as a `chrono::Duration`, for arithmetic on timestamps.
    /// Saturates at chrono's maximum, far beyond any sensible retention.
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }

    /// True for a zero-length span.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// The longest duration accepted anywhere: far beyond any retention period,
/// and short enough that adding it to any valid time cannot overflow
/// (humantime years of 365.25 days).
pub const MAX_YEARS: u64 = 100;

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("invalid duration {s:?}: {e} (write e.g. \"15d\", \"36h\", \"90s\")"))?;
        if d.as_secs() > MAX_YEARS * 31_557_600 {
            return Err(format!("duration {s:?} is longer than {MAX_YEARS} years"));
        }
        Ok(Dur(d))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_operator_forms() {
        let d: Dur = "15d".parse().unwrap();
        assert_eq!(d.0.as_secs(), 15 * 86_400);
        assert_eq!(d.to_string(), "15days");
        assert_eq!("0s".parse::<Dur>().unwrap().to_string(), "0s");
        assert!("15 fortnights".parse::<Dur>().is_err());
        assert!("-1d".parse::<Dur>().is_err());
        assert!("300000y".parse::<Dur>().unwrap_err().contains("100 years"));
        assert!("100y".parse::<Dur>().is_ok());
    }
}
