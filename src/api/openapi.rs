//! The API described: the OpenAPI 3.1 document served at
//! `GET /v1/openapi.json` (product-spec §4), so that clients are written
//! from a description instead of from prose.
//!
//! # Why it cannot drift
//! - Each route is registered with the router through its handler's
//!   `#[utoipa::path]` attribute (`utoipa_axum::routes!` in [`super`]):
//!   the method and path the router serves are the ones described, written
//!   once. `tests/openapi.rs` also compares the router's own list of paths
//!   with the document, so a route added with a bare `.route(..)` fails.
//! - Answers are described by the [`super::wire`] types the handlers build
//!   them from (and ctl reads them into); the domain's enums and the audit
//!   and certificate types by their serde names, listed here from the types
//!   themselves (an enum gaining a variant does not compile until listed).
//! - Events are parsed by hand ([`crate::domain::event::parse_event`]), so
//!   their schema is the [`Event`] type here; tests check that it names
//!   every type the daemon accepts, exactly the fields each takes, and that
//!   whatever it describes is parsed alike.
//!
//! # Who may read it
//! Any valid token, whatever its role: a billing system (role `ingest`)
//! is written from it as much as an operator's tooling. Without a token it
//! is refused (401) like every route but `/healthz`: the daemon answers
//! strangers nothing but liveness (product-spec §3).

use super::wire::ErrorBody;
use crate::domain::guard::WindowKind;
use crate::domain::lifecycle::{CopyState, State as ResourceState};
use crate::domain::policy::{Billing, Cause, StoreClass, TerminationReason};
use crate::domain::privacy::{ErasureGround, RefusalGround};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::sync::LazyLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, KnownFormat, OpenApi, RefOr, ResponseBuilder, Responses};
use utoipa::{Modify, PartialSchema, ToSchema};

/// The name of the bearer-token security scheme in the document (as
/// `security` in [`ApiDoc`] names it).
pub const BEARER: &str = "bearer";

/// An id a request introduces (product-spec §5, [`crate::ids::check_id`]):
/// 1 to 128 of `A-Z a-z 0-9 . _ : -`, neither `.` nor `..`, not starting
/// with `-`. Written without look-ahead, which not every client's regex
/// engine has.
pub const ID_PATTERN: &str =
    r"^([A-Za-z0-9_:][A-Za-z0-9._:-]{0,127}|\.[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,126}|\.\.[A-Za-z0-9._:-]{1,126})$";

/// An id a request looks up ([`crate::ids::check_stored_id`]): as
/// [`ID_PATTERN`], but a leading `-` is allowed, as older daemons stored some.
pub const STORED_ID_PATTERN: &str =
    r"^([A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}|\.[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,126}|\.\.[A-Za-z0-9._:-]{1,126})$";

/// The document's frame: title, the security scheme and the tags. The
/// operations come from the router ([`super::description`]), and
/// [`finish`] adds what every authenticated route may answer.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "retentiond",
        description = "The HTTP API of retentiond, the data-retention daemon: billing and operations \
            events in, resources, the deletion forecast, restore checks, the audit trail and deletion \
            certificates out, and operators' switches. Every route but `/healthz` needs \
            `Authorization: Bearer <token>`; the token's role (ingest, auditor, operator, admin) decides \
            what it may do, and a refusal is 403. Every error answer is `{\"error\": ..}`, with `field` \
            naming the request field at fault (400).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    security(("bearer" = [])),
    components(schemas(StoredId)),
    modifiers(&BearerScheme),
    tags(
        (name = "events", description = "Billing and operations events (product-spec §5)"),
        (name = "resources", description = "What is known of resources, what will be deleted, what may be restored"),
        (name = "admin", description = "Operators' and admins' switches"),
        (name = "audit", description = "The hash-chained audit trail, deletion certificates and request receipts"),
        (name = "privacy", description = "Personal data of account holders: requests and subjects (product-spec §8)"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "meta", description = "This description"),
    )
)]
pub(super) struct ApiDoc;

