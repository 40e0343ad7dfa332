//! The engine on the in-memory store, driven step by step: no sockets, no
//! database directory, no loop sleeping. One temporary directory holds the
//! audit log (it needs one) and the `fs` stores' roots (an `fs` executor
//! deletes files). Time moves only by the manual clock.
//!
//! Each test names the rule it holds the engine to and checks what a user
//! would: the resource's state, its copies', the tenant's files and the
//! audit trail.

use super::*;
use crate::audit::AuditRecord;
use crate::clock::ManualClock;
use crate::domain::event::Event;
use crate::domain::lifecycle::{CopyState, Resource, State};
use crate::duration::Dur;
use crate::store::{Flag, Hooked, MemoryStore};
use crate::time::{fmt_rfc3339, parse_rfc3339};
use serde_json::{json, Value};
use std::path::PathBuf;
use tokio::sync::mpsc::error::TryRecvError as QueueEmpty;
use tokio::sync::oneshot::error::TryRecvError;

mod burst;
mod privacy;
mod reviews;

const T0: &str = "2026-01-01T00:00:00Z";

fn t0() -> Timestamp {
    parse_rfc3339(T0).unwrap()
}

/// A temporary state directory, a config on it and a store that outlive
/// any one engine (so a test can re-open one on the same state).
struct Rig {
    dir: tempfile::TempDir,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    config: Arc<Config>,
    /// The config's text, for a test that puts a changed one in force.
    text: String,
}

impl Rig {
    /// Product `ecs` keeps a copy in an online store (`primary`, files at
    /// `data/{tenant}/{resource}`) and a cache (`cache`, at
    /// `cache/{resource}`), with 15-day buffers; `extra` is appended to
    /// the config.
    fn new(extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let root = |name: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join(".retentiond-root"), "").unwrap();
            p.display().to_string()
        };
        let (data, cache) = (root("data"), root("cache"));
        let text = format!(
            r#"
[daemon]
state_dir = "{state}"

[clock]
source = "manual"
start = "{T0}"

[stores.primary]
class = "online"
executor = {{ kind = "fs", root = "{data}", path = "{{tenant}}/{{resource}}" }}

[stores.cache]
class = "cache"
executor = {{ kind = "fs", root = "{cache}", path = "{{resource}}" }}

[products.ecs]
stores = ["primary", "cache"]
buffer = {{ expiry = "15d", arrears = "15d", termination = "15d", violation = "0s" }}
{extra}
"#,
            state = dir.path().join("state").display(),
        );
        let config = crate::config::parse(&dir.path().join("retentiond.toml"), &text).unwrap();
        std::fs::create_dir_all(&config.daemon.state_dir).unwrap();
        Rig {
            dir,
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(ManualClock::new(t0())),
            config: Arc::new(config),
            text,
        }
    }

    /// An engine on the rig's store, started as the daemon starts one.
    async fn open(&self) -> Engine {
        self.open_on(self.store.clone()).await.0
    }

    /// An engine on `store`, started as the daemon starts one, with its handle.
    async fn open_on(&self, store: Arc<dyn Store>) -> (Engine, EngineHandle) {
        let audit = AuditLog::open(&self.config.daemon.state_dir, None).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let (mut engine, handle) =
            Engine::open(store, audit, self.clock.clone(), self.config.clone(), metrics).unwrap();
        engine.catch_up().await.unwrap();
        (engine, handle)
    }

    /// The tenant's business data of `resource`: its online copy and its
    /// cached copy, as files.
    fn data(&self, resource: &str) -> [PathBuf; 2] {
        let online = self.dir.path().join("data/t1").join(resource);
        let cached = self.dir.path().join("cache").join(resource);
        for p in [&online, &cached] {
            std::fs::create_dir_all(p).unwrap();
            std::fs::write(p.join("blob"), b"customer business data").unwrap();
        }
        [online, cached]
    }

    /// The rig's config with `ecs`'s termination buffer set to `buffer`
    /// (its policy version changes with it), as a reload would put it in
    /// force.
    fn with_termination_buffer(&self, buffer: &str) -> Arc<Config> {
        let text = self.text.replace("termination = \"15d\"", &format!("termination = \"{buffer}\""));
        assert_ne!(text, self.text, "the rig's buffer is 15 days");
        Arc::new(crate::config::parse(&self.dir.path().join("retentiond.toml"), &text).unwrap())
    }

    fn resource(&self, id: &str) -> Resource {
        self.store.resource(id).unwrap().expect("the resource is stored")
    }

    /// Each copy of the resource: (store, state).
    fn copies(&self, id: &str) -> Vec<(String, CopyState)> {
        self.resource(id).copies.into_iter().map(|c| (c.store, c.state)).collect()
    }
}

