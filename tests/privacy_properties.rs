//! Property tests over random sequences on the pure privacy rules (issue
//! 12; domain-rules §3, product-spec §8), as `tests/properties.rs` does for
//! resources: a subject driven the way the engine drives it (its time-driven
//! step after every input, executor calls answered or failed in any order),
//! under requests verified or not, decisions, tenant holds, an account
//! closure and the daemon-wide gates.
//!
//! The oracle is the test's own, from what it sent and what was accepted,
//! never the subject's fields: when the account closed and when the daemon
//! learned of it, which requests were verified, which were approved, which
//! holds are in force, each request's due date. The invariants: no erasure
//! call (delete or anonymise) for a class before it is allowed (the closure
//! plus `max(after_closure, legal_minimum)`, or an approved verified
//! request) nor before its legal minimum ends (counted from the closure or
//! the request), none while a hold is in force, none with calls closed; no
//! `request.executing` for a request never verified; nothing unrestricted
//! that was not lifted, nor restorable while restricted; and every request
//! answered or flagged overdue once its own due date has passed, and never
//! flagged before it.

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use retentiond::audit::AuditKind;
use retentiond::domain::event::{Event, EventBody};
use retentiond::domain::lifecycle::{Rules, TenantHolds};
use retentiond::domain::privacy::{
    ClassPolicy, Decision, Erasure, ErasureGround, Holds, PersonalAction, PersonalEffect, PrivacyPolicy, RefusalGround,
    RequestEvent, RequestKind, RequestState, Subject,
};
use retentiond::duration::Dur;
use retentiond::time::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

const H: u64 = 3_600;
/// `privacy.response_time`, in hours.
const RESPONSE_HOURS: i64 = 15 * 24;
/// `safety.late_event_floor`, in hours.
const LATE_FLOOR_HOURS: i64 = 24;

/// Two classes, with periods short enough for random walks to reach:
/// `contact` (two stores, deleted 10 days after closure) and `billing`
/// (anonymised 40 days after closure, kept 30 days by law).
fn policy(auto_approve: bool) -> PrivacyPolicy {
    PrivacyPolicy {
        response_time: Dur::from_secs(RESPONSE_HOURS as u64 * H),
        warn_before: vec![Dur::from_secs(5 * 24 * H), Dur::from_secs(24 * H)],
        auto_approve,
        classes: vec![
            ClassPolicy {
                name: "billing".into(),
                stores: vec!["ledger".into()],
                after_closure: Dur::from_secs(40 * 24 * H),
                legal_minimum: Some(Dur::from_secs(30 * 24 * H)),
                erasure: Erasure::Anonymize,
            },
            ClassPolicy {
                name: "contact".into(),
                stores: vec!["crm".into(), "mail".into()],
                after_closure: Dur::from_secs(10 * 24 * H),
                legal_minimum: None,
                erasure: Erasure::Delete,
            },
        ],
        version: String::new(),
    }
    .seal()
}

#[derive(Clone, Debug)]
enum Op {
    /// Time passes by this many hours.
    Advance(u16),
    /// A new request, dated `late` hours before now.
    Request {
        restriction: bool,
        verified: bool,
        late: u8,
    },
    /// The intake repeats request `n` (of those sent) with `verified: true`.
    Verify(u8),
    /// An operator decides request `n`: execute, or refuse on a ground.
    Decide(u8, Option<u8>),
    /// An operator lifts restriction request `n`.
    Lift(u8),
    /// A hold on the tenant placed or released.
    HoldPlaced(u8),
    HoldReleased(u8),
    /// `account.closed`, dated `late` hours before now.
    Close(u16),
    /// The executor confirms (true) or fails (false) one call in flight.
    Answer(bool),
    /// The daemon-wide gates (pause, dry run, guard, clock anomaly).
    Gates {
        start: bool,
        dispatch: bool,
    },
    /// An operator retries the stuck calls.
    Retry,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u16..240).prop_map(Op::Advance),
        3 => (any::<bool>(), any::<bool>(), 0u8..72)
            .prop_map(|(restriction, verified, late)| Op::Request { restriction, verified, late }),
        2 => any::<u8>().prop_map(Op::Verify),
        3 => (any::<u8>(), prop::option::weighted(0.3, 0u8..10)).prop_map(|(n, g)| Op::Decide(n, g)),
        1 => any::<u8>().prop_map(Op::Lift),
        1 => (0u8..2).prop_map(Op::HoldPlaced),
        1 => (0u8..2).prop_map(Op::HoldReleased),
        1 => (0u16..1_200).prop_map(Op::Close),
        4 => any::<bool>().prop_map(Op::Answer),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(start, dispatch)| Op::Gates { start, dispatch }),
        1 => Just(Op::Retry),
    ]
}

