//! Personal data (issue 12, product-spec §8): a request
//! (`GET /v1/requests/{id}`), the requests by state and due date
//! (`GET /v1/requests`, in pages), a subject's classes and what is kept
//! (`GET /v1/subjects/{tenant}/{subject}`) and a request's receipt
//! (`GET /v1/certificates/requests/{id}`). Requests are made and decided
//! as events (`erasure.requested`, `request.decided`, ...).

use super::wire::{
    ErrorBody, PersonalStoreView, RequestClass, RequestList, RequestSummary, RequestView, SubjectClass, SubjectView,
};
use super::{id_in_path, require, sorted, ApiError, ApiState};
use crate::auth::{Permission, Role};
use crate::domain::lifecycle::TenantHolds;
use crate::domain::privacy::{PersonalState, Request, RequestKind, RequestState, Schedule, Subject};
use crate::receipt::{NotIssued, Receipt};
use crate::store::SubjectKey;
use crate::time::{fmt_rfc3339, parse_rfc3339, Timestamp};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::collections::HashMap;

/// Requests a page holds when the request does not say (`limit`).
pub const DEFAULT_PAGE: usize = 100;

/// The most requests one page holds.
pub const MAX_PAGE: usize = 1_000;

/// The view of request `r` of subject `s`; `holds` are its tenant's, for
/// what defers an approved erasure.
pub fn request_view(s: &Subject, r: &Request, holds: &TenantHolds) -> RequestView {
    let deferred = r.state == RequestState::Approved && r.kind == RequestKind::Erasure;
    let classes = r
        .outcomes
        .iter()
        .map(|o| {
            let class = s.classes.iter().find(|c| c.class == o.class);
            let outcome = match class {
                Some(c) if c.is_erased() => "erased",
                Some(c) if c.started_at.is_some() => "erasing",
                _ if o.kept_until.is_some() => "kept",
                _ => "scheduled",
            };
            RequestClass { class: o.class.clone(), outcome: outcome.into(), kept_until: o.kept_until.map(fmt_rfc3339) }
        })
        .collect();
    RequestView {
        request: r.id.clone(),
        tenant: s.tenant.clone(),
        subject: s.id.clone(),
        kind: r.kind.as_str().into(),
        state: r.state.as_str().into(),
        overdue: r.overdue,
        verified: r.verified,
        grounds: r.grounds.iter().map(|g| g.as_str().to_string()).collect(),
        received_at: fmt_rfc3339(r.received_at),
        due: fmt_rfc3339(r.due),
        decided_at: r.decided_at.map(fmt_rfc3339),
        refusal_ground: r.refusal.map(|g| g.as_str().to_string()),
        linked_to: r.linked_to.clone(),
        deferred_by: if deferred { holds.holds.iter().map(|h| h.hold_id.clone()).collect() } else { Vec::new() },
        classes,
        completed_at: r.completed_at.map(fmt_rfc3339),
        lifted_at: r.lifted_at.map(fmt_rfc3339),
    }
}

/// The view of subject `s`.
pub fn subject_view(s: &Subject) -> SubjectView {
    let classes = s
        .classes
        .iter()
        .map(|c| SubjectClass {
            class: c.class.clone(),
            erasure: c.erasure.as_str().into(),
            erase_after: c.erase_after.map(fmt_rfc3339),
            keep_until: c.keep_until.map(fmt_rfc3339),
            scheduled_by: c.scheduled_by.as_ref().map(|b| match b {
                Schedule::Closure => "account_closed".to_string(),
                Schedule::Request(id) => id.clone(),
            }),
            policy_version: c.policy_version.clone(),
            started_at: c.started_at.map(fmt_rfc3339),
            stores: c
                .copies
                .iter()
                .map(|p| PersonalStoreView {
                    store: p.store.clone(),
                    state: p.state.as_str().into(),
                    attempts: p.attempts,
                    stuck: p.stuck,
                    last_error: p.last_error.clone(),
                    done_at: p.done_at.map(fmt_rfc3339),
                    audit_seq: if p.state == PersonalState::Erased { p.done_seq } else { None },
                })
                .collect(),
        })
        .collect();
    SubjectView {
        tenant: s.tenant.clone(),
        subject: s.id.clone(),
        account_holder: s.is_account_holder(),
        registered_at: s.registered_at.map(fmt_rfc3339),
        closed_at: s.closed_at.map(fmt_rfc3339),
        restricted_by: s.restricted_by.clone(),
        classes,
        requests: s
            .requests
            .iter()
            .map(|r| RequestSummary {
                request: r.id.clone(),
                kind: r.kind.as_str().into(),
                state: r.state.as_str().into(),
                due: fmt_rfc3339(r.due),
                overdue: r.overdue,
            })
            .collect(),
    }
}

