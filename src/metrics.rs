//! `GET /metrics`: counters kept as things happen, gauges read at scrape
//! time, rendered in the Prometheus text format (version 0.0.4).
//!
//! Counters live in one [`Metrics`] shared through an `Arc` by the engine
//! (events, audit records, executor calls) and the API (events refused with
//! 400). They start at zero with each process, as Prometheus expects of
//! counters. Gauges are not kept here: the API reads them from the store,
//! the audit log and the daemon's switches on each scrape and passes them
//! in as [`Gauges`], so they cannot drift from the state they describe.
//!
//! Labels hold only fixed words and names from the config (stores, event
//! types): never tenant, resource or copy ids, so neither the metrics nor
//! their cardinality carry business data.

use crate::audit::AuditKind;
use crate::store::StoreStats;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the executor latency histogram's buckets: from
/// a local `fs` removal to a command near its ten-minute limit.
pub const LATENCY_BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// Resource states, in lifecycle order; every one is reported, zeros included.
const STATES: [&str; 5] = ["active", "retained", "deleting", "deleted", "purged"];

/// Copy outcomes counted by `retentiond_deletions_total`, reported from zero.
const OUTCOMES: [&str; 6] = ["deleted", "restricted", "purged", "removed_by_backup_system", "failed", "stuck"];

/// Who asked for a retry, reported from zero.
const RETRY_BY: [&str; 2] = ["backoff", "operator"];

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One executor latency histogram (per store and action) with its results.
#[derive(Clone, Debug, Default)]
struct Calls {
    /// Calls per bucket of [`LATENCY_BUCKETS`] (not cumulative), the last
    /// slot for calls beyond the largest bound.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    ok: u64,
    error: u64,
}

#[derive(Default)]
struct Counters {
    /// (event type, status) -> count.
    events: BTreeMap<(&'static str, &'static str), u64>,
    /// Copy outcome -> count.
    deletions: BTreeMap<&'static str, u64>,
    resources_purged: u64,
    /// (store, action) -> calls.
    calls: BTreeMap<(String, &'static str), Calls>,
    /// Who asked -> retries.
    retries: BTreeMap<&'static str, u64>,
    /// (notice kind, result) -> count.
    notices: BTreeMap<(&'static str, &'static str), u64>,
}

/// Notice kinds, for `retentiond_notices_total` (fixed words, never ids).
const NOTICE_KINDS: [&str; 4] = ["renewal_reminder", "buffer_started", "deletion_warning", "deletion_completed"];

/// The daemon's counters. Cheap to update (one short lock); shared by the
/// engine and the API.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

/// What a scrape reads from the current state (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Resources, copies and deadlines, from one scan of the store.
    pub store: StoreStats,
    /// Holds in force and those due for review, from the store's counts.
    pub holds: crate::store::HoldCounts,
    /// `seq` of the last record in the audit file.
    pub audit_head_seq: u64,
    /// Deletions paused by an operator.
    pub paused: bool,
    /// The mass-deletion guard tripped.
    pub guard_tripped: bool,
    /// A wall-clock jump stopped deletions.
    pub clock_anomaly: bool,
    /// `safety.dry_run` in the config in force: no deletion starts, so due
    /// deadlines stay due. Alert rules need it to tell a dry run from an
    /// engine that has stopped working off its deadlines.
    pub dry_run: bool,
    /// Privacy requests not yet answered or completed (issue 12): few, read
    /// from the store's list of open requests.
    pub requests: Vec<crate::store::OpenRequest>,
}

impl Metrics {
    /// New counters, all at zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic elsewhere while holding the lock leaves counts that are
        // still good enough to report.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An event's result: `applied`, `duplicate` or `rejected` from the
    /// engine, `invalid` from the API (refused with 400, nothing stored).
    pub fn event(&self, event_type: &'static str, status: &'static str) {
        *self.lock().events.entry((event_type, status)).or_default() += 1;
    }

