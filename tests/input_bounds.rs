//! Issue 9, points 5 and 7: values the contract's alphabet or number syntax
//! allowed but the daemon could not live with are refused at ingest with a
//! 400 naming the field, and nothing of the request is stored.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TERM_END: &str = "2026-06-01T00:00:00Z";

fn arrears(event_id: &str, amount: &str) -> Value {
    json!({"event_id": event_id, "type": "arrears.started", "at": T0, "tenant": "t1", "resource": "r1",
           "amount": amount, "currency": "EUR"})
}

/// The amount that made `GET /v1/resources/r1` drop the connection once time
/// had passed (2^96 - 1, rust_decimal's largest) is refused; the largest
/// accepted amount still gives a view with its late fee years later.
#[tokio::test]
async fn an_amount_beyond_the_bound_is_refused_and_nothing_is_stored() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    let records = h.audit().len();
    for amount in ["79228162514264337593543950335", "1000000000000000.5", "0.00001"] {
        let (status, v) = h.post_as(INGEST, "/v1/events", &arrears("a1", amount)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}: {v}");
        assert_eq!(v["field"], "amount", "{v}");
    }
    assert_eq!(h.audit().len(), records, "nothing of a refused event is audited");
    assert!(h.resource("r1").await["arrears"].is_null(), "no arrears recorded");

    // The id stayed free; the bound itself is accepted.
    h.apply(arrears("a1", "1000000000000000")).await;
    h.advance("3650d").await;
    let v = h.resource("r1").await;
    assert_eq!(v["arrears"]["amount"], "1000000000000000", "{v}");
    assert_eq!(v["arrears"]["late_fee_days"], 3650, "{v}");
    assert_eq!(v["arrears"]["late_fee"], "1825000000000000.00", "0.05 % a day for 3650 days: {v}");
}

/// Ids may not start with `-` (a `command` executor would be handed an
/// option, and the copy would stay `deleting` for ever): every id field.
#[tokio::test]
async fn an_id_starting_with_a_dash_is_refused_naming_the_field() {
    let h = Harness::with_config(&base_config(
        r#"
[stores.snap]
class = "backup"
executor = { kind = "fs", root = "data", path = "snap/{resource}/{copy}" }
"#,
    ))
    .await;
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    let records = h.audit().len();
    let hold = json!({"event_id": "h1", "type": "hold.placed", "at": T0, "tenant": "t1", "resource": "r1",
                      "hold_id": "court-1", "authority": "court", "reason": "case 1"});
    let backup = json!({"event_id": "b1", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
                        "store": "snap", "copy": "c1", "expires_at": TERM_END});
    let cases = [
        (created("-t", "t1", "r2", TERM_END), "event_id"),
        (created("e2", "-t", "r2", TERM_END), "tenant"),
        (created("e2", "t1", "-t", TERM_END), "resource"),
        (json!({"hold_id": "-t"}), "hold_id"),
        (json!({"copy": "-t"}), "copy"),
    ];
    for (event, field) in cases {
        let event = match field {
            "hold_id" => merge(&hold, &event),
            "copy" => merge(&backup, &event),
            _ => event,
        };
        let (status, v) = h.post_as(OPERATOR, "/v1/events", &event).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {v}");
        assert_eq!(v["field"], field, "{v}");
        assert!(v["error"].as_str().unwrap().contains("must not start with \"-\""), "{v}");
    }
    assert_eq!(h.audit().len(), records, "nothing stored");
    // Looking an id up is not refused by the new rule (a resource stored
    // before it may carry one): an unknown one is simply not found.
    let (status, _) = h.get_as(AUDITOR, "/v1/resources/-t").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A dash inside an id is as before.
    h.apply(created("e3", "t-1", "r-3", TERM_END)).await;
}

fn merge(base: &Value, over: &Value) -> Value {
    let mut v = base.clone();
    for (k, x) in over.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}
