//! What is known of resources: one resource (`GET /v1/resources/{id}`),
//! the deletion forecast (`GET /v1/deletions`) and whether a backup may be
//! restored (`GET /v1/restore-check`). Holds show in the resource view;
//! they are placed and released as events.

use super::wire::{
    ArrearsView, BufferView, BuffersView, CopyView, Deletions, ErrorBody, HistoryLine, HoldScope, HoldView, Refused,
    ResourceView, RestoreCheck, TerminationView,
};
use super::{forecast, require, resource_in_path, sorted, ApiError, ApiState};
use crate::auth::{Permission, Role};
use crate::domain::lifecycle::{Buffer, Resource, State as ResourceState};
use crate::domain::policy::ProductPolicy;
use crate::time::{fmt_rfc3339, parse_rfc3339, Timestamp};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use rust_decimal::Decimal;
use serde_json::Value;

fn buffer_view(b: &Buffer) -> BufferView {
    BufferView {
        cause: b.cause,
        reason: b.reason,
        started_at: fmt_rfc3339(b.started_at),
        delete_after: fmt_rfc3339(b.delete_after),
        policy_version: b.policy_version.clone(),
        // The event came late: the deadline was lifted to this floor.
        late_event_floor: b.late_floor.map(fmt_rfc3339),
    }
}

/// The resource view of product-spec §4, as of `now` (for the late fee).
pub fn resource_view(r: &Resource, policy: Option<&ProductPolicy>, now: Timestamp) -> ResourceView {
    let copies = r
        .copies
        .iter()
        .map(|c| CopyView {
            store: c.store.clone(),
            copy: c.copy.clone(),
            class: c.class,
            state: c.state,
            stuck: c.stuck,
            attempts: c.attempts,
            next_attempt_at: c.next_attempt_at.map(fmt_rfc3339),
            last_error: c.last_error.clone(),
            done_at: c.done_at.map(fmt_rfc3339),
            expires_at: c.expires_at.map(fmt_rfc3339),
            outcome: c.outcome.clone(),
        })
        .collect();
    let history = r
        .history
        .iter()
        .map(|h| HistoryLine { at: fmt_rfc3339(h.at), what: h.what.clone(), detail: h.detail.clone() })
        .collect();
    let holds = r
        .holds
        .iter()
        .map(|h| HoldView {
            hold_id: h.hold_id.clone(),
            authority: h.authority.clone(),
            reason: h.reason.clone(),
            scope: if h.tenant_wide { HoldScope::Tenant } else { HoldScope::Resource },
            placed_at: fmt_rfc3339(h.placed_at),
            review_at: h.review_at.map(fmt_rfc3339),
        })
        .collect();
    let arrears = r.arrears.as_ref().map(|a| {
        let mut v = ArrearsView {
            started_at: fmt_rfc3339(a.started_at),
            amount: a.amount,
            currency: a.currency.clone(),
            buffer: a.buffer.as_ref().map(buffer_view),
            late_fee: None,
            late_fee_days: None,
            late_fee_per_day: None,
        };
        if let Some(p) = policy {
            if let Some((fee, days)) = r.late_fee(p.late_fee_per_day, now) {
                v.late_fee = Some(fee);
                v.late_fee_days = Some(days);
                if let Some(percent) = p.late_fee_per_day.checked_mul(Decimal::ONE_HUNDRED) {
                    v.late_fee_per_day = Some(format!("{}%", percent.normalize()));
                }
            }
        }
        v
    });
    let termination = r.termination.as_ref().map(|t| TerminationView {
        at: fmt_rfc3339(t.at),
        reason: t.reason,
        buffer: t.buffer.as_ref().map(buffer_view),
    });
    let d = r.deciding.as_ref();
    ResourceView {
        resource: r.id.clone(),
        tenant: r.tenant.clone(),
        product: r.product.clone(),
        billing: r.billing,
        created_at: fmt_rfc3339(r.created_at),
        term_end: r.term_end.map(fmt_rfc3339),
        state: r.state,
        cause: d.map(|b| b.cause),
        reason: d.and_then(|b| b.reason),
        buffer_started_at: d.map(|b| fmt_rfc3339(b.started_at)),
        delete_after: d.map(|b| fmt_rfc3339(b.delete_after)),
        policy_version: d.map(|b| b.policy_version.clone()),
        not_before: r.not_before.filter(|_| d.is_some()).map(fmt_rfc3339),
        deletion_started_at: r.deletion_started_at.map(fmt_rfc3339),
        buffers: BuffersView {
            expiry: r.expiry.as_ref().map(buffer_view),
            release: r.release.as_ref().map(buffer_view),
        },
        arrears,
        termination,
        holds,
        copies,
        history,
    }
}

