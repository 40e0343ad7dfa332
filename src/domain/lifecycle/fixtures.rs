//! Shared setup for the lifecycle's unit tests (and the policy's): one
//! product with every kind of store, the daemon's rules, events about one
//! resource, and times counted in days from one origin, so that each test
//! states only the rule it proves. Built from the types directly, not from a
//! config file: the pure core is tested without the config parser.

use super::*;
use crate::domain::policy::{Buffers, PurgeMode, StorePolicy};
use crate::duration::Dur;
use crate::executor::ExecutorSpec;
use std::collections::BTreeMap;

/// 2026-01-01T00:00:00Z, the origin of every test's time line.
pub(crate) fn t0() -> Timestamp {
    crate::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
}

/// `n` days after [`t0`].
pub(crate) fn day(n: i64) -> Timestamp {
    t0() + chrono::Duration::days(n)
}

/// The record form of a time, as the effects carry it.
pub(crate) fn rfc(t: Timestamp) -> String {
    fmt_rfc3339(t)
}

const DAY: u64 = 86_400;

fn store(name: &str, class: StoreClass, purge: PurgeMode, max_restricted: Option<u64>) -> StorePolicy {
    StorePolicy {
        name: name.into(),
        class,
        data: crate::domain::policy::DataKind::Business,
        purge,
        max_restricted: max_restricted.map(|d| Dur::from_secs(d * DAY)),
        executor: crate::domain::policy::ExecutorRef::of(&ExecutorSpec::Fs {
            root: "/srv".into(),
            path: "{tenant}/{resource}".into(),
            marker: String::new(),
        }),
    }
}

/// Product `x`: an online store `primary`, a cache `cache`, a backup store
/// `snap` deleted with the online data, and a backup store `tapes` whose
/// copies are restricted and purged at expiry, restricted for at most 30
/// days. Buffers: expiry 15 days, arrears 10 days after a 5-day grace,
/// termination 15 days except a violation (zero: general terms 7.5.2).
/// Warnings 7 days and 1 day before deletion; renewal reminders 14 and 3
/// days before the 7-day renewal cutoff. Arrears reach postpaid resources.
pub(crate) fn policy() -> ProductPolicy {
    let termination = TerminationReason::ALL
        .into_iter()
        .map(|r| (r, Dur::from_secs(if r == TerminationReason::Violation { 0 } else { 15 * DAY })))
        .collect::<BTreeMap<_, _>>();
    ProductPolicy {
        name: "x".into(),
        stores: vec![
            store("primary", StoreClass::Online, PurgeMode::Immediate, None),
            store("cache", StoreClass::Cache, PurgeMode::Immediate, None),
            store("snap", StoreClass::Backup, PurgeMode::Immediate, None),
            store("tapes", StoreClass::Backup, PurgeMode::AtExpiry, Some(30)),
        ],
        buffer: Buffers {
            expiry: Dur::from_secs(15 * DAY),
            arrears: Dur::from_secs(10 * DAY),
            termination,
            account_closed: Dur::from_secs(15 * DAY),
        },
        arrears_grace: Dur::from_secs(5 * DAY),
        notices: vec![Dur::from_secs(7 * DAY), Dur::from_secs(DAY)],
        renewal_reminder: vec![Dur::from_secs(14 * DAY), Dur::from_secs(3 * DAY)],
        renewal_cutoff: Dur::from_secs(7 * DAY),
        arrears_affects: vec![Billing::Postpaid],
        late_fee_per_day: Decimal::new(5, 4),
        version: String::new(),
    }
    .seal()
}

/// The daemon's rules: deletions may start and executors be called; a day
/// after a hold's release and after a late event; three calls per copy.
pub(crate) fn rules() -> Rules {
    Rules {
        after_hold_release: chrono::Duration::hours(24),
        may_start: true,
        may_dispatch: true,
        max_attempts: 3,
        late_event_floor: chrono::Duration::hours(24),
    }
}

/// An event of tenant `t`, about `resource` (None: the whole tenant).
pub(crate) fn ev(id: &str, at: Timestamp, resource: Option<&str>, body: EventBody) -> Event {
    Event { event_id: id.into(), at, tenant: "t".into(), resource: resource.map(String::from), body }
}

