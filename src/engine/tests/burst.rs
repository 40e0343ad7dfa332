//! Issue 11: a burst of due deletions begins a slice per step. The guard
//! still judges the burst whole, once; what it let through, and what an
//! operator approved, is kept between steps for exactly the deletion it
//! was judged or approved for; what comes due meanwhile is judged as soon
//! as the burst is through, not after a sleep.

use super::*;
use crate::domain::vocabulary::Cause;

/// A guard that lets `max` starts an hour through (too few resources for
/// its fraction to count).
fn guard(max: u64) -> String {
    format!("[safety.guard]\nwindow = \"1h\"\nmax_resources = {max}\nmin_resources = 1000\nlong_max_resources = 1000\n")
}

fn released(resource: &str, at: Timestamp) -> Event {
    event(&format!("x-{resource}"), "resource.released", at, resource, json!({}))
}

/// Termination by agreement at T0 (a 15-day buffer).
fn terminated(resource: &str) -> Event {
    event(&format!("t-{resource}"), "resource.terminated", t0(), resource, json!({"reason": "agreement"}))
}

/// The digest of the first batch the guard held (what an operator approves).
fn first_held_digest(engine: &Engine) -> String {
    records(engine, "guard.tripped")[0].data["batch_digest"].as_str().unwrap().to_string()
}

/// Applies `events` in one step without running the calls it queued.
async fn ingest_step(engine: &mut Engine, events: Vec<Event>) {
    step_only(engine, |reply| Command::Ingest { events, reply }).await;
}

fn ids(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("r{i}")).collect()
}

/// Creates each resource, with its business data on disk.
async fn create(rig: &Rig, engine: &mut Engine, ids: &[String]) -> Vec<[PathBuf; 2]> {
    let data = ids.iter().map(|id| rig.data(id)).collect();
    let statuses = ingest(engine, ids.iter().map(|id| created(id)).collect()).await;
    assert!(statuses.iter().all(|s| *s == "applied"));
    data
}

fn begun(rig: &Rig, id: &str) -> bool {
    matches!(rig.resource(id).state, State::Deleting | State::Deleted | State::Purged)
}

fn records(engine: &Engine, kind: &str) -> Vec<AuditRecord> {
    audit(engine).into_iter().filter(|r| r.kind == kind).collect()
}

/// Starts the guard counts in its short window (approved ones are not).
fn counted(engine: &Engine) -> u64 {
    let limits = engine.config.safety.guard.short();
    engine.safety.guard.count(engine.clock.now(), &limits)
}

/// An engine on the rig's store that begins at most `slice` deletions a
/// step, from its start-up on.
async fn open_sliced(rig: &Rig, slice: usize) -> Engine {
    let audit = AuditLog::open(&rig.config.daemon.state_dir, None).unwrap();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let store: Arc<dyn Store> = rig.store.clone();
    let (mut engine, _) = Engine::open(store, audit, rig.clock.clone(), rig.config.clone(), metrics).unwrap();
    engine.start_slice = slice;
    engine.catch_up().await.unwrap();
    engine
}

/// General terms 4.1.4 (a release is deleted at once) with the guard's
/// limit of 8: a burst of 7 begins 3 in the step that applied the
/// releases, their calls going out at once, and the rest in the next
/// steps; counted as one batch of 7, it never trips the guard.
#[tokio::test]
async fn a_burst_begins_a_slice_per_step_after_one_judgment_of_the_whole() {
    let rig = Rig::new(&guard(8));
    let mut engine = rig.open().await;
    engine.start_slice = 3;
    let ids = ids(1..=7);
    let data = create(&rig, &mut engine, &ids).await;

    ingest_step(&mut engine, ids.iter().map(|id| released(id, t0())).collect()).await;
    assert_eq!(ids.iter().filter(|id| begun(&rig, id)).count(), 3, "the first slice began");
    assert_eq!(records(&engine, "deletion.started").len(), 3);
    assert_eq!(engine.calls.len(), 6, "its calls (two copies each) went out with it");
    assert!(engine.backlog, "the rest is left for the next steps");

    advance(&mut engine, "0s").await;
    assert!(ids.iter().all(|id| rig.resource(id).state == State::Purged), "the whole burst ran");
    assert!(data.iter().all(|d| exists(d) == [false, false]));
    assert!(records(&engine, "guard.tripped").is_empty(), "7 starts against a limit of 8");
    assert_eq!(counted(&engine), 7);
    assert!(!engine.backlog);
}

