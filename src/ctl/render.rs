//! Output: tables and `key  value` lines for people, made from the API's
//! wire types (`--json` prints the daemon's JSON as served instead). The
//! one place output is aligned and server text is made safe for a terminal.

use anyhow::anyhow;
use retentiond::api::wire::{
    AuditPage, Certificate, Deletions, EventResult, HoldList, LastReload, PolicyReport, Readiness, RequestList,
    RequestView, ResourceView, RestoreCheck, SubjectView,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// The results of `POST /v1/events`, with a count of each outcome.
pub(super) fn show_event_results(results: &[EventResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let error = match (&r.field, &r.error) {
                (Some(f), Some(e)) => format!("{f}: {e}"),
                (None, Some(e)) => e.to_string(),
                _ => String::new(),
            };
            vec![cell(&r.event_id), cell(&r.status), error]
        })
        .collect();
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    let mut out = table(&["EVENT_ID", "STATUS", "ERROR"], &rows);
    let _ =
        writeln!(out, "{} applied, {} duplicate, {} rejected", count("applied"), count("duplicate"), count("rejected"));
    out
}

pub(super) fn show_resource(v: &ResourceView) -> String {
    let holds: Vec<String> = v
        .holds
        .iter()
        .map(|h| format!("{} ({}, {}: {})", cell(&h.hold_id), cell(&h.scope), cell(&h.authority), cell(&h.reason)))
        .collect();
    let mut f = vec![
        ("resource", cell(&v.resource)),
        ("tenant", cell(&v.tenant)),
        ("product", format!("{} ({})", cell(&v.product), cell(&v.billing))),
        ("term_end", cell(&v.term_end)),
        ("state", cell(&v.state)),
        ("cause", with_reason(&v.cause, v.reason.as_ref())),
        ("buffer_started_at", cell(&v.buffer_started_at)),
        ("delete_after", cell(&v.delete_after)),
        ("policy_version", cell(&v.policy_version)),
    ];
    if v.not_before.is_some() {
        f.push(("not_before", cell(&v.not_before)));
    }
    if v.deletion_started_at.is_some() {
        f.push(("deletion_started", cell(&v.deletion_started_at)));
    }
    if let Some(a) = &v.arrears {
        let mut s = format!("since {}", cell(&a.started_at));
        if a.amount.is_some() {
            let _ = write!(s, ", {} {}", cell(&a.amount), cell(&a.currency));
        }
        if let Some(fee) = &a.late_fee {
            let _ = write!(s, ", late fee so far {}", cell(fee));
        }
        f.push(("arrears", s));
    }
    f.push(("holds", if holds.is_empty() { "none".to_string() } else { holds.join("; ") }));
    let mut out = fields(&f);
    let copies: Vec<Vec<String>> = v
        .copies
        .iter()
        .map(|c| {
            let state = if c.stuck { format!("{} (stuck)", cell(&c.state)) } else { cell(&c.state) };
            vec![
                cell(&c.store),
                cell(&c.copy),
                cell(&c.class),
                state,
                cell(&c.attempts),
                cell(&c.done_at),
                cell(&c.last_error),
            ]
        })
        .collect();
    out.push_str("\ncopies:\n");
    out.push_str(&table(&["STORE", "COPY", "CLASS", "STATE", "ATTEMPTS", "DONE_AT", "LAST_ERROR"], &copies));
    let history: Vec<Vec<String>> =
        v.history.iter().map(|h| vec![cell(&h.at), cell(&h.what), cell(&h.detail)]).collect();
    out.push_str("\nhistory:\n");
    out.push_str(&table(&["AT", "WHAT", "DETAIL"], &history));
    out
}

pub(super) fn show_forecast(v: &Deletions) -> String {
    let rows: Vec<Vec<String>> = v
        .deletions
        .iter()
        .map(|d| {
            vec![
                cell(&d.deadline),
                cell(&d.resource),
                cell(&d.tenant),
                cell(&d.state),
                with_reason(&d.cause, d.reason.flatten().as_ref()),
                if d.projected == Some(true) { "yes".into() } else { "no".into() },
                list(&d.blockers),
            ]
        })
        .collect();
    let mut out = format!("deletions due before {}:\n", cell(&v.before));
    out.push_str(&table(&["DEADLINE", "RESOURCE", "TENANT", "STATE", "CAUSE", "PROJECTED", "BLOCKERS"], &rows));
    out
}

