//! The TOML config file (product-spec §3): parsed strictly, validated whole,
//! and turned into typed settings before anything else starts.
//!
//! Every error names the file, line and column (`PATH:LINE:COL: message`), so
//! `check-config` and a refused reload point at the exact spot. Relative paths
//! in the file are resolved against the directory holding the file, so the
//! daemon behaves the same whatever directory it is started from.

use crate::domain::event::Billing;
use crate::domain::policy::{Buffers, ProductPolicy, PurgeMode, StoreClass, StorePolicy, TerminationReason};
use crate::duration::Dur;
use crate::executor::ExecutorSpec;
use crate::ids::check_id;
use crate::time::{parse_rfc3339, Timestamp};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod display;
mod raw;
mod shared;

pub use shared::Shared;

use raw::RawConfig;

/// A config error with its position in the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{path}: cannot read config: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config; `line` and `col` are 1-based.
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending value or key.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Which clock the daemon reads (product-spec §3 `[clock]`).
#[derive(Clone, Debug, PartialEq)]
pub enum ClockSource {
    /// The machine's wall clock.
    System,
    /// A clock moved only through `POST /v1/admin/clock`: staging and tests.
    Manual {
        /// The reading at first start (a persisted later reading wins).
        start: Option<Timestamp>,
    },
}

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonConfig {
    /// Holds the sled database and the audit log.
    pub state_dir: PathBuf,
    /// sled's page cache in bytes (memory can reach several times it).
    pub cache_capacity: u64,
    /// At most this many executor calls run at once per store (each store
    /// has its own pool, so one whose calls hang cannot hold up the others).
    pub executor_concurrency: usize,
    /// Failed executor calls of one copy before it is `stuck` and waits for
    /// an operator's retry.
    pub max_attempts: u32,
    /// The audit file is rotated into `audit-NNNNNN.jsonl` past this size.
    pub audit_segment_bytes: u64,
    /// On SIGTERM, how long running executor calls may take to finish
    /// before they are parked (their intent stays stored and is resumed at
    /// the next start). Must stay below the unit's `TimeoutStopSec=`.
    pub drain_timeout: Dur,
}

/// `[api]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiConfig {
    /// Address to listen on (loopback by default).
    pub listen: SocketAddr,
    /// Hashed bearer tokens; without it every request but `/healthz` is refused.
    pub tokens_file: Option<PathBuf>,
    /// Connections served at once; more are closed as soon as accepted, so
    /// idle or slow clients cannot use up the process's file descriptors
    /// (keep the unit's `LimitNOFILE=` well above it). Fixed until restart.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, or its body,
    /// and how long a kept-alive connection may sit idle between requests.
    pub idle_timeout: Dur,
    /// Failed authentications (401) from one source address within
    /// `auth_lockout` before that source is answered 429 for `auth_lockout`.
    pub max_auth_failures: u32,
    /// The window in which failures are counted, and the lock-out's length.
    pub auth_lockout: Dur,
}

/// `[safety.guard]`: the mass-deletion guard (see [`crate::domain::guard`]): a
/// short window against bursts and a long one against a slow drip, each
/// judged on the whole batch due at once.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardConfig {
    /// Sliding window.
    pub window: Dur,
    /// More resources than this starting deletion in the window trips it.
    pub max_resources: u64,
    /// Or more than this fraction of all tracked resources...
    pub max_fraction: f64,
    /// ...counted only from this many resources on (both windows).
    pub min_resources: u64,
    /// The long window, against deletions spread out to stay under the
    /// short one's limits (default a day).
    pub long_window: Dur,
    /// More starts than this in the long window trips it.
    pub long_max_resources: u64,
    /// Or more than this fraction of all tracked resources.
    pub long_max_fraction: f64,
}

impl GuardConfig {
    /// The short window's limits, for [`crate::domain::guard::Guard::judge`].
    pub fn short(&self) -> crate::domain::guard::WindowLimits {
        crate::domain::guard::WindowLimits {
            window: self.window.to_chrono(),
            max_resources: self.max_resources,
            max_fraction: self.max_fraction,
            min_resources: self.min_resources,
        }
    }