/// The same over the guard's limit: the burst is held whole at its first
/// judgment and none of it begins, whatever the slice.
#[tokio::test]
async fn a_burst_over_the_guards_limit_is_held_whole_whatever_the_slice() {
    let rig = Rig::new(&guard(8));
    let mut engine = rig.open().await;
    engine.start_slice = 3;
    let ids = ids(1..=10);
    let data = create(&rig, &mut engine, &ids).await;
    ingest(&mut engine, ids.iter().map(|id| released(id, t0())).collect()).await;
    advance(&mut engine, "0s").await;

    assert!(!ids.iter().any(|id| begun(&rig, id)), "none began");
    assert!(data.iter().all(|d| exists(d) == [true, true]));
    let trips = records(&engine, "guard.tripped");
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].data["batch_size"], 10);
}

/// Resources that come due while a burst is under way are not carried by
/// its verdict: they are judged as soon as a pass gets through the burst
/// (in the same step, not after a sleep), counted with it. Here a burst of
/// six (a limit of six) begins three, its last three are reinstated (no
/// longer due) and four others are released: 3 begun + 4 crosses the
/// limit, so the four are held. Steps are driven one at a time, the calls
/// parked (as when stopping) so that each step may begin a whole slice.
#[tokio::test]
async fn what_comes_due_during_a_burst_is_judged_as_soon_as_a_pass_gets_through_it() {
    let rig = Rig::new(&guard(6));
    let mut engine = rig.open().await;
    let burst = ids(1..=6);
    let late = ids(7..=10);
    create(&rig, &mut engine, &[burst.clone(), late.clone()].concat()).await;
    let terminated = burst.iter().map(|id| terminated(id));
    ingest(&mut engine, terminated.collect()).await;
    engine.start_slice = 3;
    engine.draining = true;
    let begun_of = |ids: &[String]| ids.iter().filter(|id| begun(&rig, id)).count();

    let now = rig.clock.advance(chrono::Duration::days(15)).unwrap();
    engine.step(Vec::new()).await.unwrap();
    assert_eq!(begun_of(&burst), 3, "the burst's first slice");
    assert!(engine.backlog_ready());
    let mut events: Vec<Event> =
        burst[3..].iter().map(|id| event(&format!("w-{id}"), "resource.reinstated", now, id, json!({}))).collect();
    events.extend(late.iter().map(|id| released(id, now)));
    ingest_step(&mut engine, events).await;

    assert_eq!(begun_of(&burst), 3, "the reinstated three are served again");
    assert_eq!(begun_of(&late), 0, "not carried by the burst's verdict");
    let trips = records(&engine, "guard.tripped");
    assert_eq!(trips.len(), 1, "judged in the same step");
    assert_eq!(trips[0].data["batch_size"], 4);
    assert_eq!(trips[0].data["started_in_window"], 3);
    assert!(!engine.backlog);
}

/// The same under a generous limit: what came due during the burst has
/// run by the time the clock move is answered.
#[tokio::test]
async fn what_comes_due_during_a_burst_begins_without_waiting_for_a_sleep() {
    let rig = Rig::new(&guard(100));
    let mut engine = rig.open().await;
    engine.start_slice = 3;
    let burst = ids(1..=7);
    let late = ids(8..=9);
    create(&rig, &mut engine, &[burst.clone(), late.clone()].concat()).await;
    ingest_step(&mut engine, burst.iter().map(|id| released(id, t0())).collect()).await;
    ingest_step(&mut engine, late.iter().map(|id| released(id, t0())).collect()).await;

    let now = advance(&mut engine, "0s").await;
    assert_eq!(now, t0(), "no time passed");
    assert!(burst.iter().chain(&late).all(|id| rig.resource(id).state == State::Purged));
}

