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
//! The same crash points in the middle of privacy requests' fan-out
//! (issue 12): each erasure request calls two personal stores for two
//! classes; after the restart every acknowledged request completes, each
//! store's erasure is recorded once, and the log verifies.
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
async fn open(config: Arc<Config>, store: Arc<dyn Store>) -> (Engine, EngineHandle) {
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

/// The crashed child's database, opened by the parent. The child is gone,
/// but an executor call it had just forked (the `command` executor's
/// program) shares its open files, sled's lock among them, until it
/// execs: on a loaded machine that can outlast the child by a moment
/// (seen once in CI as "could not acquire lock"). So a lock still held is
/// waited for, a few seconds at most; any other error fails at once.
fn reopen(dir: &Path) -> SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(&db(dir), 1 << 22) {
            Ok(store) => return store,
            Err(e) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("reopening the crashed child's database: {e}"),
        }
    }
}

/// The store of the crashing side: sled, hooked to abort at the `n`th
/// call of the point `spec` names (`point:n`).
fn crashing_store(dir: &Path, spec: &str) -> Hooked<SledStore> {
    let (point, n) = spec.split_once(':').unwrap();
    let (point, n) = (Point::parse(point), n.parse::<usize>().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let hit = move |calls: &AtomicUsize| {
        if calls.fetch_add(1, Ordering::SeqCst) + 1 == n {
            std::process::abort();
        }
    };
    let store = Hooked::new(SledStore::open(&db(dir), 1 << 22).unwrap());
    match point {
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
    }
}

/// The crashing side: aborts at its crash point (see
/// [`crashing_store`]); prints `acked <request>` for each answered request.
fn child(spec: &str) {
    let dir = PathBuf::from(std::env::var("RETENTIOND_CRASH_DIR").unwrap());
    let store = crashing_store(&dir, spec);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (engine, handle) = open(config(&dir), Arc::new(store)).await;
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
    let store: Arc<SledStore> = Arc::new(reopen(dir));
    let (engine, handle) = open(config(dir), store.clone()).await;
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

/// Runs this test binary's test `name` as the crashing child at each
/// point, `runs` times each (crashing at the 1st, 2nd, .. call), and
/// `check`s what each run left; at least `min_crashed` runs of each point
/// must have crashed.
fn crash_each_point(name: &str, runs: impl Iterator<Item = usize> + Clone, min_crashed: usize, check: CheckFn) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let exe = std::env::current_exe().unwrap();
    for point in [Point::BeforeCommit, Point::BeforeFlush, Point::AfterFlush] {
        let mut crashed = 0;
        for n in runs.clone() {
            let dir = tempfile::tempdir().unwrap();
            let out = std::process::Command::new(&exe)
                .args(["--exact", name, "--nocapture"])
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
            rt.block_on(check(dir.path().to_path_buf(), acked, label));
        }
        assert!(crashed >= min_crashed, "{}: only {crashed} of the runs reached their crash point", point.name());
    }
}

/// The parent's checks, as `crash_each_point` calls them.
type CheckFn = fn(PathBuf, Vec<usize>, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

#[test]
fn a_crash_at_each_point_of_a_group_loses_nothing_acknowledged() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    crash_each_point("a_crash_at_each_point_of_a_group_loses_nothing_acknowledged", 1..=12, 6, |dir, acked, label| {
        Box::pin(async move { check(&dir, &acked, &label).await })
    });
}

#[test]
fn a_crash_in_the_middle_of_privacy_requests_fan_out_resumes_it() {
    if let Ok(spec) = std::env::var(CHILD) {
        privacy::child(&spec);
        return;
    }
    crash_each_point(
        "a_crash_in_the_middle_of_privacy_requests_fan_out_resumes_it",
        [1, 2, 3, 4, 6, 9, 13].into_iter(),
        5,
        |dir, acked, label| Box::pin(async move { privacy::check(&dir, &acked, &label).await }),
    );
}

/// Issue 12: erasure requests through two personal stores, crashed in
/// the middle of their fan-out.
mod privacy {
    use super::*;

    /// Requests the child sends, one after another (each for a subject of
    /// its own, registered in the same request).
    const REQUESTS: usize = 3;

    /// Two personal stores: `files` (an `fs` store, the contact class) and
    /// `crm` (a program recording each call in `crm.log`: the contact
    /// class deleted, billing records anonymised); requests approved as
    /// soon as verified.
    pub(super) fn config(dir: &Path) -> Arc<Config> {
        let files = dir.join("personal");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join(".retentiond-root"), "").unwrap();
        let crm = common::script(dir, "crm.sh", &format!("echo \"$@\" >> {}", dir.join("crm.log").display()));
        common::engine_config(
            dir,
            &format!(
                r#"
[stores.files]
class = "online"
data = "personal"
executor = {{ kind = "fs", root = "{files}", path = "{{tenant}}/{{subject}}" }}

[stores.crm]
class = "online"
data = "personal"
executor = {{ kind = "command", argv = ["{crm}", "{{action}}", "{{tenant}}", "{{subject}}", "{{class}}"] }}

[privacy]
auto_approve = true

[privacy.classes.contact]
stores = ["files", "crm"]
after_closure = "30d"
erasure = "delete"

[privacy.classes.billing]
stores = ["crm"]
after_closure = "400d"
erasure = "anonymize"
"#,
                files = files.display(),
                crm = crm.display(),
            ),
        )
    }

    fn subject(req: usize) -> String {
        format!("u{req}")
    }

    /// Request `req`: its subject registered, and its verified erasure
    /// request, executed at once.
    fn request(req: usize) -> Vec<retentiond::domain::event::Event> {
        let u = subject(req);
        [
            json!({"event_id": format!("s-{u}"), "type": "subject.created", "at": T0, "tenant": "t1", "subject": u}),
            json!({"event_id": format!("q-{u}"), "type": "erasure.requested", "at": T0, "tenant": "t1", "subject": u,
                   "request_id": format!("q{req}"), "grounds": ["consent_withdrawn"], "verified": true}),
        ]
        .iter()
        .map(|v| retentiond::domain::event::parse_event(v).unwrap())
        .collect()
    }

    /// The crashing side, as [`super::child`] for these requests.
    pub(super) fn child(spec: &str) {
        let dir = PathBuf::from(std::env::var("RETENTIOND_CRASH_DIR").unwrap());
        // Every subject's contact data, before anything can crash.
        for req in 0..REQUESTS {
            let data = dir.join("personal/t1").join(subject(req));
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("profile.json"), b"{}").unwrap();
        }
        let store = crashing_store(&dir, spec);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (engine, handle) = open(config(&dir), Arc::new(store)).await;
            let (_stop, stop_rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(engine.run(stop_rx));
            for req in 0..REQUESTS {
                let results = handle.ingest(request(req)).await.expect("ingested");
                assert!(results.iter().all(|r| r.status == "applied"), "{results:?}");
                println!("acked {req}");
            }
            let _ = handle.move_clock(retentiond::engine::ClockOp::Advance("1s".parse().unwrap())).await;
            println!("finished");
            drop(handle);
            task.abort();
        });
    }

    /// After the restart: every acknowledged request (and any other that
    /// was stored) completes in every store, each erasure is recorded once,
    /// and the log verifies, level with the database.
    pub(super) async fn check(dir: &Path, acked: &[usize], label: &str) {
        let store: Arc<SledStore> = Arc::new(reopen(dir));
        let (engine, handle) = open(config(dir), store.clone()).await;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(engine.run(stop_rx));
        handle.move_clock(retentiond::engine::ClockOp::Advance("1s".parse().unwrap())).await.expect("clock moved");
        let calls = std::fs::read_to_string(dir.join("crm.log")).unwrap_or_default();
        let mut stored = 0;
        for req in 0..REQUESTS {
            let u = subject(req);
            let key = retentiond::store::SubjectKey { tenant: "t1".into(), subject: u.clone() };
            let Some(s) = store.subject(&key).unwrap() else {
                assert!(!acked.contains(&req), "{label}: acknowledged request {req} was lost");
                // Lost with its group: nothing acted on it (intent first).
                assert!(dir.join("personal/t1").join(&u).exists(), "{label}: {u} erased, its request lost");
                assert!(!calls.contains(&format!(" {u} ")), "{label}: the crm was called for {u}, its request lost");
                continue;
            };
            stored += 1;
            let r = s.requests.iter().find(|r| r.id == format!("q{req}"));
            let r = r.unwrap_or_else(|| panic!("{label}: {u} registered without its request: half applied"));
            assert_eq!(r.state.as_str(), "completed", "{label}: q{req} did not resume: {s:?}");
            assert!(!dir.join("personal/t1").join(&u).exists(), "{label}: {u}'s contact data is still there");
            for call in [format!("delete t1 {u} contact"), format!("anonymize t1 {u} billing")] {
                assert!(calls.lines().any(|l| l == call), "{label}: {call:?} never reached the crm: {calls}");
            }
        }
        stop.send(true).unwrap();
        task.await.unwrap().unwrap();
        drop(handle);
        let head = store.audit_head().unwrap();
        let report = retentiond::audit::verify(&dir.join("state/audit.jsonl"), Some(&head))
            .unwrap_or_else(|e| panic!("{label}: audit log does not verify: {e:?}"));
        assert_eq!(report.records, head.seq, "{label}");
        let text = std::fs::read_to_string(dir.join("state/audit.jsonl")).unwrap();
        let mut done = std::collections::BTreeMap::<(String, String, String), usize>::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if matches!(v["kind"].as_str(), Some("personal.erased" | "personal.anonymized" | "request.completed")) {
                let field = |k: &str| v["data"][k].as_str().unwrap_or_default().to_string();
                *done.entry((field("subject"), field("class"), field("store"))).or_default() += 1;
            }
        }
        assert!(done.values().all(|n| *n == 1), "{label}: an erasure or completion recorded twice: {done:?}");
        assert_eq!(done.len(), stored * 4, "{label}: three erasures and a completion per request: {done:?}");
    }
}
