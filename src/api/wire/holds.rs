//! `GET /v1/holds`: the holds in force, a page at a time (issue 13).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A page of the holds in force, in order of tenant, resource (a
/// tenant-wide hold first) and hold id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HoldList {
    /// The holds of this page.
    pub holds: Vec<ListedHold>,
    /// The token for the next page (`after=`), absent when this page is
    /// the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One hold in force (general terms 4.1.5: nothing it covers is deleted
/// until it is released; a review date does not lift it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListedHold {
    /// Its id.
    pub hold_id: String,
    /// The tenant.
    pub tenant: String,
    /// The resource it covers; absent for a hold on the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Who demands it.
    pub authority: String,
    /// Why.
    pub reason: String,
    /// When it was placed.
    #[schema(format = DateTime)]
    pub placed_at: String,
    /// When it should be looked at again, if it was placed with a date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub review_at: Option<String>,
    /// True once `review_at` has passed: someone must decide whether to
    /// release it. The hold stays in force meanwhile.
    pub review_due: bool,
}
