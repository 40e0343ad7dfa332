//! The deletion forecast (`GET /v1/deletions?before=T`) read from the
//! indexes instead of every record (issue 11: 5 to 6.6 s at a million
//! resources), whole or a page at a time.
//!
//! # What it lists
//! Every resource that is `deleting` (with its copies not yet done), every
//! `active` or `retained` resource whose deletion, running or projected
//! under its product's policy ([`Resource::forecast`]), falls before T,
//! and every `active` or `retained` resource whose product the config no
//! longer has (without a deadline). Each with what blocks it.
//!
//! # Why the indexes find every one of them
//! They are read in two parts: the store's held-or-deleting index
//! ([`Store::held_or_deleting`]: every `deleting` resource, and every
//! `active` or `retained` one under a hold), then the deadline index up to
//! T ([`Store::due_before`]). A resource listed by the forecast is in one
//! of them:
//! - `deleting`, or held: in the first, by its own state.
//! - `active` or `retained`, unheld, its product configured, deadline
//!   `D < T`: its index entry `e` (written as [`Resource::next_due`], the
//!   earliest of its pending buffer starts, its deletion and its notices)
//!   is at or before `D`, so before T. If the forecast's earliest buffer is
//!   running, the deciding buffer is that one (the earliest running), and
//!   `D` is exactly the deletion date in `next_due`. If it is projected
//!   from a start `s` (term end, arrears grace end, termination time), its
//!   deadline is `s` plus a buffer length that is never negative (or a
//!   later floor), so `D >= s >= e`. Neither bound depends on the policy
//!   (the arrears grace end is stored with the arrears), so an entry
//!   written under an older config bounds the deadline under the new one
//!   too; the index holds times rounded down to the millisecond, which
//!   only moves `e` earlier. A hold removes the deletion from `next_due`,
//!   which is why held resources come from the first index. An entry moved
//!   to an executor call's lease end belongs to a resource whose copies
//!   are being deleted: `deleting` (first index) or `deleted` (never
//!   forecast).
//! - an unconfigured product: the config check at start and reload refuses
//!   a config without a product that an unsettled resource needs, so the
//!   daemon never runs with one. Should it meet one (the store's product
//!   counts, [`Store::products_in_use`], name a product the config lacks),
//!   the forecast falls back to reading every record ([`full_scan`]),
//!   whole, unpaged.
//!
//! `tests/forecast.rs` compares the two readings on a daemon driven into
//! varied states, and a property test here compares them on random ones.

use super::wire::{Deletion, PendingCopy};
use crate::config::Config;
use crate::domain::lifecycle::{Resource, State as ResourceState};
use crate::store::{Flag, Store, StoreError};
use crate::time::{fmt_rfc3339, Timestamp};
use std::collections::HashSet;

/// Where a page of the forecast ends and the next begins, given to the
/// client as an opaque token (`next` in the answer, `after` in the next
/// request): `h,<resource>` in the held-or-deleting index, then
/// `d,<millis>,<resource>` in the deadline index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// After this resource of the held-or-deleting index.
    Apart(String),
    /// After this deadline index entry (milliseconds since 1970, resource).
    Due(i64, String),
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Apart(id) => write!(f, "h,{id}"),
            Cursor::Due(ms, id) => write!(f, "d,{ms},{id}"),
        }
    }
}

/// A token that is not one this daemon gave out.
#[derive(Debug, thiserror::Error)]
#[error("not a token from a previous answer's `next`")]
pub struct BadCursor;

impl std::str::FromStr for Cursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> Result<Cursor, BadCursor> {
        let id = |id: &str| crate::ids::check_stored_id(id).map(|_| id.to_owned()).map_err(|_| BadCursor);
        match s.split_once(',') {
            Some(("h", rest)) => Ok(Cursor::Apart(id(rest)?)),
            Some(("d", rest)) => {
                let (ms, rest) = rest.split_once(',').ok_or(BadCursor)?;
                let ms: i64 = ms.parse().map_err(|_| BadCursor)?;
                chrono::DateTime::from_timestamp_millis(ms).ok_or(BadCursor)?;
                Ok(Cursor::Due(ms, id(rest)?))
            }
            _ => Err(BadCursor),
        }
    }
}

/// The most deletions one page holds ([`read`]); also the most index
/// entries it reads.
pub const MAX_PAGE: usize = 10_000;

