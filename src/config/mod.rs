//! The TOML config file (product-spec §3): parsed strictly, validated whole,
//! and turned into typed settings before anything else starts.
//!
//! Every error names the file, line and column (`PATH:LINE:COL: message`), so
//! `check-config` and a refused reload point at the exact spot. Relative paths
//! in the file are resolved against the directory holding the file, so the
//! daemon behaves the same whatever directory it is started from.
//!
//! # Layout
//! - this file: the validated settings ([`Config`] and one type per
//!   section), [`ConfigError`], [`ConfigWarning`], [`ReloadBlocked`], and
//!   [`load`] / [`parse`], which read the file into `raw` shapes and hand
//!   each section to its validator, one call per section;
//! - `raw`: the file's keys exactly as written (serde, unknown keys
//!   refused, defaults, spans kept for positions);
//! - `origin`: spans to `PATH:LINE:COL`, relative paths to absolute ones;
//! - `runtime`: `[daemon]`, `[clock]`, `[api]`, `[notifier]`, `[schedule]`,
//!   the settings of the running process;
//! - `tls`: `[api]`'s TLS keys, their files read and checked, and the
//!   warning about plain HTTP off loopback;
//! - `safety`: `[safety]` and `[safety.guard]`;
//! - `stores`: `[stores.*]`;
//! - `products`: `[products.*]`, checked against the stores and safety;
//! - `privacy`: `[privacy]` and its classes of personal data, checked
//!   against the stores;
//! - `display`: what `check-config` prints (the effective policies);
//! - `shared`: [`Shared`], the value swapped whole on reload.

use crate::domain::policy::{DataKind, ProductPolicy, StorePolicy};
use crate::duration::Dur;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod display;
mod origin;
mod privacy;
mod products;
mod raw;
mod runtime;
mod safety;
mod shared;
mod stores;
mod tls;

pub(crate) use origin::line_col;
pub use shared::Shared;

use origin::Origin;
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

/// A setting that is valid but weakens a safeguard (e.g. an `fs` store
/// with `marker = ""`): `check-config` prints it and the daemon logs it,
/// and neither refuses the file for it. Shown as `PATH:LINE:COL: message`,
/// like a [`ConfigError`], so it points at the spot to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the setting.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is weakened, naming the key.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.col, self.message)
    }
}

/// Why a new config cannot replace the one in force without a restart:
/// the settings the running process was built around.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {} cannot change on reload; restart the daemon to apply it", path.display(), keys.join(", "))]
pub struct ReloadBlocked {
    /// The config file in force.
    pub path: PathBuf,
    /// The keys that differ, e.g. `daemon.state_dir`.
    pub keys: Vec<&'static str>,
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
    /// sled's page cache in bytes (memory can reach several times it);
    /// lower it where memory is short (the default's measurements are in
    /// docs/benchmarks.md).
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
    /// How long a client may take to make its TLS handshake, to send a
    /// request's headers, or its body, and how long a kept-alive connection
    /// may sit idle between requests.
    pub idle_timeout: Dur,
    /// Failed authentications (401) from one source address within
    /// `auth_lockout` before that source is answered 429 for `auth_lockout`.
    pub max_auth_failures: u32,
    /// The window in which failures are counted, and the lock-out's length.
    pub auth_lockout: Dur,
    /// TLS on the listener (`tls_cert_file`, `tls_key_file`, optional
    /// client CA), read and checked with the config, so a reload with new
    /// files serves them to every new connection, and one with bad files
    /// is refused whole; turning TLS on or off needs a restart. None:
    /// plain HTTP (a warning off loopback).
    pub tls: Option<crate::tls::ServerTls>,
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
    pub reconcile: Option<CronExpr>,
    /// Looks for restricted backups whose expiry has passed.
    pub backup_expiry: Option<CronExpr>,
}

/// A cron expression (six fields, seconds first, UTC) that the sweep
/// scheduler's own parser accepted when the config was checked, so what
/// `check-config` accepts is what runs. Made only by [`parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr(String);

impl CronExpr {
    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
    /// `[stores.*]` by name: what the domain knows of each store, business
    /// and personal alike (see [`Config::store_data`]).
    pub stores: BTreeMap<String, StorePolicy>,
    /// Each store's executor, by store name: how its copies are deleted
    /// (kept apart from [`StorePolicy`], whose domain never calls one).
    pub executors: BTreeMap<String, crate::executor::ExecutorSpec>,
    /// `[products.*]` by name, each sealed with its version.
    pub products: BTreeMap<String, ProductPolicy>,
    /// `[notifier]`: where notices go; without it notices are recorded as
    /// due but not sent (logged at start).
    pub notifier: Option<crate::notifier::NotifierSpec>,
    /// `[schedule]`.
    pub schedule: ScheduleConfig,
    /// `[privacy]`: personal data of account holders (product-spec §8),
    /// sealed with its version.
    pub privacy: crate::domain::privacy::PrivacyPolicy,
    /// Settings that are valid but weaken a safeguard: `check-config`
    /// prints them and the daemon logs them, and neither refuses the file
    /// for them.
    pub warnings: Vec<ConfigWarning>,
}