/// The holds in force, one a line, with a count of those due for review.
pub(super) fn show_holds(v: &HoldList) -> String {
    let rows: Vec<Vec<String>> = v
        .holds
        .iter()
        .map(|h| {
            let review = match (&h.review_at, h.review_due) {
                (Some(at), true) => format!("{} (DUE)", cell(at)),
                (at, _) => cell(at),
            };
            vec![
                cell(&h.tenant),
                h.resource.as_ref().map_or_else(|| "(whole tenant)".to_string(), cell),
                cell(&h.hold_id),
                cell(&h.authority),
                cell(&h.placed_at),
                review,
                cell(&h.reason),
            ]
        })
        .collect();
    let mut out = table(&["TENANT", "RESOURCE", "HOLD_ID", "AUTHORITY", "PLACED_AT", "REVIEW_AT", "REASON"], &rows);
    let due = v.holds.iter().filter(|h| h.review_due).count();
    let _ = writeln!(out, "{} holds in force, {due} due for review", v.holds.len());
    out
}

/// A privacy request: where it stands, then (an erasure) each class.
pub(super) fn show_request(v: &RequestView) -> String {
    let mut f = vec![
        ("request", cell(&v.request)),
        ("tenant", cell(&v.tenant)),
        ("subject", cell(&v.subject)),
        ("kind", cell(&v.kind)),
        ("state", cell(&v.state)),
        ("overdue", yes_no(v.overdue)),
        ("verified", yes_no(v.verified)),
        ("grounds", list(&v.grounds)),
        ("received_at", cell(&v.received_at)),
        ("due", cell(&v.due)),
        ("decided_at", cell(&v.decided_at)),
        ("refusal_ground", cell(&v.refusal_ground)),
        ("completed_at", cell(&v.completed_at)),
    ];
    if v.linked_to.is_some() {
        f.push(("linked_to", format!("{} (repeats it; shares its answer)", cell(&v.linked_to))));
    }
    if !v.deferred_by.is_empty() {
        f.push(("deferred_by", format!("holds {} on the tenant", list(&v.deferred_by))));
    }
    if v.lifted_at.is_some() {
        f.push(("lifted_at", cell(&v.lifted_at)));
    }
    let mut out = fields(&f);
    if v.kind == "erasure" {
        let rows: Vec<Vec<String>> =
            v.classes.iter().map(|c| vec![cell(&c.class), cell(&c.outcome), cell(&c.kept_until)]).collect();
        out.push_str("\nclasses:\n");
        out.push_str(&table(&["CLASS", "OUTCOME", "KEPT_UNTIL"], &rows));
    }
    out
}

/// Privacy requests, one a line by id, with a count of the open overdue ones.
pub(super) fn show_requests(v: &RequestList) -> String {
    let rows: Vec<Vec<String>> = v
        .requests
        .iter()
        .map(|r| {
            vec![
                cell(&r.request),
                cell(&r.tenant),
                cell(&r.subject),
                cell(&r.kind),
                cell(&r.state),
                cell(&r.received_at),
                cell(&r.due),
                yes_no(r.overdue),
            ]
        })
        .collect();
    let mut out = table(&["REQUEST", "TENANT", "SUBJECT", "KIND", "STATE", "RECEIVED_AT", "DUE", "OVERDUE"], &rows);
    let closed = ["completed", "partially_completed", "refused"];
    let overdue = v.requests.iter().filter(|r| r.overdue && !closed.contains(&r.state.as_str())).count();
    let _ = writeln!(out, "{} requests, {overdue} open and overdue", v.requests.len());
    out
}