/// What the test sent about one request, as far as it was accepted.
#[derive(Debug)]
struct Sent {
    kind: RequestKind,
    at: Timestamp,
    verified: bool,
    /// Decided `execute` by an operator (accepted), or auto-approved once
    /// verified.
    approved: bool,
}

/// The test's own record.
#[derive(Debug, Default)]
struct Oracle {
    /// Each accepted closure: its date and when the daemon learned of it.
    closures: Vec<(Timestamp, Timestamp)>,
    requests: BTreeMap<String, Sent>,
    holds: BTreeSet<String>,
    /// Restriction requests executed and not lifted.
    restricted: BTreeSet<String>,
    /// Lifts accepted.
    lifts: usize,
}

impl Oracle {
    /// The earliest an erasure call for `class` may be made, or `None`
    /// when nothing allows one yet.
    fn allowed(&self, class: &ClassPolicy) -> Option<Timestamp> {
        let minimum = |basis: Timestamp| class.legal_minimum.map_or(basis, |m| basis + m.to_chrono());
        let by_closure = self
            .closures
            .iter()
            .map(|(at, learned)| {
                (*at + class.after_closure.to_chrono())
                    .max(minimum(*at))
                    .max(*learned + Duration::hours(LATE_FLOOR_HOURS))
            })
            .min();
        // An approved verified erasure request: at once, but never before
        // the legal minimum, counted from the closure or the request.
        let first_closure = self.closures.iter().map(|(at, _)| *at).min();
        let by_request = self
            .requests
            .values()
            .filter(|r| r.kind == RequestKind::Erasure && r.verified && r.approved)
            .map(|r| minimum(first_closure.map_or(r.at, |c| c.min(r.at))))
            .min();
        by_closure.into_iter().chain(by_request).min()
    }
}

fn rules() -> Rules {
    Rules {
        after_hold_release: Duration::hours(24),
        may_start: true,
        may_dispatch: true,
        max_attempts: 3,
        late_event_floor: Duration::hours(LATE_FLOOR_HOURS),
    }
}

fn hold_event(n: &mut u32, at: Timestamp, body: EventBody) -> Event {
    *n += 1;
    Event { event_id: format!("h{n}"), at, tenant: "t".into(), resource: None, body }
}

