//! `POST /v1/events`: the billing and operations feeds.

use super::body::{parse_json, read_body};
use super::wire::{ErrorBody, EventResult, EventsAnswer};
use super::{require, sorted, ApiError, ApiState, MAX_EVENTS_PER_REQUEST};
use crate::auth::{Permission, Role};
use crate::config::Config;
use crate::domain::event::{parse_event, Event, EventBody};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;

fn permission_for(ev: &Event) -> Permission {
    if ev.is_operator_event() {
        Permission::PostOperatorEvent
    } else {
        Permission::PostBillingEvent
    }
}

/// Post billing and operations events.
///
/// `POST /v1/events`: one event or an array, answered once the events are
/// durable. A malformed event refuses the whole request (400) and a role
/// that may not post one of them too (403); nothing of a refused request
/// is stored. An event the state forbids is `rejected` in its result.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body(content = super::openapi::EventsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per event, in request order: `applied`, `duplicate` (a repeated \
            `event_id`) or `rejected` (the state forbids it, with `error`)", body = EventsAnswer),
        (status = 400, description = "Not JSON, a repeated key, no events, or a malformed event: `field` names the \
            field at fault and, in an array, `index` the event; nothing was stored", body = ErrorBody),
        (status = 403, description = "The role may not post events (auditor), or one of these (ingest: holds, \
            reinstatements, terminations for violation); nothing was stored", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `[api] idle_timeout`", body = ErrorBody),
        (status = 413, description = "Over 1,000 events or 1 MiB: `limit` and `max` name the limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 503, description = "The engine or the store is unavailable (stopping, or a write failed); \
            retry with the same event ids", body = ErrorBody),
    ),
)]
pub(super) async fn post_events(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Every role but auditor may post some events: refused before the body is read.
    require(role, Permission::PostBillingEvent)?;
    let body = read_body(&state, &headers, body).await?;
    let value = parse_json(&body).inspect_err(|_| state.metrics.invalid_event(None))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        one => (vec![one], false),
    };
    if items.is_empty() {
        return Err(ApiError::field("body", "no events in the request"));
    }
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::too_large(
            "events_per_request",
            MAX_EVENTS_PER_REQUEST,
            format!(
                "{} events in one request; at most {MAX_EVENTS_PER_REQUEST} are accepted: split the batch",
                items.len()
            ),
        ));
    }
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ev = check_event(&state.config.get(), item).map_err(|err| {
            state.metrics.invalid_event(Some(item));
            if batch {
                err.at_index(i)
            } else {
                err
            }
        })?;
        events.push(ev);
    }
    if let Some(ev) = events.iter().find(|e| !role.allows(permission_for(e))) {
        let what = match ev.body {
            // general terms 7.5.2: it may purge at once; an operator decides.
            EventBody::Terminated { reason: crate::domain::policy::TerminationReason::Violation } => {
                "resource.terminated events for reason violation (it may purge at once: an operator decides)"
                    .to_string()
            }
            _ => format!("{} events", ev.type_name()),
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("role {} may not post {what}; nothing was stored", format!("{role:?}").to_lowercase()),
        ));
    }
    let results = state.engine.ingest(events).await?;
    let answer = EventsAnswer { results: results.into_iter().map(EventResult::from).collect() };
    Ok(sorted(&answer)?.into_response())
}

impl From<crate::engine::EventResult> for EventResult {
    fn from(r: crate::engine::EventResult) -> Self {
        EventResult { event_id: r.event_id, status: r.status.to_string(), field: None, error: r.error }
    }
}

