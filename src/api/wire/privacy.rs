//! Personal data (issue 12, product-spec §8): requests, subjects and the
//! erasure receipt as the API shows them. Ids, dates, states and grounds
//! only: never the personal data itself.

use crate::domain::privacy::Decision;
use crate::time::{fmt_rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One request of a subject (`GET /v1/requests/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    /// The request's id.
    pub request: String,
    /// The tenant.
    pub tenant: String,
    /// Whose data (the tenant id for the account holder).
    pub subject: String,
    /// `erasure` or `restriction`.
    pub kind: String,
    /// `received`, `approved`, `executing`, `completed`,
    /// `partially_completed` or `refused`.
    pub state: String,
    /// True once `due` passed without an answer (stays set once answered).
    pub overdue: bool,
    /// Whether the requester's identity is verified (an unverified request
    /// is never executed).
    pub verified: bool,
    /// Why erasure was asked.
    pub grounds: Vec<String>,
    /// When it was made.
    #[schema(format = DateTime)]
    pub received_at: String,
    /// When it must be answered by (`received_at + privacy.response_time`).
    #[schema(format = DateTime)]
    pub due: String,
    /// When it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub decided_at: Option<String>,
    /// The refusal's ground (privacy policy 5.6.2, 5.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal_ground: Option<String>,
    /// The open request this one repeats, whose answer it shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_to: Option<String>,
    /// The holds on the tenant that defer its execution (approved, not yet
    /// executed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferred_by: Vec<String>,
    /// For an executed erasure: each class, and until when one under its
    /// legal minimum is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<RequestClass>,
    /// When it completed (partially, the first time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// For a restriction: when it was lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub lifted_at: Option<String>,
}

/// What an erasure request did to one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestClass {
    /// The class.
    pub class: String,
    /// `erased`, `erasing`, `scheduled` or `kept` (under its legal minimum:
    /// refused for now, ground `legal_obligation`).
    pub outcome: String,
    /// Until when a kept class is kept; it is erased then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub kept_until: Option<String>,
}

/// A page of requests (`GET /v1/requests`), by id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestList {
    /// The requests of this page.
    pub requests: Vec<RequestView>,
    /// The token for the next page (`after=`), absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A subject's personal data (`GET /v1/subjects/{tenant}/{subject}`):
/// its classes, the stores holding them, what is kept and until when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubjectView {
    /// The tenant.
    pub tenant: String,
    /// The subject.
    pub subject: String,
    /// True for the account holder.
    pub account_holder: bool,
    /// When `subject.created` registered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub registered_at: Option<String>,
    /// When the account was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    /// The restriction request in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_by: Option<String>,
    /// Each class of the privacy policy.
    pub classes: Vec<SubjectClass>,
    /// Its requests, oldest first.
    pub requests: Vec<RequestSummary>,
}

/// One class of a subject's personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubjectClass {
    /// The class.
    pub class: String,
    /// `delete` or `anonymize`.
    pub erasure: String,
    /// When its erasure may start; absent while nothing is scheduled (the
    /// data is kept while the account exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub erase_after: Option<String>,
    /// The end of its legal minimum: never erased before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub keep_until: Option<String>,
    /// `account_closed`, or the erasure request's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_by: Option<String>,
    /// The privacy policy version that scheduled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// When its erasure started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// Its copy in each store.
    pub stores: Vec<PersonalStoreView>,
}

/// One store's copy of a class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PersonalStoreView {
    /// The store.
    pub store: String,
    /// `present`, `restricting`, `restricted`, `unrestricting`, `erasing`
    /// or `erased`.
    pub state: String,
    /// Failed calls of the current action.
    pub attempts: u32,
    /// Out of retries: an operator must retry (`ctl retry --subject`).
    pub stuck: bool,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last action was confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub done_at: Option<String>,
    /// The audit record that proves the erasure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<u64>,
}

/// A request in a subject's view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestSummary {
    /// Its id.
    pub request: String,
    /// `erasure` or `restriction`.
    pub kind: String,
    /// Its state.
    pub state: String,
    /// When it must be answered by.
    #[schema(format = DateTime)]
    pub due: String,
    /// Whether it went overdue.
    pub overdue: bool,
}

/// A `request.decided` event, as `ctl request decide` builds it (the
/// daemon parses every event strictly: [`crate::domain::event::parse_event`]).
/// Built from the domain's [`Decision`], so a refusal always carries its
/// ground and an execution never does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionEvent {
    /// Unique; a retry with the same id is answered `duplicate`.
    pub event_id: String,
    /// `request.decided`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was decided.
    pub at: String,
    /// The request's tenant.
    pub tenant: String,
    /// The request decided.
    pub request_id: String,
    /// `execute` or `refuse`.
    pub decision: String,
    /// The refusal's ground (privacy policy 5.6.2, 5.8); refusals only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground: Option<String>,
}

impl DecisionEvent {
    /// The event deciding `request_id` of `tenant` at `at`.
    pub fn new(event_id: String, at: Timestamp, tenant: String, request_id: String, decision: Decision) -> Self {
        let (decision, ground) = match decision {
            Decision::Execute => ("execute", None),
            Decision::Refuse(g) => ("refuse", Some(g.as_str().to_string())),
        };
        DecisionEvent {
            event_id,
            kind: "request.decided".into(),
            at: fmt_rfc3339(at),
            tenant,
            request_id,
            decision: decision.into(),
            ground,
        }
    }
}
