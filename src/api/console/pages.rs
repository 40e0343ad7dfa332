//! The console's pages, each a `GET` that reads and changes nothing, each
//! from what the API already answers (the same store reads, on a blocking
//! thread), so the console shows what `/v1` shows: ids, dates, states.

use super::render::{self, resource_link, value};
use super::ConsoleState;
use crate::api::{forecast, holds, personal_forecast, resource_view, ApiError};
use crate::audit::{verify, AuditHead, AuditLog};
use crate::time::fmt_rfc3339;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::collections::HashMap;

/// Entries per page of the forecast, holds and audit feed.
const PAGE: usize = 200;

/// Ids of the held-or-deleting index read per page of stuck copies.
const STUCK_SLICE: usize = 500;

/// How far ahead the forecast looks unless `days` says otherwise.
const DEFAULT_DAYS: i64 = 90;

type Params = Query<HashMap<String, String>>;

fn failed(e: ApiError) -> Response {
    render::error(e.status, &e.body.error)
}

fn next_link(path: &str, key: &str, next: Option<String>, extra: &str) -> maud::Markup {
    html! {
        @if let Some(n) = next {
            p { a href={ (path) "?" (extra) (key) "=" (urlencode(&n)) } { "Next page →" } }
        }
    }
}

/// Percent-encodes a cursor for a query string (cursors are ids, commas
/// and digits, but a hold's authority may appear in none of them).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /console/`: what the daemon is doing, and a resource look-up.
pub(super) async fn overview(State(state): State<ConsoleState>) -> Response {
    let config = state.api.config.clone();
    let read = state
        .api
        .read(move |s| Ok((s.resource_count()?, s.audit_head()?, s.hold_counts()?, forecast::gates(s, &config.get())?)))
        .await;
    let (count, head, holds, gates) = match read {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let holds = serde_json::to_value(holds).unwrap_or_default();
    let body = html! {
        table {
            tr { th { "Now (daemon clock)" } td { (fmt_rfc3339(state.api.clock.now())) } }
            tr { th { "Resources tracked" } td { (count) } }
            tr { th { "Audit head" } td { "seq " (head.seq) ", " code { (head.hash) } } }
            tr { th { "Daemon-wide blockers" } td { @if gates.is_empty() { span.ok { "none" } } @else { span.bad { (gates.join(", ")) } } } }
            tr { th { "Holds" } td { (value(&holds)) } }
        }
        h2 { "Find a resource" }
        form method="get" action="/console/resources" {
            input name="id" required size="40" pattern="[A-Za-z0-9._:\\-]+";
            " " button type="submit" { "Open" }
        }
    };
    render::page(StatusCode::OK, "Overview", true, body)
}

/// `GET /console/resources?id=`: the look-up form's target.
pub(super) async fn find_resource(Query(q): Params) -> Response {
    match q.get("id").filter(|id| crate::ids::check_stored_id(id).is_ok()) {
        Some(id) => Redirect::to(&format!("/console/resources/{id}")).into_response(),
        None => render::error(StatusCode::BAD_REQUEST, "Not a resource id (A-Za-z0-9._:- only)."),
    }
}

/// `GET /console/forecast[?days=N][&after=CURSOR]`: what will be deleted
/// in the next `days` (90 unless said, up to 3650), as a timeline by
/// deadline, in pages of the forecast's indexes; then the personal-data
/// erasures due in the same time.
pub(super) async fn forecast(State(state): State<ConsoleState>, Query(q): Params) -> Response {
    let days = match q.get("days").map(|d| d.parse::<i64>()) {
        None => DEFAULT_DAYS,
        Some(Ok(d)) if (1..=3650).contains(&d) => d,
        _ => return render::error(StatusCode::BAD_REQUEST, "days: a whole number from 1 to 3650"),
    };
    let after = match q.get("after").map(|a| a.parse::<forecast::Cursor>()).transpose() {
        Ok(a) => a,
        Err(_) => return render::error(StatusCode::BAD_REQUEST, "after: not a cursor from a next link"),
    };
    let now = state.api.clock.now();
    let before = now + chrono::Duration::days(days);
    let config = state.api.config.clone();
    let first = after.is_none();
    let read = state
        .api
        .read(move |s| {
            let config = config.get();
            let (mut items, next) = forecast::read(s, &config, before, after.as_ref(), Some(PAGE))?;
            items.sort_by(|a, b| (&a.deadline, &a.resource).cmp(&(&b.deadline, &b.resource)));
            let personal = if first {
                let gates = forecast::gates(s, &config)?;
                Some(personal_forecast::read(s, before, &gates)?)
            } else {
                None
            };
            Ok((items, next, personal))
        })
        .await;
    let (items, next, personal) = match read {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let mut by_day: Vec<(String, Vec<&crate::api::wire::Deletion>)> = Vec::new();
    for d in &items {
        let day = d.deadline.as_deref().map_or("no deadline".to_string(), |t| t.chars().take(10).collect());
        match by_day.last_mut() {
            Some((last, list)) if *last == day => list.push(d),
            _ => by_day.push((day, vec![d])),
        }
    }
    let body = html! {
        p { "Deletions due before " (fmt_rfc3339(before)) " (" (days) " days). A page follows the forecast's indexes: held and deleting resources first, then by deadline." }
        @if items.is_empty() { p.muted { "Nothing due in this page." } }
        @for (day, list) in &by_day {
            h2 { (day) }
            table {
                tr { th { "Deadline" } th { "Resource" } th { "Tenant" } th { "Product" } th { "State" } th { "Cause" } th { "Blocked by" } }
                @for d in list {
                    tr {
                        td { (d.deadline.as_deref().unwrap_or("—")) }
                        td { (resource_link(&d.resource)) }
                        td { (d.tenant) }
                        td { (d.product) }
                        td { (value(&serde_json::to_value(d.state).unwrap_or_default())) }
                        td { (value(&serde_json::to_value(d.cause).unwrap_or_default())) }
                        td { @if d.blockers.is_empty() { span.ok { "nothing" } } @else { span.bad { (d.blockers.join(", ")) } } }
                    }
                }
            }
        }
        (next_link("/console/forecast", "after", next.map(|c| c.to_string()), &format!("days={days}&")))
        @if let Some((erasures, cut)) = &personal {
            h2 { "Personal-data erasures" }
            @if *cut { p.bad { "Cut at " (personal_forecast::MAX_PERSONAL) " erasures." } }
            (value(&serde_json::to_value(erasures).unwrap_or_default()))
        }
    };
    render::page(StatusCode::OK, "Deletion forecast", true, body)
}

/// `GET /console/resources/{id}`: a resource, its copies, holds and history.
pub(super) async fn resource(State(state): State<ConsoleState>, Path(id): Path<String>) -> Response {
    if crate::ids::check_stored_id(&id).is_err() {
        return render::error(StatusCode::BAD_REQUEST, "Not a resource id (A-Za-z0-9._:- only).");
    }
    let (read_id, api) = (id.clone(), state.api.clone());
    let found = match api.read(move |s| Ok((s.resource(&read_id)?, s.certificate(&read_id)?.is_some()))).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let (Some(r), certified) = found else {
        return render::error(StatusCode::NOT_FOUND, &format!("Unknown resource {id}."));
    };
    let config = state.api.config.get();
    let view = resource_view(&r, config.products.get(&r.product), state.api.clock.now());
    let mut v = serde_json::to_value(&view).unwrap_or_default();
    let mut take = |k: &str| v.as_object_mut().and_then(|m| m.remove(k)).unwrap_or_default();
    let (copies, holds, history) = (take("copies"), take("holds"), take("history"));
    let body = html! {
        @if certified { p { a href={ "/console/certificates/" (id) } { "Deletion certificate and its check against the audit log" } } }
        (value(&v))
        h2 { "Copies" } (value(&copies))
        h2 { "Holds" } (value(&holds))
        h2 { "History" } (value(&history))
    };
    render::page(StatusCode::OK, &format!("Resource {id}"), true, body)
}

/// `GET /console/holds[?after=CURSOR]`: the holds in force, by tenant,
/// resource and hold id, from the store's index of holds, a page at a time.
pub(super) async fn holds(State(state): State<ConsoleState>, Query(q): Params) -> Response {
    let after = match q.get("after").map(|a| a.parse::<holds::Cursor>()).transpose() {
        Ok(a) => a,
        Err(_) => return render::error(StatusCode::BAD_REQUEST, "after: not a cursor from a next link"),
    };
    let read = state.api.read(move |s| Ok(s.holds(&Default::default(), after.as_ref().map(|c| &c.0), PAGE + 1)?)).await;
    let mut found = match read {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let next = (found.len() > PAGE).then(|| {
        found.truncate(PAGE);
        found.last().map(|e| holds::Cursor(e.key.clone()).to_string())
    });
    let now = state.api.clock.now();
    let body = html! {
        @if found.is_empty() { p.muted { "No hold in force." } }
        @else {
            table {
                tr { th { "Hold" } th { "Tenant" } th { "Resource" } th { "Authority" } th { "Reason" } th { "Placed" } th { "Review" } }
                @for e in &found {
                    tr {
                        td { code { (e.key.hold_id) } }
                        td { (e.key.tenant) }
                        td { @match &e.key.resource { Some(r) => (resource_link(r)), None => span.muted { "whole tenant" } } }
                        td { (e.hold.authority) }
                        td { (e.hold.reason) }
                        td { (fmt_rfc3339(e.hold.placed_at)) }
                        td {
                            @if let Some(t) = e.hold.review_at { (fmt_rfc3339(t)) }
                            @if holds::review_due(&e.hold, now) { " " span.bad { "review due" } }
                        }
                    }
                }
            }
        }
        (next_link("/console/holds", "after", next.flatten(), ""))
    };
    render::page(StatusCode::OK, "Holds in force", true, body)
}

/// `GET /console/stuck[?after=ID]`: copies whose retries are exhausted.
/// There is no index of stuck copies: a page reads the next
/// [`STUCK_SLICE`] ids of the held-or-deleting index (a deleting resource
/// is always there, and only a deleting resource has copies being
/// deleted), reads those resources, and shows their stuck copies. It never
/// reads every record; a page may show none while a later one has some.
pub(super) async fn stuck(State(state): State<ConsoleState>, Query(q): Params) -> Response {
    let after = q.get("after").filter(|a| crate::ids::check_stored_id(a).is_ok()).cloned();
    let (config, now) = (state.api.config.get(), state.api.clock.now());
    let read = state
        .api
        .read(move |s| {
            let ids = s.held_or_deleting(after.as_deref(), STUCK_SLICE)?;
            let next = (ids.len() == STUCK_SLICE).then(|| ids.last().cloned()).flatten();
            let mut rows = Vec::new();
            for id in &ids {
                if let Some(r) = s.resource(id)? {
                    let view = resource_view(&r, config.products.get(&r.product), now);
                    rows.extend(view.copies.into_iter().filter(|c| c.stuck).map(|c| (id.clone(), c)));
                }
            }
            Ok((ids.len(), rows, next))
        })
        .await;
    let (scanned, rows, next) = match read {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let body = html! {
        p.muted { "Read from the index of held and deleting resources, " (STUCK_SLICE) " at a time (" (scanned) " in this page); an operator retries a stuck copy with retentiond ctl retry." }
        @if rows.is_empty() { p.ok { "No stuck copy in this page." } }
        @else {
            table {
                tr { th { "Resource" } th { "Store" } th { "Copy" } th { "Attempts" } th { "Last error" } }
                @for (id, c) in &rows {
                    tr {
                        td { (resource_link(id)) } td { (c.store) } td { code { (c.copy) } } td { (c.attempts) }
                        td { (c.last_error.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
        (next_link("/console/stuck", "after", next, ""))
    };
    render::page(StatusCode::OK, "Stuck copies", true, body)
}

/// `GET /console/certificates/{id}`: a purged resource's certificate and
/// its check against the daemon's own audit log. The check verifies the
/// whole chain (what `retentiond audit certificate` does), so it reads
/// the whole log, on a blocking thread, each time the page is opened.
pub(super) async fn certificate(State(state): State<ConsoleState>, Path(id): Path<String>) -> Response {
    if crate::ids::check_stored_id(&id).is_err() {
        return render::error(StatusCode::BAD_REQUEST, "Not a resource id (A-Za-z0-9._:- only).");
    }
    let read_id = id.clone();
    let cert = match state.api.read(move |s| Ok(s.certificate(&read_id)?)).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return render::error(
                StatusCode::NOT_FOUND,
                &format!("No certificate for {id} (not purged yet, or unknown)."),
            )
        }
        Err(e) => return failed(e),
    };
    let path = state.api.audit.lock().unwrap_or_else(|e| e.into_inner()).path().to_path_buf();
    let checked_cert = cert.clone();
    let check =
        tokio::task::spawn_blocking(move || crate::certificate::check(&checked_cert, &path).map_err(|e| e.to_string()))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
    let body = html! {
        p { "Resource " (resource_link(&id)) }
        h2 { "Check against the audit log" }
        @match &check {
            Ok(summary) => p.ok { "Valid: " (summary) },
            Err(why) => p.bad { "Does not check: " (why) },
        }
        h2 { "Certificate" }
        (value(&cert))
    };
    render::page(StatusCode::OK, &format!("Certificate of {id}"), true, body)
}

/// The last verification of the audit chain: the head it reached and its
/// outcome, kept so the feed does not read the whole log on every view.
#[derive(Default)]
pub(super) struct Verified {
    last: Option<(AuditHead, Result<u64, String>, String)>,
}

/// Verifies the chain from genesis to `head`, the daemon's head when the
/// page was opened, without holding up the engine: the log is read while
/// the daemon may append to it, so what follows `head` (records appended
/// since, a line being written) is not this check's. Every record up to
/// `head.seq` must verify, and the one at `head.seq` must be `head` itself
/// (so a log cut short, or rewritten, does not pass). Gives the records
/// checked.
fn verify_to(path: &std::path::Path, head: &AuditHead, log: &std::sync::Mutex<AuditLog>) -> Result<u64, String> {
    match verify(path, None) {
        Ok(r) if r.head.seq < head.seq => {
            Err(format!("the log ends at seq {}, before the daemon's head (seq {})", r.head.seq, head.seq))
        }
        Ok(r) if r.head.seq == head.seq && r.head.hash != head.hash => {
            Err(format!("the last record (seq {}) is not the daemon's head", head.seq))
        }
        Ok(r) if r.head.seq == head.seq => Ok(r.records),
        Err(f) if f.seq.is_none_or(|s| s <= head.seq) => Err(f.to_string()),
        _ => {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            let at = log.read_after(head.seq.saturating_sub(1), 1).map_err(|e| e.to_string())?;
            match at.first() {
                Some(r) if r.seq == head.seq && r.hash == head.hash => Ok(head.seq),
                _ => Err(format!("the record at seq {} is not the daemon's head", head.seq)),
            }
        }
    }
}

/// `GET /console/audit[?after_seq=N]`: the audit records, oldest first, a
/// page at a time, under the chain's verification status. The chain is
/// verified (the whole log read, on a blocking thread, one verification at
/// a time) when the page is opened and the head has moved since the last
/// verification; otherwise the kept outcome is shown with its time.
pub(super) async fn audit(State(state): State<ConsoleState>, Query(q): Params) -> Response {
    let after = match q.get("after_seq").map(|v| v.parse::<u64>()).transpose() {
        Ok(a) => a.unwrap_or(0),
        Err(_) => return render::error(StatusCode::BAD_REQUEST, "after_seq: a whole number"),
    };
    let log = state.api.audit.clone();
    let read = tokio::task::spawn_blocking(move || {
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.read_after(after, PAGE).map(|r| (r, log.head().clone(), log.path().to_path_buf()))
    })
    .await;
    let (records, head, path) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return render::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => return render::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut verified = state.verified.lock().await;
    if verified.last.as_ref().is_none_or(|(h, _, _)| *h != head) {
        let (expected, now, log) = (head.clone(), fmt_rfc3339(chrono::Utc::now()), state.api.audit.clone());
        // Once more on a failure: a line the engine was writing as it was
        // read fails the first pass, not the second; a real break fails both.
        let outcome = tokio::task::spawn_blocking(move || {
            verify_to(&path, &expected, &log).or_else(|_| verify_to(&path, &expected, &log))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        verified.last = Some((head.clone(), outcome, now));
    }
    let status = verified.last.clone();
    drop(verified);
    let next = (records.len() == PAGE).then(|| records.last().map(|r| r.seq.to_string())).flatten();
    let body = html! {
        h2 { "Chain" }
        @if let Some((h, outcome, at)) = &status {
            @match outcome {
                Ok(n) => p.ok { "Verified: " (n) " records chain from genesis to head seq " (h.seq) " " code { (h.hash) } " (checked " (at) ")." },
                Err(why) => p.bad { "Chain does NOT verify: " (why) " (checked " (at) ")." },
            }
        }
        h2 { "Records after seq " (after) }
        table {
            tr { th { "Seq" } th { "At" } th { "Kind" } th { "Tenant" } th { "Resource" } th { "Data" } }
            @for r in &records {
                tr {
                    td { (r.seq) } td { (r.at) } td { (r.kind) }
                    td { (r.tenant.as_deref().unwrap_or("—")) }
                    td { @match &r.resource { Some(id) => (resource_link(id)), None => "—" } }
                    td { (value(&r.data)) }
                }
            }
        }
        (next_link("/console/audit", "after_seq", next, ""))
    };
    render::page(StatusCode::OK, "Audit feed", true, body)
}
