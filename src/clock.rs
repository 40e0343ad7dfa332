//! The only way the daemon reads wall-clock time.
//!
//! Production reads the system clock; staging and tests use a [`ManualClock`]
//! moved by `POST /v1/admin/clock`, so a month of retention runs in
//! milliseconds and no test ever sleeps for a deadline.

use crate::time::Timestamp;
use std::sync::Mutex;

/// A source of "now".
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock reading.
    fn now(&self) -> Timestamp;
    /// Time elapsed since the clock was made, on a clock nobody can set:
    /// comparing it with the wall reading reveals jumps of the wall clock
    /// (`safety.max_clock_jump`).
    fn monotonic(&self) -> std::time::Duration;
    /// The manual clock behind this one, if it can be moved by hand.
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The machine's clock. Its monotonic reading is `CLOCK_MONOTONIC`, which
/// stops while the machine is suspended: a resume then looks like a forward
/// jump of the wall clock, and deletions wait for an operator's approval.
#[derive(Debug)]
pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock { start: std::time::Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
    fn monotonic(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    /// Wall reading, and monotonic time elapsed (moved by `advance` only).
    now: Mutex<(Timestamp, chrono::Duration)>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { now: Mutex::new((start, chrono::Duration::zero())) }
    }

    /// Time passes by `by` (wall and monotonic readings move together).
    /// `None`, and no move, if the result would leave chrono's range.
    pub fn advance(&self, by: chrono::Duration) -> Option<Timestamp> {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let wall = now.0.checked_add_signed(by)?;
        let mono = now.1.checked_add(&by)?;
        *now = (wall, mono);
        Some(wall)
    }

    /// The wall reading is set, as when someone sets a machine's clock; the
    /// monotonic reading does not move.
    pub fn set(&self, to: Timestamp) -> Timestamp {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        now.0 = to;
        to
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    fn monotonic(&self) -> std::time::Duration {
        self.now.lock().unwrap_or_else(|e| e.into_inner()).1.to_std().unwrap_or_default()
    }
    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}
