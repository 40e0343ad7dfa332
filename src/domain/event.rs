//! Billing and operations events (product-spec §5): parsed from JSON into
//! typed values, every malformed field named, before anything is stored.

use crate::domain::privacy::{Decision, ErasureGround, RefusalGround, RequestKind};
pub use crate::domain::vocabulary::{Billing, TerminationReason};
use crate::ids::check_id;
use crate::time::{parse_rfc3339, Timestamp};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::str::FromStr;

/// What happened, with the fields that kind of event carries.
#[derive(Clone, Debug, PartialEq)]
pub enum EventBody {
    /// `resource.created`: start tracking; a prepaid term expires by itself.
    Created {
        /// Names a `[products.*]` section.
        product: String,
        /// prepaid or postpaid.
        billing: Billing,
        /// End of the prepaid term; `None` for postpaid.
        term_end: Option<Timestamp>,
    },
    /// `resource.renewed`: a new term end; cancels an expiry buffer.
    Renewed {
        /// The new end of term.
        term_end: Timestamp,
    },
    /// `resource.terminated`: early termination (general terms 7.4, 7.5).
    Terminated {
        /// Why: sets the buffer per product and reason.
        reason: TerminationReason,
    },
    /// `resource.reinstated`: a termination withdrawn by agreement.
    Reinstated,
    /// `resource.released`: the tenant's own instruction to delete now
    /// (general terms 4.1.4): no buffer.
    Released,
    /// `arrears.started`: fees unpaid (general terms 2.3).
    ArrearsStarted {
        /// Overdue amount, a decimal string ("120.50").
        amount: Option<Decimal>,
        /// ISO currency code, for display.
        currency: Option<String>,
    },
    /// `arrears.settled`: the fees are paid.
    ArrearsSettled,
    /// `hold.placed`: a legal or agreed exception (general terms 4.1.5).
    HoldPlaced {
        /// The hold's id (unique within its scope).
        hold_id: String,
        /// Who demands it (regulator, court, legal team).
        authority: String,
        /// Why, as given by the authority (free text, shown to operators).
        reason: String,
        /// When the hold should be looked at again; it stays in force past
        /// it, reported as due for review.
        review_at: Option<Timestamp>,
    },
    /// `hold.released`: the hold is lifted.
    HoldReleased {
        /// The hold's id.
        hold_id: String,
    },
    /// `backup.created`: a backup copy to track (general terms 4.1.5:
    /// backups go too).
    BackupCreated {
        /// A store of class `backup`.
        store: String,
        /// The copy's id in that store.
        copy: String,
        /// When the backup system lets it expire.
        expires_at: Timestamp,
    },
    /// `backup.deleted`: the backup system removed the copy itself.
    BackupDeleted {
        /// The store.
        store: String,
        /// The copy's id.
        copy: String,
    },
    /// `account.closed`: the tenant cancelled its account (privacy policy
    /// 5.5.2): every resource ends, every subject's personal data is
    /// erased after its class's period.
    AccountClosed,
    /// `subject.created`: a user of the account whose personal data is held.
    SubjectCreated {
        /// Unique within the tenant.
        subject: String,
    },
    /// `erasure.requested` or `restriction.requested` (privacy policy
    /// 5.4.3, 5.6.1; the international policy's restriction).
    Requested {
        /// The request.
        request: RequestFields,
    },
    /// `restriction.lifted`: the restriction of request `request_id` ends.
    RestrictionLifted {
        /// The restriction request being lifted.
        request_id: String,
        /// Whose data.
        subject: String,
    },
    /// `request.decided`: an operator's answer.
    RequestDecided {
        /// The request decided.
        request_id: String,
        /// Execute, or refuse on a ground.
        decision: Decision,
    },
}

/// The fields of a privacy request's event.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestFields {
    /// Unique across the daemon.
    pub request_id: String,
    /// Whose data (the account holder, the tenant id, by default).
    pub subject: String,
    /// Erasure or restriction.
    pub kind: RequestKind,
    /// Why erasure is asked (empty for a restriction).
    pub grounds: Vec<ErasureGround>,
    /// Whether the requester's identity is verified (default false: an
    /// unverified request cannot be executed).
    pub verified: bool,
}

