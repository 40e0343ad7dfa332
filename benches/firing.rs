//! Firing: N deadlines due at the same instant, on the system clock, each
//! resource with one online copy whose deletion is a real `fs` executor call
//! that finds nothing to remove (the no-op executor). Reports copies deleted
//! per second from the deadline to the last one, and each copy's lateness
//! (its `copy.deleted` audit time minus the deadline) at p50, p99 and max,
//! next to the PostgreSQL peer claiming N due rows with 8 `SKIP LOCKED`
//! workers in the same run. Asserts nothing.
//!
//!     cargo bench --bench firing
//!     BENCH_FIRING=10000,100000 BENCH_RECORD=1 cargo bench --bench firing
//!
//! The deadline is set far enough ahead for the batched ingest of all N to
//! finish first (BENCH_MARGIN seconds, default 15 + N/2000); the guard's
//! limits are lifted, the buffer is 0s (min_buffer 0s), so every resource
//! is due at its term end.

mod common;

use common::peer::Peer;
use common::{
    config_text, env_list, env_usize, per_s, percentile, post_all, quick, ratio, thousands, ChildDaemon, Report,
};
use serde_json::json;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

/// Counts `copy.deleted` records appended to the audit log since the last
/// call, keeping their times (the log is not rotated in this bench: its
/// segment size is set above what a run writes).
struct AuditTail {
    path: std::path::PathBuf,
    offset: u64,
    partial: Vec<u8>,
    times: Vec<chrono::DateTime<chrono::Utc>>,
}

impl AuditTail {
    fn poll(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else { return };
        f.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut buf = Vec::new();
        self.offset += f.read_to_end(&mut buf).unwrap() as u64;
        self.partial.extend_from_slice(&buf);
        let end = match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => return,
        };
        let complete: Vec<u8> = self.partial.drain(..end).collect();
        for line in complete.split(|b| *b == b'\n') {
            const KIND: &[u8] = b"\"kind\":\"copy.deleted\"";
            if line.windows(KIND.len()).any(|w| w == KIND) {
                let rec: serde_json::Value = serde_json::from_slice(line).unwrap();
                let at = rec["at"].as_str().unwrap();
                self.times.push(chrono::DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&chrono::Utc));
            }
        }
    }
}

fn main() {
    let quick = quick();
    let sizes = env_list("BENCH_FIRING", if quick { &[200] } else { &[10_000, 100_000] });
    let timeout = Duration::from_secs(env_usize("BENCH_FIRING_TIMEOUT", 1800) as u64);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut report = Report::new(
            "firing N deadlines due at once, retentiond beside the PostgreSQL peer",
            &["N", "retentiond copies/s", "lateness p50 / p99 / max", "peer claims/s (8 workers)", "ratio"],
        );
        let client = common::client(8);
        let peer = Peer::open().await;
        for &n in &sizes {
            let margin = env_usize("BENCH_MARGIN", 15 + n / 2000) as i64;
            let mut d = ChildDaemon::prepare(|port| {
                config_text(
                    port,
                    "audit_segment_bytes = 1099511627776",
                    "source = \"system\"",
                    "min_buffer = \"0s\"\n[safety.guard]\nmax_resources = 1000000000\nmax_fraction = 1.0\n\
                     long_max_resources = 1000000000\nlong_max_fraction = 1.0",
                    "buffer = { expiry = \"0s\", arrears = \"15d\", termination = \"15d\" }",
                    "",
                )
            });
            d.start(&client).await;
            let now = chrono::Utc::now();
            let due = (now + chrono::Duration::seconds(margin)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let due_at = chrono::DateTime::parse_from_rfc3339(&due).unwrap().with_timezone(&chrono::Utc);
            let at = now.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let (due2, at2) = (due.clone(), at.clone());
            let ingest = post_all(&d.base, &client, n, 1000, 4, move |i| {
                json!({"event_id": format!("e{i}"), "type": "resource.created", "at": at2,
                       "tenant": format!("t{}", i % 1000), "resource": format!("r{i}"), "product": "ecs",
                       "billing": "prepaid", "term_end": due2})
            })
            .await;
            let behind = chrono::Utc::now() > due_at;
            println!("  N={n}: ingested in {:.1} s; deadline {due}{}", ingest.as_secs_f64(), if behind { " (already passed!)" } else { "" });
            let mut tail = AuditTail { path: d.state().join("audit.jsonl"), offset: 0, partial: Vec::new(), times: Vec::new() };
            let waited = Instant::now();
            while tail.times.len() < n && waited.elapsed() < timeout {
                tokio::time::sleep(Duration::from_millis(500)).await;
                tail.poll();
            }
            d.stop();
            let mut late: Vec<Duration> =
                tail.times.iter().map(|t| (*t - due_at).to_std().unwrap_or(Duration::ZERO)).collect();
            late.sort();
            let done = late.len();
            let span = late.last().copied().unwrap_or(Duration::ZERO).max(Duration::from_millis(1));
            let ours = done as f64 / span.as_secs_f64();

            let mut peer_rate = None;
            let mut peer_cell = "-".to_string();
            if let Some(p) = &peer {
                p.clear().await;
                let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
                p.insert("fire", n, 1000, 4, &past).await;
                let (claimed, took) = p.drain(8).await;
                peer_rate = Some(claimed as f64 / took.as_secs_f64());
                peer_cell = per_s(claimed, took);
            }
            let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
            report.row(vec![
                if done < n { format!("{} ({} done in {:.0} s: timed out)", thousands(n as u64), done, timeout.as_secs_f64()) } else { thousands(n as u64) },
                per_s(done, span),
                format!("{} / {} / {}", secs(percentile(&late, 50.0)), secs(percentile(&late, 99.0)), secs(percentile(&late, 100.0))),
                peer_cell,
                ratio(ours, peer_rate),
            ]);
        }
        if let Some(p) = peer {
            p.close().await;
        }
        report.note(
            "retentiond copies/s = N / (last copy.deleted time - deadline); the deadline is a whole second, so lateness \
             includes the engine's wake-up after it."
                .into(),
        );
        report.finish();
    });
}
