//! The console's HTML: one layout around every page, and a generic view of
//! the API's answers (ids, dates and states) as nested tables. maud escapes
//! every value it writes, so a hold's free-text reason cannot become markup.
//! No JavaScript anywhere; the style sheet is inline and small.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:0 1rem;color:#222}\
nav{display:flex;gap:1rem;flex-wrap:wrap;padding:.6rem 0;border-bottom:1px solid #ccc}\
nav form{margin-left:auto}table{border-collapse:collapse;margin:.4rem 0;width:100%}\
th,td{border:1px solid #ddd;padding:.2rem .4rem;text-align:left;vertical-align:top;font-size:.9rem}\
th{background:#f4f4f4}.ok{color:#075}.bad{color:#a00;font-weight:bold}.muted{color:#666}\
h2{margin-top:1.2rem;font-size:1.1rem}code{word-break:break-all}";

/// Content-Security-Policy of every console page: no script, no frame, no
/// fetch, no image; inline style only; forms post to the daemon only.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'";

/// A whole page: `title`, the navigation (when `nav`), then `body`.
pub fn page(status: StatusCode, title: &str, nav: bool, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — retentiond console" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                @if nav {
                    nav {
                        a href="/console/" { "Overview" }
                        a href="/console/forecast" { "Forecast" }
                        a href="/console/holds" { "Holds" }
                        a href="/console/stuck" { "Stuck copies" }
                        a href="/console/audit" { "Audit feed" }
                        form method="post" action="/console/logout" { button type="submit" { "Log out" } }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    };
    let mut resp = (status, doc.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// An error page with the navigation.
pub fn error(status: StatusCode, message: &str) -> Response {
    page(status, status.canonical_reason().unwrap_or("Error"), true, html! { p.bad { (message) } })
}

/// A JSON answer as HTML: objects as two-column tables, arrays of objects
/// as tables with a column per key, scalars as text. A resource id becomes
/// a link to its page.
pub fn value(v: &Value) -> Markup {
    match v {
        Value::Null => html! { span.muted { "—" } },
        Value::String(s) => html! { (s) },
        Value::Bool(b) => html! { (b) },
        Value::Number(n) => html! { (n.to_string()) },
        Value::Object(map) => html! {
            table {
                @for (k, v) in map {
                    tr { th { (k) } td { (field(k, v)) } }
                }
            }
        },
        Value::Array(items) if items.is_empty() => html! { span.muted { "none" } },
        Value::Array(items) => {
            let Some(Value::Object(first)) = items.first() else {
                return html! { @for (i, v) in items.iter().enumerate() { @if i > 0 { ", " } (value(v)) } };
            };
            let keys: Vec<&String> = first.keys().collect();
            html! {
                table {
                    tr { @for k in &keys { th { (k) } } }
                    @for item in items {
                        tr { @for k in &keys { td { (field(k, item.get(k.as_str()).unwrap_or(&Value::Null))) } } }
                    }
                }
            }
        }
    }
}

/// One field: a resource id as a link to its page, anything else as [`value`].
fn field(key: &str, v: &Value) -> Markup {
    match (key, v) {
        ("resource", Value::String(id)) if crate::ids::check_stored_id(id).is_ok() => resource_link(id),
        _ => value(v),
    }
}

/// A link to a resource's page (ids are restricted to `A-Za-z0-9._:-`, so
/// they need no escaping in a path; maud escapes them anyway).
pub fn resource_link(id: &str) -> Markup {
    html! { a href={ "/console/resources/" (id) } { code { (id) } } }
}
