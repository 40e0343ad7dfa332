//! A crash at each point of a group (issue 11): the engine writes a group's
//! changes to the store in one commit, flushes once, appends the audit
//! file once, and trims the outbox with the next group. This test kills the
//! process (`abort`, as abrupt as SIGKILL: sled loses what was not flushed)
//! before each commit, before each flush and after each flush, in turn, on
//! the real sled engine, then restarts on what is left on disk and checks
//! what an operator would: every acknowledged event is there, no request is
//! half-applied, the audit chain is whole and level with the database, and
//! the deletions that were under way finish with one completion record per
//! copy.
//!
//! The crashing process is this test binary run again with
//! `RETENTIOND_CRASH_CHILD` set (the parent never crashes).

mod common;

use retentiond::audit::AuditLog;
use retentiond::clock::{Clock, ManualClock};
use retentiond::config::Config;
use retentiond::engine::{Engine, EngineHandle};
use retentiond::store::{Hooked, SledStore, Store};
use retentiond::time::parse_rfc3339;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::T0;
const CHILD: &str = "RETENTIOND_CRASH_CHILD";
/// Requests the child sends, one after another.
const REQUESTS: usize = 6;
/// Events per request: created resources, of which the odd ones are
/// released in the same request (their deletion starts in that group).
const PER_REQUEST: usize = 8;

/// Where the child crashes: the `n`th call (from 1) of one kind.
#[derive(Clone, Copy, Debug)]
enum Point {
    BeforeCommit,
    BeforeFlush,
    AfterFlush,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::BeforeCommit => "before_commit",
            Point::BeforeFlush => "before_flush",
            Point::AfterFlush => "after_flush",
        }
    }

    fn parse(s: &str) -> Point {
        match s {
            "before_commit" => Point::BeforeCommit,
            "before_flush" => Point::BeforeFlush,
            "after_flush" => Point::AfterFlush,
            other => panic!("unknown crash point {other}"),
        }
    }
}

/// The engine's config, with the mass-deletion guard's limits lifted: the
/// test releases half its resources at once, on purpose.
fn config(dir: &Path) -> Arc<Config> {
    common::engine_config(dir, "\n[safety.guard]\nmin_resources = 1000000\nlong_max_resources = 1000000\n")
}

fn resource(req: usize, i: usize) -> String {
    format!("r{req}-{i}")
}

/// Request `req`: resources created (their business data written as files
/// first), the odd ones released at once.
fn request(dir: &Path, req: usize) -> Vec<retentiond::domain::event::Event> {
    let mut events = Vec::new();
    for i in 0..PER_REQUEST {
        let id = resource(req, i);
        let data = dir.join("data/t1").join(&id);
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("blob"), b"business data").unwrap();
        events.push(json!({"event_id": format!("c-{id}"), "type": "resource.created", "at": T0, "tenant": "t1",
                           "resource": id, "product": "ecs", "billing": "postpaid"}));
        if i % 2 == 1 {
            events.push(json!({"event_id": format!("x-{id}"), "type": "resource.released", "at": T0,
                               "tenant": "t1", "resource": id}));
        }
    }
    events.iter().map(|v| retentiond::domain::event::parse_event(v).unwrap()).collect()
}

/// Opens the engine on what `dir` holds, as the daemon does at start.
async fn open(dir: &Path, store: Arc<dyn Store>) -> (Engine, EngineHandle) {
    let config = config(dir);
    let audit = AuditLog::open(&config.daemon.state_dir, None).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(parse_rfc3339(T0).unwrap()));
    let metrics = Arc::new(retentiond::metrics::Metrics::new());
    let (mut engine, handle) = Engine::open(store, audit, clock, config, metrics).expect("the engine opens");
    engine.catch_up().await.expect("the engine catches up");
    (engine, handle)
}

fn db(dir: &Path) -> PathBuf {
    dir.join("state/db")
}

