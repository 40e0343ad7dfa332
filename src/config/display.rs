//! What `retentiond check-config` prints: the effective settings and
//! policies after defaults and path resolution, one line per setting and
//! a block per product, so an operator sees what will actually run.

use super::{ClockSource, Config, CronExpr};
use crate::domain::event::Billing;
use crate::domain::policy::{DataKind, ProductPolicy, StoreClass, StorePolicy};
use crate::executor::ExecutorSpec;
use crate::notifier::NotifierSpec;
use crate::tls::ServerTls;
use rust_decimal::Decimal;
use std::fmt;

impl fmt::Display for Config {
    /// The effective policies, as `check-config` prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "state_dir: {}", self.daemon.state_dir.display())?;
        match &self.clock {
            ClockSource::System => writeln!(f, "clock: system")?,
            ClockSource::Manual { start } => writeln!(
                f,
                "clock: manual (start {})",
                start.map(crate::time::fmt_rfc3339).unwrap_or_else(|| "now".into())
            )?,
        }
        match &self.api.tokens_file {
            None => writeln!(f, "api: {} (no tokens_file: every request but /healthz is refused)", self.api.listen)?,
            Some(t) => writeln!(f, "api: {} tokens_file={}", self.api.listen, t.display())?,
        }
        match &self.api.tls {
            None => writeln!(f, "api tls: off (plain http)")?,
            Some(tls) => write_tls(f, tls)?,
        }
        let a = &self.api;
        writeln!(
            f,
            "api limits: max_connections={} idle_timeout={} max_auth_failures={} auth_lockout={}",
            a.max_connections, a.idle_timeout, a.max_auth_failures, a.auth_lockout
        )?;
        let s = &self.safety;
        writeln!(
            f,
            "safety: dry_run={} min_buffer={} after_hold_release={} max_future_skew={} max_clock_jump={}",
            s.dry_run, s.min_buffer, s.after_hold_release, s.max_future_skew, s.max_clock_jump
        )?;
        writeln!(
            f,
            "guard: window={} max_resources={} max_fraction={} min_resources={} \
             long_window={} long_max_resources={} long_max_fraction={}",
            s.guard.window,
            s.guard.max_resources,
            s.guard.max_fraction,
            s.guard.min_resources,
            s.guard.long_window,
            s.guard.long_max_resources,
            s.guard.long_max_fraction
        )?;
        writeln!(f, "late_event_floor: {}", s.late_event_floor)?;
        writeln!(f, "min_notice: {} drain_timeout: {}", s.min_notice, self.daemon.drain_timeout)?;
        match &self.notifier {
            None => writeln!(f, "notifier: none (notices are recorded as skipped)")?,
            Some(NotifierSpec::Command { argv, .. }) => {
                writeln!(f, "notifier: command {}", argv.first().map_or("", String::as_str))?
            }
            Some(NotifierSpec::Http(h)) => writeln!(f, "notifier: http {}", h.url)?,
        }
        fn off(c: &Option<CronExpr>) -> &str {
            c.as_ref().map_or("off", CronExpr::as_str)
        }
        writeln!(
            f,
            "schedule: reconcile=\"{}\" backup_expiry=\"{}\"",
            off(&self.schedule.reconcile),
            off(&self.schedule.backup_expiry)
        )?;
        for (name, store) in &self.stores {
            // Both maps are built together from [stores.*], name for name.
            write_store(f, store, &self.executors[name])?;
        }
        for p in self.products.values() {
            write_product(f, p)?;
        }
        write_privacy(f, &self.privacy)
    }
}

/// `[privacy]`: how fast requests are answered and each class of personal
/// data, with the policy's version.
fn write_privacy(f: &mut fmt::Formatter<'_>, p: &crate::domain::privacy::PrivacyPolicy) -> fmt::Result {
    let warn: Vec<String> = p.warn_before.iter().map(ToString::to_string).collect();
    writeln!(
        f,
        "privacy (version {}): response_time={} warn_before=[{}] auto_approve={}",
        p.version,
        p.response_time,
        warn.join(", "),
        p.auto_approve
    )?;
    if p.classes.is_empty() {
        writeln!(f, "  no classes: no personal data is erased")?;
    }
    for c in &p.classes {
        let minimum = c.legal_minimum.map(|m| format!(" legal_minimum={m}")).unwrap_or_default();
        writeln!(
            f,
            "  class {}: stores=[{}] after_closure={}{minimum} erasure={}",
            c.name,
            c.stores.join(", "),
            c.after_closure,
            c.erasure
        )?;
    }
    Ok(())
}

