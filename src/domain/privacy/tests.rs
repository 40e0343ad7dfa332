//! A scenario per rule of domain-rules §3, on the pure functions, with
//! time moved by hand. The same rules through the HTTP API on the real
//! binary are in `tests/privacy.rs`.

use super::*;
use crate::audit::AuditKind;
use crate::domain::lifecycle::fixtures::{day, rules, t0};
use crate::domain::lifecycle::{Hold, TenantHolds};
use crate::duration::Dur;
use crate::time::Timestamp;

const D: u64 = 86_400;

/// Two classes: contact data deleted 30 days after closure; billing
/// records anonymised, kept 7 years by tax law (product-spec §8's example).
fn policy() -> PrivacyPolicy {
    PrivacyPolicy {
        response_time: Dur::from_secs(15 * D),
        warn_before: vec![Dur::from_secs(5 * D), Dur::from_secs(D)],
        auto_approve: false,
        classes: vec![
            ClassPolicy {
                name: "billing_records".into(),
                stores: vec!["ledger".into()],
                after_closure: Dur::from_secs(7 * 365 * D),
                legal_minimum: Some(Dur::from_secs(7 * 365 * D)),
                erasure: Erasure::Anonymize,
            },
            ClassPolicy {
                name: "contact".into(),
                stores: vec!["crm".into(), "mail".into()],
                after_closure: Dur::from_secs(30 * D),
                legal_minimum: None,
                erasure: Erasure::Delete,
            },
        ],
        version: String::new(),
    }
    .seal()
}

/// A subject driven like the engine drives it: effects collected, every
/// executor call answered at once (with success unless a store is set to
/// fail).
struct Sim {
    s: Subject,
    policy: PrivacyPolicy,
    holds: TenantHolds,
    failing: Vec<&'static str>,
    calls: Vec<(String, String, PersonalAction)>,
    records: Vec<AuditKind>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            s: Subject::new("t", "alice", Some(t0())),
            policy: policy(),
            holds: TenantHolds::default(),
            failing: Vec::new(),
            calls: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Collects records; answers dispatches; repeats until quiet.
    fn run(&mut self, fx: Effects, now: Timestamp) {
        let mut queue = fx;
        while !queue.is_empty() {
            let mut next = Effects::new();
            for e in queue {
                match e {
                    PersonalEffect::Record { kind, .. } => self.records.push(kind),
                    PersonalEffect::Dispatch { class, store, action } => {
                        self.calls.push((class.clone(), store.clone(), action));
                        if self.failing.contains(&store.as_str()) {
                            next.extend(self.s.copy_failed(&class, &store, action, "exit 1", now, &rules()));
                        } else {
                            next.extend(self.s.copy_done(&class, &store, action, now));
                        }
                    }
                }
            }
            queue = next;
        }
    }

    fn tick(&mut self, now: Timestamp) {
        let fx = self.s.on_time(now, &self.policy, Holds(&self.holds), &rules());
        self.run(fx, now);
    }

    fn receive(&mut self, id: &str, kind: RequestKind, verified: bool, at: Timestamp) {
        let ev = RequestEvent { id: id.into(), kind, grounds: vec![ErasureGround::ConsentWithdrawn], verified, at };
        let fx = self.s.receive(ev, &self.policy, at).expect("received");
        self.run(fx, at);
    }

    fn decide(&mut self, id: &str, d: Decision, now: Timestamp) -> Result<(), Rejection> {
        let fx = self.s.decide(id, d, now)?;
        self.run(fx, now);
        Ok(())
    }

    fn request(&self, id: &str) -> &Request {
        self.s.requests.iter().find(|r| r.id == id).expect("request")
    }

    fn state(&self, class: &str, store: &str) -> PersonalState {
        let c = self.s.classes.iter().find(|c| c.class == class).expect("class");
        c.copies.iter().find(|c| c.store == store).expect("copy").state
    }

    fn due(&self) -> Option<Timestamp> {
        self.s.next_due(&self.policy, Holds(&self.holds), &rules())
    }

    fn hold(&mut self, id: &str, at: Timestamp) {
        self.holds.holds.push(Hold {
            hold_id: id.into(),
            authority: "court".into(),
            reason: "case".into(),
            tenant_wide: true,
            placed_at: at,
            review_at: None,
            review_reported_at: None,
        });
    }

