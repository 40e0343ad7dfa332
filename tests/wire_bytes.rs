//! The HTTP API's answers, byte for byte: the keys, their order and the
//! spacing every client has seen. Pinned before the answers were built from
//! typed wire structs instead of `json!`, so that change (and any later
//! one) cannot reorder or rename a key unnoticed.

mod common;

use common::*;
use reqwest::StatusCode;
use retentiond::api::wire;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// A GET's status and body as served.
async fn get(h: &Harness, token: &str, path: &str) -> (StatusCode, String) {
    h.get_text(token, path).await
}

/// A POST of `body` (JSON) and the answer as served.
async fn post(h: &Harness, token: &str, path: &str, body: &Value) -> (StatusCode, String) {
    let resp = h.client.post(format!("{}{path}", h.base)).bearer_auth(token).json(body).send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// True if `text` is compact JSON with every object's keys in alphabetical
/// order (what `json!` produced: serde_json here has no `preserve_order`).
fn sorted_compact(text: &str) -> bool {
    let v: Value = serde_json::from_str(text).unwrap();
    serde_json::to_string(&v).unwrap() == text
}

/// `text` read into `T` (as ctl reads it) and written back, sorted, gives
/// the same bytes.
#[track_caller]
fn reads_back<T: DeserializeOwned + Serialize>(text: &str) {
    let typed: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(serde_json::to_string(&serde_json::to_value(&typed).unwrap()).unwrap(), text);
}

/// Checks answers against pinned bytes, with this run's temporary
/// directory and policy versions (which hash the config) named by
/// placeholders such as `$DIR` and `$DB`.
struct Pins {
    subs: Vec<(String, &'static str)>,
}

impl Pins {
    /// The placeholders of `h`: its directory, and each product's policy
    /// version in force.
    async fn of(h: &Harness, names: &[(&str, &'static str)]) -> Pins {
        let (_, ready) = h.get_as(AUDITOR, "/readyz").await;
        let mut subs = vec![(h.dir.path().display().to_string(), "$DIR")];
        for (product, name) in names {
            subs.push((ready["policies"][product].as_str().unwrap().to_string(), *name));
        }
        Pins { subs }
    }

    #[track_caller]
    fn check(&self, got: (StatusCode, String), status: StatusCode, want: &str) {
        let mut text = got.1;
        for (from, to) in &self.subs {
            text = text.replace(from.as_str(), to);
        }
        assert_eq!(got.0, status, "{text}");
        assert_eq!(text, want, "\n got: {text}\nwant: {want}");
    }

    /// [`Pins::check`], then the answer read into its wire type `T` (as ctl
    /// reads it) and written back as the daemon writes it: the same bytes,
    /// so `T` holds every field, missing and `null` ones told apart.
    #[track_caller]
    fn check_as<T: DeserializeOwned + Serialize>(&self, got: (StatusCode, String), status: StatusCode, want: &str) {
        self.check(got, status, want);
        reads_back::<T>(want);
    }

    /// [`Pins::check_as`] for the two answers sent in declared order, not
    /// sorted: [`wire::Approval`] and [`wire::PolicyReport`].
    #[track_caller]
    fn check_declared<T: DeserializeOwned + Serialize>(
        &self,
        got: (StatusCode, String),
        status: StatusCode,
        want: &str,
    ) {
        self.check(got, status, want);
        let typed: T = serde_json::from_str(want).unwrap_or_else(|e| panic!("{e}: {want}"));
        assert_eq!(serde_json::to_string(&typed).unwrap(), want);
    }
}

const EXTRA: &str = r#"
[stores.cache]
class = "cache"
executor = { kind = "fs", root = "cache", path = "{resource}" }

[stores.vault]
class = "online"
executor = { kind = "fs", root = "vault", path = "{tenant}/{resource}" }

[products.db]
stores = ["primary", "cache"]
buffer = { expiry = "30d", arrears = "10d", termination = "20d", violation = "0s" }
arrears_grace = "3d"
late_fee_per_day = "0.05%"

[products.v]
stores = ["vault"]
buffer = { expiry = "15d", arrears = "15d", termination = "15d", violation = "0s" }
"#;

fn config(arrears: &str) -> String {
    base_config(EXTRA)
        .replace("state_dir = \"state\"", "state_dir = \"state\"\nmax_attempts = 1")
        .replace("arrears = \"10d\"", &format!("arrears = \"{arrears}\""))
}

fn ev(id: &str, kind: &str, tenant: &str, resource: Option<&str>, extra: Value) -> Value {
    let mut v = json!({"event_id": id, "type": kind, "at": T0, "tenant": tenant});
    if let Some(r) = resource {
        v["resource"] = json!(r);
    }
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_keep_their_bytes() {
    let h = Harness::with_config(&config("10d")).await;
    fs_root(&h.dir.path().join("cache"));
    let p = Pins::of(&h, &[("db", "$DB"), ("ecs", "$ECS"), ("v", "$V")]).await;
    // `vault` is never created: its deletions fail, and with max_attempts
    // = 1 the copy is stuck at once.
    let batch = json!([
        ev(
            "c1",
            "resource.created",
            "t1",
            Some("r1"),
            json!({"product": "db", "billing": "prepaid", "term_end": "2026-03-01T00:00:00Z"})
        ),
        ev("c2", "resource.created", "t1", Some("r2"), json!({"product": "db", "billing": "postpaid"})),
        ev("c3", "resource.created", "t2", Some("r3"), json!({"product": "v", "billing": "postpaid"})),
        ev("a1", "arrears.started", "t1", None, json!({"amount": "1000.00", "currency": "EUR"})),
        ev("x2", "resource.terminated", "t1", Some("r2"), json!({"reason": "agreement"})),
        ev(
            "h1",
            "hold.placed",
            "t1",
            Some("r1"),
            json!({"hold_id": "court-1", "authority": "Court", "reason": "case 7"})
        ),
        ev(
            "h2",
            "hold.placed",
            "t1",
            Some("r1"),
            json!({"hold_id": "court-1", "authority": "Court", "reason": "again"})
        ),
        ev("r3", "resource.released", "t2", Some("r3"), json!({})),
        // Reported after its deadline: lifted to the late-event floor, and held.
        ev(
            "c4",
            "resource.created",
            "t3",
            Some("r4"),
            json!({"at": "2025-01-01T00:00:00Z", "product": "db", "billing": "prepaid", "term_end": "2025-06-01T00:00:00Z"})
        ),
        ev(
            "h4",
            "hold.placed",
            "t3",
            Some("r4"),
            json!({"hold_id": "lit-4", "authority": "Legal", "reason": "dispute"})
        ),
    ]);
    p.check_as::<wire::EventsAnswer>(post(&h, ADMIN, "/v1/events", &batch).await, StatusCode::OK, r#"{"results":[{"event_id":"c1","status":"applied"},{"event_id":"c2","status":"applied"},{"event_id":"c3","status":"applied"},{"event_id":"a1","status":"applied"},{"event_id":"x2","status":"applied"},{"event_id":"h1","status":"applied"},{"error":"hold \"court-1\" is already placed on \"r1\"","event_id":"h2","status":"rejected"},{"event_id":"r3","status":"applied"},{"event_id":"c4","status":"applied"},{"event_id":"h4","status":"applied"}]}"#);
    p.check_as::<wire::EventsAnswer>(
        post(&h, ADMIN, "/v1/events", &batch[0]).await,
        StatusCode::OK,
        r#"{"results":[{"event_id":"c1","status":"duplicate"}]}"#,
    );
    p.check_as::<wire::ClockAnswer>(
        post(&h, ADMIN, "/v1/admin/clock", &json!({"advance": "10d"})).await,
        StatusCode::OK,
        r#"{"now":"2026-01-11T00:00:00Z"}"#,
    );

    p.check_as::<wire::ResourceView>(get(&h, AUDITOR, "/v1/resources/r1").await, StatusCode::OK, r#"{"arrears":null,"billing":"prepaid","buffer_started_at":null,"buffers":{"expiry":null,"release":null},"cause":null,"copies":[{"attempts":0,"class":"online","copy":"primary","done_at":null,"expires_at":null,"last_error":null,"next_attempt_at":null,"outcome":null,"state":"present","store":"primary","stuck":false},{"attempts":0,"class":"cache","copy":"cache","done_at":null,"expires_at":null,"last_error":null,"next_attempt_at":null,"outcome":null,"state":"present","store":"cache","stuck":false}],"created_at":"2026-01-01T00:00:00Z","delete_after":null,"deletion_started_at":null,"history":[{"at":"2026-01-01T00:00:00Z","detail":"created (db, prepaid, term ends 2026-03-01T00:00:00Z)","what":"resource.created"},{"at":"2026-01-01T00:00:00Z","detail":"hold court-1 placed by Court","what":"hold.placed"}],"holds":[{"authority":"Court","hold_id":"court-1","placed_at":"2026-01-01T00:00:00Z","reason":"case 7","scope":"resource"}],"not_before":null,"policy_version":null,"product":"db","reason":null,"resource":"r1","state":"active","tenant":"t1","term_end":"2026-03-01T00:00:00Z","termination":null}"#);
    p.check_as::<wire::ResourceView>(get(&h, AUDITOR, "/v1/resources/r2").await, StatusCode::OK, r#"{"arrears":{"amount":"1000.00","buffer":{"cause":"arrears","delete_after":"2026-01-14T00:00:00Z","policy_version":"$DB","reason":null,"started_at":"2026-01-04T00:00:00Z"},"currency":"EUR","late_fee":"5.00","late_fee_days":10,"late_fee_per_day":"0.05%","started_at":"2026-01-01T00:00:00Z"},"billing":"postpaid","buffer_started_at":"2026-01-04T00:00:00Z","buffers":{"expiry":null,"release":null},"cause":"arrears","copies":[{"attempts":0,"class":"online","copy":"primary","done_at":null,"expires_at":null,"last_error":null,"next_attempt_at":null,"outcome":null,"state":"present","store":"primary","stuck":false},{"attempts":0,"class":"cache","copy":"cache","done_at":null,"expires_at":null,"last_error":null,"next_attempt_at":null,"outcome":null,"state":"present","store":"cache","stuck":false}],"created_at":"2026-01-01T00:00:00Z","delete_after":"2026-01-14T00:00:00Z","deletion_started_at":null,"history":[{"at":"2026-01-01T00:00:00Z","detail":"created (db, postpaid)","what":"resource.created"},{"at":"2026-01-01T00:00:00Z","detail":"fees in arrears","what":"arrears.started"},{"at":"2026-01-01T00:00:00Z","detail":"terminated: agreement","what":"resource.terminated"},{"at":"2026-01-01T00:00:00Z","detail":"termination buffer started","what":"buffer.started"},{"at":"2026-01-01T00:00:00Z","detail":"termination deletion scheduled for 2026-01-21T00:00:00Z (policy $DB)","what":"deletion.scheduled"},{"at":"2026-01-01T00:00:00Z","detail":"buffer_started notice not sent","what":"notice.skipped"},{"at":"2026-01-04T00:00:00Z","detail":"arrears buffer started","what":"buffer.started"},{"at":"2026-01-04T00:00:00Z","detail":"arrears deletion scheduled for 2026-01-14T00:00:00Z (policy $DB)","what":"deletion.scheduled"},{"at":"2026-01-11T00:00:00Z","detail":"buffer_started notice not sent","what":"notice.skipped"}],"holds":[],"not_before":null,"policy_version":"$DB","product":"db","reason":null,"resource":"r2","state":"retained","tenant":"t1","term_end":null,"termination":{"at":"2026-01-01T00:00:00Z","buffer":{"cause":"termination","delete_after":"2026-01-21T00:00:00Z","policy_version":"$DB","reason":"agreement","started_at":"2026-01-01T00:00:00Z"},"reason":"agreement"}}"#);
    p.check_as::<wire::ResourceView>(get(&h, AUDITOR, "/v1/resources/r4").await, StatusCode::OK, r#"{"arrears":null,"billing":"prepaid","buffer_started_at":"2025-06-01T00:00:00Z","buffers":{"expiry":{"cause":"expiry","delete_after":"2026-01-02T00:00:00Z","late_event_floor":"2026-01-02T00:00:00Z","policy_version":"$DB","reason":null,"started_at":"2025-06-01T00:00:00Z"},"release":null},"cause":"expiry","copies":[{"attempts":0,"class":"online","copy":"primary","done_at":null,"expires_at":null,"last_error":null,"next_attempt_at":null,"outcome":null,"state":"present","store":"primary","stuck":false},{"attempts":0,"class":"cache","copy":"cache","done_at":null,"expires_at":null,"last_error":null,"next_attempt_at":null,"outcome":null,"state":"present","store":"cache","stuck":false}],"created_at":"2025-01-01T00:00:00Z","delete_after":"2026-01-02T00:00:00Z","deletion_started_at":null,"history":[{"at":"2025-01-01T00:00:00Z","detail":"created (db, prepaid, term ends 2025-06-01T00:00:00Z)","what":"resource.created"},{"at":"2026-01-01T00:00:00Z","detail":"hold lit-4 placed by Legal","what":"hold.placed"},{"at":"2025-06-01T00:00:00Z","detail":"expiry buffer started","what":"buffer.started"},{"at":"2025-06-01T00:00:00Z","detail":"expiry deletion scheduled for 2026-01-02T00:00:00Z (policy $DB)","what":"deletion.scheduled"},{"at":"2026-01-01T00:00:00Z","detail":"buffer_started notice not sent","what":"notice.skipped"}],"holds":[{"authority":"Legal","hold_id":"lit-4","placed_at":"2026-01-01T00:00:00Z","reason":"dispute","scope":"resource"}],"not_before":null,"policy_version":"$DB","product":"db","reason":null,"resource":"r4","state":"retained","tenant":"t3","term_end":"2025-06-01T00:00:00Z","termination":null}"#);
    p.check_as::<wire::ResourceView>(get(&h, AUDITOR, "/v1/resources/r3").await, StatusCode::OK, r#"{"arrears":null,"billing":"postpaid","buffer_started_at":"2026-01-01T00:00:00Z","buffers":{"expiry":null,"release":{"cause":"release","delete_after":"2026-01-01T00:00:00Z","policy_version":"$V","reason":null,"started_at":"2026-01-01T00:00:00Z"}},"cause":"release","copies":[{"attempts":1,"class":"online","copy":"vault","done_at":null,"expires_at":null,"last_error":"fs root $DIR/vault is unavailable: No such file or directory (os error 2)","next_attempt_at":null,"outcome":null,"state":"deleting","store":"vault","stuck":true}],"created_at":"2026-01-01T00:00:00Z","delete_after":"2026-01-01T00:00:00Z","deletion_started_at":"2026-01-01T00:00:00Z","history":[{"at":"2026-01-01T00:00:00Z","detail":"created (v, postpaid)","what":"resource.created"},{"at":"2026-01-01T00:00:00Z","detail":"release deletion scheduled for 2026-01-01T00:00:00Z (policy $V)","what":"deletion.scheduled"},{"at":"2026-01-01T00:00:00Z","detail":"released by the tenant: delete without buffer","what":"resource.released"},{"at":"2026-01-01T00:00:00Z","detail":"deletion of 1 copies started","what":"deletion.started"}],"holds":[],"not_before":null,"policy_version":"$V","product":"v","reason":null,"resource":"r3","state":"deleting","tenant":"t2","term_end":null,"termination":null}"#);
    p.check_as::<wire::Deletions>(get(&h, AUDITOR, "/v1/deletions?before=2026-12-31T00:00:00Z").await, StatusCode::OK, r#"{"before":"2026-12-31T00:00:00Z","deletions":[{"blockers":[],"cause":"release","deadline":"2026-01-01T00:00:00Z","pending_copies":[{"attempts":1,"copy":"vault","last_error":"fs root $DIR/vault is unavailable: No such file or directory (os error 2)","next_attempt_at":null,"state":"deleting","store":"vault","stuck":true}],"policy_version":"$V","product":"v","projected":false,"reason":null,"resource":"r3","state":"deleting","tenant":"t2"},{"blockers":["hold:lit-4"],"cause":"expiry","deadline":"2026-01-02T00:00:00Z","policy_version":"$DB","product":"db","projected":false,"reason":null,"resource":"r4","state":"retained","tenant":"t3"},{"blockers":[],"cause":"arrears","deadline":"2026-01-14T00:00:00Z","policy_version":"$DB","product":"db","projected":false,"reason":null,"resource":"r2","state":"retained","tenant":"t1"},{"blockers":["hold:court-1"],"cause":"expiry","deadline":"2026-03-31T00:00:00Z","policy_version":"$DB","product":"db","projected":true,"reason":null,"resource":"r1","state":"active","tenant":"t1"}]}"#);
    p.check_as::<wire::Readiness>(get(&h, AUDITOR, "/readyz").await, StatusCode::OK, r#"{"clock":"manual","clock_anomaly":false,"dry_run":false,"guard_batch":null,"guard_tripped":false,"last_reload":null,"now":"2026-01-11T00:00:00Z","paused":false,"policies":{"db":"$DB","ecs":"$ECS","v":"$V"},"ready":true}"#);
    p.check_as::<wire::RestoreCheck>(get(&h, AUDITOR, "/v1/restore-check?tenant=t2").await, StatusCode::OK, r#"{"allowed":false,"reason":"1 resources of tenant t2 are deleted or restricted","refused":[{"reason":"resource r3 is being deleted; its backups are restricted","resource":"r3"}]}"#);
    p.check_as::<wire::RestoreCheck>(
        get(&h, AUDITOR, "/v1/restore-check?tenant=t1").await,
        StatusCode::OK,
        r#"{"allowed":true,"reason":"no resource of tenant t1 is deleted or restricted"}"#,
    );
    p.check_as::<wire::RestoreCheck>(
        get(&h, AUDITOR, "/v1/restore-check?resource=r1").await,
        StatusCode::OK,
        r#"{"allowed":true,"reason":"resource r1 is active"}"#,
    );
    p.check_as::<wire::RestoreCheck>(
        get(&h, AUDITOR, "/v1/restore-check?resource=nosuch").await,
        StatusCode::OK,
        r#"{"allowed":false,"reason":"unknown resource nosuch"}"#,
    );

    p.check_as::<wire::Paused>(
        post(&h, OPERATOR, "/v1/admin/pause", &json!({})).await,
        StatusCode::OK,
        r#"{"paused":true}"#,
    );
    p.check_as::<wire::Readiness>(get(&h, AUDITOR, "/readyz").await, StatusCode::OK, r#"{"clock":"manual","clock_anomaly":false,"dry_run":false,"guard_batch":null,"guard_tripped":false,"last_reload":null,"now":"2026-01-11T00:00:00Z","paused":true,"policies":{"db":"$DB","ecs":"$ECS","v":"$V"},"ready":true}"#);
    p.check_as::<wire::Paused>(
        post(&h, OPERATOR, "/v1/admin/resume", &json!({})).await,
        StatusCode::OK,
        r#"{"paused":false}"#,
    );
    p.check_declared::<wire::Approval>(
        post(&h, OPERATOR, "/v1/admin/approve", &json!({})).await,
        StatusCode::OK,
        r#"{"approved":[],"batch":null}"#,
    );
    p.check_as::<wire::Retried>(
        post(&h, OPERATOR, "/v1/admin/retry", &json!({"resource": "r3", "store": null})).await,
        StatusCode::OK,
        r#"{"retried":1}"#,
    );

    // A reload that lengthens the arrears buffer, then applying it.
    std::fs::write(h.config_path(), config("12d")).unwrap();
    h.daemon.as_ref().unwrap().reload().await.expect("reload accepted");
    let p = Pins::of(&h, &[("db", "$DB2"), ("ecs", "$ECS"), ("v", "$V")]).await;
    p.check_as::<wire::Readiness>(get(&h, AUDITOR, "/readyz").await, StatusCode::OK, r#"{"clock":"manual","clock_anomaly":false,"dry_run":false,"guard_batch":null,"guard_tripped":false,"last_reload":{"added":[],"at":"2026-01-11T00:00:00Z","changed":["db"],"ok":true,"removed":[]},"now":"2026-01-11T00:00:00Z","paused":false,"policies":{"db":"$DB2","ecs":"$ECS","v":"$V"},"ready":true}"#);
    p.check_declared::<wire::PolicyReport>(post(&h, OPERATOR, "/v1/admin/apply-policy", &json!({"product": "db"})).await, StatusCode::OK, r#"{"product":"db","policy_version":"$DB2","rescheduled":[{"resource":"r2","from":"2026-01-14T00:00:00Z","to":"2026-01-16T00:00:00Z"}],"unchanged":1}"#);
    p.check_declared::<wire::PolicyReport>(
        post(&h, OPERATOR, "/v1/admin/apply-policy", &json!({"product": "db"})).await,
        StatusCode::OK,
        r#"{"product":"db","policy_version":"$DB2","rescheduled":[],"unchanged":3}"#,
    );

    // The audit page and a certificate carry hashes of records that name
    // this run's temporary paths: their key order is pinned, not their bytes.
    let (status, audit) = get(&h, AUDITOR, "/v1/audit?after_seq=0&limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert!(sorted_compact(&audit), "{audit}");
    reads_back::<wire::AuditPage>(&audit);
    assert_eq!(serde_json::from_str::<Value>(&audit).unwrap()["records"].as_array().unwrap().len(), 5);

    // Refusals: 400 naming the field and the index, 401, 403, 404, 413.
    let bad = json!([
        batch[0],
        ev("b", "resource.created", "t1", Some("r9"), json!({"product": "nosuch", "billing": "postpaid"}))
    ]);
    p.check_as::<wire::ErrorBody>(
        post(&h, ADMIN, "/v1/events", &bad).await,
        StatusCode::BAD_REQUEST,
        r#"{"error":"unknown product \"nosuch\"","field":"product","index":1}"#,
    );
    p.check_as::<wire::ErrorBody>(
        get(&h, "wrong", "/readyz").await,
        StatusCode::UNAUTHORIZED,
        r#"{"error":"unknown token"}"#,
    );
    p.check_as::<wire::ErrorBody>(
        get(&h, INGEST, "/readyz").await,
        StatusCode::FORBIDDEN,
        r#"{"error":"role ingest may not do this"}"#,
    );
    p.check_as::<wire::ErrorBody>(
        get(&h, AUDITOR, "/v1/resources/nosuch").await,
        StatusCode::NOT_FOUND,
        r#"{"error":"unknown resource \"nosuch\""}"#,
    );
    let many: Vec<Value> = (0..1001).map(|i| with_id(&batch[0], i)).collect();
    p.check_as::<wire::ErrorBody>(post(&h, ADMIN, "/v1/events", &json!(many)).await, StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"1001 events in one request; at most 1000 are accepted: split the batch","limit":"events_per_request","max":1000}"#);
}

/// `event` with the id `e{i}`.
fn with_id(event: &Value, i: usize) -> Value {
    let mut v = event.clone();
    v["event_id"] = json!(format!("e{i}"));
    v
}

/// `approve` and `apply-policy` answered engine structs, in their declared
/// field order (`size` before `digest`), not alphabetically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_batch_keeps_its_declared_order() {
    let h = Harness::start().await;
    let mut created = Vec::new();
    let mut releases = Vec::new();
    for i in 0..100 {
        let r = format!("r{i}");
        h.make_data("t1", &r);
        created.push(ev(
            &format!("c{i}"),
            "resource.created",
            "t1",
            Some(&r),
            json!({"product": "ecs", "billing": "postpaid"}),
        ));
        if i < 50 {
            releases.push(ev(&format!("x{i}"), "resource.released", "t1", Some(&r), json!({})));
        }
    }
    h.events(json!(created)).await;
    h.events(json!(releases)).await;
    let p = Pins::of(&h, &[("ecs", "$ECS")]).await;
    p.check_as::<wire::Readiness>(get(&h, AUDITOR, "/readyz").await, StatusCode::OK, r#"{"clock":"manual","clock_anomaly":false,"dry_run":false,"guard_batch":{"digest":"1f743ce4c02db492c0e457bbc46c0d9566a5e242363add3b1681db13b6b2f042","size":50,"tripped_at":"2026-01-01T00:00:00Z","window":"short"},"guard_tripped":true,"last_reload":null,"now":"2026-01-01T00:00:00Z","paused":false,"policies":{"ecs":"$ECS"},"ready":true}"#);
    p.check_as::<wire::ErrorBody>(post(&h, OPERATOR, "/v1/admin/approve", &json!({"batch_digest": "abc"})).await, StatusCode::CONFLICT, r#"{"error":"the guard holds batch 1f743ce4c02db492c0e457bbc46c0d9566a5e242363add3b1681db13b6b2f042, not batch abc: nothing was approved"}"#);
    p.check_declared::<wire::Approval>(post(&h, OPERATOR, "/v1/admin/approve", &json!({})).await, StatusCode::OK, r#"{"approved":["guard"],"batch":{"size":50,"digest":"1f743ce4c02db492c0e457bbc46c0d9566a5e242363add3b1681db13b6b2f042"}}"#);
    h.advance("0s").await;
    let (status, cert) = get(&h, AUDITOR, "/v1/certificates/r0").await;
    assert_eq!(status, StatusCode::OK, "{cert}");
    assert!(sorted_compact(&cert), "{cert}");
    reads_back::<wire::Certificate>(&cert);
}
