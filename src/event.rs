//! Billing and operations events (product-spec §5): parsed from JSON into
//! typed values, every malformed field named, before anything is stored.

use crate::ids::check_id;
use crate::time::{parse_rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a resource is paid for (general terms 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Billing {
    /// Subscription: served from activation to `term_end` (general terms 7.2.1).
    Prepaid,
    /// Pay-as-you-go, charged per billing period; no term end.
    Postpaid,
}

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
    /// `resource.released`: the tenant's own instruction to delete now
    /// (general terms 4.1.4): no buffer.
    Released,
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
    /// The resource concerned (required by every `resource.*` event).
    pub resource: String,
    /// Kind-specific content.
    pub body: EventBody,
}

impl Event {
    /// The event's `type` as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self.body {
            EventBody::Created { .. } => "resource.created",
            EventBody::Renewed { .. } => "resource.renewed",
            EventBody::Released => "resource.released",
        }
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
pub const TYPES: [&str; 3] = ["resource.created", "resource.renewed", "resource.released"];

/// Parses one event object. Unknown fields are refused so a misspelt field
/// cannot silently drop an instruction.
pub fn parse_event(v: &Value) -> Result<Event, FieldError> {
    let obj = v.as_object().ok_or_else(|| bad("body", "an event must be a JSON object"))?;
    let event_id = id_field(obj, "event_id")?;
    let kind = str_field(obj, "type")?;
    let at = time_field(obj, "at")?;
    let tenant = id_field(obj, "tenant")?;
    let resource = id_field(obj, "resource")?;
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
        "resource.released" => (EventBody::Released, &[]),
        other => {
            return Err(bad("type", format!("unknown event type {other:?}; this build accepts {}", TYPES.join(", "))))
        }
    };
    if let Some(unknown) = obj.keys().find(|k| !COMMON.contains(&k.as_str()) && !extra.contains(&k.as_str())) {
        return Err(bad(unknown, format!("unknown field for a {kind} event")));
    }
    Ok(Event { event_id: event_id.into(), at, tenant: tenant.into(), resource: resource.into(), body })
}

fn str_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(bad(field, "required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn id_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    let s = str_field(obj, field)?;
    check_id(s).map_err(|e| bad(field, e))?;
    Ok(s)
}

fn time_field(obj: &Map<String, Value>, field: &str) -> Result<Timestamp, FieldError> {
    parse_rfc3339(str_field(obj, field)?).map_err(|e| bad(field, e))
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
}