/// A subject: its classes, their copy in each store (class by store), and
/// its requests.
pub(super) fn show_subject(v: &SubjectView) -> String {
    let mut out = fields(&[
        ("tenant", cell(&v.tenant)),
        ("subject", cell(&v.subject)),
        ("account_holder", yes_no(v.account_holder)),
        ("registered_at", cell(&v.registered_at)),
        ("closed_at", cell(&v.closed_at)),
        ("restricted_by", cell(&v.restricted_by)),
    ]);
    let classes: Vec<Vec<String>> = v
        .classes
        .iter()
        .map(|c| {
            vec![
                cell(&c.class),
                cell(&c.erasure),
                cell(&c.erase_after),
                cell(&c.keep_until),
                cell(&c.scheduled_by),
                cell(&c.started_at),
                cell(&c.policy_version),
            ]
        })
        .collect();
    out.push_str("\nclasses:\n");
    out.push_str(&table(
        &["CLASS", "ERASURE", "ERASE_AFTER", "KEEP_UNTIL", "SCHEDULED_BY", "STARTED_AT", "POLICY_VERSION"],
        &classes,
    ));
    let stores: Vec<Vec<String>> = v
        .classes
        .iter()
        .flat_map(|c| {
            c.stores.iter().map(move |s| {
                let state = if s.stuck { format!("{} (stuck)", cell(&s.state)) } else { cell(&s.state) };
                vec![
                    cell(&c.class),
                    cell(&s.store),
                    state,
                    cell(&s.attempts),
                    cell(&s.done_at),
                    cell(&s.audit_seq),
                    cell(&s.last_error),
                ]
            })
        })
        .collect();
    out.push_str("\nstores:\n");
    out.push_str(&table(&["CLASS", "STORE", "STATE", "ATTEMPTS", "DONE_AT", "AUDIT_SEQ", "LAST_ERROR"], &stores));
    let requests: Vec<Vec<String>> = v
        .requests
        .iter()
        .map(|r| vec![cell(&r.request), cell(&r.kind), cell(&r.state), cell(&r.due), yes_no(r.overdue)])
        .collect();
    out.push_str("\nrequests:\n");
    out.push_str(&table(&["REQUEST", "KIND", "STATE", "DUE", "OVERDUE"], &requests));
    out
}

pub(super) fn show_audit(v: &AuditPage, limit: u64) -> String {
    let rows: Vec<Vec<String>> = v
        .records
        .iter()
        .map(|r| vec![cell(&r.seq), cell(&r.at), cell(&r.kind), cell(&r.tenant), cell(&r.resource)])
        .collect();
    let mut out = table(&["SEQ", "AT", "KIND", "TENANT", "RESOURCE"], &rows);
    if v.records.len() as u64 >= limit {
        if let Some(last) = v.records.last() {
            let _ = writeln!(out, "(more may follow: --after-seq {})", cell(&last.seq));
        }
    }
    out
}

pub(super) fn show_certificate(v: &Certificate) -> String {
    let mut out = fields(&[
        ("certificate", cell(&v.certificate)),
        ("resource", cell(&v.resource)),
        ("tenant", cell(&v.tenant)),
        ("product", cell(&v.product)),
        ("cause", with_reason(&v.cause, v.reason.as_ref())),
        ("policy_version", cell(&v.policy_version)),
        ("buffer_started_at", cell(&v.buffer_started_at)),
        ("delete_after", cell(&v.delete_after)),
        ("deletion_started", cell(&v.deletion_started_at)),
        ("purged_at", cell(&v.purged_at)),
        ("purged_seq", cell(&v.purged_seq)),
        ("chain_hash", cell(&v.chain_hash)),
    ]);
    let copies: Vec<Vec<String>> = v
        .copies
        .iter()
        .map(|c| vec![cell(&c.store), cell(&c.copy), cell(&c.class), cell(&c.outcome), cell(&c.at), cell(&c.audit_seq)])
        .collect();
    out.push_str("\ncopies:\n");
    out.push_str(&table(&["STORE", "COPY", "CLASS", "OUTCOME", "AT", "AUDIT_SEQ"], &copies));
    out
}

