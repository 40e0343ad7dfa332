//! `[safety]` and `[safety.guard]`: the floors every product and every
//! batch of deletions is held to. Checked before the products, which are
//! checked against them.

use super::origin::Origin;
use super::raw::{RawGuard, RawSafety};
use super::{ConfigError, GuardConfig, SafetyConfig};
use crate::duration::Dur;

/// `[safety]`: the guard's windows, and a notice period of at least a day.
pub(super) fn safety(origin: &Origin, raw: RawSafety) -> Result<SafetyConfig, ConfigError> {
    let guard = guard(origin, raw.guard)?;
    let min_notice = *raw.min_notice.get_ref();
    if min_notice < Dur::from_secs(86_400) {
        return Err(origin.error(raw.min_notice.span(), "safety.min_notice must be at least 1 day".into()));
    }
    Ok(SafetyConfig {
        dry_run: raw.dry_run,
        min_buffer: raw.min_buffer,
        after_hold_release: raw.after_hold_release,
        max_future_skew: raw.max_future_skew,
        max_clock_jump: raw.max_clock_jump,
        guard,
        late_event_floor: raw.late_event_floor,
        min_notice,
    })
}

/// `[safety.guard]`: fractions in (0, 1], and a long window that is longer
/// and allows at least as much as the short one it contains.
fn guard(origin: &Origin, g: RawGuard) -> Result<GuardConfig, ConfigError> {
    let fraction = *g.max_fraction.get_ref();
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(origin.error(g.max_fraction.span(), "safety.guard.max_fraction must be in (0, 1]".into()));
    }
    let long_fraction = *g.long_max_fraction.get_ref();
    if !(long_fraction > 0.0 && long_fraction <= 1.0) {
        return Err(origin.error(g.long_max_fraction.span(), "safety.guard.long_max_fraction must be in (0, 1]".into()));
    }
    if *g.long_window.get_ref() <= g.window {
        return Err(origin.error(
            g.long_window.span(),
            format!(
                "safety.guard.long_window = \"{}\" must be longer than safety.guard.window = \"{}\"",
                g.long_window.get_ref(),
                g.window
            ),
        ));
    }
    if *g.long_max_resources.get_ref() < g.max_resources {
        return Err(origin.error(
            g.long_max_resources.span(),
            "safety.guard.long_max_resources must be at least safety.guard.max_resources (the long window \
             contains the short one)"
                .into(),
        ));
    }
    Ok(GuardConfig {
        window: g.window,
        max_resources: g.max_resources,
        max_fraction: fraction,
        min_resources: g.min_resources,
        long_window: *g.long_window.get_ref(),
        long_max_resources: *g.long_max_resources.get_ref(),
        long_max_fraction: long_fraction,
    })
}
