//! The watchdog pings only while the engine loop is healthy (issue 5):
//! the engine runs on a store whose flush can be made to hang, as a failing
//! disk would; while it hangs no WATCHDOG=1 reaches the notify socket, and
//! the pings resume when it recovers.
//!
//! Alone in its test binary: it sets NOTIFY_SOCKET for the process.

use retentiond::audit::AuditLog;
use retentiond::clock::{Clock, ManualClock};
use retentiond::engine::Engine;
use retentiond::store::{Hooked, SledStore, Store};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When each WATCHDOG=1 arrived, read for `window`.
fn pings_during(sock: &UnixDatagram, window: Duration) -> Vec<Instant> {
    let end = Instant::now() + window;
    let mut at = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "WATCHDOG=1") {
                at.push(Instant::now());
            }
        }
    }
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_stop_while_the_loop_is_stuck_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    // This binary holds this one test, so no other thread reads the
    // environment while it is set.
    std::env::set_var("NOTIFY_SOCKET", &sock_path);

    let text = format!(
        "[daemon]\nstate_dir = \"{}\"\n[clock]\nsource = \"manual\"\nstart = \"2026-01-01T00:00:00Z\"\n",
        dir.path().join("state").display()
    );
    let config = Arc::new(retentiond::config::parse(&dir.path().join("r.toml"), &text).unwrap());
    std::fs::create_dir_all(&config.daemon.state_dir).unwrap();
    let stalled = Arc::new(AtomicBool::new(false));
    // A sled store whose flush blocks while `stalled` is set, as a failing
    // disk's would.
    let stall = stalled.clone();
    let store: Arc<dyn Store> = Arc::new(
        Hooked::new(SledStore::open(&config.daemon.state_dir.join("db"), 8 << 20).unwrap()).before_flush(move || {
            while stall.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }),
    );
    let audit = AuditLog::open(&config.daemon.state_dir, None).unwrap();
    let clock: Arc<dyn Clock> =
        Arc::new(ManualClock::new(retentiond::time::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()));
    let metrics = Arc::new(retentiond::metrics::Metrics::new());
    let (mut engine, _handle) = Engine::open(store, audit, clock, config, metrics).unwrap();
    engine.set_watchdog(Duration::from_millis(20));
    engine.catch_up().await.unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = engine.spawn(stop_rx); // on a thread of its own, as the daemon runs it

    let healthy = tokio::task::spawn_blocking({
        let sock = sock.try_clone().unwrap();
        move || pings_during(&sock, Duration::from_millis(300))
    })
    .await
    .unwrap();
    assert!(healthy.len() >= 5, "pings every 20 ms while healthy, got {}", healthy.len());

    // The disk hangs: the next step cannot complete, so no ping may come.
    stalled.store(true, Ordering::SeqCst);
    let sock2 = sock.try_clone().unwrap();
    let stuck = tokio::task::spawn_blocking(move || {
        // Let a step that had already passed its flush finish first.
        let _ = pings_during(&sock2, Duration::from_millis(100));
        pings_during(&sock2, Duration::from_millis(400))
    })
    .await
    .unwrap();
    assert!(stuck.is_empty(), "{} pings while the loop was stuck", stuck.len());

    stalled.store(false, Ordering::SeqCst);
    let recovered = tokio::task::spawn_blocking(move || pings_during(&sock, Duration::from_millis(300))).await.unwrap();
    assert!(!recovered.is_empty(), "pings resume once the loop completes a step again");

    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}