pub(super) fn show_restore_check(v: &RestoreCheck) -> String {
    let mut out = format!("{}: {}\n", if v.allowed { "allowed" } else { "refused" }, cell(&v.reason));
    if let Some(refused) = v.refused.as_ref().filter(|r| !r.is_empty()) {
        let rows: Vec<Vec<String>> = refused.iter().map(|r| vec![cell(&r.resource), cell(&r.reason)]).collect();
        out.push_str(&table(&["RESOURCE", "REASON"], &rows));
    }
    out
}

/// The last reload for `status`: "none since start", "ok at T: changed
/// ecs; added web", or "REFUSED at T: why".
pub(super) fn show_reload(r: Option<&LastReload>) -> String {
    let Some(r) = r else { return "none since start".to_string() };
    if r.ok {
        let moved: Vec<String> = [("changed", &r.changed), ("added", &r.added), ("removed", &r.removed)]
            .into_iter()
            .filter_map(|(k, names)| names.as_ref().filter(|n| !n.is_empty()).map(|n| format!("{k} {}", list(n))))
            .collect();
        let moved = if moved.is_empty() { "no policy changed".to_string() } else { moved.join("; ") };
        format!("ok at {}: {moved}", cell(&r.at))
    } else {
        format!("REFUSED at {}: {}", cell(&r.at), cell(&r.error))
    }
}

/// `key  value` lines for what /readyz reports, keys in alphabetical order
/// (as served); a field the daemon leaves out has no line.
pub(super) fn show_status(v: &Readiness) -> String {
    let mut f: Vec<(&str, String)> = Vec::new();
    let mut line = |key, shown: Option<String>| f.extend(shown.map(|s| (key, s)));
    line("clock", v.clock.as_ref().map(cell));
    line("clock_anomaly", v.clock_anomaly.as_ref().map(cell));
    line("dry_run", v.dry_run.as_ref().map(cell));
    line(
        "guard_batch",
        v.guard_batch.as_ref().map(|batch| match batch {
            Some(b) => format!(
                "{} resources held since {} (digest {}); `ctl approve --batch DIGEST` releases them",
                cell(&b.size),
                cell(&b.tripped_at),
                cell(&b.digest)
            ),
            None => cell(&Value::Null),
        }),
    );
    line("guard_tripped", v.guard_tripped.as_ref().map(cell));
    line("last_reload", v.last_reload.as_ref().map(|r| show_reload(r.as_ref())));
    line("now", v.now.as_ref().map(cell));
    line("paused", v.paused.as_ref().map(cell));
    line(
        "policies",
        v.policies.as_ref().map(|m| {
            let pairs: Vec<String> = m.iter().map(|(p, ver)| format!("{} {}", clean(p), cell(ver))).collect();
            if pairs.is_empty() {
                "-".to_string()
            } else {
                pairs.join(", ")
            }
        }),
    );
    line("ready", Some(cell(&v.ready)));
    fields(&f)
}

/// The Prometheus text format as JSON for `metrics --json`:
/// `{"samples":[{"name","labels":{..},"value"}]}` in the served order.
/// Values are JSON numbers, or strings for NaN and infinities (which JSON
/// cannot hold); comments and timestamps are left out.
pub(super) fn metrics_json(text: &str) -> anyhow::Result<Value> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = metric_sample(line).ok_or_else(|| anyhow!("/metrics line {}: not a Prometheus sample", i + 1))?;
        samples.push(sample);
    }
    Ok(json!({ "samples": samples }))
}

/// One sample line: `name{k="v",..} value [timestamp]`.
pub(super) fn metric_sample(line: &str) -> Option<Value> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut labels = serde_json::Map::new();
    let mut rest = &line[name_end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            r = r.trim_start().trim_start_matches(',').trim_start();
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = r.split_once('=')?;
            let mut chars = after.strip_prefix('"')?.char_indices();
            let mut value = String::new();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (j, '"') => break j,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim().to_string(), json!(value));
            r = &after[1 + end + 1..];
        }
    }
    let raw = rest.split_whitespace().next()?;
    let value = match raw {
        "+Inf" | "-Inf" | "NaN" => json!(raw),
        _ => match raw.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => serde_json::Number::from_f64(raw.parse::<f64>().ok()?).map_or_else(|| json!(raw), Value::Number),
        },
    };
    Some(json!({"name": name, "labels": labels, "value": value}))
}