    fn release(&mut self, id: &str, at: Timestamp) {
        self.holds.holds.retain(|h| h.hold_id != id);
        self.holds.released.push((id.into(), at));
    }
}

use crate::domain::lifecycle::Rejection;
use subject::Effects;

/// Privacy policy 5.5.2 and 7.2: closing the account schedules each class
/// at `at + after_closure`; nothing goes a moment before; contact data is
/// deleted in both its stores on day 30, billing records stay.
#[test]
fn closure_erases_each_class_after_its_period_and_not_before() {
    let mut sim = Sim::new();
    let fx = sim.s.close(day(1), &sim.policy, day(1), &rules());
    sim.run(fx, day(1));
    assert_eq!(sim.records.iter().filter(|k| **k == AuditKind::PersonalScheduled).count(), 2);
    assert_eq!(sim.due(), Some(day(31)));
    sim.tick(day(31) - chrono::Duration::seconds(1));
    assert!(sim.calls.is_empty(), "nothing erased before its date");
    sim.tick(day(31));
    assert_eq!(sim.state("contact", "crm"), PersonalState::Erased);
    assert_eq!(sim.state("contact", "mail"), PersonalState::Erased);
    assert_eq!(sim.state("billing_records", "ledger"), PersonalState::Present);
    assert!(sim.calls.iter().all(|(c, _, a)| c == "contact" && *a == PersonalAction::Delete));
    assert_eq!(sim.due(), Some(day(1 + 7 * 365)), "billing records go when tax law allows");
    sim.tick(day(1 + 7 * 365));
    assert_eq!(sim.state("billing_records", "ledger"), PersonalState::Erased);
    assert!(sim.calls.contains(&("billing_records".into(), "ledger".into(), PersonalAction::Anonymize)));
}

/// A closure the daemon learns of after its period ran still waits
/// `safety.late_event_floor` (a day in the fixture) from when it learned.
#[test]
fn a_late_closure_still_waits_the_late_event_floor() {
    let mut sim = Sim::new();
    let fx = sim.s.close(day(1), &sim.policy, day(100), &rules());
    sim.run(fx, day(100));
    sim.tick(day(100));
    assert!(sim.calls.is_empty());
    assert_eq!(sim.due(), Some(day(101)));
}

/// Privacy policy 5.6.1: answered within 15 days. Warnings 5 days and 1
/// day before; a request answered on day 14 is not overdue; one left
/// unanswered is flagged on day 15 and stays flagged once answered.
#[test]
fn requests_are_warned_about_and_flagged_overdue_at_their_due_date() {
    let mut sim = Sim::new();
    sim.receive("q1", RequestKind::Erasure, true, day(0));
    assert_eq!(sim.request("q1").due, day(15));
    assert_eq!(sim.due(), Some(day(10)));
    sim.tick(day(10));
    assert_eq!(sim.records.iter().filter(|k| **k == AuditKind::RequestDueSoon).count(), 1);
    sim.tick(day(14));
    assert_eq!(sim.records.iter().filter(|k| **k == AuditKind::RequestDueSoon).count(), 2);
    sim.decide("q1", Decision::Refuse(RefusalGround::Impractical), day(14)).unwrap();
    sim.tick(day(15));
    assert!(!sim.request("q1").overdue, "answered on day 14");

    let mut late = Sim::new();
    late.receive("q2", RequestKind::Erasure, true, day(0));
    late.tick(day(15) - chrono::Duration::seconds(1));
    assert!(!late.request("q2").overdue);
    late.tick(day(15));
    assert!(late.request("q2").overdue);
    assert!(late.records.contains(&AuditKind::RequestOverdue));
    late.decide("q2", Decision::Execute, day(16)).unwrap();
    late.tick(day(16));
    assert!(late.request("q2").overdue, "the flag stays once answered");
}