/// Adds the bearer-token scheme the global `security` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token from the daemon's tokens file (`[api] tokens_file`), which holds only its SHA-256. \
                 A source that fails too often is locked out for a while (429).",
            ))
            .build();
        doc.components.get_or_insert_with(Default::default).add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// Adds what every authenticated operation may answer, whatever its
/// handler: 401 (no or unknown token) and 429 (locked out), from the
/// authentication layer; and 500 to every operation that reads the store
/// or asks the engine (those that document 503), for a failure inside the
/// daemon that no request should cause. An optional request body (utoipa
/// describes `Option<T>` as "T or null") is described as T, not required:
/// leaving it out is what is optional, a JSON `null` is refused.
pub(super) fn finish(mut doc: OpenApi) -> OpenApi {
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            optional_body_is_not_null(op);
            add_common_responses(op);
        }
    }
    doc
}

fn optional_body_is_not_null(op: &mut Operation) {
    let Some(body) = op.request_body.as_mut() else { return };
    if body.required == Some(utoipa::openapi::Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
            let mut rest = one_of.items.iter().filter(|s| !null(s));
            if let (Some(only), None) = (rest.next(), rest.next()) {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn add_common_responses(op: &mut Operation) {
    // `security(())` on the operation: no token needed (only `/healthz`).
    let open = op.security.as_ref().is_some_and(|s| s.iter().all(|r| *r == Default::default()));
    if open {
        return;
    }
    let responses: &mut Responses = &mut op.responses;
    let touches_state = responses.responses.contains_key("503");
    responses.responses.insert("401".into(), error("No bearer token, or one the tokens file does not hold").into());
    let retry_after = HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
        .description(Some("Seconds until the lock-out ends"))
        .build();
    let locked = ResponseBuilder::new()
        .description("This source failed to authenticate too often (`[api] max_auth_failures`) and is locked out for `[api] auth_lockout`; its token is not looked at meanwhile")
        .header("Retry-After", retry_after)
        .content("application/json", ContentBuilder::new().schema(Some(error_body())).build())
        .build();
    responses.responses.insert("429".into(), locked.into());
    if touches_state {
        responses
            .responses
            .insert("500".into(), error("A failure inside the daemon (a bug): retry, and report it").into());
    }
}

/// An error answer with `description`.
fn error(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(error_body())).build())
        .build()
}

/// A reference to the [`ErrorBody`] schema.
fn error_body() -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(ErrorBody::name()))
}

/// The document served, built once.
static DOCUMENT: LazyLock<Vec<u8>> =
    LazyLock::new(|| serde_json::to_vec_pretty(&super::description()).expect("an OpenAPI document is plain JSON"));

/// This description.
///
/// The OpenAPI 3.1 document of every route, as JSON, for any valid token.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json",
            body = inline(Object)),
    )
)]
pub(super) async fn get_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_slice()).into_response()
}

/// What `GET /readyz` answers with 503: the readiness, `ready` false
/// (stopping, or stuck), or an error when the store could not be read.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a description only, never built")]
pub enum NotReady {
    /// Not ready, with the gates as far as they could be read.
    Readiness(super::wire::Readiness),
    /// The store could not be read.
    Error(ErrorBody),
}

// The domain's enums, described by their serde names.

/// Implements [`ToSchema`] for a domain enum serialized as its variant's
/// name: the values are the serde names of the variants listed, and the
/// list must be complete (the `match` fails to compile otherwise).
macro_rules! string_enum {
    ($ty:ident as $name:literal, $description:literal, [$($variant:ident),+ $(,)?]) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                #[allow(dead_code)]
                fn every_variant_is_listed(v: $ty) {
                    match v {
                        $($ty::$variant)|+ => {}
                    }
                }
                let values = [$($ty::$variant),+]
                    .map(|v| serde_json::to_value(v).expect("a unit variant serializes as its name"));
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some(values))
                    .into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

string_enum!(ResourceState as "ResourceState", "Where a resource stands (product-spec §6)",
    [Active, Retained, Deleting, Deleted, Purged]);
string_enum!(CopyState as "CopyState", "Where one copy of a resource's data stands",
    [Present, Deleting, Restricting, Restricted, Purging, Deleted]);
