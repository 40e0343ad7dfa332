//! The file's shapes exactly as written: one struct per table, every key
//! with its default, unknown keys refused (`deny_unknown_fields`: a
//! misspelt safety setting must not be silently ignored).
//!
//! Values whose check needs their position are kept [`Spanned`], so the
//! section validators can name the line and column. A default has the empty
//! span `0..0` (reported as `1:1`). Field order matters: serde lists the
//! expected keys in declaration order in its "unknown field" message.

use crate::domain::policy::{PurgeMode, StoreClass};
use crate::domain::vocabulary::DataKind;
use crate::duration::Dur;
use crate::executor::ExecutorSpec;
use crate::notifier::NotifierSpec;
use crate::tls::ClientAuth;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::Spanned;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) daemon: RawDaemon,
    #[serde(default)]
    pub(super) clock: Option<Spanned<RawClock>>,
    #[serde(default)]
    pub(super) api: RawApi,
    #[serde(default)]
    pub(super) safety: RawSafety,
    #[serde(default)]
    pub(super) stores: BTreeMap<Spanned<String>, Spanned<RawStore>>,
    #[serde(default)]
    pub(super) products: BTreeMap<Spanned<String>, RawProduct>,
    #[serde(default)]
    pub(super) notifier: Option<Spanned<NotifierSpec>>,
    #[serde(default)]
    pub(super) schedule: RawSchedule,
    #[serde(default)]
    pub(super) privacy: RawPrivacy,
}

// ---- [daemon] ----

/// `[daemon]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) state_dir: PathBuf,
    #[serde(default = "default_cache_capacity")]
    pub(super) cache_capacity: u64,
    #[serde(default = "default_concurrency")]
    pub(super) executor_concurrency: Spanned<usize>,
    #[serde(default = "default_max_attempts")]
    pub(super) max_attempts: Spanned<u32>,
    #[serde(default = "default_segment")]
    pub(super) audit_segment_bytes: u64,
    #[serde(default = "default_drain")]
    pub(super) drain_timeout: Spanned<Dur>,
}

/// 64 MiB, measured (docs/benchmarks.md, issue 11): 16 MiB saved about 180
/// MiB of memory at a million resources, with no cost measurable on a busy
/// machine; 256 MiB gained nothing at 200,000, and sled can use several
/// times its cache, against the 1 GiB budget at 10 million.
fn default_cache_capacity() -> u64 {
    64 * 1024 * 1024
}
fn default_concurrency() -> Spanned<usize> {
    Spanned::new(0..0, 8)
}
fn default_max_attempts() -> Spanned<u32> {
    Spanned::new(0..0, 12)
}
fn default_segment() -> u64 {
    64 * 1024 * 1024
}
fn default_drain() -> Spanned<Dur> {
    Spanned::new(0..0, Dur::from_secs(60))
}

// ---- [clock] ----

/// `[clock]`: `source` stays a string here so an unknown one is refused
/// with the config's own message, naming both choices.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClock {
    #[serde(default)]
    pub(super) source: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) start: Option<Spanned<String>>,
}

// ---- [api] ----

/// `[api]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    #[serde(default = "default_listen")]
    pub(super) listen: Spanned<SocketAddr>,
    #[serde(default)]
    pub(super) tokens_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) tls_cert_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub(super) tls_key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub(super) tls_client_ca_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub(super) tls_client_auth: Option<Spanned<ClientAuth>>,
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: Spanned<usize>,
    #[serde(default = "default_idle_timeout")]
    pub(super) idle_timeout: Spanned<Dur>,
    #[serde(default = "default_max_auth_failures")]
    pub(super) max_auth_failures: Spanned<u32>,
    #[serde(default = "default_auth_lockout")]
    pub(super) auth_lockout: Spanned<Dur>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: default_listen(),
            tokens_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_auth: None,
            max_connections: default_max_connections(),
            idle_timeout: default_idle_timeout(),
            max_auth_failures: default_max_auth_failures(),
            auth_lockout: default_auth_lockout(),
        }
    }
}