/// Privacy policy 5.6.1: an unverified request cannot be executed; once
/// repeated verified, `auto_approve` executes it.
#[test]
fn an_unverified_request_is_never_executed() {
    let mut sim = Sim::new();
    sim.policy.auto_approve = true;
    sim.receive("q1", RequestKind::Erasure, false, day(0));
    assert_eq!(sim.request("q1").state, RequestState::Received, "auto_approve waits for verification");
    let err = sim.decide("q1", Decision::Execute, day(1)).unwrap_err();
    assert!(err.message.contains("not verified"), "{err}");
    sim.tick(day(2));
    assert!(sim.calls.is_empty());
    sim.receive("q1", RequestKind::Erasure, true, day(3));
    sim.tick(day(3));
    assert_eq!(sim.state("contact", "crm"), PersonalState::Erased);
    assert!(sim.records.contains(&AuditKind::RequestVerified));
}

/// Privacy policy 5.8 and 5.6.2: a refusal names its ground; a refused
/// request is closed, and a second decision is refused.
#[test]
fn every_refusal_ground_closes_the_request_and_a_second_decision_is_refused() {
    for ground in RefusalGround::ALL {
        let mut sim = Sim::new();
        sim.receive("q1", RequestKind::Erasure, true, day(0));
        sim.decide("q1", Decision::Refuse(*ground), day(1)).unwrap();
        assert_eq!(sim.request("q1").state, RequestState::Refused);
        assert_eq!(sim.request("q1").refusal, Some(*ground));
        assert!(sim.decide("q1", Decision::Execute, day(2)).is_err());
        sim.tick(day(20));
        assert!(sim.calls.is_empty() && !sim.request("q1").overdue);
    }
    assert!(Sim::new().decide("nope", Decision::Execute, day(0)).is_err());
}

/// Privacy policy 7.2: the class under a legal minimum is kept (refused,
/// `legal_obligation`) and scheduled at its end; the request is
/// `partially_completed` meanwhile, `completed` once it goes.
#[test]
fn a_legal_minimum_keeps_its_class_until_it_ends() {
    let mut sim = Sim::new();
    sim.receive("q1", RequestKind::Erasure, true, day(10));
    sim.decide("q1", Decision::Execute, day(11)).unwrap();
    sim.tick(day(11));
    assert_eq!(sim.state("contact", "crm"), PersonalState::Erased);
    assert_eq!(sim.state("billing_records", "ledger"), PersonalState::Present);
    let r = sim.request("q1");
    assert_eq!(r.state, RequestState::PartiallyCompleted);
    let kept: Vec<_> = r.outcomes.iter().filter_map(|o| o.kept_until.map(|t| (o.class.as_str(), t))).collect();
    assert_eq!(kept, vec![("billing_records", day(10 + 7 * 365))], "counted from the request: the account is open");
    sim.tick(day(9 + 7 * 365));
    assert_eq!(sim.state("billing_records", "ledger"), PersonalState::Present);
    sim.tick(day(10 + 7 * 365));
    assert_eq!(sim.state("billing_records", "ledger"), PersonalState::Erased);
    assert_eq!(sim.request("q1").state, RequestState::Completed);
}

/// A hold on the tenant defers an approved erasure (the SLA clock is
/// answered: it is not overdue); after the release it runs no sooner than
/// `safety.after_hold_release` (domain-rules §1.2).
#[test]
fn a_hold_defers_execution_until_after_its_release() {
    let mut sim = Sim::new();
    sim.hold("court-1", day(0));
    sim.receive("q1", RequestKind::Erasure, true, day(1));
    sim.decide("q1", Decision::Execute, day(2)).unwrap();
    sim.tick(day(30));
    assert!(sim.calls.is_empty());
    assert_eq!(sim.request("q1").state, RequestState::Approved);
    assert!(!sim.request("q1").overdue);
    assert_eq!(sim.due(), None, "held: the release rewrites the record");
    sim.release("court-1", day(40));
    assert_eq!(sim.due(), Some(day(41)));
    sim.tick(day(40));
    assert!(sim.calls.is_empty());
    sim.tick(day(41));
    assert_eq!(sim.state("contact", "crm"), PersonalState::Erased);
}