/// [`resource_view`] as served: JSON with its keys sorted.
pub fn resource_json(r: &Resource, policy: Option<&ProductPolicy>, now: Timestamp) -> Value {
    serde_json::to_value(resource_view(r, policy, now)).expect("a resource view is text, numbers and decimals")
}

/// A resource, its deadline, holds, copies and history.
///
/// `GET /v1/resources/{id}`: the resource view of product-spec §4.
#[utoipa::path(
    get,
    path = "/v1/resources/{id}",
    tag = "resources",
    params(("id" = super::openapi::StoredId, Path, description = "The resource's id")),
    responses(
        (status = 200, description = "Where it stands, the deletion that decides its fate, its buffers, holds, \
            copies and history", body = ResourceView),
        (status = 400, description = "Not an id (`field` is `resource`)", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_resource(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let id = resource_in_path(path)?;
    let found = {
        let id = id.clone();
        state.read(move |s| Ok(s.resource(&id)?)).await?
    };
    match found {
        Some(r) => {
            let config = state.config.get();
            let policy = config.products.get(&r.product);
            Ok(sorted(&resource_view(&r, policy, state.clock.now()))?.into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown resource {id:?}"))),
    }
}

/// The deletion forecast.
///
/// `GET /v1/deletions?before=T[&limit=N][&after=TOKEN]`: every deletion
/// due before T (running or projected from a future term end), with
/// cause, deadline, policy and what blocks it; deletions already under way
/// are listed with their copies. Read from the indexes (see
/// [`super::forecast`]) on a blocking thread, so a long answer holds up no
/// other request; with `limit`, a page, and `next` when more may follow.
#[utoipa::path(
    get,
    path = "/v1/deletions",
    tag = "resources",
    params(
        ("before" = String, Query, format = DateTime, description = "RFC 3339: deletions due before this time"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000,
            description = "Answer a page of at most this many, with `next` when more may follow"),
        ("after" = Option<String>, Query, description = "With `limit`: the `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "The forecast, by deadline then resource id", body = Deletions),
        (status = 400, description = "`before` missing or not RFC 3339, `limit` out of range, `after` not a \
            token from `next` or without `limit`, or an unknown parameter: `field` names it", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_deletions(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    if let Some(k) = q.keys().find(|k| !["before", "limit", "after"].contains(&k.as_str())) {
        return Err(ApiError::field(k, "unknown query parameter"));
    }
    let before =
        q.get("before").ok_or_else(|| ApiError::field("before", "required, e.g. ?before=2026-12-31T00:00:00Z"))?;
    let before = parse_rfc3339(before).map_err(|e| ApiError::field("before", e.to_string()))?;
    let limit = match q.get("limit") {
        None => None,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=forecast::MAX_PAGE).contains(&n) => Some(n),
            _ => return Err(ApiError::field("limit", format!("a whole number from 1 to {}", forecast::MAX_PAGE))),
        },
    };
    let after = match q.get("after") {
        None => None,
        Some(_) if limit.is_none() => return Err(ApiError::field("after", "only with limit")),
        Some(t) => Some(t.parse::<forecast::Cursor>().map_err(|e| ApiError::field("after", e.to_string()))?),
    };
    let config = state.config.get();
    let store = state.store.clone();
    let first_page = after.is_none();
    // Read and serialized off the tokio workers (see `sorted_bytes`).
    let bytes = tokio::task::spawn_blocking(move || {
        let (deletions, next) = forecast::read(&*store, &config, before, after.as_ref(), limit)?;
        let (personal, personal_truncated) = if first_page {
            super::personal_forecast::read(&*store, before, &forecast::gates(&*store, &config)?)?
        } else {
            (Vec::new(), false)
        };
        let next = next.map(|c| c.to_string());
        let answer = Deletions { before: fmt_rfc3339(before), deletions, next, personal, personal_truncated };
        super::sorted_bytes(&answer)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the forecast failed: {e}")))??;
    Ok(super::json_response(bytes))
}

/// May a backup be restored?.
///
/// `GET /v1/restore-check?resource=ID` or `?tenant=ID`: whether a backup
/// system may restore data (privacy policy 5.3.3: a restricted copy may not
/// be restored; general terms 4.1.6: deleted data stays deleted). Unknown
/// resources are refused: fail closed.
#[utoipa::path(
    get,
    path = "/v1/restore-check",
    tag = "resources",
    params(
        ("resource" = Option<super::openapi::StoredId>, Query,
            description = "A resource (give this or `tenant`)"),
        ("tenant" = Option<super::openapi::StoredId>, Query,
            description = "Every resource of a tenant (give this or `resource`)"),
        ("subject" = Option<super::openapi::StoredId>, Query,
            description = "With `tenant`: that subject's personal data instead (the tenant's id for the account \
                holder): refused once restricted or erased (privacy policy 5.3.3)"),
    ),
    responses(
        (status = 200, description = "Whether restoring is allowed, and why; for a tenant, each resource refused",
            body = RestoreCheck),
        (status = 400, description = "Neither or both of `resource` and `tenant`, not an id, or an unknown \
            parameter: `field` names it", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_restore_check(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    if let Some(k) = q.keys().find(|k| !["resource", "tenant", "subject"].contains(&k.as_str())) {
        return Err(ApiError::field(k, "unknown query parameter"));
    }
    let refusal = |r: &Resource| -> Option<String> {
        match r.state {
            ResourceState::Active | ResourceState::Retained => None,
            ResourceState::Deleting => Some(format!("resource {} is being deleted; its backups are restricted", r.id)),
            ResourceState::Deleted => {
                Some(format!("resource {} is deleted; its remaining backups are restricted until purged", r.id))
            }
            ResourceState::Purged => Some(format!("resource {} is purged; nothing of it may be restored", r.id)),
        }
    };
    let plain = |allowed: bool, reason: String| RestoreCheck { allowed, reason, refused: None };
    let (resource, tenant) = (q.get("resource").cloned(), q.get("tenant").cloned());
    let subject = q.get("subject").cloned();
    let answer = state
        .read(move |store| {
            if let Some(subject) = subject {
                let Some(t) = tenant.filter(|_| resource.is_none()) else {
                    return Err(ApiError::field("subject", "give ?tenant=ID with ?subject=ID, and no resource"));
                };
                crate::ids::check_stored_id(&t).map_err(|e| ApiError::field("tenant", e))?;
                crate::ids::check_stored_id(&subject).map_err(|e| ApiError::field("subject", e))?;
                let key = crate::store::SubjectKey { tenant: t, subject };
                return Ok(match store.subject(&key)? {
                    // The account holder of a known tenant of whom nothing
                    // was ever asked has nothing restricted.
                    None if key.subject == key.tenant && !store.tenant_resources(&key.tenant)?.is_empty() => {
                        plain(true, format!("nothing of subject {} is restricted or erased", key.display()))
                    }
                    // Fail closed, as for an unknown resource.
                    None => plain(false, format!("unknown subject {}", key.display())),
                    Some(s) => match s.restore_refusal() {
                        None => plain(
                            true,
                            format!("personal data of subject {} is neither restricted nor erased", key.display()),
                        ),
                        Some(reason) => plain(false, reason),
                    },
                });
            }
            Ok(match (resource.as_deref(), tenant.as_deref()) {
                (Some(id), None) => {
                    crate::ids::check_stored_id(id).map_err(|e| ApiError::field("resource", e))?;
                    match store.resource(id)? {
                        None => plain(false, format!("unknown resource {id}")),
                        Some(r) => match refusal(&r) {
                            None => plain(true, format!("resource {} is {}", r.id, r.state.as_str())),
                            Some(reason) => plain(false, reason),
                        },
                    }
                }
                (None, Some(t)) => {
                    crate::ids::check_stored_id(t).map_err(|e| ApiError::field("tenant", e))?;
                    let ids = store.tenant_resources(t)?;
                    let mut refused = Vec::new();
                    for id in &ids {
                        let reason = match store.resource(id)? {
                            None => Some(format!("resource {id} cannot be read")),
                            Some(r) => refusal(&r),
                        };
                        if let Some(reason) = reason {
                            refused.push(Refused { resource: id.clone(), reason });
                        }
                    }
                    if ids.is_empty() {
                        // Nothing known of the tenant: fail closed, as for an unknown resource.
                        plain(false, format!("unknown tenant {t}"))
                    } else if refused.is_empty() {
                        plain(true, format!("no resource of tenant {t} is deleted or restricted"))
                    } else {
                        let reason = format!("{} resources of tenant {t} are deleted or restricted", refused.len());
                        RestoreCheck { allowed: false, reason, refused: Some(refused) }
                    }
                }
                _ => return Err(ApiError::field("resource", "give exactly one of ?resource=ID or ?tenant=ID")),
            })
        })
        .await?;
    Ok(sorted(&answer)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Billing, Event, EventBody};
    use crate::domain::lifecycle::Arrears;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    fn policy() -> ProductPolicy {
        let text = r#"
[daemon]
state_dir = "x"
[stores.primary]
class = "online"
executor = { kind = "fs", root = "/srv", path = "{tenant}/{resource}" }
[products.p]
stores = ["primary"]
buffer = { expiry = "15d", arrears = "10d", termination = "20d" }
"#;
        crate::config::parse(std::path::Path::new("/etc/retentiond/t.toml"), text)
            .unwrap()
            .products
            .remove("p")
            .unwrap()
    }

    /// Any instant chrono can hold, with the ends themselves likely.
    fn instant() -> impl Strategy<Value = Timestamp> {
        let (min, max) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
        prop_oneof![
            Just(DateTime::<Utc>::MIN_UTC),
            Just(DateTime::<Utc>::MAX_UTC),
            (0..86_400 * 3i64).prop_map(move |s| DateTime::from_timestamp(min + s, 0).unwrap()),
            (0..86_400 * 3i64).prop_map(move |s| DateTime::from_timestamp(max - s, 0).unwrap()),
            (min..=max).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        ]
    }

    /// Any `Decimal`, the 96-bit extremes and every scale included.
    fn decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            Just(Decimal::ZERO),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>(), 0..=28u32)
                .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale)),
        ]
    }

    fn resource(created: Timestamp) -> Resource {
        let ev = Event {
            event_id: "e1".into(),
            at: created,
            tenant: "t1".into(),
            resource: Some("r1".into()),
            body: EventBody::Created { product: "p".into(), billing: Billing::Postpaid, term_end: None },
        };
        let rules = crate::domain::lifecycle::Rules {
            after_hold_release: chrono::Duration::zero(),
            may_start: true,
            may_dispatch: true,
            max_attempts: 1,
            late_event_floor: chrono::Duration::zero(),
        };
        Resource::create(&ev, &policy(), &[], created, rules).unwrap()
    }

    proptest! {
        /// Issue 9: `arrears.started` with amount 2^96 - 1 and time passing
        /// made `GET /v1/resources/{id}` drop the connection (a panic in the
        /// fee's multiplication). Whatever the amount, rate and times, the
        /// view is built.
        #[test]
        fn the_resource_view_never_panics(
            amount in decimal(),
            rate in decimal(),
            created in instant(),
            started in instant(),
            term_end in instant(),
            now in instant(),
        ) {
            let mut p = policy();
            p.late_fee_per_day = rate;
            let mut r = resource(created);
            r.term_end = Some(term_end);
            r.arrears = Some(Arrears {
                started_at: started,
                amount: Some(amount),
                currency: Some("EUR".into()),
                buffer: None,
                grace_ends_at: None,
                late_floor: None,
            });
            let v = resource_json(&r, Some(&p), now);
            prop_assert_eq!(&v["resource"], "r1");
            if let Some((fee, days)) = r.late_fee(rate, now) {
                prop_assert!(days >= 0);
                prop_assert_eq!(&v["arrears"]["late_fee_days"], &json!(days));
                prop_assert_eq!(&v["arrears"]["late_fee"], &json!(fee));
            } else {
                prop_assert!(v["arrears"].get("late_fee").is_none());
            }
        }
    }

    #[test]
    fn the_fee_of_the_issue_9_amount_is_left_out_not_a_panic() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut r = resource(t0);
        r.arrears = Some(Arrears {
            started_at: t0,
            amount: Some(Decimal::MAX),
            currency: None,
            buffer: None,
            grace_ends_at: None,
            late_floor: None,
        });
        // 0.05 % of 2^96 for ten years does not fit in 96 bits.
        let later = t0 + chrono::Duration::days(3650);
        assert_eq!(r.late_fee(Decimal::new(5, 4), later), None);
        let v = resource_json(&r, Some(&policy()), later);
        assert_eq!(v["arrears"]["amount"], json!(Decimal::MAX));
        assert!(v["arrears"].get("late_fee").is_none(), "{v}");
        // An ordinary amount still gets its fee: 0.05 % of 1000 for 3650 days.
        r.arrears.as_mut().unwrap().amount = Some(Decimal::new(1000, 0));
        assert_eq!(r.late_fee(Decimal::new(5, 4), later), Some((Decimal::new(182500, 2), 3650)));
    }
}