    /// The long window's limits.
    pub fn long(&self) -> crate::domain::guard::WindowLimits {
        crate::domain::guard::WindowLimits {
            window: self.long_window.to_chrono(),
            max_resources: self.long_max_resources,
            max_fraction: self.long_max_fraction,
            min_resources: self.min_resources,
        }
    }
}

/// `[safety]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SafetyConfig {
    /// Schedule and audit, never call an executor.
    pub dry_run: bool,
    /// No product buffer may be shorter, except release and violation.
    pub min_buffer: Dur,
    /// A deadline that passed under a hold runs no sooner than this after release.
    pub after_hold_release: Dur,
    /// Events dated further ahead than this are rejected.
    pub max_future_skew: Dur,
    /// A wall-clock jump beyond this pauses deletions until approved.
    pub max_clock_jump: Dur,
    /// Mass-deletion guard.
    pub guard: GuardConfig,
    /// A deletion made due by an event that arrived late (dated far enough
    /// back that its buffer has already run out) runs no sooner than this
    /// after the daemon learned of it, so it shows in the forecast and can
    /// be held (issue: back-dated events skip the buffer). Release is the
    /// tenant's own instruction and stays immediate (general terms 4.1.4).
    pub late_event_floor: Dur,
    /// Applying a changed policy to running buffers (`POST
    /// /v1/admin/apply-policy`) never brings a deletion closer than this
    /// from the moment it is applied (a change of the terms needs 30
    /// days' notice: general terms 3.2.9; trial terms 14.2; IoT terms 3.1.1).
    pub min_notice: Dur,
}

/// `[schedule]`: periodic sweeps (six-field cron strings, seconds first,
/// UTC). Deadlines never depend on them: they re-check what the deadline
/// scheduler already does, so a lost index entry cannot lose a deletion.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleConfig {
    /// Re-derives every resource's next deadline from its stored state.
    pub reconcile: Option<String>,
    /// Looks for restricted backups whose expiry has passed.
    pub backup_expiry: Option<String>,
}

/// The whole validated config.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from (for messages and reloads).
    pub path: PathBuf,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[clock]`.
    pub clock: ClockSource,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[safety]`.
    pub safety: SafetyConfig,
    /// `[stores.*]` by name.
    pub stores: BTreeMap<String, StorePolicy>,
    /// `[products.*]` by name, each sealed with its version.
    pub products: BTreeMap<String, ProductPolicy>,
    /// `[notifier]`: where notices go; without it notices are recorded as
    /// due but not sent (logged at start).
    pub notifier: Option<crate::notifier::NotifierSpec>,
    /// `[schedule]`.
    pub schedule: ScheduleConfig,
    /// Settings that are valid but weaken a safeguard, as
    /// `PATH:LINE:COL: message` (e.g. an `fs` store with `marker = ""`):
    /// `check-config` prints them and the daemon logs them, and neither
    /// refuses the file for them.
    pub warnings: Vec<String>,
}

impl Config {
    /// Why `new` cannot replace this config without a restart, if it
    /// cannot: the state directory, clock, listen address and cache size
    /// are fixed for the life of the process.
    pub fn reload_blocker(&self, new: &Config) -> Option<String> {
        let fixed = [
            ("daemon.state_dir", self.daemon.state_dir != new.daemon.state_dir),
            ("daemon.cache_capacity", self.daemon.cache_capacity != new.daemon.cache_capacity),
            ("daemon.executor_concurrency", self.daemon.executor_concurrency != new.daemon.executor_concurrency),
            ("clock", self.clock != new.clock),
            ("api.listen", self.api.listen != new.api.listen),
            ("api.max_connections", self.api.max_connections != new.api.max_connections),
        ];
        let changed: Vec<&str> = fixed.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect();
        (!changed.is_empty()).then(|| {
            format!(
                "{}: {} cannot change on reload; restart the daemon to apply it",
                self.path.display(),
                changed.join(", ")
            )
        })
    }
}