/// What the daemon-wide switches add to every deletion's blockers.
pub(super) fn gates(store: &dyn Store, config: &Config) -> Result<Vec<String>, StoreError> {
    let mut gates = Vec::new();
    if config.safety.dry_run {
        gates.push("dry_run".to_string());
    }
    for (flag, blocker) in
        [(Flag::Paused, "paused"), (Flag::ClockAnomaly, "clock_anomaly"), (Flag::GuardTripped, "guard")]
    {
        if store.flag(flag)? {
            gates.push(blocker.to_string());
        }
    }
    Ok(gates)
}

/// `r`'s line in the forecast before `before`, if it has one.
fn item(r: &Resource, config: &Config, before: Timestamp, gates: &[String]) -> Option<Deletion> {
    let mut blockers: Vec<String> = r.holds.iter().map(|h| format!("hold:{}", h.hold_id)).collect();
    blockers.extend(gates.iter().cloned());
    if r.state == ResourceState::Deleting {
        let pending = r
            .copies
            .iter()
            .filter(|c| c.state.action().is_some())
            .map(|c| PendingCopy {
                store: c.store.clone(),
                copy: c.copy.clone(),
                state: c.state,
                stuck: c.stuck,
                attempts: c.attempts,
                next_attempt_at: c.next_attempt_at.map(fmt_rfc3339),
                last_error: c.last_error.clone(),
            })
            .collect();
        let d = r.deciding.as_ref();
        return Some(Deletion {
            resource: r.id.clone(),
            tenant: r.tenant.clone(),
            product: r.product.clone(),
            state: ResourceState::Deleting,
            cause: d.map(|b| b.cause),
            reason: Some(d.and_then(|b| b.reason)),
            deadline: d.map(|b| fmt_rfc3339(b.delete_after)),
            policy_version: Some(d.map(|b| b.policy_version.clone())),
            projected: Some(false),
            blockers,
            pending_copies: Some(pending),
        });
    }
    match config.products.get(&r.product) {
        None => {
            blockers.push(format!("product {} not configured", r.product));
            (!r.state.is_final()).then(|| Deletion {
                resource: r.id.clone(),
                tenant: r.tenant.clone(),
                product: r.product.clone(),
                state: r.state,
                cause: None,
                reason: None,
                deadline: None,
                policy_version: None,
                projected: None,
                blockers,
                pending_copies: None,
            })
        }
        Some(p) => r.forecast(p).filter(|f| f.deadline < before).map(|f| Deletion {
            resource: r.id.clone(),
            tenant: r.tenant.clone(),
            product: r.product.clone(),
            state: r.state,
            cause: Some(f.cause),
            reason: Some(f.reason),
            deadline: Some(fmt_rfc3339(f.deadline)),
            policy_version: Some(Some(f.policy_version)),
            projected: Some(f.projected),
            blockers,
            pending_copies: None,
        }),
    }
}

/// By deadline (none first), then resource id: the order of the whole
/// answer and of each page.
fn sort(items: &mut [Deletion]) {
    items.sort_by(|a, b| {
        (a.deadline.as_deref(), a.resource.as_str()).cmp(&(b.deadline.as_deref(), b.resource.as_str()))
    });
}

/// The forecast from every record: what the daemon answered before issue
/// 11, kept as the fallback for a config missing a product in use and as
/// the reference the index reading is tested against.
pub fn full_scan(store: &dyn Store, config: &Config, before: Timestamp) -> Result<Vec<Deletion>, StoreError> {
    let gates = gates(store, config)?;
    let mut items = Vec::new();
    store.for_each_resource(&mut |r| items.extend(item(&r, config, before, &gates)))?;
    sort(&mut items);
    Ok(items)
}

/// True when some resource not yet settled belongs to a product `config`
/// lacks (the store's counts say so without reading the records).
fn product_missing(store: &dyn Store, config: &Config) -> Result<bool, StoreError> {
    Ok(store.products_in_use()?.keys().any(|p| !config.products.contains_key(p)))
}