impl Config {
    /// The kind of data the store `name` holds (`[stores.NAME] data`,
    /// product-spec §8), or None for a store that is not configured: what a
    /// privacy class's `stores` are checked against (personal stores only),
    /// as a product's are (business stores only).
    pub fn store_data(&self, name: &str) -> Option<DataKind> {
        self.stores.get(name).map(|s| s.data)
    }

    /// Why `new` cannot replace this config without a restart, if it
    /// cannot: the state directory, cache size, executor pools, clock,
    /// listen address, connection limit, and whether the listener speaks
    /// TLS (its files may change) are fixed for the life of the process.
    pub fn reload_blocker(&self, new: &Config) -> Option<ReloadBlocked> {
        let fixed = [
            ("daemon.state_dir", self.daemon.state_dir != new.daemon.state_dir),
            ("daemon.cache_capacity", self.daemon.cache_capacity != new.daemon.cache_capacity),
            ("daemon.executor_concurrency", self.daemon.executor_concurrency != new.daemon.executor_concurrency),
            ("clock", self.clock != new.clock),
            ("api.listen", self.api.listen != new.api.listen),
            ("api.max_connections", self.api.max_connections != new.api.max_connections),
            // The scheme every client uses; new files for TLS in force are
            // read on reload.
            ("api.tls_cert_file (TLS on or off)", self.api.tls.is_some() != new.api.tls.is_some()),
        ];
        let keys: Vec<&'static str> = fixed.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect();
        (!keys.is_empty()).then(|| ReloadBlocked { path: self.path.clone(), keys })
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text)
}

/// Validates config text as if read from `path` (relative paths in it are
/// resolved against `path`'s directory). Sections are checked in this
/// order, each stopping at its first error; products last but for the
/// notifier and schedule, as they are checked against stores and safety.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let origin = Origin::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| origin.toml_error(&e))?;
    let clock = runtime::clock(&origin, raw.clock)?;
    let daemon = runtime::daemon(&origin, raw.daemon)?;
    let (api, mut warnings) = runtime::api(&origin, raw.api)?;
    let min_notice_at = raw.safety.min_notice.span();
    let safety = safety::safety(&origin, raw.safety)?;
    let stores::Stores { policies: stores, executors, warnings: store_warnings } = stores::stores(&origin, raw.stores)?;
    warnings.extend(store_warnings);
    let rules = products::Rules { origin: &origin, stores: &stores, safety: &safety, min_notice_at };
    let products = products::products(&rules, raw.products)?;
    let cx = privacy::Context { origin: &origin, stores: &stores, executors: &executors };
    let (privacy, privacy_warnings) = privacy::privacy(&cx, raw.privacy)?;
    warnings.extend(privacy_warnings);
    let notifier = runtime::notifier(&origin, raw.notifier)?;
    let schedule = runtime::schedule(&origin, raw.schedule)?;
    Ok(Config {
        path: path.to_path_buf(),
        daemon,
        clock,
        api,
        safety,
        stores,
        executors,
        products,
        notifier,
        schedule,
        privacy,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload that changes what the process was built around is refused
    /// whole, naming every such key, so the operator restarts once.
    #[test]
    fn reload_names_every_setting_that_needs_a_restart() {
        let path = Path::new("/etc/retentiond/r.toml");
        let old = parse(path, "[daemon]\nstate_dir = \"/var/a\"\n").unwrap();
        let same = parse(path, "[daemon]\nstate_dir = \"/var/a\"\n[safety]\ndry_run = true\n").unwrap();
        assert_eq!(old.reload_blocker(&same), None, "dry_run may change on reload");
        let new = parse(path, "[daemon]\nstate_dir = \"/var/b\"\n[api]\nlisten = \"127.0.0.1:9\"\n").unwrap();
        assert_eq!(
            old.reload_blocker(&new).map(|b| b.to_string()).as_deref(),
            Some(
                "/etc/retentiond/r.toml: daemon.state_dir, api.listen cannot change on reload; \
                 restart the daemon to apply it"
            )
        );
    }
}
