//! RFC 8785 canonical JSON: the bytes each record's hash covers.

use super::*;

/// RFC 8785 (JCS) canonical JSON for the values audit records carry:
/// objects, arrays, strings, integers, booleans and null.
///
/// Why: the hash must be reproducible byte for byte by any independent
/// verifier, so the bytes hashed cannot depend on serializer details. This
/// writes object members sorted by the UTF-16 code units of their keys (as
/// JCS requires — this differs from UTF-8 byte order for characters above
/// U+FFFF against U+E000..U+FFFF), no insignificant whitespace, strings as
/// UTF-8 with only `"`, `\` and control characters escaped (`\b \t \n \f \r`
/// short forms, other controls as lowercase `\u00xx`), and integers in plain
/// decimal.
///
/// Floats: records never carry them (JCS would require ECMAScript number
/// formatting, which this does not implement); should one appear it is
/// written as `serde_json` writes it. Integers beyond 2^53 are written
/// exactly, not rounded through a double as strict JCS would.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, v);
    out
}

pub(super) fn write_canonical(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else {
                // Documented above: floats are outside the record vocabulary.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_canonical_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_str(out, key);
                out.push(':');
                write_canonical(out, value);
            }
            out.push('}');
        }
    }
}

/// JCS string serialization (RFC 8785 §3.2.2.2).
pub(super) fn write_canonical_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