/// An approved batch, interrupted by a pause, begins its remainder after
/// the resume as approved (not counted, not judged again), rather than
/// tripping the guard a second time.
#[tokio::test]
async fn an_approved_batch_outlives_a_pause_in_its_midst() {
    let rig = Rig::new(&guard(2));
    let mut engine = rig.open().await;
    let ids = ids(0..=3);
    create(&rig, &mut engine, &ids).await;
    ingest(&mut engine, ids.iter().map(|id| released(id, t0())).collect()).await;
    let digest = first_held_digest(&engine);

    engine.start_slice = 1;
    step_only(&mut engine, |reply| Command::Approve { batch_digest: Some(digest), reply }).await;
    assert_eq!(ids.iter().filter(|id| begun(&rig, id)).count(), 1, "one began in the approving step");
    step_only(&mut engine, |reply| Command::Pause { paused: true, reply }).await;
    step_only(&mut engine, |reply| Command::Pause { paused: false, reply }).await;

    advance(&mut engine, "0s").await;
    assert!(ids.iter().all(|id| rig.resource(id).state == State::Purged));
    assert!(ids.iter().all(|id| rig.resource(id).guard_approved), "each began as approved");
    assert_eq!(records(&engine, "guard.tripped").len(), 1, "the guard did not trip again");
    assert_eq!(counted(&engine), 0, "approved starts are not counted");
}

/// The same across a restart: the approvals not yet begun are stored.
#[tokio::test]
async fn an_approved_batch_outlives_a_restart_in_its_midst() {
    let rig = Rig::new(&guard(2));
    let mut engine = rig.open().await;
    let ids = ids(0..=3);
    create(&rig, &mut engine, &ids).await;
    ingest(&mut engine, ids.iter().map(|id| released(id, t0())).collect()).await;
    let digest = first_held_digest(&engine);
    engine.start_slice = 1;
    step_only(&mut engine, |reply| Command::Approve { batch_digest: Some(digest), reply }).await;
    assert_eq!(ids.iter().filter(|id| begun(&rig, id)).count(), 1);
    drop(engine);

    let mut engine = open_sliced(&rig, 1).await;
    advance(&mut engine, "0s").await;
    assert!(ids.iter().all(|id| rig.resource(id).state == State::Purged));
    assert!(ids.iter().all(|id| rig.resource(id).guard_approved));
    assert_eq!(records(&engine, "guard.tripped").len(), 1);
    assert!(rig.store.guard_state().unwrap().approved.is_empty(), "used up approvals are not kept");
}

/// An approval covers the deletion it was held for, not another: a
/// resource of an approved batch reinstated, then released, before its
/// turn begins the new deletion judged and counted.
#[tokio::test]
async fn an_approval_does_not_carry_over_to_another_deletion_of_the_same_resource() {
    let rig = Rig::new(&guard(2));
    let mut engine = rig.open().await;
    let ids = ids(0..=2);
    create(&rig, &mut engine, &ids).await;
    let terminated = ids.iter().map(|id| terminated(id));
    ingest(&mut engine, terminated.collect()).await;
    advance(&mut engine, "15d").await;
    let digest = first_held_digest(&engine);
    // An hour later the operator approves the three held deletions.
    let now = advance(&mut engine, "1h").await;
    engine.start_slice = 1;
    step_only(&mut engine, |reply| Command::Approve { batch_digest: Some(digest), reply }).await;
    assert!(begun(&rig, "r0") && !begun(&rig, "r1"));
    // Before r1's turn its termination is withdrawn and the tenant releases it.
    let events = vec![event("w-r1", "resource.reinstated", now, "r1", json!({})), released("r1", now)];
    ingest_step(&mut engine, events).await;

    advance(&mut engine, "0s").await;
    assert!(ids.iter().all(|id| rig.resource(id).state == State::Purged));
    assert!(rig.resource("r0").guard_approved && rig.resource("r2").guard_approved);
    assert!(!rig.resource("r1").guard_approved, "the release is a new deletion: judged, not approved");
    assert_eq!(counted(&engine), 1, "and counted");
}