    /// An event refused with 400. Its type is counted only when it is one
    /// this build knows (else `unknown`), so callers cannot add label values.
    pub fn invalid_event(&self, item: Option<&Value>) {
        let named = item.and_then(|v| v.get("type")).and_then(Value::as_str);
        let known = named.and_then(|t| crate::domain::event::TYPES.iter().find(|k| **k == t)).copied();
        self.event(known.unwrap_or("unknown"), "invalid");
    }

    /// An audit record was written: counts copy outcomes, purged
    /// resources and retries. Every other kind is ignored.
    pub fn audit_record(&self, kind: AuditKind, data: &Value) {
        let mut c = self.lock();
        let outcome = match kind {
            AuditKind::CopyDeleted if data["by"] == "backup_system" => Some("removed_by_backup_system"),
            AuditKind::CopyDeleted => Some("deleted"),
            AuditKind::CopyRestricted => Some("restricted"),
            AuditKind::CopyPurged => Some("purged"),
            AuditKind::CopyFailed => Some("failed"),
            AuditKind::CopyStuck => Some("stuck"),
            _ => None,
        };
        if let Some(o) = outcome {
            *c.deletions.entry(o).or_default() += 1;
        }
        match kind {
            // A failed call with a retry scheduled (`copy.stuck` has none).
            AuditKind::CopyFailed => *c.retries.entry("backoff").or_default() += 1,
            AuditKind::CopyRetry => {
                let n = data["copies"].as_array().map_or(1, |a| a.len() as u64);
                *c.retries.entry("operator").or_default() += n;
            }
            AuditKind::ResourcePurged => c.resources_purged += 1,
            AuditKind::NoticeSent
            | AuditKind::NoticeFailed
            | AuditKind::NoticeSkipped
            | AuditKind::NoticeSuperseded => {
                let notice = NOTICE_KINDS.iter().find(|k| data["notice"] == **k).copied().unwrap_or("unknown");
                let result = match kind {
                    AuditKind::NoticeSent => "sent",
                    AuditKind::NoticeFailed => "failed",
                    AuditKind::NoticeSuperseded => "superseded",
                    _ => "skipped",
                };
                *c.notices.entry((notice, result)).or_default() += 1;
            }
            _ => {}
        }
    }

    /// An executor call finished (`ok`: the store confirmed the action).
    pub fn executor_call(&self, store: &str, action: &'static str, ok: bool, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut c = self.lock();
        let calls = c.calls.entry((store.to_string(), action)).or_default();
        let slot = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        calls.buckets[slot] += 1;
        calls.sum += secs;
        if ok {
            calls.ok += 1;
        } else {
            calls.error += 1;
        }
    }