/// One validated event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Unique id; a repeat is a no-op answered `duplicate`.
    pub event_id: String,
    /// When it happened: deadlines are anchored here, not at receipt.
    pub at: Timestamp,
    /// The customer account.
    pub tenant: String,
    /// The resource concerned; `None` for an `arrears.*` or `hold.*` event
    /// covering the whole tenant.
    pub resource: Option<String>,
    /// Kind-specific content.
    pub body: EventBody,
}

impl Event {
    /// The event's `type` as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match &self.body {
            EventBody::Created { .. } => "resource.created",
            EventBody::Renewed { .. } => "resource.renewed",
            EventBody::Terminated { .. } => "resource.terminated",
            EventBody::Reinstated => "resource.reinstated",
            EventBody::Released => "resource.released",
            EventBody::ArrearsStarted { .. } => "arrears.started",
            EventBody::ArrearsSettled => "arrears.settled",
            EventBody::HoldPlaced { .. } => "hold.placed",
            EventBody::HoldReleased { .. } => "hold.released",
            EventBody::BackupCreated { .. } => "backup.created",
            EventBody::BackupDeleted { .. } => "backup.deleted",
            EventBody::AccountClosed => "account.closed",
            EventBody::SubjectCreated { .. } => "subject.created",
            EventBody::Requested { request } => match request.kind {
                RequestKind::Erasure => "erasure.requested",
                RequestKind::Restriction => "restriction.requested",
            },
            EventBody::RestrictionLifted { .. } => "restriction.lifted",
            EventBody::RequestDecided { .. } => "request.decided",
        }
    }

    /// True for the events about the account and its people (product-spec
    /// §8), applied to subjects rather than resources.
    pub fn is_personal(&self) -> bool {
        is_personal(self.type_name())
    }

    /// True for events from operations and legal (holds, reinstatement),
    /// which the `ingest` role may not post (product-spec §3, §5), and for a
    /// termination for `violation`: a serious breach may purge at once
    /// (general terms 7.5.2, a zero buffer), an irreversible step that is
    /// an operator's decision, never a billing feed's alone. The answer to
    /// a privacy request and the lifting of a restriction are an
    /// operator's too (product-spec §8).
    pub fn is_operator_event(&self) -> bool {
        matches!(
            self.body,
            EventBody::Reinstated
                | EventBody::HoldPlaced { .. }
                | EventBody::HoldReleased { .. }
                | EventBody::Terminated { reason: TerminationReason::Violation }
                | EventBody::RestrictionLifted { .. }
                | EventBody::RequestDecided { .. }
        )
    }
}

/// A malformed event: which field, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {error}")]
pub struct FieldError {
    /// The offending field's name (`"body"` when the whole value is wrong).
    pub field: String,
    /// What is wrong.
    pub error: String,
}

fn bad(field: &str, error: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), error: error.into() }
}

const COMMON: [&str; 5] = ["event_id", "type", "at", "tenant", "resource"];

/// The event types this build understands.
pub const TYPES: [&str; 17] = [
    "backup.created",
    "backup.deleted",
    "resource.created",
    "resource.renewed",
    "resource.terminated",
    "resource.reinstated",
    "resource.released",
    "arrears.started",
    "arrears.settled",
    "hold.placed",
    "hold.released",
    "account.closed",
    "subject.created",
    "erasure.requested",
    "restriction.requested",
    "restriction.lifted",
    "request.decided",
];

/// Events about a tenant's account and its people, never a resource
/// (product-spec §8).
fn is_personal(kind: &str) -> bool {
    matches!(
        kind,
        "account.closed"
            | "subject.created"
            | "erasure.requested"
            | "restriction.requested"
            | "restriction.lifted"
            | "request.decided"
    )
}

