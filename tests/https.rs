//! TLS on the API listener (issue 13.4): the daemon serves https with the
//! certificate and key of `[api]`, asks for client certificates when a
//! client CA is set (required or optional), answers plain HTTP on its TLS
//! port with a 400 that serves nothing, and a reload puts renewed files in
//! force for new connections while bad ones are refused and the old
//! certificate kept. The real binary, `ctl` and `check-config` are in
//! `https/binary.rs`.

#[path = "https/binary.rs"]
mod binary;
mod common;
#[path = "https/pki.rs"]
mod pki;

use common::*;
use pki::{client, served_certificate, Ca, Issued};
use serde_json::{json, Value};

/// The shared test config with TLS keys added to its `[api]` table.
fn tls_config(api: &str) -> String {
    base_config("").replacen("tokens_file = \"tokens.toml\"", &format!("tokens_file = \"tokens.toml\"\n{api}"), 1)
}

/// `[api]` keys serving `server`, with `extra` keys after them.
fn tls_keys(server: &Issued, extra: &str) -> String {
    format!("tls_cert_file = {:?}\ntls_key_file = {:?}\n{extra}", server.cert, server.key)
}

/// The daemon in-process on `config`; its https base URL.
async fn start(config: &str) -> (Harness, String) {
    let h = Harness::with_config(config).await;
    let base = format!("https://{}", h.daemon.as_ref().unwrap().addr);
    (h, base)
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Result<(u16, String), reqwest::Error> {
    let r = client.get(url).bearer_auth(token).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// With the CA, every route answers over https (health, metrics, events);
/// a client that does not trust the CA is refused in the handshake; plain
/// HTTP to the same port gets a 400 saying to use https, and serves
/// nothing: an event sent that way is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_ca_serves_and_plain_http_gets_nothing_but_a_400() {
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("retentiond test CA");
    let server = ca.server(pki_dir.path(), "server");
    let (h, base) = start(&tls_config(&tls_keys(&server, ""))).await;
    let https = client(&ca, None);

    let (status, body) = get(&https, &format!("{base}/healthz"), "").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&https, &format!("{base}/metrics"), AUDITOR).await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("retentiond_"), "{body}");
    let event = created("e1", "t1", "r1", "2026-06-01T00:00:00Z");
    let r = https.post(format!("{base}/v1/events")).bearer_auth(INGEST).json(&event).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = get(&https, &format!("{base}/v1/resources/r1"), AUDITOR).await.unwrap();
    assert_eq!(status, 200, "{body}");

    let stranger = client(&Ca::new("another CA"), None);
    let e = stranger.get(format!("{base}/healthz")).send().await.unwrap_err();
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");

    let plain_base = base.replacen("https://", "http://", 1);
    let plain = reqwest::Client::new();
    let r = plain.get(format!("{plain_base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("use https://"), "{v}");
    let event = created("e2", "t1", "r2", "2026-06-01T00:00:00Z");
    let r = plain.post(format!("{plain_base}/v1/events")).bearer_auth(INGEST).json(&event).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = get(&https, &format!("{base}/v1/resources/r2"), AUDITOR).await.unwrap();
    assert_eq!(status, 404, "nothing sent in plain HTTP was applied");
    drop(h);
}

/// `tls_client_auth = "required"` (the default with a client CA): no
/// certificate, or one another CA signed, and the handshake fails; one
/// the client CA signed is served, `/healthz` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_refuse_clients_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = server_ca.server(dir.path(), "server");
    let billing = client_ca.client(dir.path(), "billing");
    let intruder = Ca::new("intruder CA").client(dir.path(), "intruder");
    let ca_file = client_ca.write(dir.path(), "clients.pem");
    let (_h, base) = start(&tls_config(&tls_keys(&server, &format!("tls_client_ca_file = {ca_file:?}")))).await;

    for (who, identity) in [("no certificate", None), ("another CA's certificate", Some(&intruder))] {
        let r = get(&client(&server_ca, identity), &format!("{base}/healthz"), "").await;
        assert!(r.is_err(), "{who}: {r:?}");
    }
    let billing_client = client(&server_ca, Some(&billing));
    assert_eq!(get(&billing_client, &format!("{base}/healthz"), "").await.unwrap().0, 200);
    assert_eq!(get(&billing_client, &format!("{base}/readyz"), AUDITOR).await.unwrap().0, 200);
    // A certificate is no token: the API still wants one.
    assert_eq!(get(&billing_client, &format!("{base}/readyz"), "").await.unwrap().0, 401);
}

/// `tls_client_auth = "optional"`: a client without a certificate is let
/// in (to the token check); one showing a certificate the CA did not sign
/// is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_check_only_those_shown() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("one CA");
    let server = ca.server(dir.path(), "server");
    let ops = ca.client(dir.path(), "ops");
    let intruder = Ca::new("intruder CA").client(dir.path(), "intruder");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let keys = tls_keys(&server, &format!("tls_client_ca_file = {ca_file:?}\ntls_client_auth = \"optional\""));
    let (_h, base) = start(&tls_config(&keys)).await;

    assert_eq!(get(&client(&ca, None), &format!("{base}/readyz"), AUDITOR).await.unwrap().0, 200);
    assert_eq!(get(&client(&ca, Some(&ops)), &format!("{base}/readyz"), AUDITOR).await.unwrap().0, 200);
    let r = get(&client(&ca, Some(&intruder)), &format!("{base}/healthz"), "").await;
    assert!(r.is_err(), "{r:?}");
}