fn default_listen() -> Spanned<SocketAddr> {
    Spanned::new(0..0, SocketAddr::from(([127, 0, 0, 1], 7300)))
}
fn default_max_connections() -> Spanned<usize> {
    Spanned::new(0..0, 512)
}
fn default_idle_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur::from_secs(30))
}
fn default_max_auth_failures() -> Spanned<u32> {
    Spanned::new(0..0, 10)
}
fn default_auth_lockout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur::from_secs(60))
}

// ---- [safety] and [safety.guard] ----

/// `[safety]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSafety {
    #[serde(default)]
    pub(super) dry_run: bool,
    #[serde(default = "default_24h")]
    pub(super) min_buffer: Dur,
    #[serde(default = "default_24h")]
    pub(super) after_hold_release: Dur,
    #[serde(default = "default_5m")]
    pub(super) max_future_skew: Dur,
    #[serde(default = "default_1h")]
    pub(super) max_clock_jump: Dur,
    #[serde(default)]
    pub(super) guard: RawGuard,
    #[serde(default = "default_24h")]
    pub(super) late_event_floor: Dur,
    #[serde(default = "default_30d")]
    pub(super) min_notice: Spanned<Dur>,
}

impl Default for RawSafety {
    fn default() -> Self {
        RawSafety {
            dry_run: false,
            min_buffer: default_24h(),
            after_hold_release: default_24h(),
            max_future_skew: default_5m(),
            max_clock_jump: default_1h(),
            guard: RawGuard::default(),
            late_event_floor: default_24h(),
            min_notice: default_30d(),
        }
    }
}

fn default_24h() -> Dur {
    Dur::from_secs(86_400)
}
fn default_5m() -> Dur {
    Dur::from_secs(300)
}
fn default_1h() -> Dur {
    Dur::from_secs(3_600)
}
fn default_30d() -> Spanned<Dur> {
    Spanned::new(0..0, Dur::from_secs(30 * 86_400))
}

/// `[safety.guard]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuard {
    #[serde(default = "default_1h")]
    pub(super) window: Dur,
    #[serde(default = "default_max_resources")]
    pub(super) max_resources: u64,
    #[serde(default = "default_max_fraction")]
    pub(super) max_fraction: Spanned<f64>,
    #[serde(default = "default_min_resources")]
    pub(super) min_resources: u64,
    #[serde(default = "default_long_window")]
    pub(super) long_window: Spanned<Dur>,
    #[serde(default = "default_long_max_resources")]
    pub(super) long_max_resources: Spanned<u64>,
    #[serde(default = "default_long_max_fraction")]
    pub(super) long_max_fraction: Spanned<f64>,
}

impl Default for RawGuard {
    fn default() -> Self {
        RawGuard {
            window: default_1h(),
            max_resources: default_max_resources(),
            max_fraction: default_max_fraction(),
            min_resources: default_min_resources(),
            long_window: default_long_window(),
            long_max_resources: default_long_max_resources(),
            long_max_fraction: default_long_max_fraction(),
        }
    }
}

fn default_max_resources() -> u64 {
    1000
}
fn default_max_fraction() -> Spanned<f64> {
    Spanned::new(0..0, 0.1)
}
fn default_min_resources() -> u64 {
    20
}
fn default_long_window() -> Spanned<Dur> {
    Spanned::new(0..0, Dur::from_secs(86_400))
}
fn default_long_max_resources() -> Spanned<u64> {
    Spanned::new(0..0, 3000)
}
fn default_long_max_fraction() -> Spanned<f64> {
    Spanned::new(0..0, 0.25)
}

// ---- [stores.*] ----

/// One `[stores.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) class: StoreClass,
    #[serde(default)]
    pub(super) data: DataKind,
    #[serde(default)]
    pub(super) purge: Option<Spanned<PurgeMode>>,
    #[serde(default)]
    pub(super) max_restricted: Option<Spanned<Dur>>,
    pub(super) executor: Spanned<ExecutorSpec>,
}

// ---- [products.*] ----

/// One `[products.NAME]`: `arrears_affects` and `late_fee_per_day` stay
/// strings here so a bad value is refused with the config's own message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProduct {
    pub(super) stores: Spanned<Vec<Spanned<String>>>,
    pub(super) buffer: Spanned<RawBuffer>,
    #[serde(default)]
    pub(super) arrears_grace: Dur,
    #[serde(default)]
    pub(super) notices: Vec<Dur>,
    #[serde(default = "default_reminder")]
    pub(super) renewal_reminder: Spanned<OneOrMany>,
    #[serde(default = "default_cutoff")]
    pub(super) renewal_cutoff: Dur,
    #[serde(default)]
    pub(super) arrears_affects: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) late_fee_per_day: Option<Spanned<String>>,
}

