//! The `http` executor: asks a deletion service over HTTP to act on one copy.
//!
//! Each run POSTs a small JSON object naming the action and the copy:
//!
//! ```json
//! {"action":"delete","tenant":"t1","resource":"r1","store":"primary","copy":"eu","idempotency_key":"<hex>"}
//! ```
//!
//! with the headers `Content-Type: application/json`, `Idempotency-Key:
//! <hex>` and `X-Retentiond-Signature: sha256=<hex HMAC-SHA256(secret,
//! body)>`. The idempotency key is the hex SHA-256 of
//! `action\ntenant\nresource\nstore\ncopy` (ids never contain a newline), so
//! a retry of the same action on the same copy, after a timeout or a crash,
//! carries the same key and the receiver can deduplicate it.
//!
//! The secret is never in the config: the spec names a file or an
//! environment variable, read at every run (a rotated key is picked up
//! without a restart) and never at validation (a config check may run on
//! another machine). Surrounding whitespace is trimmed from it, so a key file
//! written with a trailing newline signs with the key itself.
//!
//! Only `200`-`299` except `202 Accepted` counts as done: 202 says the
//! request was taken but the copy is not gone yet, so it is a failure and the
//! scheduler retries with the same key until the receiver answers 200 or 204.
//! Redirects are not followed (a redirect is an error), environment proxies
//! are ignored, and the whole exchange is bounded by the spec's timeout.
//!
//! `https://` URLs use rustls with the platform's trust store. Prefer them
//! for anything not on loopback: the signature authenticates the request,
//! but only TLS authenticates the answer, and a forged 2xx would be recorded
//! as a deletion. `http://` URLs need no trust store at all (see
//! [`trust_roots_for`]), so they work on a system without a CA bundle.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};

use super::{Action, ExecError, Placeholder, Target};
use crate::duration::Dur;

/// Header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Retentiond-Signature";

/// Largest secret file read; a key is a few dozen bytes, so anything bigger
/// is the wrong file.
const SECRET_FILE_CAP: u64 = 64 * 1024;

/// Where the HMAC secret comes from (exactly one source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// The file's contents, whitespace-trimmed.
    File(PathBuf),
    /// The environment variable's value, whitespace-trimmed.
    Env(String),
}

impl SecretSource {
    /// The source from the two optional spec keys; Err unless exactly one is set.
    pub(crate) fn from_spec(secret_file: Option<&Path>, secret_env: Option<&str>) -> Result<SecretSource, String> {
        match (secret_file, secret_env) {
            (Some(file), None) => Ok(SecretSource::File(file.to_path_buf())),
            (None, Some(env)) => Ok(SecretSource::Env(env.to_owned())),
            (Some(_), Some(_)) => Err("http executor: set only one of secret_file and secret_env, not both".to_owned()),
            (None, None) => Err("http executor: set secret_file or secret_env \
                 (the HMAC secret is never written in the config itself)"
                .to_owned()),
        }
    }

    fn check(&self) -> Result<(), String> {
        match self {
            SecretSource::File(path) => {
                if !path.is_absolute() {
                    return Err(format!("http executor: secret_file {} must be an absolute path", path.display()));
                }
                if path.as_os_str().as_encoded_bytes().contains(&0) {
                    return Err(format!("http executor: secret_file {path:?} contains a NUL byte"));
                }
            }
            SecretSource::Env(name) => {
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(format!("http executor: secret_env {name:?} is not a valid environment variable name"));
                }
            }
        }
        Ok(())
    }

    /// "file /etc/x" or "environment variable X", for error messages.
    fn describe(&self) -> String {
        match self {
            SecretSource::File(path) => format!("file {}", path.display()),
            SecretSource::Env(name) => format!("environment variable {name}"),
        }
    }

    /// Reads the secret now. Missing, unreadable, oversized or empty (after
    /// trimming) is an error, so nothing is ever signed with an empty key.
    async fn read(&self) -> Result<Vec<u8>, ExecError> {
        let fail = |reason: String| ExecError::Secret { source_desc: self.describe(), reason };
        let raw = match self {
            SecretSource::File(path) => {
                let meta = tokio::fs::metadata(path).await.map_err(|e| fail(e.to_string()))?;
                if !meta.is_file() {
                    return Err(fail("not a regular file".to_owned()));
                }
                if meta.len() > SECRET_FILE_CAP {
                    return Err(fail(format!("larger than {SECRET_FILE_CAP} bytes")));
                }
                tokio::fs::read(path).await.map_err(|e| fail(e.to_string()))?
            }
            SecretSource::Env(name) => match std::env::var_os(name) {
                None => return Err(fail("not set".to_owned())),
                Some(v) => v.into_encoded_bytes(),
            },
        };
        let secret = raw.trim_ascii();
        if secret.is_empty() {
            return Err(fail("empty".to_owned()));
        }
        Ok(secret.to_vec())
    }
}