pub(super) fn show_apply_policy(v: &PolicyReport) -> String {
    let rows: Vec<Vec<String>> =
        v.rescheduled.iter().map(|r| vec![cell(&r.resource), cell(&r.from), cell(&r.to)]).collect();
    let mut out = format!(
        "product {}, policy {}: {} rescheduled, {} unchanged\n",
        cell(&v.product),
        cell(&v.policy_version),
        rows.len(),
        cell(&v.unchanged)
    );
    out.push_str(&table(&["RESOURCE", "FROM", "TO"], &rows));
    out
}

pub(super) fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

// Table and field layout: the one place output is aligned.

/// A wire value as a table cell, written as the daemon writes it: strings
/// bare, null as "-", arrays joined with commas, objects as compact JSON;
/// control characters replaced.
pub(super) fn cell<T: Serialize + ?Sized>(v: &T) -> String {
    value_cell(&serde_json::to_value(v).unwrap_or(Value::Null))
}

fn value_cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => clean(s),
        Value::Array(a) if a.is_empty() => "-".to_string(),
        Value::Array(a) => a.iter().map(value_cell).collect::<Vec<_>>().join(","),
        other => clean(&other.to_string()),
    }
}

/// A flag as "yes" or "no".
pub(super) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// A list as "a,b", "-" when empty.
pub(super) fn list<T: Serialize>(items: &[T]) -> String {
    cell(items)
}

/// "cause (reason)", or just "cause".
pub(super) fn with_reason<C: Serialize, R: Serialize>(cause: &C, reason: Option<&R>) -> String {
    match reason {
        None => cell(cause),
        Some(r) => format!("{} ({})", cell(cause), cell(r)),
    }
}

/// Server text made safe for a terminal and a table: control characters
/// (newlines, escapes) become spaces.
pub(super) fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Plain columns separated by two spaces, headers first; "(none)" for no rows.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_string();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w.saturating_sub(c.chars().count())));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// "key  value" lines with the values aligned.
pub(super) fn fields(f: &[(&str, String)]) -> String {
    let width = f.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    f.iter().map(|(k, v)| format!("{k:width$}  {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_say_none() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
        assert_eq!(table(&["A"], &[]), "(none)\n");
        assert_eq!(cell(&json!("a\nb\u{1b}[31m")), "a b [31m");
    }

    /// The last reload as ctl reads it from /readyz's JSON.
    fn show_reload(r: &Value) -> String {
        super::show_reload(serde_json::from_value::<Option<LastReload>>(r.clone()).unwrap().as_ref())
    }

    #[test]
    fn the_last_reload_reads_as_one_line() {
        assert_eq!(show_reload(&Value::Null), "none since start");
        let ok = json!({"at": "T", "ok": true, "changed": ["ecs", "vm"], "added": [], "removed": ["old"]});
        assert_eq!(show_reload(&ok), "ok at T: changed ecs,vm; removed old");
        let same = json!({"at": "T", "ok": true, "changed": [], "added": [], "removed": []});
        assert_eq!(show_reload(&same), "ok at T: no policy changed");
        assert_eq!(show_reload(&json!({"at": "T", "ok": false, "error": "e"})), "REFUSED at T: e");
    }

    #[test]
    fn metrics_text_becomes_json_samples() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total{type=\"x\\\"y\",le=\"+Inf\"} 3\n\
                    b 0.25 1700000000\nc{} NaN\nd{k=\"a\\nb\\\\\"} -Inf\n";
        let v = metrics_json(text).unwrap();
        assert_eq!(
            v,
            json!({"samples": [
                {"name": "a_total", "labels": {"type": "x\"y", "le": "+Inf"}, "value": 3},
                {"name": "b", "labels": {}, "value": 0.25},
                {"name": "c", "labels": {}, "value": "NaN"},
                {"name": "d", "labels": {"k": "a\nb\\"}, "value": "-Inf"},
            ]})
        );
        assert!(metrics_json("ok\n").is_err());
        assert!(metrics_json("a{k=\"v} 1\n").is_err());
    }
}