/// An event about resource `r`.
pub(crate) fn on_r(at: Timestamp, body: EventBody) -> Event {
    ev("e", at, Some("r"), body)
}

/// Resource `r` of product `x`, created at [`t0`] (and applied then).
pub(crate) fn created(billing: Billing, term_end: Option<Timestamp>) -> Resource {
    let ev = on_r(t0(), EventBody::Created { product: "x".into(), billing, term_end });
    Resource::create(&ev, &policy(), &[], t0(), rules()).unwrap()
}

/// A prepaid resource whose term ends at `term_end`.
pub(crate) fn prepaid(term_end: Timestamp) -> Resource {
    created(Billing::Prepaid, Some(term_end))
}

/// A postpaid (pay-as-you-go) resource.
pub(crate) fn postpaid() -> Resource {
    created(Billing::Postpaid, None)
}

/// A postpaid resource released at day 1 (deleted at once, general terms
/// 4.1.4) whose cache copy is confirmed gone: only `primary` is still
/// being deleted, its first call made.
pub(crate) fn deleting_primary() -> Resource {
    let mut r = postpaid();
    r.on(day(1), EventBody::Released);
    r.copy_done("cache", "cache", day(1));
    r
}

/// `hold.placed` of `hold_id` by a court.
pub(crate) fn hold(hold_id: &str) -> EventBody {
    EventBody::HoldPlaced { hold_id: hold_id.into(), authority: "court".into(), reason: "case".into(), review_at: None }
}

/// `backup.created` of copy `copy` in store `store`, expiring at `expires_at`.
pub(crate) fn backup(store: &str, copy: &str, expires_at: Timestamp) -> EventBody {
    EventBody::BackupCreated { store: store.into(), copy: copy.into(), expires_at }
}

impl Resource {
    /// Applies an event received when it happened, then lets time move to
    /// then, as the engine does; panics on a rejection.
    pub(crate) fn on(&mut self, at: Timestamp, body: EventBody) -> Vec<Effect> {
        self.late(at, body, at)
    }

    /// Applies an event dated `at` that is received at `now`, then advances
    /// to `now`; panics on a rejection.
    pub(crate) fn late(&mut self, at: Timestamp, body: EventBody, now: Timestamp) -> Vec<Effect> {
        let mut fx = self.apply(&on_r(at, body), &policy(), rules(), now).unwrap();
        fx.extend(self.tick(now));
        fx
    }

    /// Advances to `now` with no executor call or notice in flight.
    pub(crate) fn tick(&mut self, now: Timestamp) -> Vec<Effect> {
        self.advance(&policy(), now, rules(), &|_, _| false, &|_| false)
    }

    /// The copy `copy` of store `store`.
    pub(crate) fn copy(&self, store: &str, copy: &str) -> &DataCopy {
        self.copies.iter().find(|c| c.store == store && c.copy == copy).unwrap()
    }

    /// The deletion's deadline while a buffer runs.
    pub(crate) fn deadline(&self) -> Option<Timestamp> {
        self.deciding.as_ref().map(|b| b.delete_after)
    }
}

/// The audit kinds of the records among `fx`, in order.
pub(crate) fn kinds(fx: &[Effect]) -> Vec<AuditKind> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Record { kind, .. } => Some(*kind),
            Effect::Dispatch { .. } => None,
        })
        .collect()
}

/// The data of the one record of `kind` among `fx`.
pub(crate) fn record(fx: &[Effect], kind: AuditKind) -> &Value {
    let mut found = fx.iter().filter_map(|e| match e {
        Effect::Record { kind: k, data } if *k == kind => Some(data),
        _ => None,
    });
    let data = found.next().unwrap_or_else(|| panic!("no {} record in {fx:?}", kind.as_str()));
    assert!(found.next().is_none(), "more than one {} record in {fx:?}", kind.as_str());
    data
}

/// The executor calls among `fx`, as (copy, action), in order.
pub(crate) fn calls(fx: &[Effect]) -> Vec<(&str, Action)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Dispatch { copy, action, .. } => Some((copy.as_str(), *action)),
            Effect::Record { .. } => None,
        })
        .collect()
}