/// Static checks for an `http` spec; see [`super::ExecutorSpec::validate`].
/// Does not read the secret.
pub(super) fn validate(url: &str, secret: &Result<SecretSource, String>, timeout: Dur) -> Result<(), String> {
    check_url(url)?;
    secret.as_ref().map_err(Clone::clone)?.check()?;
    if timeout.is_zero() {
        return Err("http executor: timeout must be greater than zero".to_owned());
    }
    Ok(())
}

fn check_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("http executor: url {url:?} is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!("http executor: url {url:?} has scheme {other:?}; only http and https are supported"))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("http executor: url {url:?} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "http executor: url {url:?} carries credentials; credentials never go in the config \
             (requests are authenticated by the HMAC signature)"
        ));
    }
    if parsed.fragment().is_some() {
        return Err(format!("http executor: url {url:?} has a #fragment, which is never sent"));
    }
    Ok(parsed)
}

/// Sets the TLS trust of a client for requests to `url`.
///
/// reqwest 0.13's `rustls` feature verifies servers with
/// rustls-platform-verifier, which on Linux loads the system's CA bundle
/// (through rustls-native-certs, honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) when the client is *built*, and fails the build when it
/// finds none ("No CA certificates were loaded from the system",
/// seanmonstar/reqwest#2965): even a client only ever used for
/// `http://127.0.0.1` needed `/etc/ssl/certs`. So a client for a plain
/// `http://` URL trusts no roots at all ([`reqwest::ClientBuilder::tls_certs_only`]
/// with none): it never speaks TLS, as every client here refuses redirects
/// (a redirect to `https://` could not be followed anyway). Any other URL
/// keeps the platform's roots, and without a CA bundle its client cannot
/// be built; [`tls_problem`] says so in advance.
pub fn trust_roots_for(builder: reqwest::ClientBuilder, url: &str) -> reqwest::ClientBuilder {
    if Url::parse(url).is_ok_and(|u| u.scheme() == "http") {
        builder.tls_certs_only(std::iter::empty())
    } else {
        builder
    }
}

/// Why a client for `url` cannot be built on this machine (for `https://`:
/// no CA certificates could be loaded), or None. `check-config` and the
/// daemon's start report it, naming the store or notifier, since every
/// call through such a client would fail.
pub fn tls_problem(url: &str) -> Option<String> {
    trust_roots_for(reqwest::Client::builder(), url)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .err()
        .map(|e| format!("cannot build an HTTP client for {}: {}", short_url(url), error_chain(&e)))
}

/// POSTs a signed request per copy; a 2xx answer other than 202 means the
/// copy is gone (or restricted). The receiving service must be idempotent
/// by the `Idempotency-Key` header.
#[derive(Clone, Debug)]
pub struct HttpExecutor {
    url: String,
    secret: Result<SecretSource, String>,
    timeout: Dur,
    /// Built once; Err (reported by every run) if the client cannot be built.
    client: Result<reqwest::Client, String>,
}

/// The JSON body; field order is fixed by the struct, so the bytes signed
/// are deterministic for a given action and copy.
#[derive(Debug, serde::Serialize)]
struct Body<'a> {
    action: &'a str,
    tenant: &'a str,
    resource: &'a str,
    store: &'a str,
    copy: &'a str,
    idempotency_key: &'a str,
}

