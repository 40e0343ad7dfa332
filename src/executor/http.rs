//! The `http` executor: asks a deletion service over HTTP to act on one copy
//! of business data, or on one class of a subject's personal data.
//!
//! Each run POSTs a small JSON object naming the action and the copy:
//!
//! ```json
//! {"action":"delete","tenant":"t1","resource":"r1","store":"primary","copy":"eu","idempotency_key":"<hex>"}
//! ```
//!
//! or, for a store of personal data (product-spec §8), the subject and the
//! privacy class instead of the resource and the copy:
//!
//! ```json
//! {"action":"anonymize","tenant":"t1","subject":"u7","store":"crm","class":"contact","idempotency_key":"<hex>"}
//! ```
//!
//! signed and sent as [`crate::outbound::http`] describes (the headers
//! `Content-Type: application/json`, `Idempotency-Key: <hex>` and
//! `X-Retentiond-Signature: sha256=<hex HMAC-SHA256(secret, body)>`; no
//! redirects; only a 2xx other than 202 counts as done, so a 202 is retried
//! with the same key until the receiver answers 200 or 204). The
//! idempotency key is the hex SHA-256 of
//! `action\ntenant\nresource\nstore\ncopy`, or of
//! `personal\naction\ntenant\nsubject\nstore\nclass` (ids never contain a
//! newline, and the two shapes have different numbers of lines), so a retry
//! of the same action on the same target, after a timeout or a crash,
//! carries the same key and the receiver can deduplicate it, while another
//! action, copy, subject or class gets another key. The signature covers
//! the whole body, so every field and the key are authenticated.

use sha2::{Digest, Sha256};

use super::{Action, ExecError, Item, Placeholder, Target};
use crate::outbound::{HttpSpec, SignedPost};

/// POSTs a signed request per copy or per subject and class; a 2xx answer
/// other than 202 means it is done (gone, restricted, anonymised or
/// unrestricted). The receiving service must be idempotent by the
/// `Idempotency-Key` header.
#[derive(Clone, Debug)]
pub struct HttpExecutor {
    post: SignedPost,
}

/// The JSON body for a copy of business data; field order is fixed by the
/// struct, so the bytes signed are deterministic for a given action and copy.
#[derive(Debug, serde::Serialize)]
struct Body<'a> {
    action: &'a str,
    tenant: &'a str,
    resource: &'a str,
    store: &'a str,
    copy: &'a str,
    idempotency_key: &'a str,
}

/// The JSON body for one class of a subject's personal data: the same
/// shape with `subject` and `class` in place of `resource` and `copy`, so a
/// receiver cannot take one for the other.
#[derive(Debug, serde::Serialize)]
struct PersonalBody<'a> {
    action: &'a str,
    tenant: &'a str,
    subject: &'a str,
    store: &'a str,
    class: &'a str,
    idempotency_key: &'a str,
}