/// A reload re-reads the files: renewed ones are served to the next
/// connection. A reload with a broken certificate is refused like any bad
/// config (logged, audited as `config.reload_failed`, shown by `/readyz`)
/// and the certificate in force stays; so is one that would turn TLS off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_renewed_files_and_keeps_the_old_ones_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("renewing CA");
    let first = ca.server(dir.path(), "server");
    let config = tls_config(&tls_keys(&first, ""));
    let (h, base) = start(&config).await;
    let daemon = h.daemon.as_ref().unwrap();
    assert_eq!(served_certificate(daemon.addr, &ca).await, first.der);
    // Kept alive across the reload: an open connection keeps its certificate.
    let https = client(&ca, None);
    assert_eq!(get(&https, &format!("{base}/healthz"), "").await.unwrap().0, 200);

    // Renewed in place, under the same names, as certbot or an operator does.
    let renewed = ca.server(dir.path(), "server");
    assert_ne!(renewed.der, first.der);
    daemon.reload().await.expect("reload with renewed files");
    assert_eq!(served_certificate(daemon.addr, &ca).await, renewed.der, "new connections get the new certificate");
    assert_eq!(get(&https, &format!("{base}/healthz"), "").await.unwrap().0, 200);

    // A broken certificate: refused, reported, and the renewed one served.
    std::fs::write(&renewed.cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")
        .unwrap();
    let e = daemon.reload().await.unwrap_err().to_string();
    assert!(e.contains("retentiond.toml:") && e.contains("api.tls_cert_file: ") && e.contains("not valid PEM"), "{e}");
    assert_eq!(served_certificate(daemon.addr, &ca).await, renewed.der, "the certificate in force stays");
    let (status, ready) = get(&client(&ca, None), &format!("{base}/readyz"), AUDITOR).await.unwrap();
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!((status, &ready["last_reload"]["ok"]), (200, &json!(false)), "{ready}");
    assert!(ready["last_reload"]["error"].as_str().unwrap().contains("api.tls_cert_file"), "{ready}");
    let failed = h.audit().into_iter().filter(|r| r["kind"] == "config.reload_failed").collect::<Vec<_>>();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["data"]["error"].as_str().unwrap().contains("api.tls_cert_file"), "{:?}", failed[0]);

    // A key that is not the certificate's: refused at the key.
    let other = ca.server(dir.path(), "other");
    std::fs::copy(&other.cert, &renewed.cert).unwrap();
    let e = daemon.reload().await.unwrap_err().to_string();
    assert!(e.contains("api.tls_key_file: ") && e.contains("does not belong to the certificate"), "{e}");

    // Turning TLS off is a change of scheme for every client: a restart.
    std::fs::write(h.config_path(), base_config("")).unwrap();
    let e = daemon.reload().await.unwrap_err().to_string();
    assert!(e.contains("api.tls_cert_file (TLS on or off) cannot change on reload"), "{e}");
    assert_eq!(served_certificate(daemon.addr, &ca).await, renewed.der);
}

/// The front's bounds hold with TLS: a client that never makes its
/// handshake holds a connection slot (a TLS client beyond
/// `max_connections` is closed at once), is closed after
/// `api.idle_timeout`, and does not hold up a shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_handshake_is_counted_timed_out_and_cut_at_shutdown() {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bounds CA");
    let server = ca.server(dir.path(), "server");
    let (h, base) = start(&tls_config(&tls_keys(&server, "max_connections = 1\nidle_timeout = \"300ms\""))).await;
    let addr = h.daemon.as_ref().unwrap().addr;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let r = get(&client(&ca, None), &format!("{base}/healthz"), "").await;
    assert!(r.is_err(), "the only slot is the silent client's: {r:?}");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(15), silent.read(&mut [0u8; 16])).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "closed after idle_timeout: {closed:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(&client(&ca, None), &format!("{base}/healthz"), "").await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the slot was never given back");
    }
    drop(h);

    let (mut h, base) = start(&tls_config(&tls_keys(&server, "idle_timeout = \"60s\""))).await;
    let _silent = TcpStream::connect(h.daemon.as_ref().unwrap().addr).await.unwrap();
    // Accepted in order: once this is answered, the silent one is in its handshake.
    assert_eq!(get(&client(&ca, None), &format!("{base}/healthz"), "").await.unwrap().0, 200);
    let began = std::time::Instant::now();
    h.stop().await;
    assert!(began.elapsed() < std::time::Duration::from_secs(5), "shutdown waited {:?}", began.elapsed());
}

/// Over https the console's session cookie is `Secure` (issue 13.8), so a
/// browser never sends it in plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_cookie_is_secure_over_https() {
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("retentiond test CA");
    let server = ca.server(pki_dir.path(), "server");
    let (h, base) = start(&tls_config(&tls_keys(&server, ""))).await;
    let no_redirects = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={AUDITOR}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    drop(h);
}
