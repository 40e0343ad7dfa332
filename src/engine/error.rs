//! How the engine fails, and the failures it reports without stopping (a
//! config missing products in use, a notice that did not get through).

use crate::store::StoreError;
use std::collections::BTreeMap;

/// How the engine failed. Any of these stops the daemon: after a storage
/// failure nothing can be acknowledged or deleted safely (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(String),
    /// The engine has stopped and takes no more commands.
    #[error("the engine has stopped")]
    Stopped,
    /// The clock cannot be moved by hand.
    #[error("the clock is not manual (set [clock] source = \"manual\")")]
    ClockNotManual,
    /// The requested move would leave the representable range of time.
    #[error("the clock cannot be moved that far")]
    ClockRange,
    /// `approve` named a batch digest that is not the batch the guard holds
    /// (another batch, or none): nothing was approved.
    #[error("the guard holds {held}, not batch {given}: nothing was approved")]
    BatchMismatch {
        /// The digest the operator gave.
        given: String,
        /// What is held now.
        held: String,
    },
    /// `apply-policy` named a product that is not configured.
    #[error("product {0:?} is not configured")]
    UnknownProduct(String),
    /// The config leaves out products that tracked resources still need:
    /// events about them (a legal hold, a renewal) could not be applied.
    #[error("{0}")]
    ProductsInUse(ProductsMissing),
}

/// A config that leaves out products whose resources are not all purged:
/// without their policy, events about those resources (a tenant-wide legal
/// hold, a renewal) could not reach them. Refused at start and at reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductsMissing {
    /// The config file.
    pub path: std::path::PathBuf,
    /// Each missing product with how many unsettled resources need it.
    pub products: BTreeMap<String, u64>,
}

impl std::fmt::Display for ProductsMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.products.iter().map(|(p, n)| format!("{p:?} ({n} resources)")).collect();
        write!(
            f,
            "{}: products still in use are missing: {}; keep their [products.*] sections until every resource of them is purged",
            self.path.display(),
            list.join(", ")
        )
    }
}

impl std::error::Error for ProductsMissing {}

/// Why a notice did not reach the notifier (recorded in `notice.failed`;
/// the notice is retried).
#[derive(Debug, thiserror::Error)]
pub enum NoticeFailure {
    /// The notifier answered with an error.
    #[error(transparent)]
    Notifier(#[from] crate::notifier::NotifyError),
    /// No answer within the notifier's limit (plus a margin).
    #[error("no answer within {secs}s")]
    NoAnswer {
        /// The limit, in seconds.
        secs: u64,
    },
}