/// The crashing side: counts calls of the chosen kind and aborts at the
/// `n`th; prints `acked <request>` for each answered request.
fn child(spec: &str) {
    let (point, n) = spec.split_once(':').unwrap();
    let (point, n) = (Point::parse(point), n.parse::<usize>().unwrap());
    let dir = PathBuf::from(std::env::var("RETENTIOND_CRASH_DIR").unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let hit = move |calls: &AtomicUsize| {
        if calls.fetch_add(1, Ordering::SeqCst) + 1 == n {
            std::process::abort();
        }
    };
    let store = Hooked::new(SledStore::open(&db(&dir), 1 << 22).unwrap());
    let store = match point {
        Point::BeforeCommit => {
            let c = calls.clone();
            store.before_commit(move |_| hit(&c))
        }
        Point::BeforeFlush => {
            let c = calls.clone();
            store.before_flush(move || hit(&c))
        }
        Point::AfterFlush => {
            let c = calls.clone();
            store.after_flush(move || hit(&c))
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (engine, handle) = open(&dir, Arc::new(store)).await;
        let (_stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(engine.run(stop_rx));
        for req in 0..REQUESTS {
            let results = handle.ingest(request(&dir, req)).await.expect("ingested");
            assert!(results.iter().all(|r| r.status == "applied"), "{results:?}");
            println!("acked {req}");
        }
        // Let the deletions run their course (each copy result is a group).
        handle.ping().await.expect("pinged");
        let _ = handle.move_clock(retentiond::engine::ClockOp::Advance("1s".parse().unwrap())).await;
        println!("finished");
        drop(handle);
        task.abort();
    });
}

/// The parent's checks on what a crashed child left.
async fn check(dir: &Path, acked: &[usize], label: &str) {
    let store: Arc<SledStore> = Arc::new(SledStore::open(&db(dir), 1 << 22).unwrap());
    let (engine, handle) = open(dir, store.clone()).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(engine.run(stop_rx));
    // The deletions left under way (or never started) run now.
    handle.move_clock(retentiond::engine::ClockOp::Advance("1s".parse().unwrap())).await.expect("clock moved");
    for req in 0..REQUESTS {
        let stored: Vec<bool> =
            (0..PER_REQUEST).map(|i| store.event(&format!("c-{}", resource(req, i))).unwrap().is_some()).collect();
        // A request is applied whole or not at all.
        assert!(
            stored.iter().all(|s| *s) || stored.iter().all(|s| !*s),
            "{label}: request {req} half applied: {stored:?}"
        );
        if acked.contains(&req) {
            assert!(stored[0], "{label}: acknowledged request {req} was lost");
        }
        for i in 0..PER_REQUEST {
            let id = resource(req, i);
            let Some(r) = store.resource(&id).unwrap() else { continue };
            let data = dir.join("data/t1").join(&id);
            if i % 2 == 1 {
                assert_eq!(r.state.as_str(), "purged", "{label}: {id} released but not purged");
                assert!(!data.exists(), "{label}: {id}'s data is still there");
            } else {
                assert_eq!(r.state.as_str(), "active", "{label}: {id}");
                assert!(data.exists(), "{label}: {id}'s data was deleted");
            }
        }
    }
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    drop(handle);
    // The audit file verifies, ends where the database's head is, and
    // holds one completion record per deleted copy.
    let head = store.audit_head().unwrap();
    let report = retentiond::audit::verify(&dir.join("state/audit.jsonl"), Some(&head))
        .unwrap_or_else(|e| panic!("{label}: audit log does not verify: {e:?}"));
    assert_eq!(report.records, head.seq, "{label}");
    let text = std::fs::read_to_string(dir.join("state/audit.jsonl")).unwrap();
    let mut deleted = std::collections::BTreeMap::<String, usize>::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "copy.deleted" {
            *deleted.entry(v["resource"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert!(deleted.values().all(|n| *n == 1), "{label}: a copy was recorded deleted twice: {deleted:?}");
    let purged = (0..REQUESTS)
        .flat_map(|req| (0..PER_REQUEST).map(move |i| resource(req, i)))
        .filter(|id| store.resource(id).unwrap().is_some_and(|r| r.state.as_str() == "purged"))
        .count();
    assert_eq!(deleted.len(), purged, "{label}: one completion record per purged resource");
}

#[test]
fn a_crash_at_each_point_of_a_group_loses_nothing_acknowledged() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let exe = std::env::current_exe().unwrap();
    for point in [Point::BeforeCommit, Point::BeforeFlush, Point::AfterFlush] {
        let mut crashed = 0;
        for n in 1..=12 {
            let dir = tempfile::tempdir().unwrap();
            let out = std::process::Command::new(&exe)
                .args(["--exact", "a_crash_at_each_point_of_a_group_loses_nothing_acknowledged", "--nocapture"])
                .args(["--test-threads", "1"])
                .env(CHILD, format!("{}:{n}", point.name()))
                .env("RETENTIOND_CRASH_DIR", dir.path())
                .env("RUST_LOG", "off")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let acked: Vec<usize> =
                stdout.lines().filter_map(|l| l.strip_prefix("acked ")).map(|n| n.parse().unwrap()).collect();
            let finished = stdout.lines().any(|l| l == "finished");
            if !out.status.success() {
                crashed += 1;
            } else {
                assert!(finished, "{}:{n}: the child neither crashed nor finished: {stdout}", point.name());
            }
            let label = format!("{}:{n} ({} acked)", point.name(), acked.len());
            rt.block_on(check(dir.path(), &acked, &label));
        }
        assert!(crashed >= 6, "{}: only {crashed} of the runs reached their crash point", point.name());
    }
}
