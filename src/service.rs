//! Talking to systemd (`Type=notify`): readiness, reload, stop and the
//! watchdog, through sd-notify. Every function is a no-op when the daemon
//! does not run under systemd (no `NOTIFY_SOCKET`), and a failure to notify
//! is logged, never fatal: the service manager's view must not decide
//! whether data is deleted.
//!
//! - `READY=1` once the store is open, deadlines missed while stopped have
//!   run, and the API listens (`retentiond serve`).
//! - `STATUS=` with it, and again whenever what holds deletions back
//!   changes ([`Gates`], published by the engine after its steps): dry
//!   run, paused, guard tripped, clock anomaly, so `systemctl status` says
//!   why nothing is being deleted.
//! - `RELOADING=1` with `MONOTONIC_USEC` on SIGHUP, then `READY=1` again
//!   when the reload is done (accepted or refused).
//! - `STOPPING=1` as soon as SIGTERM or SIGINT arrives.
//! - `WATCHDOG=1` from the engine's loop after a step that completed
//!   (commands applied, due work run, store flushed): a stuck loop or a
//!   failing disk stops the pings and systemd restarts the daemon.

use sd_notify::NotifyState;
use std::net::SocketAddr;
use std::time::Duration;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// The daemon is ready; `status` is a one-line summary for `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A new status line without a change of state.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// What holds deletions back at the moment (GET /readyz reports the same
/// flags). The engine publishes it; the status line shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gates {
    /// `safety.dry_run`: no deletion runs, no executor is called.
    pub dry_run: bool,
    /// Paused by an operator: no deletion runs until resume.
    pub paused: bool,
    /// The mass-deletion guard tripped: no new deletion starts until approve.
    pub guard_tripped: bool,
    /// A wall-clock jump: no new deletion starts until approve.
    pub clock_anomaly: bool,
}

/// The one-line status for `systemctl status`: where the API listens, every
/// gate holding deletions back with what lifts it, then `note` (the last
/// reload's outcome).
pub fn status_line(addr: SocketAddr, gates: Gates, note: Option<&str>) -> String {
    let mut parts = vec![format!("serving on {addr}")];
    for (on, what) in [
        (gates.dry_run, "dry run: no deletion runs (safety.dry_run)"),
        (gates.paused, "paused: no deletion runs until resume"),
        (gates.guard_tripped, "guard tripped: no new deletion starts until approve"),
        (gates.clock_anomaly, "clock anomaly: no new deletion starts until approve"),
    ] {
        if on {
            parts.push(what.to_owned());
        }
    }
    parts.extend(note.map(str::to_owned));
    parts.join("; ")
}

/// A reload starts (systemd requires the monotonic time with it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(usec) => send(&[NotifyState::Reloading, usec, NotifyState::Status("reloading the config")]),
        Err(e) => tracing::warn!(error = %e, "cannot read the monotonic clock for RELOADING=1"),
    }
}

/// Shutdown has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining and stopping")]);
}

/// One watchdog ping: called only by the engine's loop after a healthy step.
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping, if systemd asked for a watchdog: half its timeout,
/// as sd_watchdog_enabled(3) recommends.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_every_gate_and_the_note() {
        let addr: SocketAddr = "127.0.0.1:7300".parse().unwrap();
        assert_eq!(status_line(addr, Gates::default(), None), "serving on 127.0.0.1:7300");
        let all = Gates { dry_run: true, paused: true, guard_tripped: true, clock_anomaly: true };
        let line = status_line(addr, all, Some("config reloaded"));
        assert!(line.starts_with("serving on 127.0.0.1:7300; dry run: "), "{line}");
        for word in ["paused", "guard tripped", "clock anomaly"] {
            assert!(line.contains(word), "{line}");
        }
        assert!(line.ends_with("; config reloaded"), "{line}");
        assert!(!line.contains('\n'));
    }
}