fn exists(paths: &[PathBuf]) -> Vec<bool> {
    paths.iter().map(|p| p.exists()).collect()
}

/// The audit kinds recorded about `resource` (None: daemon-wide), in order.
fn kinds(engine: &Engine, resource: Option<&str>) -> Vec<String> {
    audit(engine).into_iter().filter(|r| r.resource.as_deref() == resource).map(|r| r.kind).collect()
}

/// Every record in the audit file.
fn audit(engine: &Engine) -> Vec<AuditRecord> {
    let log = engine.audit_log();
    let log = log.lock().unwrap();
    log.read_after(0, usize::MAX).unwrap()
}

/// An event about resource `resource` of tenant `t1`, with `fields` added.
fn event(id: &str, kind: &str, at: Timestamp, resource: &str, fields: Value) -> Event {
    let mut v = json!({"event_id": id, "type": kind, "at": fmt_rfc3339(at), "tenant": "t1", "resource": resource});
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    crate::domain::event::parse_event(&v).unwrap()
}

fn created(resource: &str) -> Event {
    event(
        &format!("c-{resource}"),
        "resource.created",
        t0(),
        resource,
        json!({"product": "ecs", "billing": "postpaid"}),
    )
}

/// Sends a command as [`EngineHandle`] does and runs the engine's steps
/// until it is answered: its own step, the steps that record executor
/// results while a clock move waits for them, and the slices of a sweep
/// a reload waits for.
async fn ask<T>(
    engine: &mut Engine,
    make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
) -> Result<T, EngineError> {
    let (reply, mut answer) = oneshot::channel();
    engine.tx.send(make(reply)).await.unwrap();
    loop {
        match answer.try_recv() {
            Ok(result) => return result,
            Err(TryRecvError::Closed) => panic!("the engine dropped the reply"),
            Err(TryRecvError::Empty) => {}
        }
        let cmd = match engine.rx.try_recv() {
            Ok(cmd) => cmd,
            Err(QueueEmpty::Empty) if !engine.sweeps.is_empty() => {
                // A sweep under way (a reload's reconcile): a slice a step.
                engine.sweep_step().await.unwrap();
                continue;
            }
            Err(QueueEmpty::Empty) if engine.backlog_ready() => {
                // Due work left for the next step: the loop would not sleep.
                engine.step(Vec::new()).await.unwrap();
                continue;
            }
            Err(QueueEmpty::Empty) => {
                let running = engine.calls.len() + engine.notices.in_flight.len();
                assert!(running > 0, "no answer, no command queued and no call running");
                engine.rx.recv().await.unwrap()
            }
            Err(QueueEmpty::Disconnected) => unreachable!("the engine holds a sender"),
        };
        let cmds = engine.gather(cmd);
        engine.step(cmds).await.unwrap();
    }
}

/// Applies events as one request; their statuses.
async fn ingest(engine: &mut Engine, events: Vec<Event>) -> Vec<&'static str> {
    let results = ask(engine, |reply| Command::Ingest { events, reply }).await.unwrap();
    results.into_iter().map(|r| r.status).collect()
}

/// Moves the manual clock on by `by` (humantime) once the due work,
/// executor calls included, has run; the new reading.
async fn advance(engine: &mut Engine, by: &str) -> Timestamp {
    let op = ClockOp::Advance(by.parse::<Dur>().unwrap());
    ask(engine, |reply| Command::Clock { op, reply }).await.unwrap()
}

async fn approve(engine: &mut Engine, batch_digest: Option<String>) -> Result<Approval, EngineError> {
    ask(engine, |reply| Command::Approve { batch_digest, reply }).await
}

