//! The read-only console (issue 13.8, product-spec §4 `/console/`):
//! server-rendered HTML for auditors and operators, without JavaScript,
//! behind the API's own tokens and roles. It shows ids, dates and states
//! only (what the API's answers hold), never business data.
//!
//! # Log in, sessions, and why there is no CSRF token
//! `GET /console/login` is a form; `POST /console/login` takes the token,
//! counts a wrong one toward the source's lock-out as the API does, and
//! for a role that may read answers with a cookie naming a [`session`]
//! (`HttpOnly`, `SameSite=Strict`, `Path=/console/`, `Secure` when the
//! listener is TLS). `POST /console/logout` ends it. Every other console
//! route is a `GET` that changes nothing, so a forged cross-site request
//! can make nothing happen; `SameSite=Strict` keeps the cookie off
//! cross-site requests anyway. Logging a browser into someone else's
//! session (login CSRF) would need that someone's token, and a login
//! whose `Sec-Fetch-Site` says it comes from another site is refused.
//!
//! # Layout
//! - this file: the routes, the session check, log in and log out;
//! - [`session`]: the session table;
//! - `render`: the layout and the generic view of answers;
//! - `pages`: overview, forecast, resource, holds, stuck copies,
//!   certificates, audit feed.

mod pages;
mod render;
pub mod session;

use super::ApiState;
use crate::auth::{Permission, Role};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::html;
use session::Sessions;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The session cookie's name.
pub const COOKIE: &str = "retentiond_console";

/// The largest login form read, in bytes: a token and little else.
const MAX_LOGIN_BYTES: usize = 4 * 1024;

/// What the console's handlers share: the API's state and the sessions.
#[derive(Clone)]
pub(super) struct ConsoleState {
    api: ApiState,
    sessions: Arc<Mutex<Sessions>>,
    verified: Arc<tokio::sync::Mutex<pages::Verified>>,
}

/// The console's routes, under `/console/`, outside the OpenAPI
/// description (it describes `/v1`). Pages need a session; log in does not.
pub(super) fn router(api: ApiState) -> Router {
    let state = ConsoleState { api, sessions: Arc::default(), verified: Arc::default() };
    let pages = Router::new()
        .route("/console/", get(pages::overview))
        .route("/console/forecast", get(pages::forecast))
        .route("/console/resources", get(pages::find_resource))
        .route("/console/resources/{id}", get(pages::resource))
        .route("/console/holds", get(pages::holds))
        .route("/console/stuck", get(pages::stuck))
        .route("/console/certificates/{id}", get(pages::certificate))
        .route("/console/audit", get(pages::audit))
        .route_layer(from_fn_with_state(state.clone(), with_session));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/login", get(login_form).post(login).layer(DefaultBodyLimit::max(MAX_LOGIN_BYTES)))
        .route("/console/logout", post(logout))
        .merge(pages)
        .with_state(state)
}

/// The session cookie's value in `headers`, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The role the request's session stands for: its token looked up again,
/// so a token removed on reload ends its sessions.
fn session_role(state: &ConsoleState, headers: &HeaderMap) -> Option<Role> {
    let id = session_cookie(headers)?;
    let digest = state.sessions.lock().unwrap_or_else(|e| e.into_inner()).token_of(id, Instant::now())?;
    state.api.tokens.get().by_digest(&digest).map(|t| t.role)
}

/// Every page: without a session, to the login form; a role that may not
/// read (ingest) gets 403; else the role goes to the page.
async fn with_session(State(state): State<ConsoleState>, mut req: Request, next: Next) -> Response {
    match session_role(&state, req.headers()) {
        None => Redirect::to("/console/login").into_response(),
        Some(role) if !role.allows(Permission::Read) => forbidden(role),
        Some(role) => {
            req.extensions_mut().insert(role);
            next.run(req).await
        }
    }
}

fn forbidden(role: Role) -> Response {
    let msg = format!("The role {} may not read the console.", format!("{role:?}").to_lowercase());
    render::page(
        StatusCode::FORBIDDEN,
        "Forbidden",
        false,
        html! { p.bad { (msg) } p { a href="/console/login" { "Log in with another token" } } },
    )
}

/// `GET /console/login`: the form.
async fn login_form() -> Response {
    login_page(StatusCode::OK, None)
}

fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let body = html! {
        @if let Some(p) = problem { p.bad { (p) } }
        form method="post" action="/console/login" {
            label for="token" { "API token (auditor, operator or admin)" }
            br;
            input id="token" name="token" type="password" autocomplete="off" required size="48";
            " "
            button type="submit" { "Log in" }
        }
        p.muted { "The token is sent once; the browser then keeps only a session cookie, which ends after 8 hours, at log out, or when the daemon restarts." }
    };
    render::page(status, "Log in", false, body)
}

/// The login form's fields.
#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /console/login`: checks the token as the API does (lock-out
/// included) and opens a session for a role that may read.
async fn login(
    State(state): State<ConsoleState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return login_page(StatusCode::FORBIDDEN, Some("A login must come from the console's own form."));
        }
    }
    let source = connect.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(ConnectInfo(peer))| peer.ip());
    let now = Instant::now();
    let api = &state.api;
    let locked = api.auth_failures.lock().unwrap_or_else(|e| e.into_inner()).check(source, now);
    if let Err(wait) = locked {
        let msg = format!("Too many failed logins from this address; try again in {} s.", wait.as_secs() + 1);
        return login_page(StatusCode::TOO_MANY_REQUESTS, Some(&msg));
    }
    let Ok(Form(form)) = form else {
        return login_page(StatusCode::BAD_REQUEST, Some("The form was not understood."));
    };
    let tokens = api.tokens.get();
    let Some(entry) = tokens.authenticate(form.token.trim()) else {
        let config = api.config.get();
        let mut table = api.auth_failures.lock().unwrap_or_else(|e| e.into_inner());
        table.failed(source, now, config.api.max_auth_failures, config.api.auth_lockout.0);
        return login_page(StatusCode::UNAUTHORIZED, Some("Unknown token."));
    };
    if !entry.role.allows(Permission::Read) {
        return forbidden(entry.role);
    }
    let digest = sha2::Sha256::digest(form.token.trim().as_bytes()).into();
    let opened = state.sessions.lock().unwrap_or_else(|e| e.into_inner()).open(digest, now);
    let id = match opened {
        Ok(id) => id,
        Err(e) => return render::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    tracing::info!(token = %entry.name, "console login");
    let secure = if api.config.get().api.tls.is_some() { "; Secure" } else { "" };
    let max_age = session::SESSION_LIFETIME.as_secs();
    let cookie =
        format!("{COOKIE}={}; Path=/console/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}", id.as_str());
    with_cookie(Redirect::to("/console/").into_response(), &cookie)
}

use sha2::Digest as _;

/// `POST /console/logout`: ends the session and clears the cookie.
async fn logout(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        state.sessions.lock().unwrap_or_else(|e| e.into_inner()).close(id);
    }
    let cookie = format!("{COOKIE}=; Path=/console/; HttpOnly; SameSite=Strict; Max-Age=0");
    with_cookie(Redirect::to("/console/login").into_response(), &cookie)
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