string_enum!(Billing as "Billing", "How a resource is paid for", [Prepaid, Postpaid]);
string_enum!(Cause as "Cause", "Why a buffer runs", [Expiry, Termination, Arrears, Release]);
string_enum!(TerminationReason as "TerminationReason", "Why a resource was terminated early",
    [Agreement, Violation, Attack, Discontinued, ProviderOutage, AccountClosed]);
string_enum!(ErasureGround as "ErasureGround", "Why erasure is asked (privacy policy 5.4.3)",
    [UnlawfulProcessing, NoConsent, BreachOfAgreement, ConsentWithdrawn, PurposeFulfilled]);
string_enum!(RefusalGround as "RefusalGround", "Why a request is refused (privacy policy 5.6.2, 5.8)",
    [LegalObligation, NationalSecurity, PublicSafety, CriminalInvestigation, AbuseOfRights,
     ProtectionOfLifeOrProperty, HarmToOthers, TradeSecret, Repetitive, Impractical]);
string_enum!(StoreClass as "StoreClass", "Where a copy lives: online data, a cache of it, or a backup",
    [Online, Cache, Backup]);
string_enum!(WindowKind as "WindowKind", "The mass-deletion guard's window a batch would overflow",
    [Short, Long]);

// Scalars with a shape.

/// Declares a string type that is only a description (it has no values):
/// it stands for a field in the schemas of [`Event`].
macro_rules! described_string {
    ($(#[$doc:meta])* $ty:ident as $name:literal, $build:expr) => {
        $(#[$doc])*
        pub enum $ty {}
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                let build: fn(ObjectBuilder) -> ObjectBuilder = $build;
                build(ObjectBuilder::new().schema_type(Type::String)).into()
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

described_string!(
    /// An id introduced by an event.
    Id as "Id",
    |s| s
        .description(Some("1 to 128 of `A-Z a-z 0-9 . _ : -`, neither `.` nor `..`, not starting with `-`"))
        .pattern(Some(ID_PATTERN))
        .min_length(Some(1))
        .max_length(Some(128))
);
described_string!(
    /// An id a request looks up.
    StoredId as "StoredId",
    |s| s
        .description(Some("1 to 128 of `A-Z a-z 0-9 . _ : -`, neither `.` nor `..`"))
        .pattern(Some(STORED_ID_PATTERN))
        .min_length(Some(1))
        .max_length(Some(128))
);
described_string!(
    /// A time as RFC 3339.
    Time as "Time",
    |s| s
        .description(Some("RFC 3339 with an offset, e.g. `2026-01-31T00:00:00Z`"))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
);
described_string!(
    /// A length of time.
    Duration as "Duration",
    |s| s
        .description(Some("A length of time as numbers with units: `15d`, `36h`, `90s`, `1h 30m`"))
        .pattern(Some(r"^[0-9]+[a-z]+( ?[0-9]+[a-z]+)*$"))
);
described_string!(
    /// A short free text shown to operators.
    Text as "Text",
    |s| s
        .description(Some("1 to 256 characters, not only spaces, without control characters"))
        .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]*$"))
        .min_length(Some(1))
        .max_length(Some(256))
);

/// An amount of money: a decimal string (`"120.50"`) or a JSON number.
pub enum Amount {}

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number]))
            .description(Some(
                "A decimal amount, not negative, as a string (`\"120.50\"`) or a number; at most 4 decimal places",
            ))
            .into()
    }
}

impl ToSchema for Amount {}

// Events (product-spec §5).

