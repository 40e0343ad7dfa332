//! The engine on the in-memory store (`store::MemoryStore`): what events and
//! an operator's pause leave in the store, read straight from it, with no
//! database directory (the audit log still lives in a temporary one).

mod common;

use retentiond::audit::AuditLog;
use retentiond::clock::{Clock, ManualClock};
use retentiond::config::Config;
use retentiond::domain::lifecycle::State;
use retentiond::engine::{Engine, EngineError, EngineHandle};
use retentiond::store::{EventOutcome, Flag, MemoryStore, Store};
use retentiond::time::{parse_rfc3339, Timestamp};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use common::T0;

fn ts(s: &str) -> Timestamp {
    parse_rfc3339(s).unwrap()
}

/// One online store, product `ecs` with 15-day buffers, the manual clock
/// at T0; state (the audit log) under `dir`.
fn config(dir: &std::path::Path) -> Arc<Config> {
    common::engine_config(dir, "")
}

/// An engine running on `store`, as the daemon starts one.
struct Running {
    handle: EngineHandle,
    gates: watch::Receiver<retentiond::service::Gates>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), EngineError>>,
}

async fn start(store: &Arc<MemoryStore>, config: &Arc<Config>) -> Running {
    let audit = AuditLog::open(&config.daemon.state_dir, None).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(ts(T0)));
    let metrics = Arc::new(retentiond::metrics::Metrics::new());
    let (mut engine, handle) = Engine::open(store.clone(), audit, clock, config.clone(), metrics).unwrap();
    engine.catch_up().await.unwrap();
    let gates = engine.gates();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(engine.run(stop_rx));
    Running { handle, gates, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

async fn ingest(handle: &EngineHandle, events: &[serde_json::Value]) -> Vec<&'static str> {
    let events = events.iter().map(|e| retentiond::domain::event::parse_event(e).unwrap()).collect();
    handle.ingest(events).await.unwrap().into_iter().map(|r| r.status).collect()
}

#[tokio::test]
async fn events_applied_by_the_engine_are_in_the_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let store = Arc::new(MemoryStore::new());
    let engine = start(&store, &config).await;
    let created = json!({"event_id": "e1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                         "product": "ecs", "billing": "postpaid"});
    let terminated = json!({"event_id": "e2", "type": "resource.terminated", "at": T0, "tenant": "t1",
                            "resource": "r1", "reason": "agreement"});
    assert_eq!(ingest(&engine.handle, &[created, terminated.clone()]).await, vec!["applied", "applied"]);

    let r = store.resource("r1").unwrap().expect("the resource is stored");
    assert_eq!(r.state, State::Retained);
    assert_eq!(store.tenant_resources("t1").unwrap(), vec!["r1".to_string()]);
    assert_eq!(
        store.event("e2").unwrap(),
        Some(EventOutcome { status: "applied".into(), resource: Some("r1".into()) })
    );
    // The buffer's end is in the deadline index, no later than 15 days on.
    let mut dues = Vec::new();
    dues.extend(store.resources_after(None, usize::MAX).unwrap().into_iter().map(|(r, due)| (r.id, due)));
    let [(id, Some(due))] = &dues[..] else { panic!("one deadline expected: {dues:?}") };
    assert_eq!(id, "r1");
    assert!(*due > ts(T0) && *due <= ts("2026-01-16T00:00:00Z"), "{due}");
    assert_eq!(store.next_due_after(ts(T0)).unwrap(), Some(*due));
    assert!(store.audit_head().unwrap().seq >= 2, "the steps are in the audit chain");

    // A repeat is answered from the stored outcome.
    assert_eq!(ingest(&engine.handle, &[terminated]).await, vec!["duplicate"]);
    engine.stop().await;
}

#[tokio::test]
async fn a_pause_is_read_back_from_the_memory_store_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let store = Arc::new(MemoryStore::new());
    let engine = start(&store, &config).await;
    assert!(!store.flag(Flag::Paused).unwrap());
    engine.handle.set_paused(true).await.unwrap();
    assert!(store.flag(Flag::Paused).unwrap());
    engine.stop().await;

    // A new engine on the same store starts paused.
    let mut engine = start(&store, &config).await;
    let paused = tokio::time::timeout(Duration::from_secs(10), engine.gates.wait_for(|g| g.paused))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(paused, "the restarted engine is not paused");
    engine.handle.set_paused(false).await.unwrap();
    assert!(!store.flag(Flag::Paused).unwrap());
    engine.stop().await;
}
