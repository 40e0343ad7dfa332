//! Ingest benchmark: durable events per second through the HTTP API, one
//! event per request (many concurrent clients, so group commit can work) and
//! in batches. Reports figures; asserts nothing.
//!
//!     cargo bench --bench ingest
//!     BENCH_SINGLE=20000 BENCH_BATCHED=200000 BENCH_CLIENTS=64 cargo bench --bench ingest
//!
//! The daemon runs in-process on a temporary state dir (on the same disk as
//! the system temp dir: set TMPDIR to measure another disk), with a manual
//! clock so no deadline fires during the run.

use retentiond::auth::hash_token;
use retentiond::daemon::Daemon;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const TOKEN: &str = "bench-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn event(i: usize, tag: &str) -> Value {
    json!({"event_id": format!("{tag}-{i}"), "type": "resource.created", "at": "2026-01-01T00:00:00Z",
           "tenant": format!("t{}", i % 1000), "resource": format!("{tag}-r{i}"), "product": "ecs", "billing": "postpaid"})
}

/// Posts `total` events from `clients` concurrent clients, `batch` per
/// request (1: a single event object, not an array); returns events/s.
async fn run(
    base: &str,
    client: &reqwest::Client,
    tag: &'static str,
    total: usize,
    batch: usize,
    clients: usize,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, client, url) = (next.clone(), client.clone(), format!("{base}/v1/events"));
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let body = if batch == 1 {
                    event(first, tag)
                } else {
                    Value::Array((first..(first + batch).min(total)).map(|i| event(i, tag)).collect())
                };
                let resp = client.post(&url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let single = env_usize("BENCH_SINGLE", if quick { 200 } else { 20_000 });
    let batched = env_usize("BENCH_BATCHED", if quick { 2_000 } else { 200_000 });
    let batch = env_usize("BENCH_BATCH", 1_000);
    let clients = env_usize("BENCH_CLIENTS", 64);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tokens.toml"),
            format!("[[token]]\nname = \"bench\"\nrole = \"ingest\"\nsha256 = \"{}\"\n", hash_token(TOKEN)),
        )
        .unwrap();
        let config = r#"
[daemon]
state_dir = "state"
[clock]
source = "manual"
start = "2026-01-01T00:00:00Z"
[api]
listen = "127.0.0.1:0"
tokens_file = "tokens.toml"
[stores.primary]
class = "online"
executor = { kind = "fs", root = "data", path = "{tenant}/{resource}" }
[products.ecs]
stores = ["primary"]
buffer = { expiry = "15d", arrears = "15d", termination = "15d" }
"#;
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/.retentiond-root"), b"").unwrap();
        let path = dir.path().join("retentiond.toml");
        std::fs::write(&path, config).unwrap();
        let daemon = Daemon::start(retentiond::config::load(&path).unwrap()).await.unwrap();
        let base = format!("http://{}", daemon.addr);
        let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();

        let single_rate = run(&base, &client, "single", single, 1, clients).await;
        println!("single: {single} events, 1 per request, {clients} clients: {single_rate:.0} durable events/s");
        let batched_rate = run(&base, &client, "batch", batched, batch, 4).await;
        println!("batched: {batched} events, {batch} per request, 4 clients: {batched_rate:.0} durable events/s");
        daemon.shutdown().await.unwrap();
    });
}