#[tokio::test]
async fn general_terms_4_1_5_when_the_buffer_ends_every_copy_is_deleted() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    let data = rig.data("r1");
    let terminated = event("x1", "resource.terminated", t0(), "r1", json!({"reason": "agreement"}));
    assert_eq!(ingest(&mut engine, vec![created("r1"), terminated]).await, ["applied", "applied"]);

    advance(&mut engine, "14d 23h 59m 59s").await;
    assert_eq!(rig.resource("r1").state, State::Retained, "kept for the whole buffer");
    assert_eq!(exists(&data), [true, true]);

    advance(&mut engine, "1s").await;
    assert_eq!(rig.resource("r1").state, State::Purged);
    let deleted = vec![("primary".to_string(), CopyState::Deleted), ("cache".to_string(), CopyState::Deleted)];
    assert_eq!(rig.copies("r1"), deleted, "the cached copy goes with the online one");
    assert_eq!(exists(&data), [false, false]);
    let steps: Vec<String> = kinds(&engine, Some("r1"))
        .into_iter()
        .filter(|k| k.starts_with("deletion.started") || k.starts_with("copy.") || k.starts_with("resource."))
        .collect();
    let expected = ["deletion.started", "copy.deleted", "copy.deleted", "resource.deleted", "resource.purged"];
    assert_eq!(steps, expected, "every step of the deletion is in the audit trail");
    assert!(rig.store.certificate("r1").unwrap().is_some(), "the purge is certified");
}

#[tokio::test]
async fn general_terms_4_1_4_a_release_deletes_at_once_without_a_buffer() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    let data = rig.data("r1");
    ingest(&mut engine, vec![created("r1")]).await;
    let now = advance(&mut engine, "3d").await;

    let released = event("x1", "resource.released", now, "r1", json!({}));
    assert_eq!(ingest(&mut engine, vec![released]).await, ["applied"]);
    advance(&mut engine, "0s").await; // no time passes: only the calls run

    let r = rig.resource("r1");
    assert_eq!(r.state, State::Purged);
    assert_eq!(r.deletion_started_at, Some(now), "deleting started at the release itself");
    assert_eq!(exists(&data), [false, false]);
    assert!(!kinds(&engine, Some("r1")).contains(&"buffer.started".to_string()), "no buffer applies");
}

#[tokio::test]
async fn general_terms_4_1_5_a_hold_stops_deletion_until_released_and_a_day_has_passed() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    let data = rig.data("r1");
    let terminated = event("x1", "resource.terminated", t0(), "r1", json!({"reason": "agreement"}));
    let hold = json!({"hold_id": "court-7", "authority": "District court", "reason": "case 7/2026"});
    let placed = event("h1", "hold.placed", t0(), "r1", hold);
    assert_eq!(ingest(&mut engine, vec![created("r1"), terminated, placed]).await, ["applied"; 3]);

    let now = advance(&mut engine, "20d").await;
    assert_eq!(rig.resource("r1").state, State::Retained, "the buffer ended 5 days ago, but a hold covers it");
    assert_eq!(exists(&data), [true, true]);
    assert!(!kinds(&engine, Some("r1")).contains(&"deletion.started".to_string()));

    let released = event("h2", "hold.released", now, "r1", json!({"hold_id": "court-7"}));
    assert_eq!(ingest(&mut engine, vec![released]).await, ["applied"]);
    advance(&mut engine, "23h 59m 59s").await;
    assert_eq!(exists(&data), [true, true], "safety.after_hold_release gives people a day to react");

    advance(&mut engine, "1s").await;
    assert_eq!(rig.resource("r1").state, State::Purged);
    assert_eq!(exists(&data), [false, false]);
}

/// Which events each flush made durable, noted by hooks on the store.
#[derive(Default)]
struct Ledger {
    /// Event ids committed since the last flush.
    committed: Vec<String>,
    /// Event ids committed before a flush.
    durable: Vec<String>,
    flushes: usize,
    /// Store commits (each one sled batch on the sled engine).
    commits: usize,
}

/// The in-memory store, with a ledger of what each flush made durable.
fn flush_ledger() -> (Arc<Hooked<MemoryStore>>, Arc<Mutex<Ledger>>) {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (on_commit, on_flush) = (ledger.clone(), ledger.clone());
    let store = Hooked::new(MemoryStore::new())
        .before_commit(move |w| {
            let mut l = on_commit.lock().unwrap();
            l.committed.extend(w.events.iter().map(|(id, _)| id.clone()));
            l.commits += 1;
        })
        .after_flush(move || {
            let mut l = on_flush.lock().unwrap();
            let done = std::mem::take(&mut l.committed);
            l.durable.extend(done);
            l.flushes += 1;
        });
    (Arc::new(store), ledger)
}