/// The listener's TLS: its files, the certificate served (as `openssl x509
/// -fingerprint -sha256` prints it) and whether clients must show one.
fn write_tls(f: &mut fmt::Formatter<'_>, tls: &ServerTls) -> fmt::Result {
    let files = tls.files();
    writeln!(
        f,
        "api tls: cert={} key={} (sha256 fingerprint {}, {} certificate(s) served)",
        files.cert_file.display(),
        files.key_file.display(),
        tls.fingerprint(),
        tls.chain_len()
    )?;
    match &files.client_ca {
        None => writeln!(f, "api tls client certificates: not asked for"),
        Some(ca) => writeln!(f, "api tls client certificates: {} (CA {})", ca.auth.as_str(), ca.file.display()),
    }
}

/// One line per store: its class, `data=personal` for a store of personal
/// data (business, the default, is not shown, so the lines of existing
/// stores read as before), how a business backup's copies are purged, and
/// what its executor will touch.
fn write_store(f: &mut fmt::Formatter<'_>, store: &StorePolicy, executor: &ExecutorSpec) -> fmt::Result {
    let data_or_purge = match (store.data, store.class, store.max_restricted) {
        (DataKind::Personal, ..) => " data=personal".to_string(),
        (DataKind::Business, StoreClass::Backup, Some(max)) => format!(" purge=at_expiry max_restricted={max}"),
        (DataKind::Business, StoreClass::Backup, None) => " purge=immediate".to_string(),
        (DataKind::Business, ..) => String::new(),
    };
    let class = match store.class {
        StoreClass::Online => "online",
        StoreClass::Cache => "cache",
        StoreClass::Backup => "backup",
    };
    let executor = match executor {
        ExecutorSpec::Fs { root, path, marker } if marker.is_empty() => {
            format!("fs {}/{path} (no marker check)", root.display())
        }
        ExecutorSpec::Fs { root, path, marker } => format!("fs {}/{path} (marker {marker})", root.display()),
        ExecutorSpec::Command { argv, timeout } => {
            format!("command {} (timeout {timeout})", argv.first().map_or("", String::as_str))
        }
        ExecutorSpec::Http(h) => format!("http {} (timeout {})", h.url, h.timeout),
    };
    writeln!(f, "store {}: class={class}{data_or_purge} executor={executor}", store.name)
}

