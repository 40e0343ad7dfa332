//! The vocabulary shared by events, policies and the lifecycle: how a
//! resource is paid for, why a buffer runs, why a resource was terminated.
//! Kept apart so that `event` and `policy` both build on it without
//! importing each other.

use serde::{Deserialize, Serialize};

/// How a resource is paid for (general terms 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Billing {
    /// Subscription: served from activation to `term_end` (general terms 7.2.1).
    Prepaid,
    /// Pay-as-you-go, charged per billing period; no term end.
    Postpaid,
}

/// Why a resource's buffer runs: the three ways of domain-rules §1.1 that keep
/// data for a buffer, plus the tenant's own release (no buffer, general terms
/// 4.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The prepaid term ended (general terms 7.2.1).
    Expiry,
    /// The service was terminated before its term end (general terms 7.4, 7.5).
    Termination,
    /// Fees are unpaid (general terms 2.3).
    Arrears,
    /// The tenant released the resource itself (general terms 4.1.4).
    Release,
}

impl Cause {
    /// The name used in events, records and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Expiry => "expiry",
            Cause::Termination => "termination",
            Cause::Arrears => "arrears",
            Cause::Release => "release",
        }
    }
}

/// Reasons for early termination (general terms 7.4, 7.5.1-7.5.3; trial terms
/// 9.3; IoT terms 7.2, 7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationReason {
    /// Both sides agreed (7.5.1).
    Agreement,
    /// Serious breach by the tenant: may purge at once (7.5.2).
    Violation,
    /// The tenant's site was attacked and endangered the platform (7.5.3).
    Attack,
    /// The provider discontinued the product with 30 days' notice (7.4).
    Discontinued,
    /// 72 consecutive hours of provider-caused outage (8.3).
    ProviderOutage,
}

impl TerminationReason {
    /// Every reason, for validation and printing.
    pub const ALL: [TerminationReason; 5] = [
        TerminationReason::Agreement,
        TerminationReason::Violation,
        TerminationReason::Attack,
        TerminationReason::Discontinued,
        TerminationReason::ProviderOutage,
    ];

    /// The name used in events and config keys.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Agreement => "agreement",
            TerminationReason::Violation => "violation",
            TerminationReason::Attack => "attack",
            TerminationReason::Discontinued => "discontinued",
            TerminationReason::ProviderOutage => "provider_outage",
        }
    }

    /// Parses the event/config name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}