/// Hex SHA-256 of `parts` joined by newlines (ids never hold one).
fn digest_lines(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Hex SHA-256 of `action\ntenant\nresource\nstore\ncopy`. Ids never hold a
/// newline, so distinct copies never share a key.
pub fn idempotency_key(action: Action, tenant: &str, resource: &str, store: &str, copy: &str) -> String {
    digest_lines(&[action.as_str(), tenant, resource, store, copy])
}

/// Hex SHA-256 of `personal\naction\ntenant\nsubject\nstore\nclass`: six
/// lines against a copy's five, so no personal key equals a business one
/// (a subject and class spelt like a resource and copy included).
pub fn personal_idempotency_key(action: Action, tenant: &str, subject: &str, store: &str, class: &str) -> String {
    digest_lines(&["personal", action.as_str(), tenant, subject, store, class])
}

impl HttpExecutor {
    /// An executor for `spec`. Not validated here: [`HttpExecutor::run`]
    /// re-validates and refuses an invalid spec.
    pub fn new(spec: HttpSpec) -> HttpExecutor {
        HttpExecutor { post: SignedPost::new(spec) }
    }

    /// `http:<scheme>://<host>[:port]<path>`, for logs and errors (no query,
    /// which may carry something an operator would rather not log).
    pub fn describe(&self) -> String {
        format!("http:{}", self.post.endpoint())
    }

    /// Sends the request for `action` on `target`. Ok(()) only on a 2xx
    /// answer other than 202.
    pub async fn run(&self, action: Action, target: &Target) -> Result<(), ExecError> {
        // The spec first: a broken spec is reported as such whatever the ids.
        let prepared = self.post.prepare()?;
        target.check_action(action)?;
        let tenant = Placeholder::Tenant.value(action, target)?;
        let store = Placeholder::Store.value(action, target)?;
        let (key, body) = match &target.item {
            Item::Copy { .. } => {
                let resource = Placeholder::Resource.value(action, target)?;
                let copy = Placeholder::Copy.value(action, target)?;
                let key = idempotency_key(action, tenant, resource, store, copy);
                let body = Body { action: action.as_str(), tenant, resource, store, copy, idempotency_key: &key };
                let body = serde_json::to_vec(&body).map_err(ExecError::RequestBody)?;
                (key, body)
            }
            Item::Personal { .. } => {
                let subject = Placeholder::Subject.value(action, target)?;
                let class = Placeholder::Class.value(action, target)?;
                let key = personal_idempotency_key(action, tenant, subject, store, class);
                let body =
                    PersonalBody { action: action.as_str(), tenant, subject, store, class, idempotency_key: &key };
                let body = serde_json::to_vec(&body).map_err(ExecError::RequestBody)?;
                (key, body)
            }
        };
        Ok(prepared.send(&key, body).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use hmac::{Hmac, Mac};

    use crate::duration::Dur;
    use crate::outbound::{signature, SecretSource};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{header, HeaderMap, StatusCode};
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
        Target::copy("t1", "snapshots", "r1", copy)
    }

    fn exec(url: &str, secret: SecretSource, timeout: Dur) -> HttpExecutor {
        let (secret_file, secret_env) = match secret {
            SecretSource::File(path) => (Some(path), None),
            SecretSource::Env(name) => (None, Some(name)),
        };
        HttpExecutor::new(HttpSpec { url: url.to_owned(), secret_file, secret_env, timeout })
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

    /// Product-spec §8: a personal store's request names the subject and
    /// the class (never a resource or copy), is signed over those bytes, and
    /// its idempotency key is the same on a retry but differs by action,
    /// class and subject, and from any copy's key.
    #[tokio::test]
    async fn personal_request_carries_subject_and_class_with_its_own_key() {
        let (service, base) = serve().await;
        let dir = tempfile::tempdir().unwrap();
        let e = exec(&format!("{base}/purge"), key_file(dir.path(), "s3cret"), T);
        let person = |subject: &str, class: &str| Target::personal("t1", "crm", subject, class);

        e.run(Action::Anonymize, &person("u7", "contact")).await.unwrap();
        e.run(Action::Anonymize, &person("u7", "contact")).await.unwrap();
        e.run(Action::Delete, &person("u7", "contact")).await.unwrap();
        e.run(Action::Anonymize, &person("u7", "billing_records")).await.unwrap();
        e.run(Action::Anonymize, &person("u8", "contact")).await.unwrap();
        e.run(Action::Restrict, &person("u7", "contact")).await.unwrap();
        e.run(Action::Unrestrict, &person("u7", "contact")).await.unwrap();
        let err = e.run(Action::Purge, &person("u7", "contact")).await.unwrap_err();
        assert!(matches!(err, ExecError::ActionNotForData { action: Action::Purge, .. }), "{err}");

        let got = service.requests();
        assert_eq!(got.len(), 7, "the purge was not sent");
        let want_key = sha256_hex("personal\nanonymize\nt1\nu7\ncrm\ncontact");
        assert_eq!(got[0].key.as_deref(), Some(want_key.as_str()));
        assert_eq!(
            String::from_utf8(got[0].body.clone()).unwrap(),
            format!(
                r#"{{"action":"anonymize","tenant":"t1","subject":"u7","store":"crm","class":"contact","idempotency_key":"{want_key}"}}"#
            )
        );
        for r in &got {
            assert_eq!(r.signature.as_deref(), Some(expected_signature(b"s3cret", &r.body).as_str()));
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(json["idempotency_key"].as_str(), r.key.as_deref());
            assert!(json.get("resource").is_none() && json.get("copy").is_none(), "{json}");
        }
        let actions: Vec<String> = got
            .iter()
            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["action"].to_string())
            .collect();
        assert_eq!(
            actions,
            [
                r#""anonymize""#,
                r#""anonymize""#,
                r#""delete""#,
                r#""anonymize""#,
                r#""anonymize""#,
                r#""restrict""#,
                r#""unrestrict""#
            ]
        );
        // A retry has the same key and bytes; every other request its own key.
        assert_eq!((&got[1].key, &got[1].body), (&got[0].key, &got[0].body));
        let mut keys: Vec<_> = got.iter().skip(1).map(|r| r.key.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 6);
        // The same strings as a copy's ids give another key.
        assert_ne!(
            personal_idempotency_key(Action::Delete, "t1", "u7", "crm", "contact"),
            idempotency_key(Action::Delete, "t1", "u7", "crm", "contact")
        );
        // A business target on the same executor still sends a copy's body.
        e.run(Action::Delete, &Target::copy("t1", "snapshots", "r1", "c1")).await.unwrap();
        let last: serde_json::Value = serde_json::from_slice(&service.requests()[7].body).unwrap();
        assert_eq!((last["resource"].as_str(), last.get("subject")), (Some("r1"), None));
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
        assert!(e.post.client().is_ok(), "{:?}", e.post.client().err());
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
        let bad = Target::copy("t1", "snapshots", "r1\nx", "c1");
        let err = e.run(Action::Delete, &bad).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidTarget { field: "resource", .. }), "{err}");
        let err = e.run(Action::Delete, &Target::personal("t1", "crm", "-u7", "contact")).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidTarget { field: "subject", .. }), "{err}");
        let err = e.run(Action::Delete, &Target::personal("t1", "crm", "u7", "con tact")).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidTarget { field: "class", .. }), "{err}");

        // Specs that would fail validate() still cannot run.
        let both =
            HttpSpec { url: url.clone(), secret_file: Some("/k".into()), secret_env: Some("K".into()), timeout: T };
        let err = HttpExecutor::new(both).run(Action::Delete, &target("c1")).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }), "{err}");
        let err = exec(&url, key_file(dir.path(), "k"), Dur::default()).run(Action::Delete, &target("c1")).await;
        assert!(matches!(err, Err(ExecError::InvalidSpec { .. })), "{err:?}");
        assert!(service.requests().is_empty());
    }

    #[test]
    fn spec_level_validate_checks_the_secret_keys() {
        use super::super::{DataKind, ExecutorSpec};
        let spec = |secret_file: Option<&str>, secret_env: Option<&str>| {
            ExecutorSpec::Http(HttpSpec {
                url: "http://127.0.0.1:8443/v1/purge".into(),
                secret_file: secret_file.map(PathBuf::from),
                secret_env: secret_env.map(str::to_owned),
                timeout: T,
            })
        };
        // The secret is not read at validation: a file that does not exist here is fine.
        assert!(spec(Some("/nonexistent/retentiond/purge.key"), None).validate(DataKind::Business).is_ok());
        assert!(spec(None, Some("RETENTIOND_TEST_SURELY_UNSET_5F1C")).validate(DataKind::Business).is_ok());
        assert!(spec(Some("/k"), Some("K")).validate(DataKind::Business).unwrap_err().to_string().contains("not both"));
        assert!(spec(None, None)
            .validate(DataKind::Business)
            .unwrap_err()
            .to_string()
            .contains("secret_file or secret_env"));
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
        let e = exec("http://u:p@127.0.0.1:8443/v1/purge?x=1", SecretSource::Env("K".into()), T);
        assert_eq!(e.describe(), "http:http://127.0.0.1:8443/v1/purge");
    }
}