/// The forecast before `before`, from the indexes (see the module's
/// documentation): whole and sorted when `limit` is `None`, as
/// [`full_scan`] gives it; else one page of at most `limit` deletions
/// (reading at most `limit` index entries), from `after` (the start
/// without one), with the cursor of the next page when more may follow.
/// A page is sorted in itself; pages follow the indexes (held and deleting
/// resources by id, then the others by their index entry), so a client
/// that wants the whole answer in deadline order sorts the pages it read.
pub fn read(
    store: &dyn Store,
    config: &Config,
    before: Timestamp,
    after: Option<&Cursor>,
    limit: Option<usize>,
) -> Result<(Vec<Deletion>, Option<Cursor>), StoreError> {
    if product_missing(store, config)? {
        tracing::warn!("a product in use is not configured: the forecast reads every record");
        return Ok((full_scan(store, config, before)?, None));
    }
    let gates = gates(store, config)?;
    let Some(limit) = limit else {
        let mut items = Vec::new();
        let mut apart = HashSet::new();
        for id in store.held_or_deleting(None, usize::MAX)? {
            if let Some(r) = store.resource(&id)? {
                items.extend(item(&r, config, before, &gates));
                apart.insert(id);
            }
        }
        for (_, id) in store.due_before(before, None, usize::MAX)? {
            if apart.contains(&id) {
                continue;
            }
            if let Some(r) = store.resource(&id)? {
                if !crate::store::held_or_deleting(&r) {
                    items.extend(item(&r, config, before, &gates));
                }
            }
        }
        sort(&mut items);
        return Ok((items, None));
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let mut items = Vec::new();
    let mut read = 0;
    let due_from = match after {
        Some(Cursor::Due(ms, id)) => chrono::DateTime::from_timestamp_millis(*ms).map(|t| (t, id.clone())),
        apart => {
            let from = match apart {
                Some(Cursor::Apart(id)) => Some(id.as_str()),
                _ => None,
            };
            let ids = store.held_or_deleting(from, limit)?;
            read = ids.len();
            for id in &ids {
                if let Some(r) = store.resource(id)? {
                    items.extend(item(&r, config, before, &gates));
                }
            }
            if read == limit {
                // The rest of that index, if any, is the next page's.
                sort(&mut items);
                return Ok((items, ids.last().map(|id| Cursor::Apart(id.clone()))));
            }
            None
        }
    };
    let room = limit - read;
    let entries = store.due_before(before, due_from.as_ref().map(|(t, id)| (*t, id.as_str())), room)?;
    for (_, id) in &entries {
        if let Some(r) = store.resource(id)? {
            if !crate::store::held_or_deleting(&r) {
                items.extend(item(&r, config, before, &gates));
            }
        }
    }
    let next =
        entries.last().filter(|_| entries.len() == room).map(|(t, id)| Cursor::Due(t.timestamp_millis(), id.clone()));
    sort(&mut items);
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    //! The index reading against the full scan on random states reached by
    //! the pure lifecycle: any mix of billing, causes (late ones too),
    //! holds on the resource and the tenant, deletions under way with
    //! copies in flight, failing or stuck, deletions stopped by the gates,
    //! notices; indexed as the engine indexes them, sometimes under another
    //! version of the policy than the one forecast with.
    use super::*;
    use crate::domain::event::{Billing, Event, EventBody};
    use crate::domain::lifecycle::{Effect, Rules};
    use crate::domain::policy::TerminationReason;
    use crate::store::{MemoryStore, WriteSet};
    use chrono::{Duration, TimeZone, Utc};
    use proptest::prelude::*;

    /// Product `p` with notices; `v2`: other buffers, grace and notices,
    /// as after a reload.
    fn config(v2: bool) -> Config {
        let (buffers, notices) = if v2 {
            (
                r#"{ expiry = "40d", arrears = "2d", termination = "9d", violation = "0s", attack = "1d" }"#,
                r#"["20d", "1h"]"#,
            )
        } else {
            (
                r#"{ expiry = "15d", arrears = "10d", termination = "20d", violation = "0s", attack = "30d" }"#,
                r#"["12d", "7d", "1d"]"#,
            )
        };
        let grace = if v2 { "1d" } else { "3d" };
        let text = format!(
            r#"
[daemon]
state_dir = "x"
[stores.primary]
class = "online"
executor = {{ kind = "fs", root = "/srv", path = "{{tenant}}/{{resource}}" }}
[stores.snap]
class = "backup"
purge = "at_expiry"
executor = {{ kind = "command", argv = ["/bin/true", "{{resource}}"] }}
[products.p]
stores = ["primary", "snap"]
buffer = {buffers}
arrears_grace = "{grace}"
arrears_affects = ["prepaid", "postpaid"]
notices = {notices}
renewal_reminder = "7d"
"#
        );
        crate::config::parse(std::path::Path::new("/etc/retentiond/t.toml"), &text).unwrap()
    }

    #[derive(Clone, Debug)]
    enum Op {
        Advance(u16),
        Renew(u16),
        Terminate(u8),
        Reinstate,
        Release,
        ArrearsStarted,
        ArrearsSettled,
        Hold(u8, bool),
        Unhold(u8),
        Backup(u16),
        MayStart(bool),
        CallDone,
        CallFailed,
        NoticesSent,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..600u16).prop_map(Op::Advance),
            1 => (1..2000u16).prop_map(Op::Renew),
            1 => (0..5u8).prop_map(Op::Terminate),
            1 => Just(Op::Reinstate),
            1 => Just(Op::Release),
            1 => Just(Op::ArrearsStarted),
            1 => Just(Op::ArrearsSettled),
            1 => (0..2u8, any::<bool>()).prop_map(|(i, t)| Op::Hold(i, t)),
            1 => (0..2u8).prop_map(Op::Unhold),
            1 => (1..2000u16).prop_map(Op::Backup),
            1 => any::<bool>().prop_map(Op::MayStart),
            2 => Just(Op::CallDone),
            2 => Just(Op::CallFailed),
            1 => Just(Op::NoticesSent),
        ]
    }

    fn t0() -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    /// One resource driven by `ops` from `t0` under `config(false)`; its
    /// due time as the engine writes it (an executor call in flight moves
    /// it to the lease's end), and the time reached.
    fn drive(
        id: &str,
        prepaid: bool,
        ops: &[Op],
    ) -> (crate::domain::lifecycle::Resource, Option<Timestamp>, Timestamp) {
        let config = config(false);
        let policy = &config.products["p"];
        let mut rules = Rules {
            after_hold_release: Duration::hours(24),
            may_start: true,
            may_dispatch: true,
            max_attempts: 2,
            late_event_floor: Duration::hours(24),
        };
        let mut now = t0();
        let mut n = 0;
        let mut ev = |at: Timestamp, resource: bool, body: EventBody| {
            n += 1;
            Event {
                event_id: format!("{id}-e{n}"),
                at,
                tenant: "t1".into(),
                resource: resource.then(|| id.to_string()),
                body,
            }
        };
        let term_end = prepaid.then(|| t0() + Duration::days(30));
        let billing = if prepaid { Billing::Prepaid } else { Billing::Postpaid };
        let created = ev(now, true, EventBody::Created { product: "p".into(), billing, term_end });
        let mut r = crate::domain::lifecycle::Resource::create(&created, policy, &[], now, rules).unwrap();
        let mut in_flight: Vec<(String, String)> = Vec::new();
        let mut fx = Vec::new();
        for (k, op) in ops.iter().enumerate() {
            match op {
                Op::Advance(h) => now += Duration::hours(*h as i64),
                Op::MayStart(on) => rules.may_start = *on,
                Op::CallDone => {
                    if let Some((s, c)) = in_flight.pop() {
                        fx.extend(r.copy_done(&s, &c, now));
                    }
                }
                Op::CallFailed => {
                    if let Some((s, c)) = in_flight.pop() {
                        fx.extend(r.copy_failed(&s, &c, "exit 1", now, rules));
                    }
                }
                Op::NoticesSent => {
                    let keys: Vec<String> = r.notices_to_send(now).into_iter().map(|n| n.key.clone()).collect();
                    for k in keys {
                        fx.extend(r.notice_sent(&k, now, None));
                    }
                }
                _ => {
                    let (resource, body) = match op {
                        Op::Renew(h) => (true, EventBody::Renewed { term_end: now + Duration::hours(*h as i64) }),
                        Op::Terminate(i) => {
                            let reasons = [
                                TerminationReason::Agreement,
                                TerminationReason::Violation,
                                TerminationReason::Attack,
                                TerminationReason::Discontinued,
                                TerminationReason::ProviderOutage,
                            ];
                            (true, EventBody::Terminated { reason: reasons[*i as usize] })
                        }
                        Op::Reinstate => (true, EventBody::Reinstated),
                        Op::Release => (true, EventBody::Released),
                        Op::ArrearsStarted => (false, EventBody::ArrearsStarted { amount: None, currency: None }),
                        Op::ArrearsSettled => (false, EventBody::ArrearsSettled),
                        Op::Hold(i, tenant) => (
                            !tenant,
                            EventBody::HoldPlaced {
                                hold_id: format!("h{i}"),
                                authority: "court".into(),
                                reason: "case".into(),
                                review_at: None,
                            },
                        ),
                        Op::Unhold(i) => (false, EventBody::HoldReleased { hold_id: format!("h{i}") }),
                        Op::Backup(h) => (
                            true,
                            EventBody::BackupCreated {
                                store: "snap".into(),
                                copy: format!("c{k}"),
                                expires_at: now + Duration::hours(*h as i64),
                            },
                        ),
                        _ => unreachable!(),
                    };
                    let e = ev(now, resource, body);
                    if let Ok(more) = r.apply(&e, policy, rules, now) {
                        fx.extend(more);
                    }
                }
            }
            fx.extend(
                r.advance(policy, now, rules, &|s, c| in_flight.iter().any(|x| x.0 == s && x.1 == c), &|_| false),
            );
            for e in fx.drain(..) {
                if let Effect::Dispatch { store, copy, .. } = e {
                    in_flight.push((store, copy));
                }
            }
        }
        let due = if in_flight.is_empty() { r.next_due(policy) } else { Some(now + Duration::minutes(10)) };
        (r, due, now)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// Whole, and read page by page, the forecast from the indexes is
        /// the full scan's, for any state and any `before`.
        #[test]
        fn the_indexes_give_the_full_scans_forecast(
            resources in prop::collection::vec((any::<bool>(), prop::collection::vec(op(), 0..30)), 1..8),
            paused in any::<bool>(),
            v2 in any::<bool>(),
            befores in prop::collection::vec(-2000..8000i64, 1..4),
            limit in 1..5usize,
        ) {
            let store = MemoryStore::new();
            let mut latest = t0();
            for (i, (prepaid, ops)) in resources.iter().enumerate() {
                let (r, due, now) = drive(&format!("r{i}"), *prepaid, ops);
                latest = latest.max(now);
                let mut w = WriteSet::default();
                w.put_resource(r, due);
                store.commit(w).unwrap();
            }
            store.commit(WriteSet { flags: vec![(Flag::Paused, paused)], ..Default::default() }).unwrap();
            let config = config(v2);
            for h in befores {
                let before = latest + Duration::hours(h);
                let want = full_scan(&store, &config, before).unwrap();
                let (whole, next) = read(&store, &config, before, None, None).unwrap();
                prop_assert_eq!(&whole, &want);
                prop_assert!(next.is_none());
                let mut paged = Vec::new();
                let mut after = None;
                loop {
                    let (page, next) = read(&store, &config, before, after.as_ref(), Some(limit)).unwrap();
                    prop_assert!(page.len() <= limit);
                    paged.extend(page);
                    match next {
                        Some(c) => after = Some(c),
                        None => break,
                    }
                }
                sort(&mut paged);
                prop_assert_eq!(&paged, &want);
            }
        }
    }

    /// A config without a product still in use (which the daemon refuses
    /// at start and reload) gets the full scan's answer, unpaged: the
    /// resources of that product are listed without a deadline.
    #[test]
    fn a_product_missing_from_the_config_falls_back_to_the_full_scan() {
        let store = MemoryStore::new();
        let (r, due, _) = drive("r1", false, &[]);
        let mut w = WriteSet::default();
        w.put_resource(r, due);
        store.commit(w).unwrap();
        let mut config = config(false);
        config.products.clear();
        let before = t0() + Duration::days(1);
        let (items, next) = read(&store, &config, before, None, Some(1)).unwrap();
        assert_eq!(items, full_scan(&store, &config, before).unwrap());
        assert_eq!((items.len(), items[0].deadline.as_deref(), next), (1, None, None));
        assert_eq!(items[0].blockers, ["product p not configured"]);
    }

    /// The page token reads back as given; anything else is refused.
    #[test]
    fn cursors_read_back_and_others_are_refused() {
        for c in
            [Cursor::Apart("r-1.a:b".into()), Cursor::Due(-5, "r1".into()), Cursor::Due(1_767_225_600_000, "x".into())]
        {
            assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        }
        for bad in ["", "h", "h,", "d,1", "d,x,r1", "x,r1", "h,a/b", "d,99999999999999999,r1"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
