//! The peer every figure is set against (issue 11): the usual alternative to
//! this daemon, a PostgreSQL table of deadlines with a due-time index,
//! written durably (one row per statement from 64 clients, or 1,000 rows per
//! statement) and drained by 8 workers that claim due rows with
//! `FOR UPDATE SKIP LOCKED`. Measured on the same machine in the same run,
//! so that a ratio means something on a shared, noisy machine.
//!
//! The server: `BENCH_PG` (a libpq-style connection string), by default the
//! one these machines run at 127.0.0.1:5432 (`host=127.0.0.1 user=postgres
//! dbname=test`). Where none answers, the peer is skipped with a message
//! and the ratios read "-".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// A connected peer with its own table, dropped when the peer is.
pub struct Peer {
    conninfo: String,
    table: String,
    admin: Client,
}

async fn connect(conninfo: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// One row as the peer stores it: the same ids and times an event carries,
/// and the event itself as `jsonb` (what a queue of deadlines would keep).
fn row(i: usize, tag: &str, due: &str) -> (String, String, String, String) {
    let resource = format!("{tag}-r{i}");
    let tenant = format!("t{}", i % 1000);
    let payload = format!(
        r#"{{"event_id":"{tag}-{i}","type":"resource.created","at":"2026-01-01T00:00:00Z","tenant":"{tenant}","resource":"{resource}","product":"ecs","billing":"prepaid","term_end":"{due}"}}"#
    );
    (resource, tenant, due.to_string(), payload)
}

impl Peer {
    /// Connects and creates a fresh table, or says why the peer is skipped.
    pub async fn open() -> Option<Peer> {
        let conninfo =
            std::env::var("BENCH_PG").unwrap_or_else(|_| "host=127.0.0.1 user=postgres dbname=test".to_string());
        let admin = match connect(&conninfo).await {
            Ok(c) => c,
            Err(e) => {
                println!("  peer skipped: no PostgreSQL at {conninfo:?} ({e}); set BENCH_PG");
                return None;
            }
        };
        let table = format!("retentiond_peer_{}", std::process::id());
        admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table};
                 CREATE TABLE {table} (id bigserial PRIMARY KEY, resource text NOT NULL, tenant text NOT NULL,
                                       due timestamptz NOT NULL, state smallint NOT NULL DEFAULT 0, payload jsonb NOT NULL);
                 CREATE INDEX ON {table} (due) WHERE state = 0;"
            ))
            .await
            .expect("the peer's table is created");
        let version: String = admin.query_one("SHOW server_version", &[]).await.unwrap().get(0);
        let sync: String = admin.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
        println!("  peer: PostgreSQL {version}, synchronous_commit={sync}, table {table}");
        Some(Peer { conninfo, table, admin })
    }

    /// Empties the table between measurements.
    pub async fn clear(&self) {
        self.admin.batch_execute(&format!("TRUNCATE {}", self.table)).await.unwrap();
    }

    /// Inserts `total` rows from `clients` connections, `batch` rows per
    /// statement (each statement its own durable commit); returns the time.
    pub async fn insert(&self, tag: &'static str, total: usize, batch: usize, clients: usize, due: &str) -> Duration {
        let next = Arc::new(AtomicUsize::new(0));
        let mut conns = Vec::new();
        for _ in 0..clients {
            conns.push(connect(&self.conninfo).await.unwrap());
        }
        let single = format!(
            "INSERT INTO {} (resource, tenant, due, payload) VALUES ($1, $2, $3::text::timestamptz, $4::text::jsonb)",
            self.table
        );
        let many = format!(
            "INSERT INTO {} (resource, tenant, due, payload)
             SELECT r, t, d::timestamptz, p::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(r, t, d, p)",
            self.table
        );
        let start = Instant::now();
        let mut tasks = Vec::new();
        for conn in conns {
            let (next, single, many, due) = (next.clone(), single.clone(), many.clone(), due.to_string());
            tasks.push(tokio::spawn(async move {
                let stmt = conn.prepare(if batch == 1 { &single } else { &many }).await.unwrap();
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first >= total {
                        break;
                    }
                    if batch == 1 {
                        let (r, t, d, p) = row(first, tag, &due);
                        conn.execute(&stmt, &[&r, &t, &d, &p]).await.unwrap();
                    } else {
                        let rows: Vec<_> = (first..(first + batch).min(total)).map(|i| row(i, tag, &due)).collect();
                        let r: Vec<&str> = rows.iter().map(|x| x.0.as_str()).collect();
                        let t: Vec<&str> = rows.iter().map(|x| x.1.as_str()).collect();
                        let d: Vec<&str> = rows.iter().map(|x| x.2.as_str()).collect();
                        let p: Vec<&str> = rows.iter().map(|x| x.3.as_str()).collect();
                        conn.execute(&stmt, &[&r, &t, &d, &p]).await.unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    }

    /// Claims every due row, one per statement, from `workers` connections
    /// with `FOR UPDATE SKIP LOCKED`; returns (rows claimed, time).
    pub async fn drain(&self, workers: usize) -> (usize, Duration) {
        let claimed = Arc::new(AtomicUsize::new(0));
        let claim = format!(
            "UPDATE {t} SET state = 1 WHERE id = (SELECT id FROM {t} WHERE state = 0 AND due <= now()
             ORDER BY due LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
            t = self.table
        );
        let mut conns = Vec::new();
        for _ in 0..workers {
            conns.push(connect(&self.conninfo).await.unwrap());
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for conn in conns {
            let (claimed, claim) = (claimed.clone(), claim.clone());
            tasks.push(tokio::spawn(async move {
                let stmt = conn.prepare(&claim).await.unwrap();
                while conn.query_opt(&stmt, &[]).await.unwrap().is_some() {
                    claimed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        (claimed.load(Ordering::Relaxed), start.elapsed())
    }

    /// Drops the table.
    pub async fn close(self) {
        let _ = self.admin.batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table)).await;
    }
}