/// A block per product: every number of its policy, with the version that
/// events and audit records will carry.
fn write_product(f: &mut fmt::Formatter<'_>, p: &ProductPolicy) -> fmt::Result {
    writeln!(f, "product {} (policy {}):", p.name, p.version)?;
    writeln!(f, "  stores: {}", p.stores.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "))?;
    writeln!(f, "  buffer: expiry={} arrears={}", p.buffer.expiry, p.buffer.arrears)?;
    let reasons: Vec<String> = p.buffer.termination.iter().map(|(r, d)| format!("{}={d}", r.as_str())).collect();
    writeln!(f, "  termination: {}", reasons.join(" "))?;
    writeln!(f, "  arrears_grace: {}", p.arrears_grace)?;
    let notices: Vec<String> = p.notices.iter().map(|d| d.to_string()).collect();
    writeln!(f, "  notices: [{}]", notices.join(", "))?;
    let affects: Vec<&str> =
        p.arrears_affects.iter().map(|b| if *b == Billing::Prepaid { "prepaid" } else { "postpaid" }).collect();
    writeln!(f, "  arrears_affects: [{}]", affects.join(", "))?;
    writeln!(f, "  late_fee_per_day: {}%", (p.late_fee_per_day * Decimal::ONE_HUNDRED).normalize())?;
    let reminders: Vec<String> = p.renewal_reminder.iter().map(|d| d.to_string()).collect();
    writeln!(
        f,
        "  renewal_reminder: [{}] before the renewal cutoff ({} before the term end)",
        reminders.join(", "),
        p.renewal_cutoff
    )
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use std::path::Path;

    /// What `check-config` prints for a file that uses every kind of
    /// setting, byte for byte: operators and scripts read this output, so a
    /// change to it must be deliberate.
    #[test]
    fn check_config_prints_every_effective_setting() {
        let text = r#"[daemon]
state_dir = "/var/lib/retentiond"
drain_timeout = "90s"
[clock]
source = "manual"
start = "2026-01-31T12:00:00Z"
[api]
listen = "0.0.0.0:7400"
tokens_file = "/etc/retentiond/tokens.toml"
max_connections = 64
[safety]
dry_run = true
min_buffer = "2d"
min_notice = "45d"
[safety.guard]
max_fraction = 0.5
long_window = "3d"
[notifier]
kind = "http"
url = "https://notify.internal/v1/notices"
secret_env = "NOTIFY_KEY"
[schedule]
reconcile = "off"
[stores.primary]
class = "online"
executor = { kind = "fs", root = "/srv/tenant-data", path = "{tenant}/{resource}" }
[stores.scratch]
class = "cache"
executor = { kind = "fs", root = "/srv/scratch", path = "{resource}", marker = "" }
[stores.tape]
class = "backup"
purge = "at_expiry"
max_restricted = "60d"
executor = { kind = "command", argv = ["/usr/libexec/purge-tape", "{resource}", "{copy}"], timeout = "10m" }
[stores.vault]
class = "backup"
executor = { kind = "http", url = "https://purge.internal/v1/purge", secret_env = "PURGE_KEY" }
[stores.crm]
class = "online"
data = "personal"
executor = { kind = "http", url = "https://crm.internal/v1/privacy", secret_file = "/etc/retentiond/crm.key" }
[products.ecs]
stores = ["primary", "scratch", "tape", "vault"]
buffer = { expiry = "15d", arrears = "20d", termination = "15d", violation = "0s", attack = "30d" }
arrears_grace = "3d"
notices = ["1d", "7d"]
renewal_reminder = ["3d", "14d"]
renewal_cutoff = "5d"
arrears_affects = ["prepaid", "postpaid"]
late_fee_per_day = "0.1%"
[products.obs]
stores = ["primary"]
buffer = { expiry = "2d", arrears = "2d", termination = "2d" }
renewal_reminder = []
[privacy]
response_time = "30d"
warn_before = ["1d", "7d"]
auto_approve = true
[privacy.classes.contact]
stores = ["crm"]
after_closure = "30d"
erasure = "anonymize"
[privacy.classes.ledger]
stores = ["crm"]
after_closure = "7y"
legal_minimum = "7y"
erasure = "anonymize"
"#;
        let config = parse(Path::new("/etc/retentiond/retentiond.toml"), text).unwrap();
        let expected = concat!(
            "state_dir: /var/lib/retentiond\n",
            "clock: manual (start 2026-01-31T12:00:00Z)\n",
            "api: 0.0.0.0:7400 tokens_file=/etc/retentiond/tokens.toml\n",
            "api tls: off (plain http)\n",
            "api limits: max_connections=64 idle_timeout=30s max_auth_failures=10 auth_lockout=1m\n",
            "safety: dry_run=true min_buffer=2days after_hold_release=1day max_future_skew=5m max_clock_jump=1h\n",
            "guard: window=1h max_resources=1000 max_fraction=0.5 min_resources=20 long_window=3days long_max_resources=3000 long_max_fraction=0.25\n",
            "late_event_floor: 1day\n",
            "min_notice: 1month 14days 13h 26m 24s drain_timeout: 1m 30s\n",
            "notifier: http https://notify.internal/v1/notices\n",
            "schedule: reconcile=\"off\" backup_expiry=\"0 5 * * * *\"\n",
            "store crm: class=online data=personal executor=http https://crm.internal/v1/privacy (timeout 30s)\n",
            "store primary: class=online executor=fs /srv/tenant-data/{tenant}/{resource} (marker .retentiond-root)\n",
            "store scratch: class=cache executor=fs /srv/scratch/{resource} (no marker check)\n",
            "store tape: class=backup purge=at_expiry max_restricted=1month 29days 13h 26m 24s executor=command /usr/libexec/purge-tape (timeout 10m)\n",
            "store vault: class=backup purge=immediate executor=http https://purge.internal/v1/purge (timeout 30s)\n",
            "product ecs (policy 08274297e6b4a563):\n",
            "  stores: primary, scratch, tape, vault\n",
            "  buffer: expiry=15days arrears=20days\n",
            "  termination: agreement=15days violation=0s attack=30days discontinued=15days provider_outage=15days\n",
            "  arrears_grace: 3days\n",
            "  notices: [7days, 1day]\n",
            "  arrears_affects: [prepaid, postpaid]\n",
            "  late_fee_per_day: 0.1%\n",
            "  renewal_reminder: [14days, 3days] before the renewal cutoff (5days before the term end)\n",
            "product obs (policy 4308c33a459f8420):\n",
            "  stores: primary\n",
            "  buffer: expiry=2days arrears=2days\n",
            "  termination: agreement=2days violation=2days attack=2days discontinued=2days provider_outage=2days\n",
            "  arrears_grace: 0s\n",
            "  notices: []\n",
            "  arrears_affects: [postpaid]\n",
            "  late_fee_per_day: 0.05%\n",
            "  renewal_reminder: [] before the renewal cutoff (7days before the term end)\n",
            "privacy (version 187485a80e7b8dd0): response_time=30days warn_before=[7days, 1day] auto_approve=true\n",
            "  class contact: stores=[crm] after_closure=30days erasure=anonymize\n",
            "  class ledger: stores=[crm] after_closure=7years legal_minimum=7years erasure=anonymize\n",
        );
        assert_eq!(config.to_string(), expected);
    }
}