/// Hex SHA-256 of `action\ntenant\nresource\nstore\ncopy`. Ids never hold a
/// newline, so distinct copies never share a key.
pub fn idempotency_key(action: Action, tenant: &str, resource: &str, store: &str, copy: &str) -> String {
    let mut h = Sha256::new();
    for (i, part) in [action.as_str(), tenant, resource, store, copy].into_iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the signature header's value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl HttpExecutor {
    /// An executor for `url`. Not validated here: [`HttpExecutor::run`]
    /// re-validates and refuses an invalid spec. `secret` is the result of
    /// choosing between `secret_file` and `secret_env`.
    pub fn new(url: String, secret: Result<SecretSource, String>, timeout: Dur) -> HttpExecutor {
        let client = trust_roots_for(reqwest::Client::builder(), &url)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout.0)
            .connect_timeout(timeout.0)
            .user_agent(concat!("retentiond/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {}", error_chain(&e)));
        HttpExecutor { url, secret, timeout, client }
    }

    /// "http:<scheme>://<host>[:port]<path>", for logs and errors (no query,
    /// which may carry something an operator would rather not log).
    pub fn describe(&self) -> String {
        format!("http:{}", short_url(&self.url))
    }

    /// Sends the request for `action` on `target`. Ok(()) only on a 2xx
    /// answer other than 202.
    pub async fn run(&self, action: Action, target: &Target) -> Result<(), ExecError> {
        validate(&self.url, &self.secret, self.timeout).map_err(|reason| ExecError::InvalidSpec { reason })?;
        let url = check_url(&self.url).map_err(|reason| ExecError::InvalidSpec { reason })?;
        let client = self.client.as_ref().map_err(|reason| ExecError::InvalidSpec { reason: reason.clone() })?;
        let secret_source = self.secret.as_ref().map_err(|reason| ExecError::InvalidSpec { reason: reason.clone() })?;

        let tenant = Placeholder::Tenant.value(action, target)?;
        let resource = Placeholder::Resource.value(action, target)?;
        let store = Placeholder::Store.value(action, target)?;
        let copy = Placeholder::Copy.value(action, target)?;
        let key = idempotency_key(action, tenant, resource, store, copy);
        let body =
            serde_json::to_vec(&Body { action: action.as_str(), tenant, resource, store, copy, idempotency_key: &key })
                .map_err(|e| ExecError::InvalidSpec { reason: format!("cannot encode request body: {e}") })?;
        self.post_signed(url, client, secret_source, &key, body).await
    }

    /// POSTs a JSON `body` with the idempotency key and signature headers;
    /// Ok only for a 2xx other than 202. Shared with the notifier, whose
    /// requests are signed and deduplicated the same way.
    pub async fn post(&self, key: &str, body: Vec<u8>) -> Result<(), ExecError> {
        validate(&self.url, &self.secret, self.timeout).map_err(|reason| ExecError::InvalidSpec { reason })?;
        let url = check_url(&self.url).map_err(|reason| ExecError::InvalidSpec { reason })?;
        let client = self.client.as_ref().map_err(|reason| ExecError::InvalidSpec { reason: reason.clone() })?;
        let secret_source = self.secret.as_ref().map_err(|reason| ExecError::InvalidSpec { reason: reason.clone() })?;
        self.post_signed(url, client, secret_source, key, body).await
    }

    async fn post_signed(
        &self,
        url: Url,
        client: &reqwest::Client,
        secret_source: &SecretSource,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), ExecError> {
        // Read last, right before sending: a rotated key applies at once.
        let secret = secret_source.read().await?;
        let sig = signature(&secret, &body);
        drop(secret);

        let endpoint = short_url(&self.url);
        let request = client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(IDEMPOTENCY_HEADER, key)
            .header(SIGNATURE_HEADER, sig)
            .body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(ExecError::HttpTimeout { endpoint, after: self.timeout }),
            Err(e) => return Err(ExecError::HttpRequest { endpoint, reason: error_chain(&e.without_url()) }),
        };
        check_status(endpoint, response.status())
    }
}

/// Ok for a 2xx other than 202 Accepted; everything else (including 3xx,
/// since redirects are not followed) is [`ExecError::HttpStatus`].
fn check_status(endpoint: String, status: StatusCode) -> Result<(), ExecError> {
    if status.is_success() && status != StatusCode::ACCEPTED {
        Ok(())
    } else {
        Err(ExecError::HttpStatus { endpoint, status: status.as_u16() })
    }
}

/// `scheme://host[:port]/path` without userinfo, query or fragment; the raw
/// string (capped) if it does not parse.
fn short_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{}{}", u.scheme(), u.host_str().unwrap_or(""), port, u.path())
        }
        Err(_) => format!("{:?}", url.chars().take(100).collect::<String>()),
    }
}

