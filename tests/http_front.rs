//! Issue 9, point 6: the HTTP front under abuse. Slow and idle connections
//! are closed, connections beyond the limit are closed at once while those
//! within it are answered, nobody unauthenticated makes the daemon read a
//! body, batches are bounded, failing sources are locked out, bodies must be
//! declared JSON and may not repeat a key. Raw TCP where the point is what
//! the server does before a request is complete.
//!
//! Waits are bounded (a closed connection must be seen within seconds) but
//! nothing asserts how fast anything is.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TERM_END: &str = "2026-06-01T00:00:00Z";

/// The harness config with `keys` added to `[api]`.
fn with_api(keys: &str) -> String {
    base_config("").replace("listen = \"127.0.0.1:0\"\n", &format!("listen = \"127.0.0.1:0\"\n{keys}\n"))
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.base.trim_start_matches("http://")).await.unwrap()
}

/// What the server sends until it closes the connection, or None if it
/// keeps it open past `within`.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The response head (status line and headers) the server sends, or None
/// if none comes within 10 s.
async fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1];
    let read = async {
        while !out.ends_with(b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => out.push(buf[0]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.ok()?;
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// Reads one whole response to a small request (headers and a body of
/// Content-Length bytes).
async fn read_response(s: &mut TcpStream) -> Option<String> {
    let head = read_head(s).await?;
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0usize);
    let mut body = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut body)).await.ok()?.ok()?;
    Some(format!("{head}{}", String::from_utf8_lossy(&body)))
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: retentiond\r\n\r\n";

#[tokio::test]
async fn a_slow_header_and_an_idle_keep_alive_connection_are_closed() {
    let h = Harness::with_config(&with_api("idle_timeout = \"300ms\"")).await;
    // Headers started and never finished.
    let mut slow = connect(&h).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: retentiond\r\n").await.unwrap();
    let seen = read_to_close(&mut slow, Duration::from_secs(15)).await;
    assert!(seen.is_some(), "a connection that never finishes its headers must be closed");
    // A connection that sent nothing at all.
    let mut silent = connect(&h).await;
    assert!(read_to_close(&mut silent, Duration::from_secs(15)).await.is_some(), "a silent connection is closed");
    // One request answered, then idle on a kept-alive connection.
    let mut idle = connect(&h).await;
    idle.write_all(HEALTHZ).await.unwrap();
    let answer = read_response(&mut idle).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("connection: close"), "kept alive: {answer}");
    assert_eq!(read_to_close(&mut idle, Duration::from_secs(15)).await.as_deref(), Some(""), "idle closed");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once_while_those_within_it_are_answered() {
    let h = Harness::with_config(&with_api("max_connections = 4\nidle_timeout = \"60s\"")).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect(&h).await;
        s.write_all(HEALTHZ).await.unwrap();
        assert!(read_response(&mut s).await.expect("answered").starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // The fifth is closed without an answer, long before any timeout.
    let mut extra = connect(&h).await;
    let _ = extra.write_all(HEALTHZ).await;
    let seen = read_to_close(&mut extra, Duration::from_secs(10)).await;
    assert_eq!(seen.as_deref(), Some(""), "closed at once, unanswered");
    // Those within the limit still get answers.
    for s in &mut held {
        s.write_all(HEALTHZ).await.unwrap();
        assert!(read_response(s).await.expect("answered").starts_with("HTTP/1.1 200"));
    }
    // One closes; a new connection gets its place.
    drop(held.pop());
    let mut answered = false;
    for _ in 0..200 {
        let mut s = connect(&h).await;
        let _ = s.write_all(HEALTHZ).await;
        if read_response(&mut s).await.is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered, "a freed place is given to a new connection");
}

/// Headers that declare a 15 MB body, which is never sent.
fn post_headers(token: &str, path: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: retentiond\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 15000000\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn refusals_come_from_the_headers_alone_without_reading_the_body() {
    let h = Harness::start().await;
    for (token, path, status) in [
        ("not-a-known-token", "/v1/events", "401"),
        ("", "/v1/admin/clock", "401"),
        (AUDITOR, "/v1/events", "403"),
        (INGEST, "/v1/admin/clock", "403"),
        // Allowed, but the declared body is past the limit.
        (INGEST, "/v1/events", "413"),
        (ADMIN, "/v1/admin/clock", "413"),
    ] {
        let mut s = connect(&h).await;
        s.write_all(&post_headers(token, path)).await.unwrap();
        let head = read_head(&mut s).await;
        let head = head.unwrap_or_else(|| panic!("{path} as {token:?}: no answer without the body"));
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{path} as {token:?}: {head}");
    }
}

fn created_n(n: usize, prefix: &str) -> Value {
    Value::Array((0..n).map(|i| created(&format!("{prefix}e{i}"), "t1", &format!("{prefix}r{i}"), TERM_END)).collect())
}

#[tokio::test]
async fn a_batch_is_capped_in_events_and_in_bytes() {
    let h = Harness::start().await;
    let records = h.audit().len();
    let (status, v) = h.post_as(INGEST, "/v1/events", &created_n(1001, "a")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}", v["error"]);
    assert_eq!((v["limit"].as_str(), v["max"].as_u64()), (Some("events_per_request"), Some(1000)), "{v}");
    assert!(v["error"].as_str().unwrap().contains("1001 events"), "{v}");
    // Over 1 MiB, declared: refused whatever it holds.
    let big = json!([{"event_id": "x".repeat(1 << 20)}]);
    let (status, v) = h.post_as(INGEST, "/v1/events", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!((v["limit"].as_str(), v["max"].as_u64()), (Some("bytes_per_request"), Some(1 << 20)), "{v}");
    // Over 1 MiB, chunked (no length declared): cut off at the limit.
    let mut s = connect(&h).await;
    let chunk = vec![b' '; (1 << 20) + 1];
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: retentiond\r\nAuthorization: Bearer {INGEST}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&chunk).await;
    let answer = read_head(&mut s).await.expect("answered");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(h.audit().len(), records, "nothing of a refused batch is stored");
    // The limit itself is accepted.
    let results = h.events(created_n(1000, "b")).await;
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r["status"] == "applied"));
}

#[tokio::test]
async fn a_source_failing_to_authenticate_is_locked_out_then_let_in_again() {
    let h = Harness::with_config(&with_api("max_auth_failures = 5\nauth_lockout = \"4s\"")).await;
    for i in 0..5 {
        let (status, _) = h.get_as("not-a-known-token", "/v1/audit").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    let (status, v) = h.get_as("not-a-known-token", "/v1/audit").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // During the lock-out a good token from the same address is refused too:
    // otherwise the answers would still tell a guesser which token is right.
    let resp = h.client.get(format!("{}/v1/audit", h.base)).bearer_auth(AUDITOR).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=4).contains(&retry_after), "{retry_after}");
    let (status, _) = h.post_as(INGEST, "/v1/events", &created("e1", "t1", "r1", TERM_END)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "nothing posted during the lock-out");
    let (status, _) = h.get_as(AUDITOR, "/v1/resources/r1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // /healthz asks for no token and is never locked.
    assert!(h.client.get(format!("{}/healthz", h.base)).send().await.unwrap().status().is_success());
    // After the lock-out the good token works again (polled: no sleeping
    // for an exact deadline).
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..300 {
        status = h.get_as(AUDITOR, "/v1/resources/r1").await.0;
        if status != StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::NOT_FOUND, "let in again; r1 was never stored");
    // And a new window starts: one wrong token is a 401 again.
    assert_eq!(h.get_as("not-a-known-token", "/v1/audit").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_body_must_be_declared_json() {
    let h = Harness::start().await;
    let records = h.audit().len();
    let body = created("e1", "t1", "r1", TERM_END).to_string();
    for ct in
        [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/json; charset=latin1")]
    {
        let (status, v) = h.post_raw(INGEST, "/v1/events", ct, &body).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {v}");
        assert!(v["error"].as_str().unwrap().contains("application/json"), "{v}");
    }
    let (status, _) = h.post_raw(ADMIN, "/v1/admin/clock", Some("text/plain"), r#"{"advance":"1d"}"#).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h.audit().len(), records, "nothing stored");
    let (status, v) = h.post_raw(INGEST, "/v1/events", Some("Application/JSON; charset=UTF-8"), &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_repeated_key_is_refused_naming_it_and_nothing_is_stored() {
    let h = Harness::start().await;
    let records = h.audit().len();
    let one = format!(
        r#"{{"event_id":"e1","type":"resource.created","at":"{T0}","tenant":"t1","resource":"r1","product":"ecs",
            "billing":"prepaid","term_end":"{TERM_END}","resource":"r2"}}"#
    );
    let (status, v) = h.post_raw(INGEST, "/v1/events", Some("application/json"), &one).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v, json!({"error": "duplicate key \"resource\"", "field": "resource"}));
    let batch = format!("[{}, {}]", created("e2", "t1", "r3", TERM_END), one);
    let (status, v) = h.post_raw(INGEST, "/v1/events", Some("application/json"), &batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!((v["field"].as_str(), v["index"].as_u64()), (Some("resource"), Some(1)), "{v}");
    for id in ["r1", "r2", "r3"] {
        assert_eq!(h.get_as(AUDITOR, &format!("/v1/resources/{id}")).await.0, StatusCode::NOT_FOUND, "{id}");
    }
    // Admin bodies too: the clock does not move.
    let (status, v) =
        h.post_raw(ADMIN, "/v1/admin/clock", Some("application/json"), r#"{"advance":"1d","advance":"30d"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["field"], "advance");
    assert_eq!(h.advance("0s").await, T0, "the clock did not move");
    assert_eq!(h.audit().len(), records, "nothing stored");
}
