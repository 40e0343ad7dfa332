//! Scale: N tracked resources in one daemon (the release binary as a child
//! process). Reports ingest time, resident memory, bytes per resource on
//! disk (database and audit log apart), how long `GET /metrics` and the
//! forecast take and how much they, and a reconcile sweep, delay a durable
//! one-event request sent every 20 ms beside them, the time from a restart
//! to ready (after the ingest, and again with nothing written since), and
//! `retentiond audit verify` in records per second. Asserts
//! nothing.
//!
//!     cargo bench --bench scale                         # N = 1,000,000
//!     BENCH_SCALE=100000 BENCH_RECORD=1 cargo bench --bench scale
//!     BENCH_KEEP=1 cargo bench --bench scale            # keep the state dir, to profile on it
//!
//! Half the resources are prepaid with term ends spread over 2026 (so the
//! due index is full and a month's forecast holds about 1/24 of them), half
//! postpaid. The clock is manual, so none fires; the reconcile sweep runs on
//! its cron (every BENCH_SWEEP_EVERY seconds, default 120). BENCH_CACHE sets
//! the daemon's `cache_capacity` in bytes (default: the daemon's own).

mod common;

use common::{config_text, env_usize, ms, per_s, percentile, post_all, quick, thousands, ChildDaemon, Report, TOKEN};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Durable one-event requests sent every 20 ms, each timed on its own task
/// (so a stalled one does not hide the next).
struct Probe {
    samples: Arc<Mutex<Vec<(Duration, Duration)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    origin: Instant,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    fn start(base: &str, client: &reqwest::Client, origin: Instant) -> Probe {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, st2, client, url) = (samples.clone(), stop.clone(), client.clone(), format!("{base}/v1/events"));
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut i = 0u64;
            let mut inflight = Vec::new();
            while !st2.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                i += 1;
                let (client, url, s) = (client.clone(), url.clone(), s2.clone());
                inflight.push(tokio::spawn(async move {
                    let body = json!({"event_id": format!("probe-{i}"), "type": "resource.created", "at": "2026-01-01T00:00:00Z",
                                      "tenant": "probe", "resource": format!("probe-r{i}"), "product": "ecs", "billing": "postpaid"});
                    let sent = Instant::now();
                    let r = client.post(&url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    let _ = r.bytes().await;
                    s.lock().unwrap().push((sent - origin, sent.elapsed()));
                }));
            }
            for t in inflight {
                t.await.unwrap();
            }
        });
        Probe { samples, stop, origin, task }
    }

    /// Latencies of the probes sent within [from, to) after the origin.
    fn window(&self, from: Duration, to: Duration) -> Vec<Duration> {
        let mut v: Vec<Duration> =
            self.samples.lock().unwrap().iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, l)| *l).collect();
        v.sort();
        v
    }

    async fn finish(self) -> Vec<Duration> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        let _ = self.origin;
        let mut v: Vec<Duration> = self.samples.lock().unwrap().iter().map(|(_, l)| *l).collect();
        v.sort();
        v
    }
}

fn describe(lat: &[Duration]) -> String {
    if lat.is_empty() {
        return "no probe".into();
    }
    format!(
        "p50 {} / p99 {} / max {} ({} probes)",
        ms(percentile(lat, 50.0)),
        ms(percentile(lat, 99.0)),
        ms(percentile(lat, 100.0)),
        lat.len()
    )
}

/// The reconcile sweep's cron for a period of `every` seconds (a divisor
/// of 60, or whole minutes dividing 60).
fn cron(every: u64) -> String {
    if every < 60 {
        format!("*/{every} * * * * *")
    } else {
        format!("0 */{} * * * *", every / 60)
    }
}

/// Time from now until the sweep's next tick (UTC seconds divisible by `every`).
fn until_tick(every: u64) -> Duration {
    let now = chrono::Utc::now();
    let secs = now.timestamp() as u64 % every;
    let nanos = now.timestamp_subsec_nanos() as u64;
    Duration::from_secs(every - secs) - Duration::from_nanos(nanos)
}