#[tokio::test]
async fn group_commit_requests_posted_together_share_one_flush_and_are_durable_when_answered() {
    let rig = Rig::new("");
    let (store, ledger) = flush_ledger();
    let (mut engine, handle) = rig.open_on(store.clone()).await;
    let flushes = || ledger.lock().unwrap().flushes;
    // Five clients post at once, each its own request, and look in the
    // store the moment they are answered.
    let clients: Vec<_> = (0..5)
        .map(|i| {
            let (handle, ledger) = (handle.clone(), ledger.clone());
            tokio::spawn(async move {
                let results = handle.ingest(vec![created(&format!("r{i}"))]).await;
                let durable = ledger.lock().unwrap().durable.contains(&format!("c-r{i}"));
                (results, durable)
            })
        })
        .collect();
    while engine.rx.len() < clients.len() {
        tokio::task::yield_now().await;
    }

    let (before, commits_before) = (flushes(), ledger.lock().unwrap().commits);
    let first = engine.rx.recv().await.unwrap();
    let group = engine.gather(first);
    assert_eq!(group.len(), 5, "the loop takes every request already waiting");
    engine.step(group).await.unwrap();
    assert_eq!(flushes(), before + 1, "one flush for the whole group");
    assert_eq!(ledger.lock().unwrap().commits, commits_before + 1, "one store write for the whole group (issue 11)");

    for (i, client) in clients.into_iter().enumerate() {
        let (results, durable) = client.await.unwrap();
        assert_eq!(results.expect("acknowledged")[0].status, "applied");
        assert!(durable, "r{i} was answered before it was flushed");
        assert_eq!(store.resource(&format!("r{i}")).unwrap().map(|r| r.state), Some(State::Active));
    }
    assert_eq!(kinds(&engine, Some("r4")), ["event.applied"], "the audit file has every record of the group");
}

/// Issue 11, point 3: the outcomes of executor calls that arrive together
/// are one group: written in one store commit (what they make due in one
/// more), made durable by one flush.
#[tokio::test]
async fn issue_11_copy_results_arriving_together_are_written_in_one_commit() {
    let rig = Rig::new("");
    let (store, ledger) = flush_ledger();
    let (mut engine, _handle) = rig.open_on(store.clone()).await;
    let ids = ["r1", "r2", "r3"];
    let data: Vec<[PathBuf; 2]> = ids.iter().map(|id| rig.data(id)).collect();
    ingest(&mut engine, ids.iter().map(|id| created(id)).collect()).await;
    let released: Vec<Event> =
        ids.iter().map(|id| event(&format!("x-{id}"), "resource.released", t0(), id, json!({}))).collect();
    step_only(&mut engine, |reply| Command::Ingest { events: released, reply }).await;
    // Every call runs and reports while the engine takes no step.
    while engine.rx.len() < 2 * ids.len() {
        tokio::task::yield_now().await;
    }
    let (flushes, commits) = {
        let l = ledger.lock().unwrap();
        (l.flushes, l.commits)
    };
    let first = engine.rx.recv().await.unwrap();
    let group = engine.gather(first);
    assert_eq!(group.len(), 2 * ids.len(), "two copies a resource, each call's outcome");
    engine.step(group).await.unwrap();
    // The six outcomes are one store write; the purges they make due are
    // the tick's, written in a second (the tick reads the deadline index,
    // which the first brought up to date: README, "Crash safety"); one
    // flush makes both durable.
    let l = ledger.lock().unwrap();
    assert_eq!((l.flushes, l.commits), (flushes + 1, commits + 2), "not a write or a flush per outcome");
    for (id, paths) in ids.iter().zip(&data) {
        assert_eq!(store.resource(id).unwrap().map(|r| r.state), Some(State::Purged), "{id}");
        assert_eq!(exists(paths), [false, false], "{id}");
    }
}

#[tokio::test]
async fn a_copy_intent_stored_before_the_call_is_resumed_after_reopen() {
    let rig = Rig::new("");
    let data = rig.data("r1");
    let mut engine = rig.open().await;
    ingest(&mut engine, vec![created("r1")]).await;
    // The daemon stops before the calls start (the drain deadline passed,
    // or it was killed): the intent to delete is stored, nothing is called.
    engine.draining = true;
    ingest(&mut engine, vec![event("x1", "resource.released", t0(), "r1", json!({}))]).await;
    assert_eq!(rig.resource("r1").state, State::Deleting);
    let deleting = vec![("primary".to_string(), CopyState::Deleting), ("cache".to_string(), CopyState::Deleting)];
    assert_eq!(rig.copies("r1"), deleting);
    assert_eq!(exists(&data), [true, true], "no executor was called");
    drop(engine);

    let mut engine = rig.open().await;
    advance(&mut engine, "0s").await;
    assert_eq!(rig.resource("r1").state, State::Purged, "the stored intent was carried out at start");
    assert_eq!(exists(&data), [false, false]);
    assert_eq!(kinds(&engine, Some("r1")).iter().filter(|k| *k == "copy.deleted").count(), 2);
    crate::audit::verify(&rig.config.daemon.state_dir, None).expect("one unbroken audit chain across the restart");
}