    /// The whole exposition: every family with `# HELP` and `# TYPE`.
    pub fn render(&self, g: &Gauges) -> String {
        let c = self.lock();
        let mut o = Out::default();

        o.family("retentiond_build_info", "gauge", "Always 1; the version of this build is a label.");
        o.sample("retentiond_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);

        o.family(
            "retentiond_events_total",
            "counter",
            "Events by type and status: applied, duplicate or rejected by the engine; invalid when refused \
             with 400 (type \"unknown\" when the type itself was not understood).",
        );
        for ((t, s), n) in &c.events {
            o.sample("retentiond_events_total", &[("type", *t), ("status", *s)], n);
        }

        o.family(
            "retentiond_deletions_total",
            "counter",
            "Executor outcomes per copy: deleted, restricted, purged, removed_by_backup_system (backup.deleted), \
             failed (a retry is scheduled) and stuck (retries exhausted).",
        );
        for outcome in OUTCOMES {
            let n = c.deletions.get(outcome).copied().unwrap_or(0);
            o.sample("retentiond_deletions_total", &[("outcome", outcome)], n);
        }

        o.family(
            "retentiond_resources_purged_total",
            "counter",
            "Resources purged: every copy gone, certificate issued.",
        );
        o.sample("retentiond_resources_purged_total", &[], c.resources_purged);

        o.family(
            "retentiond_retries_total",
            "counter",
            "Executor calls to be made again: after a failure with backoff, or by an operator for stuck copies.",
        );
        for by in RETRY_BY {
            o.sample("retentiond_retries_total", &[("by", by)], c.retries.get(by).copied().unwrap_or(0));
        }

        o.family(
            "retentiond_notices_total",
            "counter",
            "Notices to tenants by kind and result: sent (confirmed by the notifier), failed (to be retried), \
             skipped (no notifier, or dry run), superseded (dropped unsent: what it announced changed).",
        );
        for notice in NOTICE_KINDS {
            for result in ["sent", "failed", "skipped", "superseded"] {
                let n = c.notices.get(&(notice, result)).copied().unwrap_or(0);
                o.sample("retentiond_notices_total", &[("notice", notice), ("result", result)], n);
            }
        }

        o.family("retentiond_executor_calls_total", "counter", "Executor calls by store, action and result.");
        for ((store, action), calls) in &c.calls {
            for (result, n) in [("ok", calls.ok), ("error", calls.error)] {
                let labels = [("store", store.as_str()), ("action", *action), ("result", result)];
                o.sample("retentiond_executor_calls_total", &labels, n);
            }
        }

        let h = "retentiond_executor_call_duration_seconds";
        o.family(h, "histogram", "Executor call latency by store and action, timeouts included.");
        for ((store, action), calls) in &c.calls {
            let (store, action) = (store.as_str(), *action);
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += calls.buckets[i];
                let le = fmt_float(*bound);
                o.sample(&format!("{h}_bucket"), &[("store", store), ("action", action), ("le", &le)], cumulative);
            }
            let count = cumulative + calls.buckets[LATENCY_BUCKETS.len()];
            o.sample(&format!("{h}_bucket"), &[("store", store), ("action", action), ("le", "+Inf")], count);
            o.sample(&format!("{h}_sum"), &[("store", store), ("action", action)], fmt_float(calls.sum));
            o.sample(&format!("{h}_count"), &[("store", store), ("action", action)], count);
        }
        drop(c);

        o.family("retentiond_resources", "gauge", "Tracked resources by state (read from the store at scrape time).");
        for state in STATES {
            let n = g.store.resources.get(state).copied().unwrap_or(0);
            o.sample("retentiond_resources", &[("state", state)], n);
        }
        o.family("retentiond_pending_deadlines", "gauge", "Entries in the deadline index.");
        o.sample("retentiond_pending_deadlines", &[], g.store.pending_deadlines);
        o.family(
            "retentiond_next_deadline_timestamp_seconds",
            "gauge",
            "Unix time of the earliest entry in the deadline index; no sample when there is none.",
        );
        if let Some(t) = g.store.next_deadline {
            let secs = t.timestamp_millis() as f64 / 1000.0;
            o.sample("retentiond_next_deadline_timestamp_seconds", &[], fmt_float(secs));
        }
        o.family("retentiond_copies_stuck", "gauge", "Copies whose retries are exhausted, waiting for an operator.");
        o.sample("retentiond_copies_stuck", &[], g.store.copies_stuck);
        o.family(
            "retentiond_copies_restricted",
            "gauge",
            "Backup copies under processing restriction, waiting to be purged at expiry.",
        );
        o.sample("retentiond_copies_restricted", &[], g.store.copies_restricted);
        o.family(
            "retentiond_copies_restriction_overdue",
            "gauge",
            "Restricted backup copies kept past their store's max_restricted: an operator must act.",
        );
        o.sample("retentiond_copies_restriction_overdue", &[], g.store.copies_restriction_overdue);
        o.family("retentiond_holds", "gauge", "Holds in force (a hold on a whole tenant counts once).");
        o.sample("retentiond_holds", &[], g.holds.in_force);
        o.family(
            "retentiond_holds_review_due",
            "gauge",
            "Holds in force past their review_at: each stays in force until released; someone must decide.",
        );
        o.sample("retentiond_holds_review_due", &[], g.holds.review_due);
        o.family(
            "retentiond_requests",
            "gauge",
            "Open privacy requests (erasure, restriction) by state: received (awaiting a decision), approved \
             (deferred by a hold, or about to run), executing.",
        );
        for state in ["received", "approved", "executing"] {
            let n = g.requests.iter().filter(|r| r.state.as_str() == state).count();
            o.sample("retentiond_requests", &[("state", state)], n as u64);
        }
        o.family(
            "retentiond_requests_overdue",
            "gauge",
            "Open privacy requests past their due date without an answer (privacy policy 5.6.1: 15 days).",
        );
        let overdue = g.requests.iter().filter(|r| r.overdue && r.state.as_str() == "received").count();
        o.sample("retentiond_requests_overdue", &[], overdue as u64);
        o.family(
            "retentiond_request_oldest_due_timestamp_seconds",
            "gauge",
            "Due date (Unix seconds) of the oldest privacy request awaiting a decision; 0 when none waits.",
        );
        let oldest = g.requests.iter().filter(|r| r.state.as_str() == "received").map(|r| r.due.timestamp()).min();
        o.sample("retentiond_request_oldest_due_timestamp_seconds", &[], oldest.unwrap_or(0).max(0) as u64);
        o.family("retentiond_audit_head_seq", "gauge", "Sequence number of the last record in the audit file.");
        o.sample("retentiond_audit_head_seq", &[], g.audit_head_seq);
        for (name, on, help) in [
            ("retentiond_paused", g.paused, "1 while an operator has paused deletions."),
            ("retentiond_guard_tripped", g.guard_tripped, "1 while the mass-deletion guard stops deletions."),
            ("retentiond_clock_anomaly", g.clock_anomaly, "1 while a wall-clock jump stops deletions."),
            ("retentiond_dry_run", g.dry_run, "1 while the config in force has safety.dry_run: no deletion starts."),
        ] {
            o.family(name, "gauge", help);
            o.sample(name, &[], u8::from(on));
        }
        o.0
    }
}

