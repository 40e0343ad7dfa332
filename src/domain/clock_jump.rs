//! `safety.max_clock_jump` as a pure rule: no I/O, both clock readings
//! passed in.
//!
//! Deadlines are read off the wall clock, so a wall clock set forward (by
//! hand, by an NTP step, or a machine resumed from suspend) could make
//! deletions due early, and deleted data cannot be recovered (general
//! terms 4.1.6). The monotonic clock cannot be set: comparing how far each
//! moved between two readings shows the jump. The engine reads the clocks,
//! asks [`jump`], and stops deletions until an operator approves when it
//! answers with one.

use crate::domain::lifecycle::later;
use crate::time::Timestamp;
use std::time::Duration;

/// One reading of both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The wall-clock time.
    pub wall: Timestamp,
    /// Time elapsed on the monotonic clock (from any fixed start).
    pub mono: Duration,
}

/// A wall-clock jump beyond the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jump {
    /// Where the wall clock should read: the last wall reading plus the
    /// monotonic time elapsed since.
    pub expected: Timestamp,
    /// How far the wall reading is from `expected` (negative: set back).
    pub by: chrono::Duration,
}

/// The jump between `last` and `now` when it is beyond `max` either way;
/// None while the two clocks agree to within `max`.
pub fn jump(last: Reading, now: Reading, max: chrono::Duration) -> Option<Jump> {
    let elapsed = chrono::Duration::from_std(now.mono.saturating_sub(last.mono)).unwrap_or(chrono::Duration::MAX);
    let expected = later(last.wall, elapsed);
    let by = now.wall.signed_duration_since(expected);
    (by.abs() > max).then_some(Jump { expected, by })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: chrono::Duration = chrono::Duration::hours(1);

    fn at(minutes: i64, mono_minutes: u64) -> Reading {
        Reading {
            wall: crate::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap() + chrono::Duration::minutes(minutes),
            mono: Duration::from_secs(mono_minutes * 60),
        }
    }

    #[test]
    fn time_passing_normally_is_no_jump_however_long() {
        assert_eq!(jump(at(0, 0), at(3 * 24 * 60, 3 * 24 * 60), HOUR), None);
    }

    #[test]
    fn a_wall_clock_set_forward_beyond_the_limit_is_a_jump() {
        let j = jump(at(0, 0), at(121, 1), HOUR).expect("two hours ahead of the monotonic clock");
        assert_eq!(j.expected, at(1, 0).wall);
        assert_eq!(j.by, chrono::Duration::hours(2));
    }

    #[test]
    fn a_wall_clock_set_back_beyond_the_limit_is_a_jump() {
        let j = jump(at(0, 0), at(-90, 0), HOUR).expect("set back 90 minutes");
        assert_eq!(j.by, chrono::Duration::minutes(-90));
    }

    #[test]
    fn a_machine_resumed_from_suspend_looks_like_a_forward_jump() {
        // The monotonic clock stopped for the three hours the machine slept.
        let j = jump(at(0, 0), at(181, 1), HOUR).expect("suspended three hours");
        assert_eq!(j.by, chrono::Duration::hours(3));
    }

    #[test]
    fn a_gap_up_to_the_limit_is_tolerated() {
        assert_eq!(jump(at(0, 0), at(60, 0), HOUR), None, "exactly the limit");
        assert_eq!(jump(at(0, 0), at(-60, 0), HOUR), None);
        assert!(jump(at(0, 0), at(61, 0), HOUR).is_some(), "a minute past it");
    }

    #[test]
    fn a_monotonic_clock_that_went_back_counts_as_no_time_elapsed() {
        // Readings taken out of order must not underflow.
        let j = jump(at(0, 10), at(120, 5), HOUR).expect("two hours on the wall, none on the monotonic clock");
        assert_eq!(j.by, chrono::Duration::hours(2));
    }
}