#[tokio::test]
async fn safety_guard_holds_a_whole_batch_until_exactly_that_batch_is_approved() {
    let guard = "[safety.guard]\nwindow = \"1h\"\nmax_resources = 2\nmax_fraction = 1.0\nmin_resources = 1\n\
                 long_max_resources = 100\n";
    let rig = Rig::new(guard);
    let mut engine = rig.open().await;
    let ids = ["r0", "r1", "r2"];
    let data: Vec<PathBuf> = ids.iter().flat_map(|id| rig.data(id)).collect();
    ingest(&mut engine, ids.iter().map(|id| created(id)).collect()).await;
    let releases = ids.iter().map(|id| event(&format!("x-{id}"), "resource.released", t0(), id, json!({}))).collect();
    assert_eq!(ingest(&mut engine, releases).await, ["applied"; 3]);
    advance(&mut engine, "0s").await;

    assert!(exists(&data).iter().all(|e| *e), "three starts cross the limit of two: none starts");
    assert!(ids.iter().all(|id| rig.resource(id).state != State::Deleting));
    assert!(rig.store.flag(Flag::GuardTripped).unwrap());
    let trips: Vec<AuditRecord> = audit(&engine).into_iter().filter(|r| r.kind == "guard.tripped").collect();
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].data["batch_size"], 3);
    let digest = trips[0].data["batch_digest"].as_str().unwrap().to_string();

    let wrong = approve(&mut engine, Some("00".repeat(32))).await;
    assert!(matches!(wrong, Err(EngineError::BatchMismatch { .. })), "{wrong:?}");
    assert!(rig.store.flag(Flag::GuardTripped).unwrap(), "a wrong digest approves nothing");

    let approval = approve(&mut engine, Some(digest.clone())).await.unwrap();
    assert_eq!(approval.approved, ["guard"]);
    assert_eq!(approval.batch, Some(BatchSummary { size: 3, digest }));
    advance(&mut engine, "0s").await;
    assert!(exists(&data).iter().all(|e| !e), "the approved batch goes whole");
    assert!(ids.iter().all(|id| rig.resource(id).state == State::Purged));
    assert!(!rig.store.flag(Flag::GuardTripped).unwrap());
}

#[tokio::test]
async fn safety_max_clock_jump_a_wall_clock_set_forward_deletes_nothing_until_approved() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    let data = rig.data("r1");
    let terminated = event("x1", "resource.terminated", t0(), "r1", json!({"reason": "agreement"}));
    ingest(&mut engine, vec![created("r1"), terminated]).await;

    // Someone sets the clock 20 days ahead: the buffer seems to have ended.
    let op = ClockOp::Set(t0() + chrono::Duration::days(20));
    ask(&mut engine, |reply| Command::Clock { op, reply }).await.unwrap();
    assert_eq!(rig.resource("r1").state, State::Retained);
    assert_eq!(exists(&data), [true, true]);
    assert!(rig.store.flag(Flag::ClockAnomaly).unwrap());
    let anomaly = audit(&engine).into_iter().find(|r| r.kind == "clock.anomaly").expect("recorded");
    assert_eq!(anomaly.data["jump_seconds"], 20 * 86_400);

    // An operator confirms the clock is right.
    let approval = approve(&mut engine, None).await.unwrap();
    assert_eq!(approval.approved, ["clock_anomaly"]);
    advance(&mut engine, "0s").await;
    assert_eq!(rig.resource("r1").state, State::Purged);
    assert_eq!(exists(&data), [false, false]);
}