/// Parses one event object. Unknown fields are refused so a misspelt field
/// cannot silently drop an instruction.
pub fn parse_event(v: &Value) -> Result<Event, FieldError> {
    let obj = v.as_object().ok_or_else(|| bad("body", "an event must be a JSON object"))?;
    let event_id = id_field(obj, "event_id")?;
    let kind = str_field(obj, "type")?;
    let at = time_field(obj, "at")?;
    let tenant = id_field(obj, "tenant")?;
    let resource = match obj.get("resource") {
        None | Some(Value::Null) => None,
        Some(_) => Some(id_field(obj, "resource")?.to_string()),
    };
    let tenant_scope_allowed = kind.starts_with("arrears.") || kind.starts_with("hold.");
    if resource.is_none() && !tenant_scope_allowed && !is_personal(kind) && TYPES.contains(&kind) {
        return Err(bad("resource", "required"));
    }
    if resource.is_some() && is_personal(kind) {
        return Err(bad("resource", format!("a {kind} event concerns the account, not a resource")));
    }
    let (body, extra): (EventBody, &[&str]) = match kind {
        "resource.created" => {
            let product = id_field(obj, "product")?;
            let billing = match str_field(obj, "billing")? {
                "prepaid" => Billing::Prepaid,
                "postpaid" => Billing::Postpaid,
                other => return Err(bad("billing", format!("must be \"prepaid\" or \"postpaid\", not {other:?}"))),
            };
            let term_end = match (billing, obj.get("term_end")) {
                (Billing::Prepaid, None) => return Err(bad("term_end", "required for a prepaid resource")),
                (Billing::Prepaid, Some(_)) => Some(time_field(obj, "term_end")?),
                (Billing::Postpaid, None) => None,
                (Billing::Postpaid, Some(_)) => return Err(bad("term_end", "a postpaid resource has no term end")),
            };
            if let Some(te) = term_end {
                if te <= at {
                    return Err(bad("term_end", "must be later than at"));
                }
            }
            (
                EventBody::Created { product: product.to_string(), billing, term_end },
                &["product", "billing", "term_end"],
            )
        }
        "resource.renewed" => (EventBody::Renewed { term_end: time_field(obj, "term_end")? }, &["term_end"]),
        "resource.terminated" => {
            let r = str_field(obj, "reason")?;
            let reason = TerminationReason::parse(r).ok_or_else(|| {
                let all: Vec<&str> = TerminationReason::ALL.iter().map(|r| r.as_str()).collect();
                bad("reason", format!("unknown reason {r:?}; expected one of {}", all.join(", ")))
            })?;
            (EventBody::Terminated { reason }, &["reason"])
        }
        "resource.reinstated" => (EventBody::Reinstated, &[]),
        "resource.released" => (EventBody::Released, &[]),
        "arrears.started" => {
            let amount = match obj.get("amount") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(parse_amount(s)?),
                Some(Value::Number(n)) => Some(parse_amount(&n.to_string())?),
                Some(_) => return Err(bad("amount", "must be a decimal number or string such as \"120.50\"")),
            };
            let currency = match obj.get("currency") {
                None | Some(Value::Null) => None,
                Some(_) => {
                    let c = str_field(obj, "currency")?;
                    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                        return Err(bad("currency", "must be a three-letter ISO 4217 code such as \"EUR\""));
                    }
                    Some(c.to_string())
                }
            };
            (EventBody::ArrearsStarted { amount, currency }, &["amount", "currency"])
        }
        "arrears.settled" => (EventBody::ArrearsSettled, &[]),
        "hold.placed" => {
            let hold_id = id_field(obj, "hold_id")?.to_string();
            let authority = text_field(obj, "authority")?;
            let reason = text_field(obj, "reason")?;
            let review_at = match obj.get("review_at") {
                None | Some(Value::Null) => None,
                Some(_) => Some(time_field(obj, "review_at")?),
            };
            if review_at.is_some_and(|t| t <= at) {
                return Err(bad("review_at", "must be later than at"));
            }
            (
                EventBody::HoldPlaced { hold_id, authority, reason, review_at },
                &["hold_id", "authority", "reason", "review_at"],
            )
        }
        "hold.released" => (EventBody::HoldReleased { hold_id: id_field(obj, "hold_id")?.to_string() }, &["hold_id"]),
        "backup.created" => {
            let store = id_field(obj, "store")?.to_string();
            let copy = id_field(obj, "copy")?.to_string();
            let expires_at = time_field(obj, "expires_at")?;
            (EventBody::BackupCreated { store, copy, expires_at }, &["store", "copy", "expires_at"])
        }
        "backup.deleted" => {
            let store = id_field(obj, "store")?.to_string();
            let copy = id_field(obj, "copy")?.to_string();
            (EventBody::BackupDeleted { store, copy }, &["store", "copy"])
        }
        "account.closed" => (EventBody::AccountClosed, &[]),
        "subject.created" => {
            (EventBody::SubjectCreated { subject: id_field(obj, "subject")?.to_string() }, &["subject"])
        }
        "erasure.requested" | "restriction.requested" => {
            let kind = if kind == "erasure.requested" { RequestKind::Erasure } else { RequestKind::Restriction };
            let request_id = id_field(obj, "request_id")?.to_string();
            let subject = subject_field(obj, tenant)?;
            let verified = match obj.get("verified") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad("verified", "must be true or false")),
            };
            let grounds = match kind {
                RequestKind::Erasure => grounds_field(obj)?,
                RequestKind::Restriction => Vec::new(),
            };
            let extra: &[&str] = match kind {
                RequestKind::Erasure => &["request_id", "subject", "grounds", "verified"],
                RequestKind::Restriction => &["request_id", "subject", "verified"],
            };
            (EventBody::Requested { request: RequestFields { request_id, subject, kind, grounds, verified } }, extra)
        }
        "restriction.lifted" => {
            let request_id = id_field(obj, "request_id")?.to_string();
            let subject = subject_field(obj, tenant)?;
            (EventBody::RestrictionLifted { request_id, subject }, &["request_id", "subject"])
        }
        "request.decided" => {
            let request_id = id_field(obj, "request_id")?.to_string();
            let ground = match obj.get("ground") {
                None | Some(Value::Null) => None,
                Some(_) => {
                    let g = str_field(obj, "ground")?;
                    Some(RefusalGround::parse(g).ok_or_else(|| {
                        bad("ground", format!("unknown ground {g:?}; expected one of {}", RefusalGround::expected()))
                    })?)
                }
            };
            let decision = match (str_field(obj, "decision")?, ground) {
                ("execute", None) => Decision::Execute,
                ("execute", Some(_)) => return Err(bad("ground", "only a refusal has a ground")),
                ("refuse", Some(g)) => Decision::Refuse(g),
                ("refuse", None) => {
                    return Err(bad(
                        "ground",
                        format!("required to refuse (privacy policy 5.8); one of {}", RefusalGround::expected()),
                    ))
                }
                (other, _) => return Err(bad("decision", format!("must be \"execute\" or \"refuse\", not {other:?}"))),
            };
            (EventBody::RequestDecided { request_id, decision }, &["request_id", "decision", "ground"])
        }
        other => {
            return Err(bad("type", format!("unknown event type {other:?}; expected one of {}", TYPES.join(", "))))
        }
    };
    if let Some(unknown) = obj.keys().find(|k| !COMMON.contains(&k.as_str()) && !extra.contains(&k.as_str())) {
        return Err(bad(unknown, format!("unknown field for a {kind} event")));
    }
    Ok(Event { event_id: event_id.into(), at, tenant: tenant.into(), resource, body })
}

