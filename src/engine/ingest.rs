//! Events: each one checked against what is stored (a repeat, a date too
//! far ahead), applied to its resource or to every resource of its tenant
//! by the pure lifecycle, and written with its audit record. Deadlines the
//! events make due are left to the tick that follows the whole group.

use super::{Engine, EngineError, EventResult};
use crate::audit::AuditKind;
use crate::domain::event::{Event, EventBody};
use crate::domain::lifecycle::{Effect, Rejection, Resource};
use crate::store::{EventOutcome, WriteSet};
use crate::time::{fmt_rfc3339, Timestamp};
use serde_json::json;

/// Resources changed by one event, with their effects and next due time, or
/// why the event is refused.
type Applied = Result<Vec<(Resource, Vec<Effect>, Option<Timestamp>)>, Rejection>;

impl Engine {
    /// Applies the events of one request in order, counting each outcome.
    pub(super) fn ingest(&mut self, events: &[Event]) -> Result<Vec<EventResult>, EngineError> {
        let now = self.clock.now();
        let mut results = Vec::with_capacity(events.len());
        for ev in events {
            let result = self.ingest_one(ev, now)?;
            self.metrics.event(ev.type_name(), result.status);
            results.push(result);
        }
        Ok(results)
    }

    /// Applies one event. Time-driven transitions are left to the tick that
    /// follows the whole group, so the events of one request (a replayed
    /// history, say) all land before any deadline is evaluated: a renewal
    /// in the same request as an old creation keeps the resource.
    fn ingest_one(&mut self, ev: &Event, now: Timestamp) -> Result<EventResult, EngineError> {
        let result = |status, error: Option<String>| EventResult { event_id: ev.event_id.clone(), status, error };
        if self.pending.event(&*self.store, &ev.event_id)?.is_some() {
            return Ok(result("duplicate", None));
        }
        // Nothing of an event dated too far ahead is stored, so the sender
        // may retry it once clocks agree.
        if let Some(why) = self.too_far_ahead(ev, now) {
            return Ok(result("rejected", Some(why)));
        }
        let mut w = WriteSet::default();
        let mut subjects = Vec::new();
        let outcome = if ev.is_personal() {
            self.apply_personal(ev, now)?.map(|changes| {
                subjects = changes.subjects;
                changes.resources
            })
        } else {
            match &ev.resource {
                Some(id) => self.apply_to_resource(ev, id, now),
                None => self.apply_to_tenant(ev, now, &mut w),
            }?
        };
        let base = json!({"event_id": ev.event_id, "type": ev.type_name(), "at": fmt_rfc3339(ev.at)});
        let (status, error) = match outcome {
            Ok(changes) => {
                let mut data = base;
                if ev.resource.is_none() {
                    data["resources"] = json!(changes.len());
                }
                self.record(&mut w, now, AuditKind::EventApplied, Some(&ev.tenant), ev.resource.as_deref(), data);
                for (mut r, fx, due) in changes {
                    self.effects(&mut w, now, &mut r, fx);
                    w.put_resource(r, due);
                }
                for (s, fx) in subjects {
                    self.put_subject(&mut w, now, s, fx)?;
                }
                ("applied", None)
            }
            Err(rejection) => {
                let mut data = base;
                data["error"] = json!(rejection.message);
                self.record(&mut w, now, AuditKind::EventRejected, Some(&ev.tenant), ev.resource.as_deref(), data);
                if rejection.retryable {
                    // A later event (the creation, the hold) may make this
                    // one valid: its id stays free so the sender can retry.
                    self.commit(w)?;
                    return Ok(result("rejected", Some(rejection.message)));
                }
                ("rejected", Some(rejection.message))
            }
        };
        w.events.push((ev.event_id.clone(), EventOutcome { status: status.into(), resource: ev.resource.clone() }));
        self.commit(w)?;
        if status == "applied"
            && ev.resource.is_none()
            && matches!(ev.body, EventBody::HoldPlaced { .. } | EventBody::HoldReleased { .. })
        {
            // A tenant's holds cover its people's personal data too.
            self.subjects_of_tenant_changed(&ev.tenant, now)?;
        }
        Ok(result(status, error))
    }

    /// Why `ev` is dated too far ahead of `now` (`safety.max_future_skew`),
    /// if it is.
    fn too_far_ahead(&self, ev: &Event, now: Timestamp) -> Option<String> {
        let skew = self.config.safety.max_future_skew;
        (ev.at > crate::domain::lifecycle::later(now, skew.to_chrono())).then(|| {
            format!(
                "at {} is more than safety.max_future_skew ({skew}) ahead of the daemon's clock ({})",
                fmt_rfc3339(ev.at),
                fmt_rfc3339(now)
            )
        })
    }

    /// Applies a resource-scoped event; returns the changed resource.
    fn apply_to_resource(&mut self, ev: &Event, id: &str, now: Timestamp) -> Result<Applied, EngineError> {
        let config = self.config.clone();
        let rules = self.rules();
        let applied = match self.read_resource(id)? {
            None => {
                let policy = match &ev.body {
                    EventBody::Created { product, .. } => config.products.get(product),
                    _ => None,
                };
                match policy {
                    None => Err(Rejection { message: format!("unknown resource {id:?}"), retryable: true }),
                    Some(policy) => {
                        let holds = self.pending.tenant_holds(&*self.store, &ev.tenant)?.holds;
                        Resource::create(ev, policy, &holds, now, rules).map(|r| {
                            self.safety.tracked += 1;
                            let due = r.next_due(policy);
                            vec![(r, Vec::new(), due)]
                        })
                    }
                }
            }
            Some(mut r) => match config.products.get(&r.product) {
                None => Err(Rejection::new(format!("product {:?} is not configured", r.product))),
                Some(policy) => r.apply(ev, policy, rules, now).map(|fx| {
                    let due = r.next_due(policy);
                    vec![(r, fx, due)]
                }),
            },
        };
        Ok(applied)
    }

    /// Applies an `arrears.*` or `hold.*` event without a resource to every
    /// resource of the tenant it concerns (for arrears, those whose billing
    /// the product marks as affected); tenant holds also cover resources
    /// created later.
    fn apply_to_tenant(&mut self, ev: &Event, now: Timestamp, w: &mut WriteSet) -> Result<Applied, EngineError> {
        let config = self.config.clone();
        let rules = self.rules();
        if matches!(ev.body, EventBody::HoldPlaced { .. } | EventBody::HoldReleased { .. }) {
            let mut holds = self.pending.tenant_holds(&*self.store, &ev.tenant)?;
            if let Err(rejection) = holds.apply(ev) {
                return Ok(Err(rejection));
            }
            w.tenants.push((ev.tenant.clone(), holds));
        }
        let mut changes = Vec::new();
        for id in self.pending.tenant_resources(&*self.store, &ev.tenant)? {
            let Some(mut r) = self.read_resource(&id)? else { continue };
            let Some(policy) = config.products.get(&r.product) else {
                tracing::error!(resource = %r.id, product = %r.product, "product is not configured: tenant event skipped");
                continue;
            };
            if !r.concerned_by_tenant_event(ev, policy) {
                continue;
            }
            match r.apply(ev, policy, rules, now) {
                Ok(fx) => {
                    let due = r.next_due(policy);
                    changes.push((r, fx, due));
                }
                Err(rejection) => {
                    tracing::info!(resource = %id, error = %rejection, "tenant-wide event does not apply to this resource")
                }
            }
        }
        Ok(Ok(changes))
    }
}