/// Calls the previous run left in flight are resumed at start-up even
/// when a burst due at start is larger than a step may begin: the
/// look-ahead lasts until a tick gets through it.
#[tokio::test]
async fn calls_left_in_flight_resume_behind_a_burst_due_at_start_up() {
    let rig = Rig::new(&guard(100));
    let mut engine = rig.open().await;
    let burst = ids(2..=6);
    create(&rig, &mut engine, &burst).await;
    let terminated = burst.iter().map(|id| terminated(id));
    ingest(&mut engine, terminated.collect()).await;
    let now = advance(&mut engine, "14d 23h 59m").await;
    // A minute before the burst falls due, r1 is released; its calls are
    // queued, and the daemon dies before they report.
    let r1_data = rig.data("r1");
    ingest(&mut engine, vec![created("r1")]).await;
    ingest_step(&mut engine, vec![released("r1", now)]).await;
    drop(engine);
    rig.clock.advance(chrono::Duration::minutes(1)).unwrap();
    assert_eq!(offered(&rig, rig.clock.now()), burst, "the burst is due; r1 only at its lease's end");

    let mut engine = open_sliced(&rig, 2).await;
    let now = advance(&mut engine, "0s").await;
    assert_eq!(now, t0() + chrono::Duration::days(15));
    assert!(burst.iter().all(|id| rig.resource(id).state == State::Purged));
    assert_eq!(rig.resource("r1").state, State::Purged, "resumed without waiting for its lease");
    assert_eq!(exists(&r1_data), [false, false]);
}

/// A burst's verdict covers each resource's deletion as it was judged: a
/// member reinstated and then released (dated an hour back: another
/// deletion, another date) before its turn waits to be judged again
/// rather than riding the verdict.
#[tokio::test]
async fn a_burst_member_that_comes_to_another_deletion_is_judged_again() {
    let rig = Rig::new(&guard(100));
    let mut engine = rig.open().await;
    let ids = ids(1..=3);
    create(&rig, &mut engine, &ids).await;
    let terminated = ids.iter().map(|id| terminated(id));
    ingest(&mut engine, terminated.collect()).await;
    engine.start_slice = 1;
    engine.draining = true;
    let now = rig.clock.advance(chrono::Duration::days(15)).unwrap();
    engine.step(Vec::new()).await.unwrap();
    assert!(begun(&rig, "r1") && !begun(&rig, "r2") && !begun(&rig, "r3"));

    let back = now - chrono::Duration::hours(1);
    let events = vec![event("w-r2", "resource.reinstated", back, "r2", json!({})), released("r2", back)];
    ingest_step(&mut engine, events).await;
    assert!(!begun(&rig, "r2"), "its release is not the deletion the burst was judged for");
    assert!(begun(&rig, "r3"), "the burst goes on");
    engine.step(Vec::new()).await.unwrap();
    assert!(begun(&rig, "r2"), "judged on its own once the burst is through");
    assert_eq!(counted(&engine), 3);
}

/// An approval releases exactly its batch even if the guard trips again
/// on other resources in the same judgment: the approved ones go on
/// beginning, a slice a step, while the new batch is held.
#[tokio::test]
async fn approved_starts_go_on_while_the_guard_holds_another_batch() {
    let rig = Rig::new(&guard(2));
    let mut engine = rig.open().await;
    let approved = ids(0..=3);
    let others: Vec<String> = (1..=3).map(|i| format!("a{i}")).collect();
    create(&rig, &mut engine, &[approved.clone(), others.clone()].concat()).await;
    ingest(&mut engine, approved.iter().map(|id| released(id, t0())).collect()).await;
    let digest = first_held_digest(&engine);
    ingest(&mut engine, others.iter().map(|id| released(id, t0())).collect()).await;
    engine.start_slice = 1;
    engine.draining = true;

    step_only(&mut engine, |reply| Command::Approve { batch_digest: Some(digest), reply }).await;
    let trips = records(&engine, "guard.tripped");
    assert_eq!(trips.len(), 2, "the three others, judged with the approval's first step, trip it again");
    assert_eq!(trips[1].data["batch_size"], 3);
    for _ in 0..approved.len() {
        engine.step(Vec::new()).await.unwrap();
    }
    assert!(approved.iter().all(|id| begun(&rig, id) && rig.resource(id).guard_approved));
    assert!(!others.iter().any(|id| begun(&rig, id)), "the new batch is held");
    assert!(!engine.backlog);
}