/// One event. Every event has `event_id` (unique: a repeat is answered
/// `duplicate`), `type`, `at` (when it happened: deadlines are anchored
/// there, not at receipt) and `tenant`; `resource` where it concerns one
/// (for `arrears.*` and `hold.*`, leaving it out covers the whole tenant).
/// Unknown fields are refused (400), so a misspelt field cannot silently
/// drop an instruction. The role `ingest` may not post `hold.*`,
/// `resource.reinstated` or a termination for `violation` (403).
#[derive(ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
#[allow(dead_code, reason = "a description only, never read")]
pub enum Event {
    /// Start tracking a resource; a prepaid term expires by itself at `term_end`.
    #[serde(rename = "resource.created")]
    #[schema(title = "resource.created")]
    Created {
        event_id: Id,
        at: Time,
        tenant: Id,
        resource: Id,
        /// Names a configured product.
        product: Id,
        billing: Billing,
        /// Prepaid only (required then), later than `at`.
        #[serde(default)]
        #[schema(nullable = false)]
        term_end: Option<Time>,
    },
    /// A new term end; cancels an expiry buffer.
    #[serde(rename = "resource.renewed")]
    #[schema(title = "resource.renewed")]
    Renewed { event_id: Id, at: Time, tenant: Id, resource: Id, term_end: Time },
    /// An early termination: a buffer per product and reason.
    #[serde(rename = "resource.terminated")]
    #[schema(title = "resource.terminated")]
    Terminated { event_id: Id, at: Time, tenant: Id, resource: Id, reason: TerminationReasonGiven },
    /// A termination withdrawn by agreement (operator).
    #[serde(rename = "resource.reinstated")]
    #[schema(title = "resource.reinstated")]
    Reinstated { event_id: Id, at: Time, tenant: Id, resource: Id },
    /// The tenant's own instruction to delete now: no buffer.
    #[serde(rename = "resource.released")]
    #[schema(title = "resource.released")]
    Released { event_id: Id, at: Time, tenant: Id, resource: Id },
    /// Fees unpaid: after the product's grace, the arrears buffer starts.
    #[serde(rename = "arrears.started")]
    #[schema(title = "arrears.started")]
    ArrearsStarted {
        event_id: Id,
        at: Time,
        tenant: Id,
        /// Left out: the tenant's resources the product marks as affected.
        #[serde(default)]
        resource: Option<Id>,
        #[serde(default)]
        amount: Option<Amount>,
        /// ISO 4217, e.g. `EUR`.
        #[serde(default)]
        #[schema(pattern = "^[A-Z]{3}$")]
        currency: Option<String>,
    },
    /// The fees are paid: cancels an arrears buffer.
    #[serde(rename = "arrears.settled")]
    #[schema(title = "arrears.settled")]
    ArrearsSettled {
        event_id: Id,
        at: Time,
        tenant: Id,
        #[serde(default)]
        resource: Option<Id>,
    },
    /// A legal or agreed exception: nothing it covers is deleted until released (operator).
    #[serde(rename = "hold.placed")]
    #[schema(title = "hold.placed")]
    HoldPlaced {
        event_id: Id,
        at: Time,
        tenant: Id,
        /// Left out: the whole tenant.
        #[serde(default)]
        resource: Option<Id>,
        hold_id: Id,
        /// Who demands it (regulator, court, legal team).
        authority: Text,
        /// Why, as the authority gives it.
        reason: Text,
        /// When the hold should be looked at again (later than `at`): past
        /// it the hold stays in force and is reported as due for review.
        #[serde(default)]
        review_at: Option<Time>,
    },
    /// The hold is lifted; deadlines are evaluated again (operator).
    #[serde(rename = "hold.released")]
    #[schema(title = "hold.released")]
    HoldReleased {
        event_id: Id,
        at: Time,
        tenant: Id,
        #[serde(default)]
        resource: Option<Id>,
        hold_id: Id,
    },
    /// A backup copy to track.
    #[serde(rename = "backup.created")]
    #[schema(title = "backup.created")]
    BackupCreated {
        event_id: Id,
        at: Time,
        tenant: Id,
        resource: Id,
        /// A configured store of class `backup` holding business data (not `data = "personal"`).
        store: Id,
        copy: Id,
        /// When the backup system lets it expire.
        expires_at: Time,
    },
    /// The backup system removed the copy itself.
    #[serde(rename = "backup.deleted")]
    #[schema(title = "backup.deleted")]
    BackupDeleted { event_id: Id, at: Time, tenant: Id, resource: Id, store: Id, copy: Id },
    /// The tenant closed its account (privacy policy 5.5.2): every resource
    /// ends (reason `account_closed`, the product's termination buffer) and
    /// every subject's personal data is erased after its class's period.
    #[serde(rename = "account.closed")]
    #[schema(title = "account.closed")]
    AccountClosed { event_id: Id, at: Time, tenant: Id },
    /// A user of the account whose personal data is held.
    #[serde(rename = "subject.created")]
    #[schema(title = "subject.created")]
    SubjectCreated {
        event_id: Id,
        at: Time,
        tenant: Id,
        /// Unique within the tenant; not the tenant's own id (the account holder).
        subject: Id,
    },
    /// A request to erase a subject's personal data, due `at + privacy.response_time`.
    #[serde(rename = "erasure.requested")]
    #[schema(title = "erasure.requested")]
    ErasureRequested {
        event_id: Id,
        at: Time,
        tenant: Id,
        /// Unique across the daemon; the same id again with `verified` true
        /// verifies a request received unverified.
        request_id: Id,
        /// Left out: the account holder.
        #[serde(default)]
        subject: Option<Id>,
        /// One or more (privacy policy 5.4.3).
        #[schema(min_items = 1)]
        grounds: Vec<ErasureGround>,
        /// Whether the requester's identity is verified (default false: never executed unverified).
        #[serde(default)]
        verified: Option<bool>,
    },
    /// A request to restrict the processing of a subject's personal data.
    #[serde(rename = "restriction.requested")]
    #[schema(title = "restriction.requested")]
    RestrictionRequested {
        event_id: Id,
        at: Time,
        tenant: Id,
        request_id: Id,
        #[serde(default)]
        subject: Option<Id>,
        #[serde(default)]
        verified: Option<bool>,
    },
    /// The restriction of request `request_id` ends in every store (operator).
    #[serde(rename = "restriction.lifted")]
    #[schema(title = "restriction.lifted")]
    RestrictionLifted {
        event_id: Id,
        at: Time,
        tenant: Id,
        /// The restriction request whose restriction is in force.
        request_id: Id,
        #[serde(default)]
        subject: Option<Id>,
    },
    /// The answer to a request (operator): execute (verified requests
    /// only), or refuse with a ground (required then, and only then).
    #[serde(rename = "request.decided")]
    #[schema(title = "request.decided")]
    RequestDecided {
        event_id: Id,
        at: Time,
        tenant: Id,
        request_id: Id,
        decision: DecisionName,
        #[serde(default)]
        ground: Option<RefusalGround>,
    },
}

