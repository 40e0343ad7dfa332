//! Ingest: durable events per second through the HTTP API, one event per
//! request (64 concurrent clients, so group commit can work) and 1,000 per
//! request (4 clients), next to the PostgreSQL peer doing the same in the
//! same run (benches/common/peer.rs). Reports figures; asserts nothing.
//!
//!     cargo bench --bench ingest
//!     BENCH_SINGLE=20000 BENCH_BATCHED=200000 BENCH_CLIENTS=64 BENCH_ROUNDS=2 cargo bench --bench ingest
//!     BENCH_RECORD=1 cargo bench --bench ingest      # also append to docs/benchmarks.md
//!
//! The daemon is the release binary, run as a child process on a temporary
//! state dir (TMPDIR picks the disk) with a manual clock, so no deadline
//! fires during the run; events are `resource.created`, postpaid.

mod common;

use common::peer::Peer;
use common::{config_text, env_usize, per_s, post_all, quick, ratio, ChildDaemon, Report};
use serde_json::{json, Value};

fn created(tag: &'static str) -> impl Fn(usize) -> Value + Send + Sync + 'static {
    move |i| {
        json!({"event_id": format!("{tag}-{i}"), "type": "resource.created", "at": "2026-01-01T00:00:00Z",
               "tenant": format!("t{}", i % 1000), "resource": format!("{tag}-r{i}"), "product": "ecs", "billing": "postpaid"})
    }
}

fn main() {
    let quick = quick();
    let single = env_usize("BENCH_SINGLE", if quick { 200 } else { 20_000 });
    let batched = env_usize("BENCH_BATCHED", if quick { 2_000 } else { 200_000 });
    let batch = env_usize("BENCH_BATCH", 1_000);
    let clients = env_usize("BENCH_CLIENTS", 64);
    let rounds = env_usize("BENCH_ROUNDS", 1);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut report = Report::new(
            "ingest, retentiond beside the PostgreSQL peer",
            &["round", "figure", "retentiond", "PostgreSQL peer", "ratio"],
        );
        let client = common::client(clients);
        let peer = Peer::open().await;
        for round in 1..=rounds {
            let mut d =
                ChildDaemon::prepare(|port| config_text(port, "", common::MANUAL_CLOCK, "", common::BUFFERS_15D, ""));
            d.start(&client).await;
            let ours_single = post_all(&d.base, &client, single, 1, clients, created("single")).await;
            let ours_batched = post_all(&d.base, &client, batched, batch, 4, created("batch")).await;
            d.stop();
            let (mut peer_single, mut peer_batched) = (None, None);
            if let Some(p) = &peer {
                p.clear().await;
                peer_single = Some(p.insert("single", single, 1, clients, "2027-01-01T00:00:00Z").await);
                peer_batched = Some(p.insert("batch", batched, batch, 4, "2027-01-01T00:00:00Z").await);
            }
            let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
            report.row(vec![
                round.to_string(),
                format!("durable ingest, 1 event per request, {clients} clients ({single} events)"),
                per_s(single, ours_single),
                peer_single.map(|d| per_s(single, d)).unwrap_or_else(|| "-".into()),
                ratio(rate(single, ours_single), peer_single.map(|d| rate(single, d))),
            ]);
            report.row(vec![
                round.to_string(),
                format!("durable ingest, {batch} per request, 4 clients ({batched} events)"),
                per_s(batched, ours_batched),
                peer_batched.map(|d| per_s(batched, d)).unwrap_or_else(|| "-".into()),
                ratio(rate(batched, ours_batched), peer_batched.map(|d| rate(batched, d))),
            ]);
        }
        if let Some(p) = peer {
            p.close().await;
        }
        report.finish();
    });
}