/// Calls that hang in one store (here a command killed after 3 s of real
/// time; the test does not wait for it) fill the call room, so no more
/// deletions begin; work that begins none (a buffer starting) is held
/// back behind the waiting deletion for at most MAX_SLEEP, not until the
/// calls end (issue 11 review: a hung store must not hold up the rest).
#[tokio::test]
async fn a_full_call_room_holds_other_due_work_back_for_at_most_max_sleep() {
    let hung = r#"
[stores.slow]
class = "online"
executor = { kind = "command", argv = ["/bin/sh", "-c", "sleep 30", "sh", "{resource}"], timeout = "3s" }

[products.slowp]
stores = ["slow"]
buffer = { expiry = "15d", arrears = "15d", termination = "15d", violation = "0s" }
"#;
    let rig = Rig::new(&format!("{}{hung}", guard(100)));
    let mut engine = rig.open().await;
    engine.start_slice = 1; // a call room of 2: a scale model of 1,000 and 2,000
    let slow = |id: &str| {
        event(&format!("c-{id}"), "resource.created", t0(), id, json!({"product": "slowp", "billing": "postpaid"}))
    };
    ingest(&mut engine, vec![slow("s1"), slow("s2"), created("r2"), created("r3")]).await;
    ingest_step(&mut engine, vec![released("s1", t0()), released("s2", t0())]).await;
    engine.step(Vec::new()).await.unwrap();
    assert!(begun(&rig, "s1") && begun(&rig, "s2"));
    assert_eq!(engine.calls.len(), 2, "the call room is full");

    // r2 is released (a deletion: it must wait for room), r3 terminated (its
    // buffer starts: no deletion), due in that order.
    ingest_step(&mut engine, vec![released("r2", t0()), terminated("r3")]).await;
    assert!(!begun(&rig, "r2"), "no room for its calls");
    assert!(engine.backlog && !engine.backlog_ready(), "waits for calls to report, without spinning");
    assert_eq!(engine.sleep_duration().unwrap(), MAX_SLEEP);

    rig.clock.advance(chrono::Duration::from_std(MAX_SLEEP).unwrap()).unwrap();
    engine.step(Vec::new()).await.unwrap();
    assert_eq!(rig.resource("r3").state, State::Retained, "its buffer started, past the waiting deletion");
    assert!(!begun(&rig, "r2"), "still no room");
    assert!(engine.backlog);
}

/// The same when the new deletion falls on the very date of the approved
/// one (a release dated at the day the held termination buffer ended):
/// another cause, another deletion, so judged and counted.
#[tokio::test]
async fn an_approval_does_not_carry_over_to_another_deletion_on_the_same_date() {
    let rig = Rig::new(&guard(2));
    let mut engine = rig.open().await;
    let ids = ids(0..=2);
    create(&rig, &mut engine, &ids).await;
    let terminated = ids.iter().map(|id| terminated(id));
    ingest(&mut engine, terminated.collect()).await;
    let held_date = advance(&mut engine, "15d").await;
    let digest = first_held_digest(&engine);
    let now = advance(&mut engine, "1h").await;
    engine.start_slice = 1;
    step_only(&mut engine, |reply| Command::Approve { batch_digest: Some(digest), reply }).await;
    let events = vec![event("w-r1", "resource.reinstated", now, "r1", json!({})), released("r1", held_date)];
    ingest_step(&mut engine, events).await;

    advance(&mut engine, "0s").await;
    let r1 = rig.resource("r1");
    assert_eq!(r1.deciding.as_ref().map(|b| (b.cause, b.delete_after)), Some((Cause::Release, held_date)));
    assert_eq!(r1.state, State::Purged);
    assert!(!r1.guard_approved, "judged, not approved");
    assert_eq!(counted(&engine), 1);
}
