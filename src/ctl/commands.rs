//! What each subcommand does, one function each: build the request from
//! the API's wire types, send it, read the answer into its wire type, and
//! turn it into output (a table, or the daemon's JSON with `--json`) and an
//! exit code.

use super::args::{ClockCommand, CtlArgs, CtlCommand, EventOpts, HoldCommand, RequestCommand, SubjectCommand};
use super::render::*;
use super::transport::{check_status, shaped, status_error, Answer, Api};
use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use retentiond::api::wire::{
    ApplyPolicyRequest, Approval, ApproveRequest, AuditPage, Certificate, ClockAnswer, ClockRequest, DecisionEvent,
    Deletions, ErrorBody, EventsAnswer, HoldEvent, HoldList, NoArguments, Paused, PolicyReport, Readiness, Receipt,
    RequestList, RequestView, ResourceView, RestoreCheck, Retried, RetryRequest, RetrySubjectRequest, SubjectView,
};
use retentiond::domain::privacy::{Decision, RefusalGround};
use retentiond::duration::Dur;
use retentiond::time::{fmt_rfc3339, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

/// What a command produced: text for stdout, the exit code, and perhaps a
/// line for stderr explaining a non-zero code.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) out: String,
    pub(super) code: u8,
    pub(super) note: Option<String>,
}

impl Done {
    pub(super) fn ok(out: String) -> Self {
        Done { out, code: 0, note: None }
    }

    /// A usage error clap cannot express as plainly: exit 2, one line.
    pub(super) fn usage(note: &str) -> Self {
        Done { out: String::new(), code: 2, note: Some(note.to_string()) }
    }

    /// The daemon's JSON (`--json`), or the table `show` makes of its wire type.
    fn shown<T>(answer: &Answer<T>, json_out: bool, show: impl FnOnce(&T) -> String) -> Self {
        Done::ok(if json_out { pretty(&answer.json) } else { show(&answer.body) })
    }
}

/// Runs one subcommand.
pub(super) async fn run(args: CtlArgs) -> anyhow::Result<Done> {
    // Checked here rather than by clap, whose message would name --before
    // alone.
    if let CtlCommand::Forecast { before: None, within: None } = args.command {
        return Ok(Done::usage("forecast: give --before RFC3339 or --within DURATION"));
    }
    let api = Api::new(&args)?;
    let json_out = args.json;
    match args.command {
        CtlCommand::Events { file } => events(&api, json_out, file).await,
        CtlCommand::Resource { id } => resource(&api, json_out, &id).await,
        CtlCommand::Forecast { before, within } => forecast(&api, json_out, before, within).await,
        CtlCommand::Hold { command } => hold(&api, json_out, command).await,
        CtlCommand::Pause => pause(&api, json_out).await,
        CtlCommand::Resume => resume(&api, json_out).await,
        CtlCommand::Approve { batch } => approve(&api, json_out, batch).await,
        CtlCommand::Retry { resource, tenant, subject, store } => {
            retry(&api, json_out, resource, tenant.zip(subject), store).await
        }
        CtlCommand::Request { command } => request(&api, json_out, command).await,
        CtlCommand::Subject { command: SubjectCommand::Show { tenant, subject } } => {
            subject_show(&api, json_out, tenant, subject).await
        }
        CtlCommand::Clock { command } => clock(&api, json_out, command).await,
        CtlCommand::Audit { after_seq, limit } => audit(&api, json_out, after_seq, limit).await,
        CtlCommand::Certificate { resource } => certificate(&api, json_out, &resource).await,
        CtlCommand::RestoreCheck { resource, tenant } => restore_check(&api, json_out, resource, tenant).await,
        CtlCommand::Status => status(&api, json_out).await,
        CtlCommand::Metrics => metrics(&api, json_out).await,
        CtlCommand::ApplyPolicy { product } => apply_policy(&api, json_out, product).await,
    }
}