fn run(ops: Vec<Op>, auto_approve: bool) -> Result<(), TestCaseError> {
    let policy = policy(auto_approve);
    let mut rules = rules();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut now = t0;
    let mut s = Subject::new("t", "t", None);
    let mut holds = TenantHolds::default();
    let mut oracle = Oracle::default();
    let mut ids: Vec<String> = Vec::new();
    let mut in_flight: Vec<(String, String, PersonalAction)> = Vec::new();
    let mut n = 0u32;

    for op in ops {
        let mut fx: Vec<PersonalEffect> = Vec::new();
        let pick = |i: u8, ids: &[String]| (!ids.is_empty()).then(|| ids[i as usize % ids.len()].clone());
        match op {
            Op::Advance(h) => now += Duration::hours(h as i64),
            Op::Request { restriction, verified, late } => {
                let id = format!("q{}", ids.len());
                let kind = if restriction { RequestKind::Restriction } else { RequestKind::Erasure };
                let at = (now - Duration::hours(late as i64)).max(t0);
                let grounds = if restriction { Vec::new() } else { vec![ErasureGround::NoConsent] };
                let ev = RequestEvent { id: id.clone(), kind, grounds, verified, at };
                if let Ok(more) = s.receive(ev, &policy, now) {
                    fx.extend(more);
                    let approved = auto_approve && verified;
                    oracle.requests.insert(id.clone(), Sent { kind, at, verified, approved });
                    ids.push(id);
                }
            }
            Op::Verify(i) => {
                if let Some(id) = pick(i, &ids) {
                    let sent = &oracle.requests[&id];
                    let ev =
                        RequestEvent { id: id.clone(), kind: sent.kind, grounds: Vec::new(), verified: true, at: now };
                    if let Ok(more) = s.receive(ev, &policy, now) {
                        fx.extend(more);
                        let sent = oracle.requests.get_mut(&id).unwrap();
                        sent.verified = true;
                        sent.approved |= auto_approve;
                    }
                }
            }
            Op::Decide(i, ground) => {
                if let Some(id) = pick(i, &ids) {
                    let decision = match ground {
                        None => Decision::Execute,
                        Some(g) => Decision::Refuse(RefusalGround::ALL[g as usize % RefusalGround::ALL.len()]),
                    };
                    if let Ok(more) = s.decide(&id, decision, now) {
                        prop_assert!(
                            decision != Decision::Execute || oracle.requests[&id].verified,
                            "{id} decided execute unverified"
                        );
                        fx.extend(more);
                        oracle.requests.get_mut(&id).unwrap().approved |= decision == Decision::Execute;
                    }
                }
            }
            Op::Lift(i) => {
                if let Some(id) = pick(i, &ids) {
                    if let Ok(more) = s.lift(&id, now, now) {
                        fx.extend(more);
                        oracle.restricted.remove(&id);
                        oracle.lifts += 1;
                    }
                }
            }
            Op::HoldPlaced(i) => {
                let body = EventBody::HoldPlaced {
                    hold_id: format!("hold{i}"),
                    authority: "court".into(),
                    reason: "case".into(),
                    review_at: None,
                };
                if holds.apply(&hold_event(&mut n, now, body)).is_ok() {
                    oracle.holds.insert(format!("hold{i}"));
                }
            }
            Op::HoldReleased(i) => {
                let body = EventBody::HoldReleased { hold_id: format!("hold{i}") };
                if holds.apply(&hold_event(&mut n, now, body)).is_ok() {
                    oracle.holds.remove(&format!("hold{i}"));
                }
            }
            Op::Close(late) => {
                let at = (now - Duration::hours(late as i64)).max(t0);
                fx.extend(s.close(at, &policy, now, &rules));
                oracle.closures.push((at, now));
            }
            Op::Answer(ok) => {
                if let Some((class, store, action)) = in_flight.pop() {
                    fx.extend(if ok {
                        s.copy_done(&class, &store, action, now)
                    } else {
                        s.copy_failed(&class, &store, action, "exit 1", now, &rules)
                    });
                }
            }
            Op::Gates { start, dispatch } => {
                rules.may_start = start;
                rules.may_dispatch = dispatch;
            }
            Op::Retry => fx.extend(s.retry_stuck(None, now).1),
        }
        // What the engine does next for this subject: its time-driven step.
        fx.extend(s.on_time(now, &policy, Holds(&holds), &rules));

        for e in &fx {
            match e {
                PersonalEffect::Dispatch { class, store, action } => {
                    prop_assert!(rules.may_dispatch, "a call with calls closed: {e:?}");
                    if matches!(action, PersonalAction::Delete | PersonalAction::Anonymize) {
                        // Never while a hold is in force (privacy policy 5.8).
                        prop_assert!(oracle.holds.is_empty(), "erasure call under hold {:?}: {e:?}", oracle.holds);
                        let cp = policy.class(class).unwrap();
                        prop_assert_eq!(*action, cp.erasure.action(), "the class's erasure");
                        let allowed = oracle.allowed(cp);
                        prop_assert!(
                            allowed.is_some_and(|t| t <= now),
                            "erasure of {class} at {now}, allowed from {allowed:?}: {oracle:?}"
                        );
                    }
                    prop_assert!(
                        *action != PersonalAction::Unrestrict || oracle.lifts > 0,
                        "unrestricted, never lifted: {e:?}"
                    );
                    // One call per copy in flight at a time, the latest action.
                    in_flight.retain(|(c, st, _)| !(c == class && st == store));
                    in_flight.insert(0, (class.clone(), store.clone(), *action));
                }
                PersonalEffect::Record { kind, data } => {
                    if *kind == AuditKind::RequestExecuting {
                        let id = data["request"].as_str().unwrap();
                        let sent = &oracle.requests[id];
                        prop_assert!(sent.verified, "{id} executed, never verified (privacy policy 5.6.1)");
                        prop_assert!(sent.approved, "{id} executed, never approved");
                        if sent.kind == RequestKind::Restriction {
                            oracle.restricted.insert(id.to_string());
                        }
                    }
                    if *kind == AuditKind::PersonalErasureStarted {
                        prop_assert!(rules.may_start, "an erasure started with starts closed");
                        prop_assert!(oracle.holds.is_empty(), "an erasure started under a hold");
                    }
                }
            }
        }
        // Restricted data stays restricted until lifted or erased, and is
        // never restored meanwhile (international privacy policy; 5.3.3).
        if !oracle.restricted.is_empty() {
            prop_assert!(s.restore_refusal().is_some(), "restorable under restriction {:?}", oracle.restricted);
        }
        // Privacy policy 5.6.1: past its due date, every request is
        // answered or flagged overdue.
        for (id, sent) in &oracle.requests {
            let due = sent.at + Duration::hours(RESPONSE_HOURS);
            let r = s.requests.iter().find(|r| &r.id == id).unwrap();
            prop_assert_eq!(r.due, due);
            if due <= now {
                prop_assert!(
                    r.state != RequestState::Received || r.overdue,
                    "{id} due {due} unanswered and not overdue at {now}: {r:?}"
                );
            } else {
                prop_assert!(!r.overdue, "{id} flagged overdue at {now}, due {due}: {r:?}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn privacy_invariants_hold_for_any_sequence(ops in prop::collection::vec(op(), 1..50), auto_approve in any::<bool>()) {
        run(ops, auto_approve)?;
    }
}