/// International privacy policy: restriction until lifted; restricted data
/// is refused to the restore gate; the lift unrestricts every store.
#[test]
fn restriction_then_lift() {
    let mut sim = Sim::new();
    sim.s.ensure_classes(&sim.policy, day(0));
    sim.receive("r1", RequestKind::Restriction, true, day(0));
    assert!(sim.s.lift("r1", day(0), day(0)).is_err(), "not in force before it is executed");
    sim.decide("r1", Decision::Execute, day(1)).unwrap();
    sim.tick(day(1));
    for (class, store) in [("contact", "crm"), ("contact", "mail"), ("billing_records", "ledger")] {
        assert_eq!(sim.state(class, store), PersonalState::Restricted);
    }
    assert_eq!(sim.request("r1").state, RequestState::Completed);
    assert!(sim.s.restore_refusal().unwrap().contains("restricted"));
    let fx = sim.s.lift("r1", day(5), day(5)).unwrap();
    sim.run(fx, day(5));
    sim.tick(day(5));
    assert_eq!(sim.state("contact", "crm"), PersonalState::Present);
    assert_eq!(sim.s.restricted_by, None);
    assert_eq!(sim.s.restore_refusal(), None);
    assert!(sim.calls.iter().any(|(_, _, a)| *a == PersonalAction::Unrestrict));
}

/// A repeated request of the same subject while one is open is linked: it
/// shares the answer and the stores are called once.
#[test]
fn a_repeated_request_is_linked_not_executed_twice() {
    let mut sim = Sim::new();
    sim.receive("q1", RequestKind::Erasure, true, day(0));
    sim.receive("q2", RequestKind::Erasure, true, day(1));
    assert_eq!(sim.request("q2").linked_to.as_deref(), Some("q1"));
    assert!(sim.decide("q2", Decision::Execute, day(2)).is_err(), "decide the first one");
    sim.decide("q1", Decision::Execute, day(2)).unwrap();
    sim.tick(day(2));
    let crm_calls = sim.calls.iter().filter(|(_, s, _)| s == "crm").count();
    assert_eq!(crm_calls, 1);
    assert_eq!(sim.request("q2").state, sim.request("q1").state);
}

/// Privacy policy 5.6.1 for a linked request: its due date is its own. A
/// repeat dated before the request it repeats (it arrived late) is flagged
/// overdue on its own day 15, and one made later is not flagged when the
/// first one goes overdue (found by tests/privacy_properties.rs).
#[test]
fn a_linked_request_goes_overdue_on_its_own_due_date() {
    let mut sim = Sim::new();
    sim.receive("q1", RequestKind::Erasure, false, day(2));
    sim.receive("q0", RequestKind::Erasure, false, day(0));
    sim.receive("q9", RequestKind::Erasure, false, day(5));
    assert_eq!(sim.request("q0").linked_to.as_deref(), Some("q1"));
    assert_eq!(sim.due(), Some(day(10)), "q0's first warning, 5 days before its own due date");
    sim.tick(day(15));
    assert!(sim.request("q0").overdue, "its own 15 days ran out");
    assert!(!sim.request("q1").overdue);
    sim.tick(day(17));
    assert!(sim.request("q1").overdue);
    assert!(!sim.request("q9").overdue, "made on day 5: due on day 20");
    sim.tick(day(20));
    assert!(sim.request("q9").overdue);
}

/// Engineering-notes habit 1: a failing store is retried with backoff,
/// stuck after `max_attempts`, and an operator's retry resumes it.
#[test]
fn a_failing_store_is_retried_then_stuck_until_an_operator_retries() {
    let mut sim = Sim::new();
    sim.failing.push("mail");
    sim.receive("q1", RequestKind::Erasure, true, day(0));
    sim.decide("q1", Decision::Execute, day(0)).unwrap();
    sim.tick(day(0));
    assert_eq!(sim.state("contact", "crm"), PersonalState::Erased);
    assert_eq!(sim.state("contact", "mail"), PersonalState::Erasing);
    assert_eq!(sim.request("q1").state, RequestState::Executing, "not completed while a store fails");
    for d in 1..5 {
        sim.tick(day(d));
    }
    let mail = sim.s.classes.iter().find(|c| c.class == "contact").unwrap().copies[1].clone();
    assert!(mail.stuck, "{mail:?}");
    assert!(sim.records.contains(&AuditKind::PersonalStuck));
    sim.failing.clear();
    let (n, fx) = sim.s.retry_stuck(None, day(6));
    assert_eq!(n, 1);
    sim.run(fx, day(6));
    sim.tick(day(6));
    assert_eq!(sim.state("contact", "mail"), PersonalState::Erased);
    assert_eq!(sim.request("q1").state, RequestState::PartiallyCompleted);
}