/// The reasons a `resource.terminated` event may give
/// ([`TerminationReason::ALL`]: `account_closed` comes only from
/// `account.closed`).
pub enum TerminationReasonGiven {}

impl PartialSchema for TerminationReasonGiven {
    fn schema() -> RefOr<Schema> {
        let values = TerminationReason::ALL.map(|r| serde_json::Value::from(r.as_str()));
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Why the resource is terminated early (general terms 7.4, 7.5)"))
            .enum_values(Some(values))
            .into()
    }
}

impl ToSchema for TerminationReasonGiven {}

/// `execute` or `refuse` (`request.decided`).
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "a description only, never read")]
pub enum DecisionName {
    /// Carry the request out.
    Execute,
    /// Refuse it, with a ground.
    Refuse,
}

/// The body of `POST /v1/events`: one event, or an array of 1 to
/// [`super::MAX_EVENTS_PER_REQUEST`] applied in one step.
pub struct EventsRequest;

impl PartialSchema for EventsRequest {
    fn schema() -> RefOr<Schema> {
        let one = || RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Event::name()));
        let many = ArrayBuilder::new().items(one()).min_items(Some(1)).max_items(Some(super::MAX_EVENTS_PER_REQUEST));
        OneOfBuilder::new()
            .item(one())
            .item(many)
            .description(Some("One event, or an array of 1 to 1,000 (413 above), stored in one step"))
            .into()
    }
}

impl ToSchema for EventsRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        // utoipa does not carry `deny_unknown_fields` into an enum's
        // variants: each event type is closed here, as the parser is.
        let mut event = Event::schema();
        if let RefOr::T(Schema::OneOf(types)) = &mut event {
            for item in &mut types.items {
                if let RefOr::T(Schema::Object(fields)) = item {
                    fields.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        schemas.push((Event::name().into_owned(), event));
        <Event as ToSchema>::schemas(schemas);
    }
}
