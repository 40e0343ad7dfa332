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
    /// The manual clock behind this one, if it can be moved by hand.
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The machine's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { now: Mutex::new(start) }
    }

    /// Time passes by `by` (wall and monotonic readings move together).
    /// `None`, and no move, if the result would leave chrono's range.
    pub fn advance(&self, by: chrono::Duration) -> Option<Timestamp> {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = now.checked_add_signed(by)?;
        Some(*now)
    }

    /// The wall reading is set, as when someone sets a machine's clock.
    pub fn set(&self, to: Timestamp) -> Timestamp {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = to;
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}