/// Default `max_restricted` of an `at_expiry` backup store, in days.
const DEFAULT_MAX_RESTRICTED_DAYS: u64 = 90;

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text)
}

/// Validates config text as if read from `path` (relative paths in it are
/// resolved against `path`'s directory).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let err = |span: Range<usize>, message: String| {
        let (line, col) = line_col(text, span.start);
        ConfigError::Invalid { path: path.to_path_buf(), line, col, message }
    };
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| err(e.span().unwrap_or(0..0), e.message().trim().replace('\n', " ")))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    // Absolute, so a relative fs root still names one place if the daemon's
    // working directory changes.
    let base = std::path::absolute(&base).unwrap_or(base);
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { normalize(&base.join(p)) };

    let clock = match raw.clock {
        None => ClockSource::System,
        Some(c) => {
            let span = c.span();
            let c = c.into_inner();
            let source = c.source.as_ref().map(|s| s.get_ref().as_str()).unwrap_or("system");
            match source {
                "system" => {
                    if let Some(start) = c.start {
                        return Err(err(start.span(), "clock.start is only allowed with source = \"manual\"".into()));
                    }
                    ClockSource::System
                }
                "manual" => {
                    let start = match c.start {
                        None => None,
                        Some(s) => {
                            Some(parse_rfc3339(s.get_ref()).map_err(|m| err(s.span(), format!("clock.start: {m}")))?)
                        }
                    };
                    ClockSource::Manual { start }
                }
                other => {
                    let span = c.source.as_ref().map(|s| s.span()).unwrap_or(span);
                    return Err(err(
                        span,
                        format!("clock.source: unknown source {other:?}, expected \"system\" or \"manual\""),
                    ));
                }
            }
        }
    };

    let concurrency = raw.daemon.executor_concurrency;
    if *concurrency.get_ref() == 0 {
        return Err(err(concurrency.span(), "daemon.executor_concurrency must be at least 1".into()));
    }
    let attempts = raw.daemon.max_attempts;
    if *attempts.get_ref() == 0 {
        return Err(err(attempts.span(), "daemon.max_attempts must be at least 1".into()));
    }
    let daemon = DaemonConfig {
        state_dir: resolve(raw.daemon.state_dir),
        cache_capacity: raw.daemon.cache_capacity,
        executor_concurrency: concurrency.into_inner(),
        max_attempts: attempts.into_inner(),
        audit_segment_bytes: raw.daemon.audit_segment_bytes.max(4096),
        drain_timeout: *raw.daemon.drain_timeout.get_ref(),
    };
    if daemon.drain_timeout.is_zero() || daemon.drain_timeout > Dur::from_secs(3_600) {
        return Err(err(raw.daemon.drain_timeout.span(), "daemon.drain_timeout must be between 1s and 1h".into()));
    }
    let a = raw.api;
    if !(1..=65_536).contains(a.max_connections.get_ref()) {
        return Err(err(a.max_connections.span(), "api.max_connections must be between 1 and 65536".into()));
    }
    let idle = *a.idle_timeout.get_ref();
    if idle < Dur(std::time::Duration::from_millis(100)) || idle > Dur::from_secs(600) {
        return Err(err(a.idle_timeout.span(), "api.idle_timeout must be between 100ms and 10m".into()));
    }
    if *a.max_auth_failures.get_ref() == 0 {
        return Err(err(a.max_auth_failures.span(), "api.max_auth_failures must be at least 1".into()));
    }
    let lockout = *a.auth_lockout.get_ref();
    if lockout < Dur::from_secs(1) || lockout > Dur::from_secs(86_400) {
        return Err(err(a.auth_lockout.span(), "api.auth_lockout must be between 1s and 1d".into()));
    }
    let api = ApiConfig {
        listen: a.listen,
        tokens_file: a.tokens_file.map(resolve),
        max_connections: a.max_connections.into_inner(),
        idle_timeout: idle,
        max_auth_failures: a.max_auth_failures.into_inner(),
        auth_lockout: lockout,
    };

    let g = raw.safety.guard;
    let fraction = *g.max_fraction.get_ref();
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(err(g.max_fraction.span(), "safety.guard.max_fraction must be in (0, 1]".into()));
    }
    let long_fraction = *g.long_max_fraction.get_ref();
    if !(long_fraction > 0.0 && long_fraction <= 1.0) {
        return Err(err(g.long_max_fraction.span(), "safety.guard.long_max_fraction must be in (0, 1]".into()));
    }
    if *g.long_window.get_ref() <= g.window {
        return Err(err(
            g.long_window.span(),
            format!(
                "safety.guard.long_window = \"{}\" must be longer than safety.guard.window = \"{}\"",
                g.long_window.get_ref(),
                g.window
            ),
        ));
    }
    if *g.long_max_resources.get_ref() < g.max_resources {
        return Err(err(
            g.long_max_resources.span(),
            "safety.guard.long_max_resources must be at least safety.guard.max_resources (the long window \
             contains the short one)"
                .into(),
        ));
    }
    let safety = SafetyConfig {
        dry_run: raw.safety.dry_run,
        min_buffer: raw.safety.min_buffer,
        after_hold_release: raw.safety.after_hold_release,
        max_future_skew: raw.safety.max_future_skew,
        max_clock_jump: raw.safety.max_clock_jump,
        guard: GuardConfig {
            window: g.window,
            max_resources: g.max_resources,
            max_fraction: fraction,
            min_resources: g.min_resources,
            long_window: *g.long_window.get_ref(),
            long_max_resources: *g.long_max_resources.get_ref(),
            long_max_fraction: long_fraction,
        },
        late_event_floor: raw.safety.late_event_floor,
        min_notice: *raw.safety.min_notice.get_ref(),
    };
    let min_notice_span = raw.safety.min_notice.span();
    if safety.min_notice < Dur::from_secs(86_400) {
        return Err(err(min_notice_span.clone(), "safety.min_notice must be at least 1 day".into()));
    }

    let mut warnings = Vec::new();
    let mut stores = BTreeMap::new();
    for (name, store) in raw.stores {
        let (name_span, name) = (name.span(), name.into_inner());
        check_id(&name).map_err(|m| err(name_span.clone(), format!("store name {name:?} {m}")))?;
        let store_span = store.span();
        let store = store.into_inner();
        let exec_span = store.executor.span();
        let executor = match store.executor.into_inner() {
            ExecutorSpec::Fs { root, path, marker } => ExecutorSpec::Fs { root: resolve(root), path, marker },
            other => other,
        };
        executor.validate().map_err(|m| err(exec_span.clone(), format!("stores.{name}.executor: {m}")))?;
        if let ExecutorSpec::Fs { root, marker, .. } = &executor {
            if marker.is_empty() {
                let (line, col) = line_col(text, exec_span.start);
                warnings.push(format!(
                    "{}:{line}:{col}: stores.{name}.executor: marker = \"\" turns off the check that {} is \
                     the mounted volume: with the volume unmounted, its data would be recorded as deleted",
                    path.display(),
                    root.display()
                ));
            }
        }
        let purge = match store.purge {
            None => PurgeMode::Immediate,
            Some(p) if store.class != StoreClass::Backup => {
                return Err(err(p.span(), format!("stores.{name}.purge is only meaningful for class \"backup\"")));
            }
            Some(p) => p.into_inner(),
        };
        let _ = store_span;
        let max_restricted = match (store.max_restricted, purge) {
            (Some(m), PurgeMode::AtExpiry) if m.get_ref().is_zero() => {
                return Err(err(
                    m.span(),
                    format!("stores.{name}.max_restricted must be longer than 0s (use purge = \"immediate\")"),
                ));
            }
            (Some(m), PurgeMode::AtExpiry) => Some(*m.get_ref()),
            (None, PurgeMode::AtExpiry) => Some(Dur::from_secs(DEFAULT_MAX_RESTRICTED_DAYS * 86_400)),
            (Some(m), PurgeMode::Immediate) => {
                return Err(err(
                    m.span(),
                    format!("stores.{name}.max_restricted is only meaningful with purge = \"at_expiry\""),
                ));
            }
            (None, PurgeMode::Immediate) => None,
        };
        stores.insert(name.clone(), StorePolicy { name, class: store.class, purge, max_restricted, executor });
    }

    let mut products = BTreeMap::new();
    for (name, product) in raw.products {
        let (name_span, name) = (name.span(), name.into_inner());
        check_id(&name).map_err(|m| err(name_span.clone(), format!("product name {name:?} {m}")))?;
        let list_span = product.stores.span();
        let names = product.stores.into_inner();
        if names.is_empty() {
            return Err(err(list_span, format!("products.{name}.stores must name at least one store")));
        }
        let mut product_stores: Vec<StorePolicy> = Vec::new();
        for s in names {
            let span = s.span();
            let s = s.into_inner();
            let store = stores.get(&s).ok_or_else(|| {
                err(span.clone(), format!("products.{name}.stores: unknown store {s:?} (no [stores.{s}] section)"))
            })?;
            if product_stores.iter().any(|p| p.name == s) {
                return Err(err(span, format!("products.{name}.stores: store {s:?} listed twice")));
            }
            product_stores.push(store.clone());
        }
        if !product_stores.iter().any(|s| s.class == StoreClass::Online) {
            return Err(err(list_span, format!("products.{name}.stores must include a store of class \"online\"")));
        }

        let b = product.buffer.into_inner();
        let min = safety.min_buffer;
        let check_min = |d: &Spanned<Dur>, key: &str| -> Result<Dur, ConfigError> {
            if *d.get_ref() < min {
                Err(err(
                    d.span(),
                    format!(
                        "products.{name}.buffer.{key} = \"{}\" is below safety.min_buffer = \"{min}\"",
                        d.get_ref()
                    ),
                ))
            } else {
                Ok(*d.get_ref())
            }
        };
        let expiry = check_min(&b.expiry, "expiry")?;
        let arrears = check_min(&b.arrears, "arrears")?;
        let termination = check_min(&b.termination, "termination")?;
        let mut by_reason = BTreeMap::new();
        for (reason, value) in [
            (TerminationReason::Agreement, &b.agreement),
            (TerminationReason::Violation, &b.violation),
            (TerminationReason::Attack, &b.attack),
            (TerminationReason::Discontinued, &b.discontinued),
            (TerminationReason::ProviderOutage, &b.provider_outage),
        ] {
            let d = match value {
                None => termination,
                // general terms 7.5.2: a serious breach may purge at once, so
                // violation alone may go below min_buffer.
                Some(v) if reason == TerminationReason::Violation => *v.get_ref(),
                Some(v) => check_min(v, reason.as_str())?,
            };
            by_reason.insert(reason, d);
        }
        let arrears_affects = match product.arrears_affects {
            None => vec![Billing::Postpaid],
            Some(list) => {
                let span = list.span();
                let mut out = Vec::new();
                for b in list.into_inner() {
                    out.push(match b.as_str() {
                        "prepaid" => Billing::Prepaid,
                        "postpaid" => Billing::Postpaid,
                        other => {
                            return Err(err(
                                span,
                                format!(
                                    "products.{name}.arrears_affects: {other:?} is not \"prepaid\" or \"postpaid\""
                                ),
                            ))
                        }
                    });
                }
                out
            }
        };
        let late_fee_per_day = match product.late_fee_per_day {
            None => Decimal::new(5, 4),
            Some(s) => parse_percent(s.get_ref()).ok_or_else(|| {
                err(
                    s.span(),
                    format!(
                        "products.{name}.late_fee_per_day: {:?} is not a percentage such as \"0.05%\"",
                        s.get_ref()
                    ),
                )
            })?,
        };
        let mut notices = product.notices;
        notices.sort_unstable_by(|a, b| b.cmp(a));
        notices.dedup();
        // A deadline moved by apply-policy is never closer than min_notice,
        // so every warning can still go out before it.
        if let Some(longest) = notices.first().filter(|n| **n > safety.min_notice) {
            return Err(err(
                min_notice_span.clone(),
                format!(
                    "safety.min_notice = \"{}\" is shorter than products.{name}.notices' \"{longest}\": \
                     a deadline moved by apply-policy could skip that warning",
                    safety.min_notice
                ),
            ));
        }
        if notices.iter().any(|n| n.is_zero()) {
            return Err(err(name_span.clone(), format!("products.{name}.notices: an offset of 0s warns of nothing")));
        }
        let reminder_span = product.renewal_reminder.span();
        let mut renewal_reminder = product.renewal_reminder.into_inner().into_vec();
        renewal_reminder.sort_unstable_by(|a, b| b.cmp(a));
        renewal_reminder.dedup();
        if renewal_reminder.iter().any(|d| d.is_zero()) {
            return Err(err(
                reminder_span,
                format!(
                    "products.{name}.renewal_reminder: an offset of 0s would remind at the renewal cutoff, \
                     not before it; use [] for no reminder"
                ),
            ));
        }
        let policy = ProductPolicy {
            name: name.clone(),
            stores: product_stores,
            buffer: Buffers { expiry, arrears, termination: by_reason },
            arrears_grace: product.arrears_grace,
            notices,
            renewal_reminder,
            renewal_cutoff: product.renewal_cutoff,
            arrears_affects,
            late_fee_per_day,
            version: String::new(),
        }
        .seal();
        products.insert(name, policy);
    }

    let notifier = match raw.notifier {
        None => None,
        Some(n) => {
            let span = n.span();
            let n = n.into_inner();
            n.validate().map_err(|m| err(span, m.to_string()))?;
            Some(n)
        }
    };
    let cron = |key: &str, v: Option<Spanned<String>>| -> Result<Option<String>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let expr = v.get_ref().trim();
        if expr == "off" {
            return Ok(None);
        }
        // The scheduler's own parser decides, so what is accepted here runs.
        tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {})).map_err(|_| {
            err(
                v.span(),
                format!(
                    "schedule.{key}: {expr:?} is not a cron expression with six fields, seconds first \
                     (e.g. \"0 */10 * * * *\"), or \"off\""
                ),
            )
        })?;
        Ok(Some(expr.to_string()))
    };
    let schedule = ScheduleConfig {
        reconcile: cron("reconcile", raw.schedule.reconcile)?,
        backup_expiry: cron("backup_expiry", raw.schedule.backup_expiry)?,
    };

    Ok(Config { path: path.to_path_buf(), daemon, clock, api, safety, stores, products, notifier, schedule, warnings })
}