/// The largest overdue amount accepted: 10^15 (a thousand billion in any
/// currency). With [`MAX_AMOUNT_DECIMALS`] it keeps every amount, and the
/// late fee computed from it, far inside `Decimal`'s 28 digits (issue 9: an
/// amount of 2^96 made the resource view overflow).
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xA4C6_8000, 0x0003_8D7E, 0, false, 0);

/// At most this many decimal places in an amount (trailing zeros aside):
/// enough for every ISO 4217 currency's minor unit.
pub const MAX_AMOUNT_DECIMALS: u32 = 4;

fn parse_amount(s: &str) -> Result<Decimal, FieldError> {
    let d = Decimal::from_str(s.trim()).map_err(|_| bad("amount", format!("{s:?} is not a decimal amount")))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(bad("amount", "must not be negative"));
    }
    if d > MAX_AMOUNT {
        return Err(bad("amount", format!("must be at most {MAX_AMOUNT}")));
    }
    if d.normalize().scale() > MAX_AMOUNT_DECIMALS {
        return Err(bad("amount", format!("must have at most {MAX_AMOUNT_DECIMALS} decimal places")));
    }
    Ok(d)
}

/// `subject`: an id, the account holder (the tenant's own id) when left out.
fn subject_field(obj: &Map<String, Value>, tenant: &str) -> Result<String, FieldError> {
    match obj.get("subject") {
        None | Some(Value::Null) => Ok(tenant.to_string()),
        Some(_) => Ok(id_field(obj, "subject")?.to_string()),
    }
}

