//! The one timestamp type of the crate and its RFC 3339 forms.

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in wall-clock time, UTC. Every deadline, event time and clock
/// reading in the daemon is one of these.
pub type Timestamp = DateTime<Utc>;

/// A text that is not an RFC 3339 time; the message shows the form
/// expected, for the field or key it is reported under.
#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 time ({0}), e.g. \"2026-01-31T00:00:00Z\"")]
pub struct TimeError(#[source] chrono::ParseError);

/// Parses RFC 3339 with any offset ("2026-01-01T00:00:00Z",
/// "2026-01-01T02:00:00+02:00") into UTC.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimeError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(TimeError)
}

/// Formats as RFC 3339 in UTC with a `Z`, to the second unless sub-second
/// digits are present, so records read as operators write them.
pub fn fmt_rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
