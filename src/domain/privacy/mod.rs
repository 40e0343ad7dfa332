//! Personal data of account holders (domain-rules §3, product-spec §8), as a
//! pure state machine beside the resource lifecycle: no I/O, no clock; time
//! comes in as `now`.
//!
//! Business data belongs to a resource; personal data belongs to a
//! *subject*: the account holder (whose subject id is the tenant id) or a
//! user of the account registered with `subject.created`. The privacy
//! policy sorts personal data into *classes* (`[privacy.classes.*]`), each
//! held in some personal stores and erased (deleted or anonymised) a set
//! time after the account closes (privacy policy 5.5.2, 7.2), or earlier on
//! an erasure request, except what tax and accounting law keeps
//! (`legal_minimum`). Requests to erase or restrict are answered within
//! `response_time` (privacy policy 5.6.1); a refusal names a ground of the
//! closed list (5.6.2, 5.8).
//!
//! # Layout
//! - this file: the vocabulary (grounds, decisions, request kinds and
//!   states, actions on personal data);
//! - `policy`: the effective `[privacy]` policy with its version;
//! - `subject`: a subject's record, its classes and their copies in each
//!   store, and the time-driven steps (erasures at their date, retries);
//! - `request`: requests, their decision, warnings and overdue flag, and
//!   their execution through the subject's classes;
//! - `tests`: a scenario per rule, with time moved by hand.

mod policy;
mod request;
mod subject;
#[cfg(test)]
mod tests;

pub use policy::{ClassPolicy, PrivacyPolicy};
pub use request::{ClassOutcome, Decision, Request, RequestEvent, RequestProof};
pub use subject::{ClassRecord, Holds, PersonalCopy, PersonalEffect, PersonalState, Schedule, Subject};

use serde::{Deserialize, Serialize};

/// Declares a closed list of names: the enum, every value in order, its
/// name on the wire and in the config, and parsing, so each list below is
/// written once and a misspelt name is refused naming the accepted ones.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in the order the contract lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name in events, config, records and the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value a name stands for.
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// The accepted names, comma-separated, for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// How a class of personal data is erased (`erasure` of a class).
    /// Anonymised means irreversibly: no key or mapping back to the person
    /// is kept (privacy policy definitions); de-identified data would
    /// still be personal data.
    Erasure {
        /// The data is removed.
        Delete => "delete",
        /// The data is kept without anything that identifies the person.
        Anonymize => "anonymize",
    }
}

names! {
    /// Why a person asks for erasure (privacy policy 5.4.3).
    ErasureGround {
        /// The data is processed unlawfully.
        UnlawfulProcessing => "unlawful_processing",
        /// It is processed without consent.
        NoConsent => "no_consent",
        /// The provider seriously breached the agreement.
        BreachOfAgreement => "breach_of_agreement",
        /// Consent was withdrawn.
        ConsentWithdrawn => "consent_withdrawn",
        /// The purpose it was collected for is fulfilled.
        PurposeFulfilled => "purpose_fulfilled",
    }
}

names! {
    /// The only grounds on which a request may be refused or deferred
    /// (privacy policy 5.8, and 5.6.2 for the last two).
    RefusalGround {
        /// A legal obligation of the provider (also: a class kept under
        /// its `legal_minimum`).
        LegalObligation => "legal_obligation",
        /// National security or defence.
        NationalSecurity => "national_security",
        /// Public safety, public health, major public interest.
        PublicSafety => "public_safety",
        /// Criminal investigation, prosecution, trial or enforcement.
        CriminalInvestigation => "criminal_investigation",
        /// Evidence that the requester abuses their rights.
        AbuseOfRights => "abuse_of_rights",
        /// Protecting the life or property of the person or others.
        ProtectionOfLifeOrProperty => "protection_of_life_or_property",
        /// Answering would seriously harm others.
        HarmToOthers => "harm_to_others",
        /// Answering would reveal trade secrets.
        TradeSecret => "trade_secret",
        /// The request repeats itself without reason (5.6.2).
        Repetitive => "repetitive",
        /// Answering is impractical, e.g. data on backup tapes (5.6.2).
        Impractical => "impractical",
    }
}

names! {
    /// What a person asks for.
    RequestKind {
        /// Erase their personal data (privacy policy 5.4.3).
        Erasure => "erasure",
        /// Restrict its processing (international privacy policy: EEA and
        /// UK users).
        Restriction => "restriction",
    }
}

names! {
    /// Where a request stands (product-spec §8). `overdue` is a flag beside
    /// it, not a state.
    RequestState {
        /// Received; waiting for a decision (and, if unverified, for the
        /// requester's identity to be verified).
        Received => "received",
        /// Decided `execute`; waiting to run (deferred while a hold covers
        /// the tenant).
        Approved => "approved",
        /// Its executor calls are under way.
        Executing => "executing",
        /// Done in every store.
        Completed => "completed",
        /// Done, except classes kept under their `legal_minimum`, each
        /// erased at a date the request shows.
        PartiallyCompleted => "partially_completed",
        /// Refused, with a ground of [`RefusalGround`].
        Refused => "refused",
    }
}

names! {
    /// What a personal store's executor is asked to do with a subject's
    /// data of one class (product-spec §8; `{action}` of the executors).
    PersonalAction {
        /// Remove it.
        Delete => "delete",
        /// Anonymise it irreversibly.
        Anonymize => "anonymize",
        /// Restrict its processing (no read, copy, export or restore).
        Restrict => "restrict",
        /// Lift the restriction.
        Unrestrict => "unrestrict",
    }
}

impl Erasure {
    /// The executor action that carries this erasure out.
    pub fn action(self) -> PersonalAction {
        match self {
            Erasure::Delete => PersonalAction::Delete,
            Erasure::Anonymize => PersonalAction::Anonymize,
        }
    }
}

impl RequestState {
    /// True once the request is answered for good: no decision applies to
    /// it any more, and a new request of the subject is not linked to it.
    pub fn is_closed(self) -> bool {
        matches!(self, RequestState::Completed | RequestState::PartiallyCompleted | RequestState::Refused)
    }
}