/// An error and its sources, joined with ": " (reqwest's own Display leaves
/// out the cause, e.g. "connection refused"); control characters escaped.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{header, HeaderMap};
    use axum::routing::post;

    /// One request as the test service saw it.
    #[derive(Clone, Debug)]
    struct Received {
        content_type: Option<String>,
        key: Option<String>,
        signature: Option<String>,
        body: Vec<u8>,
    }

    #[derive(Clone, Default)]
    struct Service {
        purge: Arc<Mutex<Vec<Received>>>,
        redirected: Arc<Mutex<Vec<Received>>>,
        status: Arc<Mutex<u16>>,
    }

    impl Service {
        fn requests(&self) -> Vec<Received> {
            self.purge.lock().unwrap().clone()
        }
        fn answer(&self, status: u16) {
            *self.status.lock().unwrap() = status;
        }
    }

    fn record(headers: &HeaderMap, body: Bytes) -> Received {
        let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        Received {
            content_type: get(header::CONTENT_TYPE.as_str()),
            key: get("idempotency-key"),
            signature: get("x-retentiond-signature"),
            body: body.to_vec(),
        }
    }

    async fn purge(State(s): State<Service>, headers: HeaderMap, body: Bytes) -> StatusCode {
        s.purge.lock().unwrap().push(record(&headers, body));
        StatusCode::from_u16(*s.status.lock().unwrap()).unwrap()
    }

    async fn slow(State(s): State<Service>, headers: HeaderMap, body: Bytes) -> StatusCode {
        s.purge.lock().unwrap().push(record(&headers, body));
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        StatusCode::OK
    }

    async fn moved(
        State(s): State<Service>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, [(header::HeaderName, &'static str); 1]) {
        s.redirected.lock().unwrap().push(record(&headers, body));
        (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/purge")])
    }

    /// Starts the test service on 127.0.0.1:0; returns it and its base URL.
    async fn serve() -> (Service, String) {
        let service = Service::default();
        service.answer(200);
        let app = axum::Router::new()
            .route("/purge", post(purge))
            .route("/slow", post(slow))
            .route("/moved", post(moved))
            .with_state(service.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (service, base)
    }

    fn target(copy: &str) -> Target {
        Target { tenant: "t1".into(), resource: "r1".into(), store: "snapshots".into(), copy: copy.into() }
    }

    fn exec(url: &str, secret: SecretSource, timeout: Dur) -> HttpExecutor {
        HttpExecutor::new(url.to_owned(), Ok(secret), timeout)
    }

    fn key_file(dir: &Path, contents: &str) -> SecretSource {
        let path = dir.join("purge.key");
        std::fs::write(&path, contents).unwrap();
        SecretSource::File(path)
    }

    const T: Dur = Dur::from_secs(10);

    /// HMAC recomputed here with the `hmac` crate directly, independently of
    /// [`signature`].
    fn expected_signature(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn sha256_hex(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[tokio::test]
    async fn signed_request_with_deterministic_key() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let e = exec(&format!("{base}/purge"), key_file(dir.path(), "s3cret\n"), T);

        e.run(Action::Delete, &target("backup-eu")).await.unwrap();
        e.run(Action::Delete, &target("backup-eu")).await.unwrap();
        e.run(Action::Delete, &target("backup-us")).await.unwrap();
        e.run(Action::Purge, &target("backup-eu")).await.unwrap();

        let got = service.requests();
        assert_eq!(got.len(), 4);
        let want_key = sha256_hex("delete\nt1\nr1\nsnapshots\nbackup-eu");
        let first = &got[0];
        assert_eq!(first.content_type.as_deref(), Some("application/json"));
        assert_eq!(first.key.as_deref(), Some(want_key.as_str()));
        assert_eq!(
            String::from_utf8(first.body.clone()).unwrap(),
            format!(
                r#"{{"action":"delete","tenant":"t1","resource":"r1","store":"snapshots","copy":"backup-eu","idempotency_key":"{want_key}"}}"#
            )
        );
        for r in &got {
            // Signed with the trimmed file contents, over the exact bytes received.
            assert_eq!(r.signature.as_deref(), Some(expected_signature(b"s3cret", &r.body).as_str()));
            assert_ne!(r.signature.as_deref(), Some(expected_signature(b"s3cret\n", &r.body).as_str()));
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(json["idempotency_key"].as_str(), r.key.as_deref());
        }
        // Same copy and action: same key and body; another copy or action: another key.
        assert_eq!(got[1].key, got[0].key);
        assert_eq!(got[1].body, got[0].body);
        assert_eq!(got[2].key.as_deref(), Some(sha256_hex("delete\nt1\nr1\nsnapshots\nbackup-us").as_str()));
        assert_eq!(got[3].key.as_deref(), Some(sha256_hex("purge\nt1\nr1\nsnapshots\nbackup-eu").as_str()));
        assert_ne!(got[2].key, got[0].key);
        assert_ne!(got[3].key, got[0].key);
    }

    #[tokio::test]
    async fn secret_is_read_at_every_run() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let e = exec(&format!("{base}/purge"), key_file(dir.path(), "old-key"), T);
        e.run(Action::Delete, &target("c1")).await.unwrap();
        key_file(dir.path(), "new-key");
        e.run(Action::Delete, &target("c1")).await.unwrap();
        let got = service.requests();
        assert_eq!(got[0].signature.as_deref(), Some(expected_signature(b"old-key", &got[0].body).as_str()));
        assert_eq!(got[1].signature.as_deref(), Some(expected_signature(b"new-key", &got[1].body).as_str()));
    }

    #[tokio::test]
    async fn secret_env_is_used() {
        // PATH is set for every test process; reading it needs no set_var,
        // which would race with other tests reading the environment.
        let path = std::env::var_os("PATH").expect("PATH is set").into_encoded_bytes();
        let (service, base) = serve().await;
        let e = exec(&format!("{base}/purge"), SecretSource::Env("PATH".into()), T);
        e.run(Action::Restrict, &target("c1")).await.unwrap();
        let got = service.requests();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].signature.as_deref(), Some(expected_signature(path.trim_ascii(), &got[0].body).as_str()));
    }

    #[tokio::test]
    async fn unusable_secret_sends_nothing() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/purge");
        let empty = key_file(dir.path(), " \n\t\n");
        for (secret, needle) in [
            (SecretSource::File(dir.path().join("missing.key")), "No such file"),
            (empty, "empty"),
            (SecretSource::File(dir.path().to_path_buf()), "not a regular file"),
            (SecretSource::Env("RETENTIOND_TEST_SURELY_UNSET_5F1C".into()), "not set"),
        ] {
            let err = exec(&url, secret.clone(), T).run(Action::Delete, &target("c1")).await.unwrap_err();
            assert!(matches!(err, ExecError::Secret { .. }), "{secret:?}: {err}");
            let text = err.to_string();
            assert!(text.contains(needle) && text.contains("nothing was sent"), "{text}");
        }
        assert!(service.requests().is_empty());
    }

    #[tokio::test]
    async fn non_success_statuses_are_errors() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let e = exec(&format!("{base}/purge"), key_file(dir.path(), "k"), T);
        for status in [500, 404, 409, 202] {
            service.answer(status);
            let err = e.run(Action::Delete, &target("c1")).await.unwrap_err();
            assert!(matches!(err, ExecError::HttpStatus { status: s, .. } if s == status), "{status}: {err}");
            assert!(err.to_string().contains(&format!("HTTP {status}")), "{err}");
        }
        for status in [200, 204] {
            service.answer(status);
            e.run(Action::Delete, &target("c1")).await.unwrap();
        }
        assert_eq!(service.requests().len(), 6);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let e = exec(&format!("{base}/moved"), key_file(dir.path(), "k"), T);
        let err = e.run(Action::Delete, &target("c1")).await.unwrap_err();
        assert!(matches!(err, ExecError::HttpStatus { status: 307, .. }), "{err}");
        assert_eq!(service.redirected.lock().unwrap().len(), 1);
        assert!(service.requests().is_empty(), "redirect was followed");
    }

    #[tokio::test]
    async fn slow_service_times_out_quickly() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let timeout = Dur(std::time::Duration::from_millis(300));
        let e = exec(&format!("{base}/slow"), key_file(dir.path(), "k"), timeout);
        let started = Instant::now();
        let err = e.run(Action::Delete, &target("c1")).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, ExecError::HttpTimeout { .. }), "{err}");
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
        assert!(took >= std::time::Duration::from_millis(250), "took {took:?}");
        assert!(err.to_string().contains("timed out after 300ms"), "{err}");
        assert_eq!(service.requests().len(), 1);
    }

    #[tokio::test]
    async fn https_to_a_plain_http_service_fails_closed() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let e = exec(&format!("{}/purge", base.replace("http://", "https://")), key_file(dir.path(), "k"), T);
        assert!(e.client.is_ok(), "{:?}", e.client.as_ref().err());
        let err = e.run(Action::Delete, &target("c1")).await.unwrap_err();
        assert!(matches!(err, ExecError::HttpRequest { .. }), "{err}");
        assert!(service.requests().is_empty());
    }

    #[tokio::test]
    async fn connection_refused_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let dir = tempfile::tempdir().unwrap();
        let e = exec(&format!("http://{addr}/purge"), key_file(dir.path(), "k"), T);
        let err = e.run(Action::Delete, &target("c1")).await.unwrap_err();
        assert!(matches!(err, ExecError::HttpRequest { .. }), "{err}");
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn bad_ids_and_bad_specs_send_nothing() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/purge");
        let e = exec(&url, key_file(dir.path(), "k"), T);
        let mut bad = target("c1");
        bad.resource = "r1\nx".into();
        let err = e.run(Action::Delete, &bad).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidTarget { field: "resource", .. }), "{err}");

        // Specs that would fail validate() still cannot run.
        let both = SecretSource::from_spec(Some(Path::new("/k")), Some("K"));
        let err = HttpExecutor::new(url.clone(), both, T).run(Action::Delete, &target("c1")).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }), "{err}");
        let err = exec(&url, key_file(dir.path(), "k"), Dur::default()).run(Action::Delete, &target("c1")).await;
        assert!(matches!(err, Err(ExecError::InvalidSpec { .. })), "{err:?}");
        assert!(service.requests().is_empty());
    }

    #[test]
    fn validate_rejects_bad_specs() {
        let file = || Ok(SecretSource::File("/etc/retentiond/purge.key".into()));
        let env = || Ok(SecretSource::Env("RETENTIOND_PURGE_KEY".into()));
        let url = "http://127.0.0.1:8443/v1/purge";
        assert!(validate(url, &file(), T).is_ok());
        assert!(validate(url, &env(), T).is_ok());
        assert!(validate("http://purge.internal/v1/purge?tenant_group=a", &env(), T).is_ok());
        assert!(validate("https://purge.internal/v1/purge", &file(), T).is_ok());

        let cases: Vec<(&str, Result<SecretSource, String>, Dur, &str)> = vec![
            (url, SecretSource::from_spec(Some(Path::new("/k")), Some("K")), T, "not both"),
            (url, SecretSource::from_spec(None, None), T, "set secret_file or secret_env"),
            ("not a url", file(), T, "not a valid URL"),
            ("http//x/y", file(), T, "not a valid URL"),
            ("ftp://purge.internal/x", file(), T, "scheme \"ftp\""),
            ("file:///etc/passwd", file(), T, "scheme \"file\""),
            ("http://user:pw@purge.internal/x", file(), T, "credentials"),
            ("http://purge.internal/x#frag", file(), T, "fragment"),
            (url, Ok(SecretSource::File("etc/purge.key".into())), T, "absolute"),
            (url, Ok(SecretSource::Env("A=B".into())), T, "not a valid environment variable name"),
            (url, Ok(SecretSource::Env(String::new())), T, "not a valid environment variable name"),
            (url, file(), Dur::default(), "timeout must be greater than zero"),
        ];
        for (u, secret, timeout, needle) in cases {
            let err = validate(u, &secret, timeout).expect_err(u);
            assert!(err.contains(needle), "{u} {secret:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn spec_level_validate_checks_the_secret_keys() {
        use super::super::ExecutorSpec;
        let spec = |secret_file: Option<&str>, secret_env: Option<&str>| ExecutorSpec::Http {
            url: "http://127.0.0.1:8443/v1/purge".into(),
            secret_file: secret_file.map(PathBuf::from),
            secret_env: secret_env.map(str::to_owned),
            timeout: T,
        };
        // The secret is not read at validation: a file that does not exist here is fine.
        assert!(spec(Some("/nonexistent/retentiond/purge.key"), None).validate().is_ok());
        assert!(spec(None, Some("RETENTIOND_TEST_SURELY_UNSET_5F1C")).validate().is_ok());
        assert!(spec(Some("/k"), Some("K")).validate().unwrap_err().contains("not both"));
        assert!(spec(None, None).validate().unwrap_err().contains("secret_file or secret_env"));
    }

    #[test]
    fn key_and_signature_helpers() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            idempotency_key(Action::Delete, "t1", "r1", "s", "c"),
            hex::encode(Sha256::digest(b"delete\nt1\nr1\ns\nc"))
        );
    }

    #[test]
    fn describe_leaves_out_query_and_credentials() {
        let e =
            HttpExecutor::new("http://u:p@127.0.0.1:8443/v1/purge?x=1".into(), Ok(SecretSource::Env("K".into())), T);
        assert_eq!(e.describe(), "http:http://127.0.0.1:8443/v1/purge");
    }
}