/// An id from a query or a pair of path segments, named `field` in a 400.
fn checked_id(id: &str, field: &str) -> Result<String, ApiError> {
    crate::ids::check_stored_id(id).map_err(|e| ApiError::field(field, e))?;
    Ok(id.to_string())
}

/// A request and its subject, with the tenant's holds; 404 if unknown.
async fn find_request(state: &ApiState, id: String) -> Result<(Subject, TenantHolds), ApiError> {
    let found = state
        .read(move |s| {
            let Some(key) = s.request_owner(&id)? else { return Ok(None) };
            let subject = s.subject(&key)?;
            let holds = s.tenant_holds(&key.tenant)?;
            Ok(subject.map(|subject| (subject, holds)))
        })
        .await?;
    found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown request".to_string()))
}

/// One privacy request.
///
/// `GET /v1/requests/{id}`: where it stands, its due date and overdue
/// flag, its decision, what defers it and what it did to each class.
#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "privacy",
    params(("id" = super::openapi::StoredId, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request", body = RequestView),
        (status = 400, description = "Not an id (`field` is `request`)", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_request(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let id = id_in_path(path, "request")?;
    let (subject, holds) = find_request(&state, id.clone()).await?;
    let r = subject
        .requests
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown request".to_string()))?;
    Ok(sorted(&request_view(&subject, r, &holds))?.into_response())
}

/// The privacy requests, a page at a time.
///
/// `GET /v1/requests[?state=S][&due_before=T][&limit=N][&after=ID]`: by id,
/// those in state S (or `open`: not yet completed or refused, or
/// `overdue`) due before T, with `next` when more follow.
#[utoipa::path(
    get,
    path = "/v1/requests",
    tag = "privacy",
    params(
        ("state" = Option<String>, Query, description = "A request state, `open` (any not completed or refused) \
            or `overdue`"),
        ("due_before" = Option<String>, Query, description = "Only requests due strictly before this (RFC 3339)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
            description = "A page of at most this many (default 100), with `next` when more follow"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of requests, by id", body = RequestList),
        (status = 400, description = "A bad `state`, `due_before`, `limit` or `after`, or an unknown parameter: \
            `field` names it", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_requests(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    if let Some(k) = q.keys().find(|k| !["state", "due_before", "limit", "after"].contains(&k.as_str())) {
        return Err(ApiError::field(k, "unknown query parameter"));
    }
    let wanted = match q.get("state").map(String::as_str) {
        None => StateFilter::Any,
        Some("open") => StateFilter::Open,
        Some("overdue") => StateFilter::Overdue,
        Some(s) => match RequestState::parse(s) {
            Some(st) => StateFilter::Is(st),
            None => {
                return Err(ApiError::field("state", format!("one of open, overdue, {}", RequestState::expected())))
            }
        },
    };
    let due_before = q.get("due_before").map(|t| parse_rfc3339(t)).transpose();
    let due_before = due_before.map_err(|e| ApiError::field("due_before", e.to_string()))?;
    let limit = match q.get("limit") {
        None => DEFAULT_PAGE,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::field("limit", format!("a whole number from 1 to {MAX_PAGE}"))),
        },
    };
    let after = q.get("after").map(|a| checked_id(a, "after")).transpose()?;
    let page = state
        .read(move |s| {
            // Open requests are few and listed apart: a filter that only
            // open ones pass never walks the closed ones.
            let only_open = matches!(wanted, StateFilter::Open | StateFilter::Overdue)
                || matches!(wanted, StateFilter::Is(st) if !st.is_closed());
            let mut out: Vec<(Subject, String, TenantHolds)> = Vec::new();
            let mut next = None;
            let consider = |id: String,
                            key: SubjectKey,
                            out: &mut Vec<(Subject, String, TenantHolds)>|
             -> Result<bool, ApiError> {
                let Some(subject) = s.subject(&key)? else { return Ok(false) };
                let Some(r) = subject.requests.iter().find(|r| r.id == id) else { return Ok(false) };
                if !wanted.admits(r) || due_before.is_some_and(|t: Timestamp| r.due >= t) {
                    return Ok(false);
                }
                let holds = s.tenant_holds(&key.tenant)?;
                out.push((subject, id, holds));
                Ok(true)
            };
            if only_open {
                for o in s.open_requests()? {
                    if after.as_ref().is_some_and(|a| &o.id <= a) {
                        continue;
                    }
                    if out.len() == limit {
                        next = out.last().map(|(_, id, _)| id.clone());
                        break;
                    }
                    consider(o.id, o.key, &mut out)?;
                }
            } else {
                let mut cursor = after.clone();
                'pages: loop {
                    let ids = s.requests_after(cursor.as_deref(), MAX_PAGE)?;
                    let Some((last, _)) = ids.last().cloned() else { break };
                    for (id, key) in ids {
                        if out.len() == limit {
                            next = out.last().map(|(_, id, _)| id.clone());
                            break 'pages;
                        }
                        consider(id, key, &mut out)?;
                    }
                    cursor = Some(last);
                }
            }
            Ok((out, next))
        })
        .await?;
    let (found, next) = page;
    let requests = found
        .iter()
        .filter_map(|(s, id, holds)| s.requests.iter().find(|r| &r.id == id).map(|r| request_view(s, r, holds)))
        .collect();
    Ok(sorted(&RequestList { requests, next })?.into_response())
}

/// Which requests a listing admits.
#[derive(Clone, Copy)]
enum StateFilter {
    Any,
    Open,
    Overdue,
    Is(RequestState),
}

impl StateFilter {
    fn admits(self, r: &Request) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::Open => !r.state.is_closed(),
            StateFilter::Overdue => r.overdue && !r.state.is_closed(),
            StateFilter::Is(s) => r.state == s,
        }
    }
}

/// A subject's personal data: its classes, the stores holding them, what
/// is kept and until when, and its requests.
///
/// `GET /v1/subjects/{tenant}/{subject}` (the account holder's subject id
/// is the tenant's).
#[utoipa::path(
    get,
    path = "/v1/subjects/{tenant}/{subject}",
    tag = "privacy",
    params(
        ("tenant" = super::openapi::StoredId, Path, description = "The tenant"),
        ("subject" = super::openapi::StoredId, Path, description = "The subject (the tenant's id for the account holder)"),
    ),
    responses(
        (status = 200, description = "The subject", body = SubjectView),
        (status = 400, description = "Not an id (`field` is `tenant` or `subject`)", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 404, description = "No such subject of that tenant", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_subject(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let Path((tenant, subject)) = path.map_err(|e| ApiError::field("subject", e.body_text()))?;
    let key = SubjectKey { tenant: checked_id(&tenant, "tenant")?, subject: checked_id(&subject, "subject")? };
    let found = state.read(move |s| Ok(s.subject(&key)?)).await?;
    match found {
        Some(s) => Ok(sorted(&subject_view(&s))?.into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such subject of that tenant".to_string())),
    }
}

/// A request's receipt.
///
/// `GET /v1/certificates/requests/{id}`: once a request is refused or
/// completed, what was decided and, for an erasure, each class in each
/// store with its outcome and the audit record that proves it;
/// `retentiond audit receipt` checks it against the log.
#[utoipa::path(
    get,
    path = "/v1/certificates/requests/{id}",
    tag = "audit",
    params(("id" = super::openapi::StoredId, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The receipt", body = Receipt),
        (status = 400, description = "Not an id (`field` is `request`)", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
        (status = 409, description = "Not answered yet: no receipt", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_receipt(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let id = id_in_path(path, "request")?;
    let (subject, _) = find_request(&state, id.clone()).await?;
    match Receipt::issue(&subject, &id) {
        Ok(r) => Ok(sorted(&r)?.into_response()),
        Err(NotIssued::Unknown) => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown request".to_string())),
        Err(e @ NotIssued::Open(_)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
    }
}