fn main() {
    let n = env_usize("BENCH_SCALE", if quick() { 2_000 } else { 1_000_000 });
    // The reconcile sweep runs every `every` seconds; the probe watches it
    // for a third of that, then the scrape and the forecast run alone.
    let every = env_usize("BENCH_SWEEP_EVERY", if quick() { 20 } else { 120 }) as u64;
    let sweep_window = Duration::from_secs(every / 3);
    let daemon = std::env::var("BENCH_CACHE").map(|c| format!("cache_capacity = {c}")).unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut report = Report::new(&format!("scale, {} resources", thousands(n as u64)), &["figure", "value"]);
        let client = common::client(16);
        let mut d = ChildDaemon::prepare(|port| {
            config_text(
                port,
                &daemon,
                common::MANUAL_CLOCK,
                "",
                common::BUFFERS_15D,
                &format!("[schedule]\nreconcile = \"{}\"\nbackup_expiry = \"off\"", cron(every)),
            )
        });
        let ready = d.start(&client).await;
        report.row(vec!["start to ready, empty".into(), ms(ready)]);

        let year = 365 * 86_400;
        let ingest = post_all(&d.base, &client, n, 1000, 4, move |i| {
            if i % 2 == 0 {
                let end = chrono::DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z").unwrap()
                    + chrono::Duration::seconds(((i as u64 * 7919) % year) as i64);
                json!({"event_id": format!("e{i}"), "type": "resource.created", "at": "2026-01-01T00:00:00Z",
                       "tenant": format!("t{}", i % 10_000), "resource": format!("r{i}"), "product": "ecs",
                       "billing": "prepaid", "term_end": end.format("%Y-%m-%dT%H:%M:%SZ").to_string()})
            } else {
                json!({"event_id": format!("e{i}"), "type": "resource.created", "at": "2026-01-01T00:00:00Z",
                       "tenant": format!("t{}", i % 10_000), "resource": format!("r{i}"), "product": "ecs", "billing": "postpaid"})
            }
        })
        .await;
        report.row(vec![format!("ingest of {} (1,000 per request, 4 clients)", thousands(n as u64)), format!("{:.1} s, {}", ingest.as_secs_f64(), per_s(n, ingest))]);
        let (rss, hwm) = d.rss_mib();
        report.row(vec!["resident memory after ingest (VmRSS / VmHWM)".into(), format!("{rss:.0} MiB / {hwm:.0} MiB")]);
        let (db, audit) = d.disk_bytes();
        report.row(vec!["on disk: database, audit log (bytes a resource)".into(), format!("{} B, {} B", db / n as u64, audit / n as u64)]);

        // Latency beside a sweep, a scrape and a forecast, each alone.
        let wait = until_tick(every);
        println!("  waiting {:.0} s for the sweep's next tick", wait.as_secs_f64());
        tokio::time::sleep(wait.saturating_sub(Duration::from_secs(3))).await;
        let origin = Instant::now();
        let probe = Probe::start(&d.base, &client, origin);
        let three = Duration::from_secs(3);
        tokio::time::sleep(three + sweep_window).await; // 3 s idle, then the sweep from its tick on
        let idle = probe.window(Duration::ZERO, three);
        let sweep = probe.window(three, three + sweep_window);
        let m0 = origin.elapsed();
        let metrics = client.get(format!("{}/metrics", d.base)).bearer_auth(TOKEN).send().await.unwrap().bytes().await.unwrap();
        let m1 = origin.elapsed();
        let forecast = client
            .get(format!("{}/v1/deletions?before=2026-03-01T00:00:00Z", d.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let f1 = origin.elapsed();
        // The same forecast as `retentiond ctl forecast` reads it: pages of
        // 1,000 (`limit`), each from the `next` cursor of the one before.
        let mut pages = 0usize;
        let mut paged_bytes = 0usize;
        let mut next: Option<String> = None;
        loop {
            // The cursor is `h,<id>` or `d,<millis>,<id>`: ids and digits
            // only, nothing a query string must escape.
            let mut url = format!("{}/v1/deletions?before=2026-03-01T00:00:00Z&limit=1000", d.base);
            if let Some(after) = &next {
                url.push_str(&format!("&after={after}"));
            }
            let page = client.get(url).bearer_auth(TOKEN).send().await.unwrap().bytes().await.unwrap();
            paged_bytes += page.len();
            pages += 1;
            let v: serde_json::Value = serde_json::from_slice(&page).unwrap();
            match v["next"].as_str() {
                Some(n) => next = Some(n.to_string()),
                None => break,
            }
        }
        let p1 = origin.elapsed();
        let beside_metrics = probe.window(m0, m1);
        let beside_forecast = probe.window(m1, f1);
        let beside_paged = probe.window(f1, p1);
        let all = probe.finish().await;
        if p1 > three + Duration::from_secs(every) {
            report.note("the scrape and forecast ran into the next sweep: their windows overlap it".into());
        }
        report.row(vec!["one-event request, idle (3 s)".into(), describe(&idle)]);
        report.row(vec![
            format!("one-event request beside a reconcile sweep ({} s from its tick)", sweep_window.as_secs()),
            describe(&sweep),
        ]);
        report.row(vec![format!("GET /metrics ({} bytes)", metrics.len()), ms(m1 - m0)]);
        report.row(vec!["one-event request beside GET /metrics".into(), describe(&beside_metrics)]);
        report.row(vec![format!("GET /v1/deletions before 2026-03-01 ({} bytes)", thousands(forecast.len() as u64)), ms(f1 - m1)]);
        report.row(vec!["one-event request beside the forecast".into(), describe(&beside_forecast)]);
        report.row(vec![
            format!("the same forecast in pages of 1,000 ({pages} pages, {} bytes)", thousands(paged_bytes as u64)),
            ms(p1 - f1),
        ]);
        report.row(vec!["one-event request beside the paged forecast".into(), describe(&beside_paged)]);
        report.row(vec!["one-event request, whole run".into(), describe(&all)]);

        let stop = d.stop();
        let ready = d.start(&client).await;
        report.row(vec!["SIGTERM to exit; restart to ready".into(), format!("{}; {}", ms(stop), ms(ready))]);
        let (rss, _) = d.rss_mib();
        report.row(vec!["resident memory after restart".into(), format!("{rss:.0} MiB")]);
        // sled 0.34 writes its snapshot only when it opens, and replays the
        // log written since at the next open: the restart above replays the
        // whole ingest, this one only what the restart wrote.
        d.stop();
        let again = d.start(&client).await;
        report.row(vec!["restart again, nothing written since".into(), ms(again)]);
        d.stop();

        let started = Instant::now();
        let out = std::process::Command::new(common::binary())
            .args(["audit", "verify"])
            .arg(d.state().join("audit.jsonl"))
            .output()
            .unwrap();
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let records: usize =
            text.strip_prefix("ok: ").and_then(|t| t.split_whitespace().next()).and_then(|c| c.parse().ok()).unwrap_or(0);
        report.row(vec![
            format!("audit verify ({} records)", thousands(records as u64)),
            if out.status.success() { format!("{:.1} s, {}", took.as_secs_f64(), per_s(records, took)) } else { format!("failed: {text}") },
        ]);
        report.finish();
        if std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1") {
            // For a profile of the daemon on this state (perf, valgrind):
            // `retentiond serve --config <dir>/retentiond.toml`.
            let kept = d.dir.path().to_path_buf();
            std::mem::forget(d); // its daemon is stopped; its directory stays
            println!("state kept in {}", kept.display());
        }
    });
}