/// Steps the engine through one request without running what it spawned:
/// the executor calls it started are queued on their tasks, not yet run.
/// Its answer, if the step gave one (a sweep or an `apply-policy` pass
/// answers only after its last slice).
async fn step_only<T>(
    engine: &mut Engine,
    make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
) -> oneshot::Receiver<Result<T, EngineError>> {
    let (reply, answer) = oneshot::channel();
    engine.tx.send(make(reply)).await.unwrap();
    let first = engine.rx.recv().await.unwrap();
    let cmds = engine.gather(first);
    engine.step(cmds).await.unwrap();
    answer
}

/// Resource `r1` of the rig, released: its deletion started and its two
/// copies' calls queued on their tasks, not yet run. The engine, and the
/// copies' files.
async fn released_with_calls_queued(rig: &Rig) -> (Engine, [PathBuf; 2]) {
    let data = rig.data("r1");
    let mut engine = rig.open().await;
    ingest(&mut engine, vec![created("r1")]).await;
    let released = vec![event("x1", "resource.released", t0(), "r1", json!({}))];
    step_only(&mut engine, |reply| Command::Ingest { events: released, reply }).await;
    (engine, data)
}

/// Every resource the deadline index offers at or before `t`.
fn offered(rig: &Rig, t: Timestamp) -> Vec<String> {
    rig.store.due(t, usize::MAX).unwrap().into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn issue_11_a_resource_whose_copies_are_being_deleted_leaves_the_due_index_until_its_calls_report() {
    let rig = Rig::new("");
    let (mut engine, data) = released_with_calls_queued(&rig).await;

    assert_eq!(rig.resource("r1").state, State::Deleting);
    assert_eq!(engine.calls.len(), 2, "both copies' calls are queued");
    assert!(offered(&rig, t0()).is_empty(), "a step does not re-read a resource whose calls are in flight");
    let lease_end = t0() + chrono::Duration::from_std(engine.calls.lease()).unwrap();
    assert_eq!(rig.store.next_due_after(t0()).unwrap(), Some(lease_end), "it is indexed at its lease's end");

    advance(&mut engine, "0s").await; // the calls run and report
    assert_eq!(rig.resource("r1").state, State::Purged);
    assert_eq!(exists(&data), [false, false]);
    assert!(offered(&rig, t0() + chrono::Duration::days(3650)).is_empty(), "purged: nothing left to index");
}

#[tokio::test]
async fn issue_11_a_call_stopped_by_a_pause_while_it_waited_puts_its_resource_back_at_its_due_time() {
    let rig = Rig::new("");
    let (mut engine, data) = released_with_calls_queued(&rig).await;
    assert!(offered(&rig, t0()).is_empty());

    // A pause reaches the calls while they wait for their permits: they
    // report that they did not run.
    engine.calls.set_gate(false);
    while !engine.calls.is_empty() {
        let first = engine.rx.recv().await.unwrap();
        let cmds = engine.gather(first);
        // Keep the gate shut for the step (as a stored pause would).
        engine.safety.paused = true;
        engine.step(cmds).await.unwrap();
    }
    assert_eq!(exists(&data), [true, true], "nothing was called");
    assert_eq!(offered(&rig, t0()), ["r1"], "its intent is due again, not parked until the lease ends");

    engine.safety.paused = false;
    advance(&mut engine, "0s").await;
    assert_eq!(rig.resource("r1").state, State::Purged, "resumed without waiting for a lease");
    assert_eq!(exists(&data), [false, false]);
}

/// Issue 11: a sweep's slices are read off the engine's thread, and a
/// slice that finds nothing out of step costs the engine no step and no
/// flush (at 10M, a step and a flush after every slice of a reconcile held
/// requests for hundreds of milliseconds).
#[tokio::test]
async fn issue_11_a_sweep_slice_that_finds_nothing_costs_no_flush() {
    let rig = Rig::new("");
    let (store, ledger) = flush_ledger();
    let (mut engine, _handle) = rig.open_on(store.clone()).await;
    engine.sweep_slice = 2;
    let ids = ["r1", "r2", "r3", "r4", "r5"];
    ingest(&mut engine, ids.iter().map(|id| created(id)).collect()).await;
    let flushes = || ledger.lock().unwrap().flushes;
    let before = flushes();
    let (reply, mut answer) = oneshot::channel();
    engine.sweeps.push_back(admin::SweepRun::new(SweepKind::Reconcile, Some(reply)));
    let mut slices = 0;
    while !engine.sweeps.is_empty() {
        engine.sweep_step().await.unwrap();
        slices += 1;
    }
    let report = answer.try_recv().expect("answered").unwrap();
    assert_eq!((slices, report.checked, report.fixed), (3, 5, 0));
    assert_eq!(flushes(), before, "nothing to repair: no flush");
}

/// A resource the engine rewrote after its slice was read is judged by its
/// record as it is now: the engine indexed it with that write, so the
/// sweep's stale view is neither repaired nor counted.
#[tokio::test]
async fn issue_11_a_sweep_does_not_repair_from_a_slice_read_before_a_write() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    ingest(&mut engine, vec![created("r1"), created("r2")]).await;
    // r1's index entry lost (as a crash of an older build could leave it).
    let mut w = WriteSet::default();
    w.put_resource(rig.resource("r1"), Some(t0() + chrono::Duration::days(999)));
    rig.store.commit(w).unwrap();
    let (reply, mut answer) = oneshot::channel();
    engine.sweeps.push_back(admin::SweepRun::new(SweepKind::Reconcile, Some(reply)));
    engine.start_sweep_read();
    let read = engine.sweep_read.take().unwrap().await;
    // Meanwhile r1 is terminated: the engine writes it with its due time.
    let terminated = event("x1", "resource.terminated", t0(), "r1", json!({"reason": "agreement"}));
    assert_eq!(ingest(&mut engine, vec![terminated]).await, ["applied"]);
    engine.sweep_read_done(read).await.unwrap();
    let report = answer.try_recv().expect("answered").unwrap();
    assert_eq!((report.checked, report.fixed), (2, 0), "r1 changed since the read: not the sweep's to repair");
    let due = t0() + chrono::Duration::days(15);
    assert_eq!(offered(&rig, due), ["r1"], "indexed at its buffer's end by the engine's own write");
}