/// `ctl events`: reads, detects the form, posts, prints the results.
async fn events(api: &Api, json_out: bool, file: Option<PathBuf>) -> anyhow::Result<Done> {
    let (name, text) = match file.as_deref() {
        Some(p) if p.as_os_str() != "-" => {
            (p.display().to_string(), std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        _ => {
            let stdin = std::io::stdin();
            if file.is_none() && stdin.is_terminal() {
                bail!("give a FILE of events, or pipe them on standard input");
            }
            let mut s = String::new();
            stdin.lock().read_to_string(&mut s).context("reading standard input")?;
            ("standard input".to_string(), s)
        }
    };
    let (body, lines) =
        parse_events(&text).with_context(|| format!("{name}: not one JSON event, a JSON array or JSON Lines"))?;
    if body.as_array().is_some_and(Vec::is_empty) {
        bail!("{name} holds no events");
    }
    let (status, answer) = api.send(Method::POST, "/v1/events", &[], Some(&body)).await?;
    let locate = |i: u64| match lines.get(i as usize) {
        Some(line) => format!("the event on line {line} of {name}"),
        None => format!("event #{} of {name}", i + 1),
    };
    status_error(status, &answer, "/v1/events", &locate)?;
    let json: Value = serde_json::from_str(&answer).context("/v1/events answered with something that is not JSON")?;
    let body = shaped(&json, "/v1/events")?;
    Ok(event_results(&Answer { json, body }, json_out))
}

/// One JSON value (an event or an array, sent as is), or several values in a
/// row, as JSON Lines are (sent as an array). With several values, also the
/// line each starts on, so a 400 naming an index can name the line.
fn parse_events(text: &str) -> anyhow::Result<(Value, Vec<usize>)> {
    let mut values: Vec<Value> = Vec::new();
    let mut lines = Vec::new();
    let (mut line, mut counted) = (1, 0);
    // Strictly: a repeated key is an error here, as at the daemon, rather
    // than silently sent as its last value.
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<retentiond::json::StrictValue>();
    loop {
        let from = stream.byte_offset();
        let start = text.len() - text[from..].trim_start().len();
        let Some(v) = stream.next() else { break };
        values.push(v?.0);
        line += text[counted..start].matches('\n').count();
        counted = start;
        lines.push(line);
    }
    match values.len() {
        1 => Ok((values.remove(0), Vec::new())),
        _ => {
            if let Some(i) = values.iter().position(|v| !v.is_object()) {
                bail!("line {}: not an event object (JSON Lines hold one object per line)", lines[i]);
            }
            Ok((Value::Array(values), lines))
        }
    }
}

/// Prints the results of POST /v1/events; exit 1 if any was rejected.
fn event_results(answer: &Answer<EventsAnswer>, json_out: bool) -> Done {
    let results = &answer.body.results;
    let out = if json_out { pretty(&answer.json) } else { show_event_results(results) };
    let rejected = results.iter().filter(|r| r.status == "rejected").count();
    if rejected > 0 {
        Done { out, code: 1, note: Some(format!("{rejected} of {} events rejected", results.len())) }
    } else {
        Done::ok(out)
    }
}

/// `ctl resource ID`.
async fn resource(api: &Api, json_out: bool, id: &str) -> anyhow::Result<Done> {
    let answer = api.get::<ResourceView>(&format!("/v1/resources/{id}"), &[]).await?;
    Ok(Done::shown(&answer, json_out, show_resource))
}

/// `ctl forecast --before T | --within D` (D counted from the daemon's clock).
async fn forecast(api: &Api, json_out: bool, before: Option<Timestamp>, within: Option<Dur>) -> anyhow::Result<Done> {
    let before = match (before, within) {
        (Some(t), _) => t,
        (None, Some(d)) => {
            let now = api.daemon_now().await?.ok_or_else(|| {
                anyhow!(
                    "--within counts from the daemon's clock, which this (older) daemon does not report; use --before"
                )
            })?;
            now + d.to_chrono()
        }
        (None, None) => bail!("give --before RFC3339 or --within DURATION"),
    };
    let before = fmt_rfc3339(before);
    let mut answer = api.get::<Deletions>("/v1/deletions", &[("before", &before), ("limit", FORECAST_PAGE)]).await?;
    // Every page, each after the one before, then one answer in deadline
    // order, as the daemon gives it whole (issue 11: pages keep each
    // request short at any size).
    while let Some(next) = answer.body.next.take() {
        let page = api
            .get::<Deletions>("/v1/deletions", &[("before", &before), ("limit", FORECAST_PAGE), ("after", &next)])
            .await?;
        answer.body.deletions.extend(page.body.deletions);
        answer.body.next = page.body.next;
    }
    answer.body.deletions.sort_by(|a, b| {
        (a.deadline.as_deref(), a.resource.as_str()).cmp(&(b.deadline.as_deref(), b.resource.as_str()))
    });
    answer.json = serde_json::to_value(&answer.body).context("the forecast read back")?;
    Ok(Done::shown(&answer, json_out, show_forecast))
}

/// Deletions per page `ctl forecast` asks for.
const FORECAST_PAGE: &str = "1000";

/// `ctl hold place|release`: builds the event and posts it.
async fn hold(api: &Api, json_out: bool, command: HoldCommand) -> anyhow::Result<Done> {
    let (kind, hold_id, target, opts, authority, reason, review_at) = match command {
        HoldCommand::Place { hold_id, authority, reason, review_at, target, event } => {
            ("placed", hold_id, target, event, Some(authority), Some(reason), review_at)
        }
        HoldCommand::Release { hold_id, target, event } => ("released", hold_id, target, event, None, None, None),
        HoldCommand::List { tenant, authority } => return hold_list(api, json_out, tenant, authority).await,
    };
    let tenant = match (&target.tenant, &target.resource) {
        (Some(t), _) => t.clone(),
        (None, Some(r)) => {
            let action = if kind == "placed" { "place holds" } else { "release holds" };
            let path = format!("/v1/resources/{r}");
            tenant_from(api, &path, &format!("resource {r}"), action, " (or give --tenant)", |v: ResourceView| v.tenant)
                .await?
        }
        (None, None) => bail!("give --resource or --tenant"),
    };
    let at = event_time(api, &opts).await?;
    let event_id = opts.event_id.unwrap_or_else(|| generated_event_id(&format!("hold-{kind}"), &hold_id));
    let ev = HoldEvent {
        event_id: event_id.clone(),
        kind: format!("hold.{kind}"),
        at: fmt_rfc3339(at),
        tenant,
        hold_id,
        resource: target.resource,
        authority,
        reason,
        review_at: review_at.map(fmt_rfc3339),
    };
    let answer = api.post::<EventsAnswer>("/v1/events", &ev).await?;
    let mut done = event_results(&answer, json_out);
    if done.code != 0 {
        let error = answer.body.results.first().and_then(|r| r.error.as_deref()).unwrap_or("see its error");
        // The time hint only where the time is the problem (dated too far
        // ahead of the daemon's clock); other refusals are about the hold.
        let hint = if error.contains("max_future_skew") { "; --at sets the event's time" } else { "" };
        done.note = Some(format!("hold.{kind} event {event_id} rejected: {error}{hint}"));
    }
    Ok(done)
}

/// `ctl hold list`: every page of `GET /v1/holds`, each after the one
/// before, as one list (and one JSON answer with `--json`).
async fn hold_list(
    api: &Api,
    json_out: bool,
    tenant: Option<String>,
    authority: Option<String>,
) -> anyhow::Result<Done> {
    let mut query = vec![("limit", HOLDS_PAGE)];
    query.extend(tenant.as_deref().map(|t| ("tenant", t)));
    query.extend(authority.as_deref().map(|a| ("authority", a)));
    let mut answer = api.get::<HoldList>("/v1/holds", &query).await?;
    while let Some(next) = answer.body.next.take() {
        let page = api.get::<HoldList>("/v1/holds", &[query.as_slice(), &[("after", &next)]].concat()).await?;
        answer.body.holds.extend(page.body.holds);
        answer.body.next = page.body.next;
    }
    answer.json = serde_json::to_value(&answer.body).context("the holds read back")?;
    Ok(Done::shown(&answer, json_out, show_holds))
}

/// Holds per page `ctl hold list` asks for.
const HOLDS_PAGE: &str = "1000";

/// The tenant of what `path` serves (a resource for a hold given
/// --resource without --tenant, a request to decide), read from the daemon
/// as a `T`. `what` ("resource r1") names it and `action` ("place holds")
/// words a refused read: a role that may not read may not post these
/// events either (operator or admin), which is what the user needs to
/// hear; `not_found` is added to a 404's message.
async fn tenant_from<T: DeserializeOwned>(
    api: &Api,
    path: &str,
    what: &str,
    action: &str,
    not_found: &str,
    tenant: impl FnOnce(T) -> String,
) -> anyhow::Result<String> {
    let reading = || format!("reading {what} for its tenant");
    let (status, text) = api.send(Method::GET, path, &[], None).await.with_context(reading)?;
    let refused = check_status(status, &text, path);
    match status {
        StatusCode::UNAUTHORIZED => {
            refused.map_err(|e| anyhow!("{e:#}; to {action}, use an operator or admin token"))?;
        }
        StatusCode::FORBIDDEN => {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let error = ErrorBody::deserialize(&v).ok().map(|b| b.error);
            let why = error.as_deref().unwrap_or("forbidden");
            bail!("the token's role may not {action} (403: {why}); an operator or admin token is needed");
        }
        StatusCode::NOT_FOUND => {
            refused.with_context(|| format!("{}{not_found}", reading()))?;
        }
        _ => refused.with_context(reading)?,
    }
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{path} answered {status} with something that is not JSON"))?;
    Ok(tenant(shaped::<T>(&json, path)?))
}

/// When an event ctl builds happened: --at, else the daemon's clock (from
/// /readyz), else this machine's for a daemon too old to report it.
async fn event_time(api: &Api, opts: &EventOpts) -> anyhow::Result<Timestamp> {
    Ok(match opts.at {
        Some(t) => t,
        None => api.daemon_now().await?.unwrap_or_else(chrono::Utc::now),
    })
}

/// `ctl-<what>-<id>-<unix nanos>` (`ctl-hold-placed-court-1-..`,
/// `ctl-decide-q1-..`), the id cut so the whole stays within the
/// 128-character id limit.
pub(super) fn generated_event_id(what: &str, id: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("ctl-{what}-");
    let suffix = format!("-{nanos}");
    let room = 128usize.saturating_sub(prefix.len() + suffix.len());
    // Ids are ASCII (checked by clap), so byte slicing is safe.
    format!("{prefix}{}{suffix}", &id[..id.len().min(room)])
}

/// `POST /v1/admin/WHAT` with `body`: the daemon's JSON with `--json`,
/// else the one line `line` makes of the answer.
async fn admin<T: DeserializeOwned>(
    api: &Api,
    json_out: bool,
    what: &str,
    body: &impl Serialize,
    line: impl FnOnce(&T) -> String,
) -> anyhow::Result<Done> {
    let answer = api.post::<T>(&format!("/v1/admin/{what}"), body).await?;
    Ok(Done::shown(&answer, json_out, |a| format!("{}\n", line(a))))
}

/// `ctl pause`.
async fn pause(api: &Api, json_out: bool) -> anyhow::Result<Done> {
    admin(api, json_out, "pause", &NoArguments {}, |_: &Paused| {
        "paused: no deletion starts and no executor is called until `resume`".to_string()
    })
    .await
}

/// `ctl resume`.
async fn resume(api: &Api, json_out: bool) -> anyhow::Result<Done> {
    admin(api, json_out, "resume", &NoArguments {}, |_: &Paused| "resumed".to_string()).await
}

/// `ctl approve [--batch DIGEST]`.
async fn approve(api: &Api, json_out: bool, batch: Option<String>) -> anyhow::Result<Done> {
    admin(api, json_out, "approve", &ApproveRequest { batch_digest: batch }, |a: &Approval| match &a.batch {
        Some(b) if !a.approved.is_empty() => format!(
            "approved: {}; released the held batch of {} resources (digest {})",
            list(&a.approved),
            cell(&b.size),
            cell(&b.digest)
        ),
        _ if !a.approved.is_empty() => format!("approved: {}", list(&a.approved)),
        _ => "approved: nothing was stopped".to_string(),
    })
    .await
}

/// `ctl retry RESOURCE [--store STORE]`, or `ctl retry --tenant T
/// --subject S [--store STORE]` for a subject's personal data.
async fn retry(
    api: &Api,
    json_out: bool,
    resource: Option<String>,
    subject: Option<(String, String)>,
    store: Option<String>,
) -> anyhow::Result<Done> {
    match (resource, subject) {
        (Some(resource), _) => {
            admin(api, json_out, "retry", &RetryRequest { resource, store }, |r: &Retried| {
                format!("retried {} stuck copies", cell(&r.retried))
            })
            .await
        }
        (None, Some((tenant, subject))) => {
            let line = format!("of subject {subject} of tenant {tenant}");
            admin(api, json_out, "retry-subject", &RetrySubjectRequest { tenant, subject, store }, |r: &Retried| {
                format!("retried {} stuck personal-store calls {line}", cell(&r.retried))
            })
            .await
        }
        (None, None) => bail!("give RESOURCE, or --tenant and --subject"),
    }
}

/// `ctl request show|list|receipt|decide`.
async fn request(api: &Api, json_out: bool, command: RequestCommand) -> anyhow::Result<Done> {
    match command {
        RequestCommand::Show { id } => {
            let answer = api.get::<RequestView>(&format!("/v1/requests/{id}"), &[]).await?;
            Ok(Done::shown(&answer, json_out, show_request))
        }
        RequestCommand::List { state, due_before } => request_list(api, json_out, state, due_before).await,
        RequestCommand::Receipt { id, out } => receipt(api, &id, out).await,
        RequestCommand::Decide { id, execute, refuse, event } => {
            decide(api, json_out, id, execute, refuse, event).await
        }
    }
}

/// `ctl request list`: every page of `GET /v1/requests`, each after the
/// one before, as one list by id (and one JSON answer with `--json`).
async fn request_list(
    api: &Api,
    json_out: bool,
    state: Option<String>,
    due_before: Option<Timestamp>,
) -> anyhow::Result<Done> {
    let due_before = due_before.map(fmt_rfc3339);
    let mut query = vec![("limit", REQUESTS_PAGE)];
    query.extend(state.as_deref().map(|s| ("state", s)));
    query.extend(due_before.as_deref().map(|t| ("due_before", t)));
    let mut answer = api.get::<RequestList>("/v1/requests", &query).await?;
    while let Some(next) = answer.body.next.take() {
        let page = api.get::<RequestList>("/v1/requests", &[query.as_slice(), &[("after", &next)]].concat()).await?;
        answer.body.requests.extend(page.body.requests);
        answer.body.next = page.body.next;
    }
    answer.json = serde_json::to_value(&answer.body).context("the requests read back")?;
    Ok(Done::shown(&answer, json_out, show_requests))
}

/// Requests per page `ctl request list` asks for (the daemon's maximum).
const REQUESTS_PAGE: &str = "1000";

/// `ctl request receipt ID [--out FILE]`: the receipt as served (pretty
/// JSON, with or without `--json`: it is a document to keep and check with
/// `retentiond audit receipt`), on stdout or in FILE.
async fn receipt(api: &Api, id: &str, out: Option<PathBuf>) -> anyhow::Result<Done> {
    let answer = api.get::<Receipt>(&format!("/v1/certificates/requests/{id}"), &[]).await?;
    let text = pretty(&answer.json);
    let Some(path) = out else { return Ok(Done::ok(text)) };
    std::fs::write(&path, &text).with_context(|| format!("writing the receipt to {}", path.display()))?;
    let r = &answer.body;
    Ok(Done::ok(format!(
        "receipt of request {} ({}, {} entries) written to {}\n",
        cell(&r.request),
        cell(&r.state),
        r.entries.len(),
        path.display()
    )))
}

/// `ctl request decide ID --execute | --refuse GROUND`: reads the request
/// for its tenant, then posts a `request.decided` event dated --at or the
/// daemon's clock; exit 1 with the daemon's reason if it is rejected.
async fn decide(
    api: &Api,
    json_out: bool,
    id: String,
    execute: bool,
    refuse: Option<RefusalGround>,
    opts: EventOpts,
) -> anyhow::Result<Done> {
    let decision = match (execute, refuse) {
        (_, Some(ground)) => Decision::Refuse(ground),
        (true, None) => Decision::Execute,
        (false, None) => return Ok(Done::usage("request decide: give --execute or --refuse GROUND")),
    };
    let path = format!("/v1/requests/{id}");
    let tenant =
        tenant_from(api, &path, &format!("request {id}"), "decide requests", "", |v: RequestView| v.tenant).await?;
    let at = event_time(api, &opts).await?;
    let event_id = opts.event_id.unwrap_or_else(|| generated_event_id("decide", &id));
    let ev = DecisionEvent::new(event_id.clone(), at, tenant, id, decision);
    let answer = api.post::<EventsAnswer>("/v1/events", &ev).await?;
    let mut done = event_results(&answer, json_out);
    if done.code != 0 {
        let error = answer.body.results.first().and_then(|r| r.error.as_deref()).unwrap_or("see its error");
        let hint = if error.contains("max_future_skew") { "; --at sets the event's time" } else { "" };
        done.note = Some(format!("request.decided event {event_id} rejected: {error}{hint}"));
    }
    Ok(done)
}

/// `ctl subject show TENANT [SUBJECT]`: the account holder without SUBJECT.
async fn subject_show(api: &Api, json_out: bool, tenant: String, subject: Option<String>) -> anyhow::Result<Done> {
    let subject = subject.unwrap_or_else(|| tenant.clone());
    let answer = api.get::<SubjectView>(&format!("/v1/subjects/{tenant}/{subject}"), &[]).await?;
    Ok(Done::shown(&answer, json_out, show_subject))
}

/// `ctl clock advance|set`.
async fn clock(api: &Api, json_out: bool, command: ClockCommand) -> anyhow::Result<Done> {
    let body = match command {
        ClockCommand::Advance { by } => ClockRequest::Advance(by.to_string()),
        ClockCommand::Set { to } => ClockRequest::Set(fmt_rfc3339(to)),
    };
    admin(api, json_out, "clock", &body, |c: &ClockAnswer| format!("now: {}", cell(&c.now))).await
}

/// `ctl audit [--after-seq N] [--limit M]`.
async fn audit(api: &Api, json_out: bool, after_seq: u64, limit: u64) -> anyhow::Result<Done> {
    let query = [("after_seq", after_seq.to_string()), ("limit", limit.to_string())];
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = api.get::<AuditPage>("/v1/audit", &query).await?;
    Ok(Done::shown(&answer, json_out, |page| show_audit(page, limit)))
}

/// `ctl certificate RESOURCE`: with `--json`, the certificate as served,
/// for `retentiond audit certificate --file`.
async fn certificate(api: &Api, json_out: bool, resource: &str) -> anyhow::Result<Done> {
    let answer = api.get::<Certificate>(&format!("/v1/certificates/{resource}"), &[]).await?;
    Ok(Done::shown(&answer, json_out, show_certificate))
}

/// `ctl restore-check --resource ID | --tenant ID`: exit 0 when allowed, 3
/// when refused.
async fn restore_check(
    api: &Api,
    json_out: bool,
    resource: Option<String>,
    tenant: Option<String>,
) -> anyhow::Result<Done> {
    let query = match (&resource, &tenant) {
        (Some(r), _) => ("resource", r.as_str()),
        (None, Some(t)) => ("tenant", t.as_str()),
        (None, None) => bail!("give --resource or --tenant"),
    };
    let answer = api.get::<RestoreCheck>("/v1/restore-check", &[query]).await?;
    let code = if answer.body.allowed { 0 } else { 3 };
    Ok(Done { code, ..Done::shown(&answer, json_out, show_restore_check) })
}

/// `ctl status`.
async fn status(api: &Api, json_out: bool) -> anyhow::Result<Done> {
    let (status, text) = api.send(Method::GET, "/readyz", &[], None).await?;
    status_done(status, &text, json_out)
}

/// `ctl status` from /readyz's answer: exit 0 when ready (200), 1 with a
/// note when not (503, which still carries the body), 1 on any other error.
pub(super) fn status_done(status: StatusCode, text: &str, json_out: bool) -> anyhow::Result<Done> {
    if status != StatusCode::SERVICE_UNAVAILABLE {
        check_status(status, text, "/readyz")?;
    }
    let json: Value = serde_json::from_str(text)
        .with_context(|| format!("/readyz answered {status} with something that is not JSON"))?;
    let ready: Readiness = shaped(&json, "/readyz")?;
    let out = if json_out { pretty(&json) } else { show_status(&ready) };
    // A refused reload leaves the daemon ready on its previous config: exit
    // 0, but say so on stderr too, where it is seen when stdout is not.
    let refused = ready.last_reload.flatten().filter(|r| !r.ok).map(|r| {
        format!("last reload REFUSED at {}: {}; the previous config stays in force", cell(&r.at), cell(&r.error))
    });
    if status.is_success() {
        Ok(Done { out, code: 0, note: refused })
    } else {
        let not_ready = format!("not ready ({status})");
        let note = refused.map_or_else(|| not_ready.clone(), |r| format!("{not_ready}; {r}"));
        Ok(Done { out, code: 1, note: Some(note) })
    }
}

/// `ctl metrics`: the Prometheus text as served, or its samples as JSON.
async fn metrics(api: &Api, json_out: bool) -> anyhow::Result<Done> {
    let (status, text) = api.send(Method::GET, "/metrics", &[], None).await?;
    check_status(status, &text, "/metrics")?;
    Ok(Done::ok(if json_out { pretty(&metrics_json(&text)?) } else { text }))
}

/// `ctl apply-policy PRODUCT`.
async fn apply_policy(api: &Api, json_out: bool, product: String) -> anyhow::Result<Done> {
    let answer = api.post::<PolicyReport>("/v1/admin/apply-policy", &ApplyPolicyRequest { product }).await?;
    Ok(Done::shown(&answer, json_out, show_apply_policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_as_one_value_an_array_or_lines() {
        assert!(parse_events(r#"{"event_id":"a"}"#).unwrap().0.is_object());
        assert_eq!(parse_events(r#"[{"a":1},{"a":2}]"#).unwrap().0.as_array().unwrap().len(), 2);
        let (v, lines) = parse_events("{\"a\":1}\n\n{\"a\":2}\n  {\"a\":3}\n").unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(lines, [1, 3, 4]);
        let err = format!("{:#}", parse_events("{\"a\":1}\n{\"a\":\n").unwrap_err());
        assert!(err.contains("line 3"), "{err}");
        assert!(parse_events("{\"a\":1}\n[1]").is_err());
        let err = format!("{:#}", parse_events("{\"a\":1}\n{\"resource\":\"r1\",\"resource\":\"r2\"}\n").unwrap_err());
        assert!(err.contains("duplicate key \"resource\"") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn status_is_exit_1_with_the_body_when_not_ready() {
        let body = r#"{"ready":false,"now":"2026-03-01T00:00:00Z","paused":true,"policies":{"ecs":"ab12"}}"#;
        let done = status_done(StatusCode::SERVICE_UNAVAILABLE, body, false).unwrap();
        assert_eq!(done.code, 1);
        assert_eq!(done.note.as_deref(), Some("not ready (503 Service Unavailable)"));
        assert!(done.out.contains("ready     false\n") && done.out.contains("policies  ecs ab12\n"), "{}", done.out);
        let done = status_done(StatusCode::SERVICE_UNAVAILABLE, body, true).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&done.out).unwrap()["now"], "2026-03-01T00:00:00Z");
        let err = status_done(StatusCode::UNAUTHORIZED, r#"{"error":"unknown token"}"#, false).unwrap_err();
        assert!(err.to_string().starts_with("token refused (401): unknown token"), "{err}");
        // A refused reload: ready, exit 0, the refusal shown and noted.
        let body = r#"{"ready":true,"clock":"system","last_reload":{"at":"2026-03-01T00:00:00Z","ok":false,"error":"x.toml:3:1: bad\nkey"}}"#;
        let done = status_done(StatusCode::OK, body, false).unwrap();
        assert_eq!(done.code, 0);
        assert!(done.out.contains("clock        system\n"), "{}", done.out);
        assert!(
            done.out.contains("last_reload  REFUSED at 2026-03-01T00:00:00Z: x.toml:3:1: bad key\n"),
            "{}",
            done.out
        );
        assert!(done.note.as_deref().unwrap().starts_with("last reload REFUSED at 2026-03-01T00:00:00Z: x.toml"));
        let err = status_done(StatusCode::SERVICE_UNAVAILABLE, "upstream down", false).unwrap_err();
        assert!(format!("{err:#}").starts_with("/readyz answered 503 Service Unavailable with something"), "{err:#}");
    }
}