/// The text being built.
#[derive(Default)]
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value in the text format: backslash, double quote and line feed
/// escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A `# HELP` text: backslash and line feed escaped (quotes stay).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as the text format spells it (`+Inf`, `-Inf`, `NaN`).
fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One sample line read back: name, labels (unescaped), value.
    type Sample = (String, Vec<(String, String)>, String);

    /// A strict reader of the text format's sample lines, written from the
    /// format's description rather than from the renderer. Panics (fails
    /// the test) on anything malformed.
    fn parse_sample(line: &str) -> Sample {
        let chars: Vec<char> = line.chars().collect();
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut i = 0;
        let mut name = String::new();
        while i < chars.len() && ident(chars[i]) {
            name.push(chars[i]);
            i += 1;
        }
        assert!(!name.is_empty(), "no name in {line:?}");
        let mut labels = Vec::new();
        if chars.get(i) == Some(&'{') {
            i += 1;
            loop {
                let mut key = String::new();
                while chars[i] != '=' {
                    assert!(ident(chars[i]), "bad label name in {line:?}");
                    key.push(chars[i]);
                    i += 1;
                }
                assert_eq!(chars[i + 1], '"', "{line:?}");
                i += 2;
                let mut value = String::new();
                loop {
                    let c = chars[i];
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            value.push(match chars[i] {
                                '\\' => '\\',
                                '"' => '"',
                                'n' => '\n',
                                other => panic!("bad escape \\{other} in {line:?}"),
                            });
                            i += 1;
                        }
                        c => value.push(c),
                    }
                }
                labels.push((key, value));
                i += 1;
                match chars[i - 1] {
                    ',' => continue,
                    '}' => break,
                    other => panic!("unexpected {other:?} in {line:?}"),
                }
            }
        }
        assert_eq!(chars.get(i), Some(&' '), "no space before the value in {line:?}");
        let value: String = chars[i + 1..].iter().collect();
        assert!(value == "NaN" || value == "+Inf" || value.parse::<f64>().is_ok(), "bad value in {line:?}");
        (name, labels, value)
    }

    /// Every line of an exposition: each family's HELP then TYPE before its
    /// samples, each sample belonging to the family declared last.
    fn parse(text: &str) -> Vec<Sample> {
        assert!(text.ends_with('\n'));
        let mut family: Option<(String, String)> = None;
        let mut seen = std::collections::HashSet::new();
        let mut samples = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let name = help.split(' ').next().unwrap().to_string();
                assert!(seen.insert(name.clone()), "family {name} twice");
                let ty = lines.next().and_then(|l| l.strip_prefix("# TYPE ")).expect("TYPE after HELP");
                let (tname, kind) = ty.split_once(' ').unwrap();
                assert_eq!(tname, name);
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{kind}");
                family = Some((name, kind.to_string()));
                continue;
            }
            assert!(!line.starts_with('#'), "stray comment {line}");
            let s = parse_sample(line);
            let (fname, kind) = family.as_ref().expect("a sample after its family");
            let ok = match kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"].iter().any(|x| s.0 == format!("{fname}{x}")),
                _ => &s.0 == fname,
            };
            assert!(ok, "sample {} outside its family {fname}", s.0);
            samples.push(s);
        }
        samples
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<String> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.2.clone())
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("plain-store_1"), "plain-store_1");
        assert_eq!(escape_label("a\"b"), "a\\\"b");
        assert_eq!(escape_label("a\\b"), "a\\\\b");
        assert_eq!(escape_label("a\nb"), "a\\nb");
        assert_eq!(escape_label("\\\"\n"), "\\\\\\\"\\n");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
    }

    #[test]
    fn awkward_label_values_read_back_unchanged() {
        let m = Metrics::new();
        let nasty = "we\"ird\\store\nname}, x=\"y";
        m.executor_call(nasty, "delete", false, Duration::from_millis(20));
        let samples = parse(&m.render(&Gauges::default()));
        let v = value(
            &samples,
            "retentiond_executor_calls_total",
            &[("store", nasty), ("action", "delete"), ("result", "error")],
        );
        assert_eq!(v.as_deref(), Some("1"));
        let v = value(
            &samples,
            "retentiond_executor_call_duration_seconds_count",
            &[("store", nasty), ("action", "delete")],
        );
        assert_eq!(v.as_deref(), Some("1"));
    }

    #[test]
    fn the_exposition_reads_back_with_the_values_recorded() {
        let m = Metrics::new();
        m.event("resource.created", "applied");
        m.event("resource.created", "applied");
        m.event("resource.created", "duplicate");
        m.invalid_event(Some(&json!({"type": "resource.renewed"})));
        m.invalid_event(Some(&json!({"type": "made.up"})));
        m.invalid_event(None);
        for (kind, data) in [
            ("copy.deleted", json!({"store": "primary"})),
            ("copy.deleted", json!({"store": "snaps", "by": "backup_system"})),
            ("copy.restricted", json!({})),
            ("copy.purged", json!({})),
            ("copy.purged", json!({})),
            ("copy.failed", json!({})),
            ("copy.stuck", json!({})),
            ("copy.retry", json!({"copies": [{}, {}, {}]})),
            ("resource.purged", json!({})),
            ("event.applied", json!({})),
        ] {
            m.audit_record(AuditKind::parse(kind).expect("a known kind"), &data);
        }
        m.executor_call("primary", "delete", true, Duration::from_millis(5));
        m.executor_call("primary", "delete", true, Duration::from_millis(70));
        m.executor_call("primary", "delete", false, Duration::from_secs(700));
        let mut g = Gauges { audit_head_seq: 42, paused: true, dry_run: true, ..Default::default() };
        g.store.resources.insert("deleting", 3);
        g.store.pending_deadlines = 7;
        g.store.next_deadline = Some(crate::time::parse_rfc3339("2026-02-01T00:00:00.5Z").unwrap());
        g.holds = crate::store::HoldCounts { in_force: 5, review_due: 2 };
        let text = m.render(&g);
        let s = parse(&text);
        let v = |name: &str, labels: &[(&str, &str)]| {
            value(&s, name, labels).unwrap_or_else(|| panic!("{name} {labels:?}\n{text}"))
        };

        assert_eq!(v("retentiond_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), "1");
        let ev = "retentiond_events_total";
        assert_eq!(v(ev, &[("type", "resource.created"), ("status", "applied")]), "2");
        assert_eq!(v(ev, &[("type", "resource.created"), ("status", "duplicate")]), "1");
        assert_eq!(v(ev, &[("type", "resource.renewed"), ("status", "invalid")]), "1");
        assert_eq!(v(ev, &[("type", "unknown"), ("status", "invalid")]), "2", "made-up types are not labels");
        let del = "retentiond_deletions_total";
        for (outcome, n) in [
            ("deleted", "1"),
            ("removed_by_backup_system", "1"),
            ("restricted", "1"),
            ("purged", "2"),
            ("failed", "1"),
            ("stuck", "1"),
        ] {
            assert_eq!(v(del, &[("outcome", outcome)]), n, "{outcome}");
        }
        assert_eq!(v("retentiond_resources_purged_total", &[]), "1");
        assert_eq!(v("retentiond_retries_total", &[("by", "backoff")]), "1");
        assert_eq!(v("retentiond_retries_total", &[("by", "operator")]), "3");
        let calls = "retentiond_executor_calls_total";
        assert_eq!(v(calls, &[("store", "primary"), ("action", "delete"), ("result", "ok")]), "2");
        assert_eq!(v(calls, &[("store", "primary"), ("action", "delete"), ("result", "error")]), "1");
        let h = "retentiond_executor_call_duration_seconds";
        let b = |le: &str| v(&format!("{h}_bucket"), &[("store", "primary"), ("action", "delete"), ("le", le)]);
        assert_eq!(
            (b("0.01"), b("0.05"), b("0.1"), b("600"), b("+Inf")),
            ("1".into(), "1".into(), "2".into(), "2".into(), "3".into())
        );
        assert_eq!(v(&format!("{h}_count"), &[("store", "primary"), ("action", "delete")]), "3");
        let sum: f64 = v(&format!("{h}_sum"), &[("store", "primary"), ("action", "delete")]).parse().unwrap();
        assert!((sum - 700.075).abs() < 1e-9, "{sum}");

        for (state, n) in [("active", "0"), ("retained", "0"), ("deleting", "3"), ("deleted", "0"), ("purged", "0")] {
            assert_eq!(v("retentiond_resources", &[("state", state)]), n, "{state}");
        }
        assert_eq!(v("retentiond_pending_deadlines", &[]), "7");
        assert_eq!(v("retentiond_next_deadline_timestamp_seconds", &[]), "1769904000.5");
        assert_eq!(v("retentiond_audit_head_seq", &[]), "42");
        assert_eq!(v("retentiond_holds", &[]), "5");
        assert_eq!(v("retentiond_holds_review_due", &[]), "2");
        assert_eq!(v("retentiond_paused", &[]), "1");
        assert_eq!(v("retentiond_guard_tripped", &[]), "0");
        assert_eq!(v("retentiond_clock_anomaly", &[]), "0");
        assert_eq!(v("retentiond_dry_run", &[]), "1");
        assert_eq!(v("retentiond_copies_stuck", &[]), "0");
    }

    #[test]
    fn no_deadline_means_no_sample_but_the_family_is_declared() {
        let text = Metrics::new().render(&Gauges::default());
        let s = parse(&text);
        assert!(text.contains("# TYPE retentiond_next_deadline_timestamp_seconds gauge\n"));
        assert_eq!(value(&s, "retentiond_next_deadline_timestamp_seconds", &[]), None);
        assert_eq!(value(&s, "retentiond_resources", &[("state", "purged")]).as_deref(), Some("0"));
    }
}
