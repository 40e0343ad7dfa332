//! JSON request bodies read strictly: a key given twice in one object is an
//! error naming the key.
//!
//! serde_json's `Value` keeps the last of two equal keys, so
//! `{"resource":"r1",...,"resource":"r2"}` would silently act on `r2` while
//! the sender (or a reviewer of its log) sees `r1` first. An instruction that
//! can delete data must mean one thing: the daemon refuses it instead
//! (issue 9). The check runs inside the one parse, at any depth.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (or trailing bytes after the value).
    #[error("not JSON: {0}")]
    Syntax(serde_json::Error),
    /// An object holds `key` twice.
    #[error("duplicate key {key:?}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// When the body is an array: the element holding it.
        index: Option<usize>,
    },
}

/// Parses a request body into a `Value`, refusing any repeated key.
pub fn from_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { found: &found, top: true }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, found.into_inner()) {
        (_, Some(dup)) => Err(dup),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(JsonError::Syntax(e)),
    }
}

/// A `Value` that refuses repeated keys when deserialized, for streams of
/// values (`ctl events` reading JSON Lines): the error is serde_json's,
/// reading `duplicate key "resource" at line 3 column 40`.
#[derive(Clone, Debug, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let found = RefCell::new(None);
        Strict { found: &found, top: false }.deserialize(d).map(StrictValue)
    }
}

/// Builds a `Value` like serde_json's own, noting the first repeated key.
#[derive(Clone, Copy)]
struct Strict<'a> {
    found: &'a RefCell<Option<JsonError>>,
    /// The body's own value (for the index of a duplicate in an array).
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = Strict { found: self.found, top: false };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            match seq.next_element_seed(inner) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    if let (true, Some(JsonError::DuplicateKey { index, .. })) =
                        (self.top, self.found.borrow_mut().as_mut())
                    {
                        *index = Some(items.len());
                    }
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = Strict { found: self.found, top: false };
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                *self.found.borrow_mut() = Some(JsonError::DuplicateKey { key, index: None });
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(inner)?;
            obj.insert(key, value);
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_serde_json_when_every_key_is_unique() {
        let text = br#"[{"a":1,"b":-2,"c":1.5,"d":"x","e":null,"f":true,"g":[1,{"h":2}],"i":18446744073709551615}]"#;
        assert_eq!(from_slice(text).unwrap(), serde_json::from_slice::<Value>(text).unwrap());
        // The same key in two objects is no duplicate.
        assert!(from_slice(br#"[{"a":1},{"a":2}]"#).is_ok());
    }

    #[test]
    fn names_a_repeated_key_at_any_depth_and_its_array_index() {
        match from_slice(br#"{"resource":"r1","type":"x","resource":"r2"}"#) {
            Err(JsonError::DuplicateKey { key, index: None }) => assert_eq!(key, "resource"),
            other => panic!("{other:?}"),
        }
        match from_slice(br#"[{"a":1},{"b":{"c":1,"c":2}}]"#) {
            Err(JsonError::DuplicateKey { key, index: Some(1) }) => assert_eq!(key, "c"),
            other => panic!("{other:?}"),
        }
        let e = from_slice(br#"{"a":1,"a":1}"#).unwrap_err().to_string();
        assert_eq!(e, "duplicate key \"a\"");
    }

    #[test]
    fn syntax_errors_and_trailing_bytes_are_syntax_errors() {
        assert!(matches!(from_slice(b"{not json"), Err(JsonError::Syntax(_))));
        assert!(matches!(from_slice(b"{} {}"), Err(JsonError::Syntax(_))));
        assert!(matches!(from_slice(b""), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn a_stream_of_strict_values_stops_at_a_duplicate() {
        let text = "{\"a\":1}\n{\"a\":1,\"a\":2}\n";
        let mut it = serde_json::Deserializer::from_str(text).into_iter::<StrictValue>();
        assert_eq!(it.next().unwrap().unwrap().0, json!({"a":1}));
        let e = it.next().unwrap().unwrap_err().to_string();
        assert!(e.contains("duplicate key \"a\"") && e.contains("line 2"), "{e}");
    }
}