/// An answer to an action the copy no longer waits on changes nothing:
/// a restriction confirmed after the erasure started does not undo it.
#[test]
fn a_stale_answer_is_ignored() {
    let mut sim = Sim::new();
    sim.s.ensure_classes(&sim.policy, day(0));
    sim.s.classes[1].copies[0].begin(PersonalState::Erasing, day(0));
    let fx = sim.s.copy_done("contact", "crm", PersonalAction::Restrict, day(0));
    assert!(fx.is_empty());
    assert_eq!(sim.state("contact", "crm"), PersonalState::Erasing);
}

/// Dry run, a pause, a clock anomaly or a tripped guard (`may_start`
/// false) start no erasure; the request stays approved.
#[test]
fn nothing_starts_while_deletions_may_not() {
    let mut sim = Sim::new();
    sim.receive("q1", RequestKind::Erasure, true, day(0));
    sim.decide("q1", Decision::Execute, day(0)).unwrap();
    let closed = crate::domain::lifecycle::Rules { may_start: false, may_dispatch: false, ..rules() };
    let fx = sim.s.on_time(day(1), &sim.policy, Holds(&sim.holds), &closed);
    sim.run(fx, day(1));
    assert!(sim.calls.is_empty());
    assert_eq!(sim.request("q1").state, RequestState::Approved);
}

/// Every list of names parses back, and a misspelt one does not.
#[test]
fn names_parse_back() {
    for g in RefusalGround::ALL {
        assert_eq!(RefusalGround::parse(g.as_str()), Some(*g));
    }
    assert_eq!(RefusalGround::ALL.len(), 10);
    assert_eq!(ErasureGround::ALL.len(), 5);
    assert_eq!(RefusalGround::parse("because"), None);
    assert!(RefusalGround::expected().contains("trade_secret"));
}

/// Privacy policy 7.2: the legal minimum runs from the end of the
/// relationship. A class kept under it after a request on the open
/// account is kept longer when the account closes later: its minimum
/// then runs from the closure, whatever the request had scheduled.
#[test]
fn a_later_closure_extends_the_legal_minimum_of_a_kept_class() {
    let mut sim = Sim::new();
    sim.receive("q1", RequestKind::Erasure, true, day(10));
    sim.decide("q1", Decision::Execute, day(10)).unwrap();
    sim.tick(day(10));
    let fx = sim.s.close(day(100), &sim.policy, day(100), &rules());
    sim.run(fx, day(100));
    sim.tick(day(10 + 7 * 365));
    assert_eq!(
        sim.state("billing_records", "ledger"),
        PersonalState::Present,
        "kept: the minimum runs from the closure"
    );
    assert_eq!(sim.due(), Some(day(100 + 7 * 365)));
    sim.tick(day(100 + 7 * 365));
    assert_eq!(sim.state("billing_records", "ledger"), PersonalState::Erased);
}

/// General terms 4.1.5, for personal data too: a hold placed while an
/// erasure is under way (a store failing, to be retried) stops its calls
/// until released; a restriction's calls go on (they destroy nothing).
#[test]
fn a_hold_stops_an_erasure_under_way() {
    let mut sim = Sim::new();
    sim.failing.push("mail");
    sim.receive("q1", RequestKind::Erasure, true, day(0));
    sim.decide("q1", Decision::Execute, day(0)).unwrap();
    sim.tick(day(0));
    assert_eq!(sim.state("contact", "mail"), PersonalState::Erasing);
    sim.hold("court-1", day(0));
    sim.failing.clear();
    let before = sim.calls.len();
    sim.tick(day(1));
    assert_eq!(sim.calls.len(), before, "no erasure call while held");
    assert_eq!(sim.state("contact", "mail"), PersonalState::Erasing);
    sim.release("court-1", day(2));
    sim.tick(day(2));
    assert_eq!(sim.state("contact", "mail"), PersonalState::Erasing, "not sooner than after_hold_release");
    sim.tick(day(3));
    assert_eq!(sim.state("contact", "mail"), PersonalState::Erased);
}