/// Parses one event and checks what needs the config (known product,
/// backup store): a 400 naming the field, before anything is stored.
fn check_event(config: &Config, item: &Value) -> Result<Event, ApiError> {
    let ev = parse_event(item).map_err(|e| ApiError::field(&e.field, e.error))?;
    if let EventBody::BackupCreated { store, .. } | EventBody::BackupDeleted { store, .. } = &ev.body {
        // Backup copies are business data of a resource: a personal store is
        // never one (product-spec §8), whatever its class.
        if config.stores.get(store).is_none_or(|s| {
            s.class != crate::domain::policy::StoreClass::Backup || s.data != crate::domain::policy::DataKind::Business
        }) {
            return Err(ApiError::field(
                "store",
                format!("{store:?} is not a configured store of class backup holding business data"),
            ));
        }
    }
    if let EventBody::Created { product, .. } = &ev.body {
        if !config.products.contains_key(product) {
            return Err(ApiError::field("product", format!("unknown product {product:?}")));
        }
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::super::wire::HoldEvent;
    use super::*;

    /// The hold events `ctl hold` builds are events the daemon accepts, and
    /// say what ctl meant.
    #[test]
    fn the_hold_events_ctl_builds_parse() {
        let place = HoldEvent {
            event_id: "ev-1".into(),
            kind: "hold.placed".into(),
            at: "2026-01-05T00:00:00Z".into(),
            tenant: "t1".into(),
            hold_id: "court-1".into(),
            resource: Some("r1".into()),
            authority: Some("Court".into()),
            reason: Some("case 7".into()),
            review_at: Some("2026-07-01T00:00:00Z".into()),
        };
        let ev = parse_event(&serde_json::to_value(&place).unwrap()).unwrap();
        assert_eq!((ev.event_id.as_str(), ev.tenant.as_str(), ev.resource.as_deref()), ("ev-1", "t1", Some("r1")));
        assert!(
            matches!(&ev.body, EventBody::HoldPlaced { hold_id, authority, reason, review_at }
                if hold_id == "court-1" && authority == "Court" && reason == "case 7"
                    && review_at.map(crate::time::fmt_rfc3339).as_deref() == Some("2026-07-01T00:00:00Z")),
            "{:?}",
            ev.body
        );
        let release = HoldEvent {
            event_id: "ev-2".into(),
            kind: "hold.released".into(),
            resource: None,
            authority: None,
            reason: None,
            review_at: None,
            ..place
        };
        let ev = parse_event(&serde_json::to_value(&release).unwrap()).unwrap();
        assert_eq!(ev.resource, None, "a hold on the whole tenant");
        assert!(matches!(&ev.body, EventBody::HoldReleased { hold_id } if hold_id == "court-1"), "{:?}", ev.body);
    }

    /// The decisions `ctl request decide` builds are events the daemon
    /// accepts: an execution, and a refusal with its ground.
    #[test]
    fn the_decision_events_ctl_builds_parse() {
        use super::super::wire::DecisionEvent;
        use crate::domain::privacy::{Decision, RefusalGround};
        let at = crate::time::parse_rfc3339("2026-01-14T00:00:00Z").unwrap();
        for decision in [Decision::Execute, Decision::Refuse(RefusalGround::LegalObligation)] {
            let built = DecisionEvent::new("ev-1".into(), at, "t1".into(), "q1".into(), decision);
            let ev = parse_event(&serde_json::to_value(&built).unwrap()).unwrap();
            assert_eq!((ev.event_id.as_str(), ev.tenant.as_str(), ev.at), ("ev-1", "t1", at));
            assert_eq!(ev.body, EventBody::RequestDecided { request_id: "q1".into(), decision });
        }
    }

    /// Backup copies are a resource's business data: a `backup.created`
    /// naming a store of personal data (product-spec §8) is a 400 naming
    /// `store`, even when that store's class is `backup`.
    #[test]
    fn a_backup_copy_is_never_registered_in_a_personal_store() {
        let config = crate::config::parse(
            std::path::Path::new("/etc/retentiond/t.toml"),
            r#"[daemon]
state_dir = "s"
[stores.tapes]
class = "backup"
executor = { kind = "command", argv = ["/bin/x", "{resource}", "{copy}"] }
[stores.crm_tapes]
class = "backup"
data = "personal"
executor = { kind = "command", argv = ["/bin/x", "{subject}", "{action}"] }
"#,
        )
        .unwrap();
        let event = |store: &str| {
            serde_json::json!({"event_id": "e1", "type": "backup.created", "at": "2026-01-05T00:00:00Z",
                "tenant": "t1", "resource": "r1", "store": store, "copy": "c1", "expires_at": "2026-03-01T00:00:00Z"})
        };
        assert!(check_event(&config, &event("tapes")).is_ok());
        let err = check_event(&config, &event("crm_tapes")).unwrap_err();
        assert_eq!((err.status, err.body.field.as_deref()), (axum::http::StatusCode::BAD_REQUEST, Some("store")));
        assert!(err.body.error.contains("business data"), "{}", err.body.error);
    }
}