fn default_reminder() -> Spanned<OneOrMany> {
    Spanned::new(0..0, OneOrMany::One(Dur::from_secs(7 * 86_400)))
}
fn default_cutoff() -> Dur {
    Dur::from_secs(7 * 86_400)
}

/// A product's `buffer = { ... }`: the three required buffers and the
/// per-reason overrides of `termination`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBuffer {
    pub(super) expiry: Spanned<Dur>,
    pub(super) arrears: Spanned<Dur>,
    pub(super) termination: Spanned<Dur>,
    #[serde(default)]
    pub(super) agreement: Option<Spanned<Dur>>,
    #[serde(default)]
    pub(super) violation: Option<Spanned<Dur>>,
    #[serde(default)]
    pub(super) attack: Option<Spanned<Dur>>,
    #[serde(default)]
    pub(super) discontinued: Option<Spanned<Dur>>,
    #[serde(default)]
    pub(super) provider_outage: Option<Spanned<Dur>>,
}

/// One duration or a list of them (`renewal_reminder = "7d"` or
/// `["14d", "3d"]`).
pub(super) enum OneOrMany {
    One(Dur),
    Many(Vec<Dur>),
}

impl OneOrMany {
    /// The durations, whichever way they were written.
    pub(super) fn into_vec(self) -> Vec<Dur> {
        match self {
            OneOrMany::One(d) => vec![d],
            OneOrMany::Many(v) => v,
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"7d\" or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                v.parse().map(OneOrMany::One).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(d) = seq.next_element::<Dur>()? {
                    out.push(d);
                }
                Ok(OneOrMany::Many(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

// ---- [schedule] ----

/// `[schedule]`: cron strings, checked by the scheduler's own parser.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    #[serde(default = "default_reconcile")]
    pub(super) reconcile: Option<Spanned<String>>,
    #[serde(default = "default_backup_expiry")]
    pub(super) backup_expiry: Option<Spanned<String>>,
}

impl Default for RawSchedule {
    fn default() -> Self {
        RawSchedule { reconcile: default_reconcile(), backup_expiry: default_backup_expiry() }
    }
}

fn default_reconcile() -> Option<Spanned<String>> {
    Some(Spanned::new(0..0, "0 */10 * * * *".to_string()))
}
fn default_backup_expiry() -> Option<Spanned<String>> {
    Some(Spanned::new(0..0, "0 5 * * * *".to_string()))
}

// ---- [privacy] ----

/// `[privacy]` (product-spec §8): absent, requests are still answered
/// within 15 days and no class of personal data is erased.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrivacy {
    #[serde(default = "default_response_time")]
    pub(super) response_time: Spanned<Dur>,
    #[serde(default = "default_warn_before")]
    pub(super) warn_before: Spanned<Vec<Dur>>,
    #[serde(default)]
    pub(super) auto_approve: bool,
    #[serde(default)]
    pub(super) classes: BTreeMap<Spanned<String>, Spanned<RawClass>>,
}

impl Default for RawPrivacy {
    fn default() -> Self {
        RawPrivacy {
            response_time: default_response_time(),
            warn_before: default_warn_before(),
            auto_approve: false,
            classes: BTreeMap::new(),
        }
    }
}

/// Privacy policy 5.6.1: requests are answered within 15 days.
fn default_response_time() -> Spanned<Dur> {
    Spanned::new(0..0, Dur::from_secs(15 * 86_400))
}

fn default_warn_before() -> Spanned<Vec<Dur>> {
    Spanned::new(0..0, vec![Dur::from_secs(5 * 86_400), Dur::from_secs(86_400)])
}

/// One `[privacy.classes.NAME]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    pub(super) stores: Spanned<Vec<Spanned<String>>>,
    pub(super) after_closure: Spanned<Dur>,
    #[serde(default)]
    pub(super) legal_minimum: Option<Spanned<Dur>>,
    pub(super) erasure: Spanned<crate::domain::privacy::Erasure>,
}
