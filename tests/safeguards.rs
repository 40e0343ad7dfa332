//! The daemon-wide safeguards of product-spec §3 `[safety]`: a wall-clock
//! jump and a pause each stop deletions until an operator lifts them;
//! nothing is deleted meanwhile and every deadline is kept. The
//! mass-deletion guard has its own file, `tests/guard.rs`.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const TERM_END: &str = "2026-02-01T00:00:00Z";

/// safety.max_clock_jump: someone sets the machine's clock a year ahead:
/// nothing is deleted until an operator approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jump_stops_deletions_until_approved() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.jump_clock("2027-01-01T00:00:00Z").await;
    assert!(data.exists());
    assert_eq!(h.audit().iter().filter(|r| r["kind"] == "clock.anomaly").count(), 1);
    let (_, v) = h.get_as(AUDITOR, "/v1/deletions?before=2028-01-01T00:00:00Z").await;
    assert_eq!(v["deletions"][0]["blockers"], json!(["clock_anomaly"]));
    // Time passing normally does not lift it.
    h.advance("2d").await;
    assert!(data.exists());
    let (status, _) = h.post_as(AUDITOR, "/v1/admin/approve", &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = h.post_as(OPERATOR, "/v1/admin/approve", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["approved"], json!(["clock_anomaly"]));
    h.advance("0s").await;
    assert!(!data.exists());
}

/// A small jump within max_clock_jump (NTP slewing) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_clock_correction_is_not_an_anomaly() {
    let h = Harness::start().await;
    h.jump_clock("2026-01-01T00:59:00Z").await;
    h.jump_clock("2026-01-01T00:01:00Z").await;
    assert!(h.audit().iter().all(|r| r["kind"] != "clock.anomaly"));
}

/// A pause reaches executor calls already queued behind the concurrency
/// limit: after the pause is acknowledged, at most the running call ends.
/// Found in review: queued calls used to run anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_executor_calls_already_queued() {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    // Waits until the test opens the gate, then deletes: a slow store.
    let body = format!("while [ ! -e {} ]; do sleep 0.01; done\nexec rm -rf -- \"$1/$2/$3\"", gate.display());
    let script = script(dir.path(), "gated-rm", &body);
    let cfg = base_config("")
        .replace("state_dir = \"state\"", "state_dir = \"state\"\nexecutor_concurrency = 1")
        .replace(
            "executor = { kind = \"fs\", root = \"data\", path = \"{tenant}/{resource}\" }",
            &format!(
                "executor = {{ kind = \"command\", argv = [\"{}\", \"DATA\", \"{{tenant}}\", \"{{resource}}\"], timeout = \"1m\" }}",
                script.display()
            ),
        );
    let mut h = Harness::with_config(&cfg).await;
    let data_root = h.dir.path().join("data");
    h.stop().await;
    h.start_with(&cfg.replace("DATA", &data_root.display().to_string())).await;

    let mut paths = Vec::new();
    let mut releases = Vec::new();
    for i in 0..5 {
        let r = format!("r{i}");
        paths.push(h.make_data("t1", &r));
        h.apply(created(&format!("c{i}"), "t1", &r, "2030-01-01T00:00:00Z")).await;
        releases.push(
            json!({"event_id": format!("x{i}"), "type": "resource.released", "at": T0, "tenant": "t1", "resource": r}),
        );
    }
    h.events(json!(releases)).await; // one call runs (waiting on the gate), four queue
    let (status, _) = h.post_as(OPERATOR, "/v1/admin/pause", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    std::fs::write(&gate, b"open").unwrap();
    h.advance("0s").await; // returns when no call is in flight
    let gone = paths.iter().filter(|p| !p.exists()).count();
    assert!(gone <= 1, "{gone} of 5 deleted after the pause was acknowledged");
    let states: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..5 {
            v.push(h.resource(&format!("r{i}")).await["state"].as_str().unwrap().to_string());
        }
        v
    };
    assert!(states.iter().filter(|s| *s == "deleting").count() >= 4, "{states:?}");

    h.post_as(OPERATOR, "/v1/admin/resume", &json!({})).await;
    h.advance("0s").await;
    assert_eq!(paths.iter().filter(|p| !p.exists()).count(), 5);
}