/// "0.05%" → 0.0005.
fn parse_percent(s: &str) -> Option<Decimal> {
    let d: Decimal = s.trim().strip_suffix('%')?.trim().parse().ok()?;
    (!d.is_sign_negative() && d <= Decimal::ONE_HUNDRED).then(|| d / Decimal::ONE_HUNDRED)
}

/// Removes `.` and `..` components lexically, so `config/../var` reads as
/// `var` (the `fs` executor refuses roots with `..` in them).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// 1-based line and column of a byte offset (columns count characters);
/// every file the daemon reads reports errors this way.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(buffer: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[daemon]\nstate_dir = \"s\"\n[stores.p]\nclass = \"online\"\n\
             executor = {{ kind = \"fs\", root = \"/srv\", path = \"{{resource}}\" }}\n\
             [products.x]\nstores = [\"p\"]\nbuffer = {buffer}\n"
        );
        parse(Path::new("/etc/retentiond/t.toml"), &text)
    }

    /// general terms 7.5.2: only violation may go under min_buffer; a
    /// per-reason override is checked like the termination buffer.
    #[test]
    fn only_violation_may_go_under_min_buffer() {
        let ok =
            cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d", violation = "0s", attack = "30d" }"#).unwrap();
        let b = &ok.products["x"].buffer;
        assert!(b.termination[&TerminationReason::Violation].is_zero());
        assert_eq!(b.termination[&TerminationReason::Attack].to_string(), "30days");
        assert_eq!(b.termination[&TerminationReason::Agreement].to_string(), "3days", "falls back to termination");
        let err =
            cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d", attack = "1h" }"#).unwrap_err().to_string();
        assert!(err.contains("buffer.attack") && err.contains("min_buffer") && err.contains(":8:"), "{err}");
        let err = cfg(r#"{ expiry = "2d", arrears = "2d" }"#).unwrap_err().to_string();
        assert!(err.contains("termination"), "{err}");
    }

    #[test]
    fn policy_version_follows_the_content() {
        let a = cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d" }"#).unwrap();
        let b = cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d" }"#).unwrap();
        let c = cfg(r#"{ expiry = "3d", arrears = "2d", termination = "3d" }"#).unwrap();
        assert_eq!(a.products["x"].version, b.products["x"].version);
        assert_ne!(a.products["x"].version, c.products["x"].version);
    }

    #[test]
    fn api_limits_have_defaults_and_are_checked_with_their_position() {
        let base = "[daemon]\nstate_dir = \"s\"\n";
        let c = parse(Path::new("/etc/r.toml"), base).unwrap();
        assert_eq!(
            (c.api.max_connections, c.api.idle_timeout, c.api.max_auth_failures, c.api.auth_lockout),
            (512, Dur::from_secs(30), 10, Dur::from_secs(60))
        );
        for (key, value, why) in [
            ("max_connections", "0", "between 1 and 65536"),
            ("idle_timeout", "\"10ms\"", "between 100ms and 10m"),
            ("idle_timeout", "\"1h\"", "between 100ms and 10m"),
            ("max_auth_failures", "0", "at least 1"),
            ("auth_lockout", "\"0s\"", "between 1s and 1d"),
        ] {
            let text = format!("{base}[api]\n{key} = {value}\n");
            let e = parse(Path::new("/etc/r.toml"), &text).unwrap_err().to_string();
            assert!(e.starts_with("/etc/r.toml:4:") && e.contains(&format!("api.{key}")) && e.contains(why), "{e}");
        }
    }

    fn with_executor(executor: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[daemon]\nstate_dir = \"s\"\n[stores.p]\nclass = \"online\"\nexecutor = {executor}\n\
             [products.x]\nstores = [\"p\"]\nbuffer = {{ expiry = \"2d\", arrears = \"2d\", termination = \"2d\" }}\n"
        );
        parse(Path::new("/etc/retentiond/t.toml"), &text)
    }

    /// The fs marker defaults to `.retentiond-root`, must be a plain file
    /// name (refused with the executor's position), and `""` is accepted
    /// with a warning naming the store and the position.
    #[test]
    fn fs_marker_default_validation_and_warning() {
        let c = with_executor(r#"{ kind = "fs", root = "/srv/d", path = "{resource}" }"#).unwrap();
        assert!(matches!(&c.stores["p"].executor, ExecutorSpec::Fs { marker, .. } if marker == ".retentiond-root"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.to_string().contains("fs /srv/d/{resource} (marker .retentiond-root)"), "{c}");

        for bad in ["../up", "a/b", "..", "."] {
            let err = with_executor(&format!(
                r#"{{ kind = "fs", root = "/srv/d", path = "{{resource}}", marker = "{bad}" }}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("/etc/retentiond/t.toml:5:12: stores.p.executor: fs executor: marker"), "{err}");
        }

        let c = with_executor(r#"{ kind = "fs", root = "/srv/d", path = "{resource}", marker = "" }"#).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = &c.warnings[0];
        assert!(w.starts_with("/etc/retentiond/t.toml:5:12: stores.p.executor: marker = \"\""), "{w}");
        assert!(w.contains("/srv/d"), "{w}");
        assert!(c.to_string().contains("(no marker check)"), "{c}");
    }
}