/// Issue 11, point 4: `apply-policy` reads the records a slice at a time
/// off the engine's thread, as a sweep does (it read every record in one
/// step: minutes at 10 million); requests are answered between slices,
/// and the operator is answered, and `policy.applied` recorded once, when
/// the last slice is done (issue 5: a longer buffer moves each running
/// deletion later).
#[tokio::test]
async fn issue_11_apply_policy_runs_in_slices_and_answers_when_done() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    engine.sweep_slice = 2;
    let ids = ["r1", "r2", "r3", "r4", "r5"];
    ingest(&mut engine, ids.iter().map(|id| created(id)).collect()).await;
    let terminated: Vec<Event> = ids[..4]
        .iter()
        .map(|id| event(&format!("x-{id}"), "resource.terminated", t0(), id, json!({"reason": "agreement"})))
        .collect();
    ingest(&mut engine, terminated).await;
    engine.config = rig.with_termination_buffer("40d");

    let mut answer = step_only(&mut engine, |reply| Command::ApplyPolicy { product: "ecs".into(), reply }).await;
    engine.sweep_step().await.unwrap(); // r1, r2
    assert!(answer.try_recv().is_err(), "five resources, two a slice: not done after one");
    let mut ingest_answer =
        step_only(&mut engine, |reply| Command::Ingest { events: vec![created("r6")], reply }).await;
    assert_eq!(ingest_answer.try_recv().unwrap().unwrap()[0].status, "applied", "answered between slices");
    assert!(answer.try_recv().is_err(), "the pass is still under way");
    while !engine.sweeps.is_empty() {
        engine.sweep_step().await.unwrap();
    }

    let report = answer.try_recv().expect("answered when the last slice is done").unwrap();
    let moved: Vec<&str> = report.rescheduled.iter().map(|m| m.resource.as_str()).collect();
    assert_eq!(moved, ["r1", "r2", "r3", "r4"]);
    assert!(report.rescheduled.iter().all(|m| m.to == "2026-02-10T00:00:00Z"), "{:?}", report.rescheduled);
    assert_eq!(report.unchanged, 2, "r5 and r6 have no running buffer");
    assert_eq!(report.policy_version, engine.config.products["ecs"].version);
    let applied: Vec<AuditRecord> = audit(&engine).into_iter().filter(|r| r.kind == "policy.applied").collect();
    assert_eq!(applied.len(), 1, "recorded once, with the totals");
    assert_eq!((applied[0].data["rescheduled"].clone(), applied[0].data["unchanged"].clone()), (json!(4), json!(2)));
    advance(&mut engine, "39d 23h").await;
    assert_eq!(rig.resource("r1").state, State::Retained, "the longer buffer holds");
}

