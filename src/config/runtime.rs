//! The sections that set up the running daemon rather than a retention
//! policy: `[daemon]`, `[clock]`, `[api]`, `[notifier]` and `[schedule]`.
//! Each function checks one section and returns its validated settings, or
//! the first error with its position.

use super::origin::Origin;
use super::raw::{RawApi, RawClock, RawDaemon, RawSchedule};
use super::tls::RawTls;
use super::{ApiConfig, ClockSource, ConfigError, ConfigWarning, CronExpr, DaemonConfig, ScheduleConfig};
use crate::duration::Dur;
use crate::notifier::NotifierSpec;
use crate::time::parse_rfc3339;
use toml::Spanned;

/// `[daemon]`: at least one executor call and one attempt, and a drain
/// timeout a stopping service can wait for.
pub(super) fn daemon(origin: &Origin, raw: RawDaemon) -> Result<DaemonConfig, ConfigError> {
    let concurrency = raw.executor_concurrency;
    if *concurrency.get_ref() == 0 {
        return Err(origin.error(concurrency.span(), "daemon.executor_concurrency must be at least 1".into()));
    }
    let attempts = raw.max_attempts;
    if *attempts.get_ref() == 0 {
        return Err(origin.error(attempts.span(), "daemon.max_attempts must be at least 1".into()));
    }
    let drain_timeout = *raw.drain_timeout.get_ref();
    if drain_timeout.is_zero() || drain_timeout > Dur::from_secs(3_600) {
        return Err(origin.error(raw.drain_timeout.span(), "daemon.drain_timeout must be between 1s and 1h".into()));
    }
    Ok(DaemonConfig {
        state_dir: origin.resolve(raw.state_dir),
        cache_capacity: raw.cache_capacity,
        executor_concurrency: concurrency.into_inner(),
        max_attempts: attempts.into_inner(),
        audit_segment_bytes: raw.audit_segment_bytes.max(4096),
        drain_timeout,
    })
}

/// `[clock]`: the system clock unless `source = "manual"`, and a start
/// reading only for a manual one.
pub(super) fn clock(origin: &Origin, raw: Option<Spanned<RawClock>>) -> Result<ClockSource, ConfigError> {
    let Some(c) = raw else { return Ok(ClockSource::System) };
    let span = c.span();
    let c = c.into_inner();
    let source = c.source.as_ref().map(|s| s.get_ref().as_str()).unwrap_or("system");
    match source {
        "system" => {
            if let Some(start) = c.start {
                return Err(origin.error(start.span(), "clock.start is only allowed with source = \"manual\"".into()));
            }
            Ok(ClockSource::System)
        }
        "manual" => {
            let start = match c.start {
                None => None,
                Some(s) => {
                    Some(parse_rfc3339(s.get_ref()).map_err(|m| origin.error(s.span(), format!("clock.start: {m}")))?)
                }
            };
            Ok(ClockSource::Manual { start })
        }
        other => {
            let span = c.source.as_ref().map(|s| s.span()).unwrap_or(span);
            Err(origin
                .error(span, format!("clock.source: unknown source {other:?}, expected \"system\" or \"manual\"")))
        }
    }
}

/// `[api]`: limits inside the ranges where the server stays usable and a
/// lock-out stays a nuisance to an attacker rather than to everyone; the
/// TLS files checked by [`super::tls`], with their warnings.
pub(super) fn api(origin: &Origin, a: RawApi) -> Result<(ApiConfig, Vec<ConfigWarning>), ConfigError> {
    if !(1..=65_536).contains(a.max_connections.get_ref()) {
        return Err(origin.error(a.max_connections.span(), "api.max_connections must be between 1 and 65536".into()));
    }
    let idle = *a.idle_timeout.get_ref();
    if idle < Dur(std::time::Duration::from_millis(100)) || idle > Dur::from_secs(600) {
        return Err(origin.error(a.idle_timeout.span(), "api.idle_timeout must be between 100ms and 10m".into()));
    }
    if *a.max_auth_failures.get_ref() == 0 {
        return Err(origin.error(a.max_auth_failures.span(), "api.max_auth_failures must be at least 1".into()));
    }
    let lockout = *a.auth_lockout.get_ref();
    if lockout < Dur::from_secs(1) || lockout > Dur::from_secs(86_400) {
        return Err(origin.error(a.auth_lockout.span(), "api.auth_lockout must be between 1s and 1d".into()));
    }
    let raw_tls = RawTls {
        cert_file: a.tls_cert_file,
        key_file: a.tls_key_file,
        client_ca_file: a.tls_client_ca_file,
        client_auth: a.tls_client_auth,
    };
    let (tls, warnings) = super::tls::tls(origin, raw_tls, &a.listen)?;
    let api = ApiConfig {
        listen: a.listen.into_inner(),
        tokens_file: a.tokens_file.map(|p| origin.resolve(p)),
        max_connections: a.max_connections.into_inner(),
        idle_timeout: idle,
        max_auth_failures: a.max_auth_failures.into_inner(),
        auth_lockout: lockout,
        tls,
    };
    Ok((api, warnings))
}

/// `[notifier]`: checked by the notifier itself, reported at the section.
pub(super) fn notifier(
    origin: &Origin,
    raw: Option<Spanned<NotifierSpec>>,
) -> Result<Option<NotifierSpec>, ConfigError> {
    let Some(n) = raw else { return Ok(None) };
    let span = n.span();
    let n = n.into_inner();
    n.validate().map_err(|m| origin.error(span, m.to_string()))?;
    Ok(Some(n))
}

/// `[schedule]`: each sweep a cron expression the scheduler accepts, or
/// `"off"`.
pub(super) fn schedule(origin: &Origin, raw: RawSchedule) -> Result<ScheduleConfig, ConfigError> {
    Ok(ScheduleConfig {
        reconcile: cron(origin, "reconcile", raw.reconcile)?,
        backup_expiry: cron(origin, "backup_expiry", raw.backup_expiry)?,
    })
}

/// One `[schedule]` key.
fn cron(origin: &Origin, key: &str, v: Option<Spanned<String>>) -> Result<Option<CronExpr>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let expr = v.get_ref().trim();
    if expr == "off" {
        return Ok(None);
    }
    // The scheduler's own parser decides, so what is accepted here runs.
    tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {})).map_err(|_| {
        origin.error(
            v.span(),
            format!(
                "schedule.{key}: {expr:?} is not a cron expression with six fields, seconds first \
                 (e.g. \"0 */10 * * * *\"), or \"off\""
            ),
        )
    })?;
    Ok(Some(CronExpr(expr.to_string())))
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::duration::Dur;
    use std::path::Path;

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
}