/// `grounds` of an erasure request: one or more of the closed list
/// (privacy policy 5.4.3), each once.
fn grounds_field(obj: &Map<String, Value>) -> Result<Vec<ErasureGround>, FieldError> {
    let expected = || format!("a list of one or more of {}", ErasureGround::expected());
    let list = match obj.get("grounds") {
        None | Some(Value::Null) => return Err(bad("grounds", format!("required: {}", expected()))),
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(_) => return Err(bad("grounds", format!("must be {}", expected()))),
    };
    let mut grounds = Vec::new();
    for g in list {
        let name = g.as_str().ok_or_else(|| bad("grounds", format!("must be {}", expected())))?;
        let ground = ErasureGround::parse(name).ok_or_else(|| {
            bad("grounds", format!("unknown ground {name:?}; expected one of {}", ErasureGround::expected()))
        })?;
        if !grounds.contains(&ground) {
            grounds.push(ground);
        }
    }
    Ok(grounds)
}

fn str_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(bad(field, "required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// Free text shown to operators (hold authority and reason): 1 to 256
/// characters, no control characters, so it cannot forge log lines.
fn text_field(obj: &Map<String, Value>, field: &str) -> Result<String, FieldError> {
    let s = str_field(obj, field)?;
    if s.trim().is_empty() || s.chars().count() > 256 || s.chars().any(char::is_control) {
        return Err(bad(field, "must be 1 to 256 characters without control characters"));
    }
    Ok(s.to_string())
}

fn id_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    let s = str_field(obj, field)?;
    check_id(s).map_err(|e| bad(field, e))?;
    Ok(s)
}

fn time_field(obj: &Map<String, Value>, field: &str) -> Result<Timestamp, FieldError> {
    parse_rfc3339(str_field(obj, field)?).map_err(|e| bad(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn created() -> Value {
        json!({"event_id":"e1","type":"resource.created","at":"2026-01-01T00:00:00Z","tenant":"t1",
               "resource":"r1","product":"ecs","billing":"prepaid","term_end":"2026-02-01T00:00:00+01:00"})
    }

    #[test]
    fn parses_a_prepaid_creation_with_offset_time() {
        let e = parse_event(&created()).unwrap();
        assert_eq!(e.type_name(), "resource.created");
        match e.body {
            EventBody::Created { term_end: Some(t), billing: Billing::Prepaid, .. } => {
                assert_eq!(crate::time::fmt_rfc3339(t), "2026-01-31T23:00:00Z")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_the_bad_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("event_id", json!(""), "event_id"),
            ("tenant", json!("../etc"), "tenant"),
            ("resource", json!(null), "resource"),
            ("at", json!("yesterday"), "at"),
            ("type", json!("resource.exploded"), "type"),
            ("billing", json!("monthly"), "billing"),
            ("term_end", json!("2025-01-01T00:00:00Z"), "term_end"),
            ("colour", json!("red"), "colour"),
        ];
        for (key, value, field) in cases {
            let mut v = created();
            v[key] = value;
            let err = parse_event(&v).unwrap_err();
            assert_eq!(err.field, field, "{key}: {err}");
        }
        let mut v = created();
        v.as_object_mut().unwrap().remove("term_end");
        assert_eq!(parse_event(&v).unwrap_err().field, "term_end");
        assert_eq!(parse_event(&json!([1])).unwrap_err().field, "body");
    }

    #[test]
    fn tenant_scope_only_for_arrears_and_holds() {
        let hold = json!({"event_id":"h","type":"hold.placed","at":"2026-01-01T00:00:00Z","tenant":"t1",
                          "hold_id":"court-1","authority":"District court","reason":"case 12/2026"});
        let e = parse_event(&hold).unwrap();
        assert_eq!(e.resource, None);
        assert!(e.is_operator_event());
        let mut v = created();
        v.as_object_mut().unwrap().remove("resource");
        assert_eq!(parse_event(&v).unwrap_err().field, "resource");
        let mut bad_text = hold.clone();
        bad_text["reason"] = json!("line\nforged");
        assert_eq!(parse_event(&bad_text).unwrap_err().field, "reason");
    }

    /// `review_at` is optional on `hold.placed`, an RFC 3339 time after
    /// `at`; anything else is refused naming it.
    #[test]
    fn a_hold_may_carry_a_review_date_after_its_placement() {
        let hold = json!({"event_id":"h","type":"hold.placed","at":"2026-01-01T00:00:00Z","tenant":"t1",
                          "hold_id":"court-1","authority":"Court","reason":"case","review_at":"2026-07-01T02:00:00+02:00"});
        match parse_event(&hold).unwrap().body {
            EventBody::HoldPlaced { review_at: Some(t), .. } => {
                assert_eq!(crate::time::fmt_rfc3339(t), "2026-07-01T00:00:00Z")
            }
            other => panic!("{other:?}"),
        }
        let mut none = hold.clone();
        none["review_at"] = Value::Null;
        assert!(matches!(parse_event(&none).unwrap().body, EventBody::HoldPlaced { review_at: None, .. }));
        for bad in [json!("next year"), json!(20260701), json!("2026-01-01T00:00:00Z"), json!("2025-12-31T00:00:00Z")] {
            let mut v = hold.clone();
            v["review_at"] = bad.clone();
            assert_eq!(parse_event(&v).unwrap_err().field, "review_at", "{bad}");
        }
        let mut released = hold.clone();
        released["type"] = json!("hold.released");
        for k in ["authority", "reason"] {
            released.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(parse_event(&released).unwrap_err().field, "review_at", "only a placement has one");
    }

    #[test]
    fn arrears_amount_and_termination_reason_are_checked() {
        let base = json!({"event_id":"a","type":"arrears.started","at":"2026-01-01T00:00:00Z","tenant":"t1",
                          "amount":"120.50","currency":"EUR"});
        match parse_event(&base).unwrap().body {
            EventBody::ArrearsStarted { amount: Some(a), .. } => assert_eq!(a.to_string(), "120.50"),
            other => panic!("{other:?}"),
        }
        for (k, v) in [
            ("amount", json!("12,5")),
            ("amount", json!("-1")),
            ("amount", json!("79228162514264337593543950335")),
            ("amount", json!("1000000000000000.01")),
            ("amount", json!(1e16)),
            ("amount", json!("0.00001")),
            ("currency", json!("euro")),
        ] {
            let mut e = base.clone();
            e[k] = v;
            assert_eq!(parse_event(&e).unwrap_err().field, k);
        }
        assert_eq!(MAX_AMOUNT, Decimal::from(1_000_000_000_000_000_i64));
        for ok in [json!("1000000000000000"), json!("0.0001"), json!("12.50000"), json!(0), json!(99.5)] {
            let mut e = base.clone();
            e["amount"] = ok.clone();
            assert!(parse_event(&e).is_ok(), "{ok}");
        }
        let t = json!({"event_id":"x","type":"resource.terminated","at":"2026-01-01T00:00:00Z","tenant":"t1",
                       "resource":"r1","reason":"boredom"});
        assert_eq!(parse_event(&t).unwrap_err().field, "reason");
    }
}