/// A reload that changes the product's policy during an `apply-policy`
/// pass starts the pass again under the new policy: no resource is left
/// on the version the reload replaced while the answer names the new one
/// (had the replaced version been a mistaken shorter buffer, the
/// resources read before the reload would be deleted early).
#[tokio::test]
async fn apply_policy_starts_again_when_a_reload_changes_the_policy_midway() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    engine.sweep_slice = 2;
    let ids = ["r1", "r2", "r3", "r4", "r5"];
    ingest(&mut engine, ids.iter().map(|id| created(id)).collect()).await;
    let terminated: Vec<Event> = ids
        .iter()
        .map(|id| event(&format!("x-{id}"), "resource.terminated", t0(), id, json!({"reason": "agreement"})))
        .collect();
    ingest(&mut engine, terminated).await;
    engine.config = rig.with_termination_buffer("40d");

    let mut answer = step_only(&mut engine, |reply| Command::ApplyPolicy { product: "ecs".into(), reply }).await;
    engine.sweep_step().await.unwrap(); // r1, r2 moved to the 40-day date
    assert_eq!(rig.resource("r1").deletion_date(), Some(t0() + chrono::Duration::days(40)));
    engine.config = rig.with_termination_buffer("60d"); // a reload, as Engine::reload puts it in force
    while !engine.sweeps.is_empty() {
        engine.sweep_step().await.unwrap();
    }

    let report = answer.try_recv().expect("answered when the pass is done").unwrap();
    assert_eq!(report.policy_version, engine.config.products["ecs"].version, "the policy in force at the end");
    let moved: Vec<&str> = report.rescheduled.iter().map(|m| m.resource.as_str()).collect();
    assert_eq!(moved, ["r1", "r2", "r3", "r4", "r5"], "the whole pass again, under the new policy");
    for id in ids {
        assert_eq!(rig.resource(id).deletion_date(), Some(t0() + chrono::Duration::days(60)), "{id}");
    }
    let applied = audit(&engine).into_iter().filter(|r| r.kind == "policy.applied").count();
    assert_eq!(applied, 1, "one pass recorded, the one that finished");
}

#[tokio::test]
async fn issue_11_a_sweep_runs_in_slices_and_requests_are_answered_between_them() {
    let rig = Rig::new("");
    let mut engine = rig.open().await;
    engine.sweep_slice = 2;
    let ids = ["r1", "r2", "r3", "r4", "r5"];
    ingest(&mut engine, ids.iter().map(|id| created(id)).collect()).await;
    // Two index entries lost (as a crash of an older build could leave
    // them): the reconcile sweep is what puts them back.
    for id in ["r2", "r5"] {
        let mut w = WriteSet::default();
        w.put_resource(rig.resource(id), Some(t0() + chrono::Duration::days(999)));
        rig.store.commit(w).unwrap();
    }

    let mut sweep_answer = step_only(&mut engine, |reply| Command::Sweep { kind: SweepKind::Reconcile, reply }).await;
    engine.sweep_step().await.unwrap(); // r1, r2
    assert!(sweep_answer.try_recv().is_err(), "five resources, two a slice: not done after one");

    // A request that comes meanwhile is answered before the sweep ends.
    let mut ingest_answer =
        step_only(&mut engine, |reply| Command::Ingest { events: vec![created("r6")], reply }).await;
    assert_eq!(ingest_answer.try_recv().unwrap().unwrap()[0].status, "applied");
    assert!(sweep_answer.try_recv().is_err(), "the sweep is still under way");

    let mut slices = 1;
    while !engine.sweeps.is_empty() {
        engine.sweep_step().await.unwrap();
        slices += 1;
    }
    let report = sweep_answer.try_recv().expect("answered when the last slice is done").unwrap();
    assert_eq!(slices, 4, "r1-r2, r3-r4, r5-r6, and an empty slice that ends it");
    assert_eq!((report.checked, report.fixed), (6, 2), "r6, created meanwhile, is read too");
    assert_eq!(offered(&rig, t0() + chrono::Duration::days(1000)), Vec::<String>::new(), "both repaired");
    let repaired: Vec<AuditRecord> = audit(&engine).into_iter().filter(|r| r.kind == "sweep.repaired").collect();
    assert_eq!(repaired.len(), 1, "recorded once, with the totals");
    assert_eq!((repaired[0].data["checked"].clone(), repaired[0].data["fixed"].clone()), (json!(6), json!(2)));
}
