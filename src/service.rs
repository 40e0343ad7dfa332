//! Talking to systemd (`Type=notify`): readiness, reload, stop and the
//! watchdog, through sd-notify. Every function is a no-op when the daemon
//! does not run under systemd (no `NOTIFY_SOCKET`), and a failure to notify
//! is logged, never fatal: the service manager's view must not decide
//! whether data is deleted.
//!
//! - `READY=1` once the store is open, deadlines missed while stopped have
//!   run, and the API listens (`retentiond serve`).
//! - `RELOADING=1` with `MONOTONIC_USEC` on SIGHUP, then `READY=1` again
//!   when the reload is done (accepted or refused).
//! - `STOPPING=1` as soon as SIGTERM or SIGINT arrives.
//! - `WATCHDOG=1` from the engine's loop after a step that completed
//!   (commands applied, due work run, store flushed): a stuck loop or a
//!   failing disk stops the pings and systemd restarts the daemon.

use sd_notify::NotifyState;
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
