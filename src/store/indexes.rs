//! The indexes every engine keeps beside the deadline index, derived from
//! each resource record on commit (issue 11: the forecast and start-up read
//! them instead of decoding every record). Kept apart from `record.rs` (the
//! record encodings) so the two change independently.
//!
//! Keys of the sled engine (ids never contain `/`):
//! - `h/<resource>`: the resources [`held_or_deleting`]: the deadline index
//!   does not place their deletion (a hold takes it out; a deletion under
//!   way is indexed by its copies' retries, if at all).
//! - `s/<millis, 8 bytes big-endian, sign-flipped>/<resource>`: deletion
//!   start times that count for the mass-deletion guard ([`guard_start`]);
//!   subjects' erasure starts too, as `subject:<tenant>/<subject>`
//!   (`personal::start_keys`).
//! - `u/<resource>`: records an older build wrote without what this build
//!   stores with them ([`needs_migration`]), brought up to date at start.
//! - `m/products`: resources not yet settled, by product
//!   ([`unsettled_product`]), as counters updated by every commit that
//!   writes a resource.
//! - `m/indexes`: the version of these indexes and of the index of holds
//!   (`hold_index.rs`) ([`INDEXES_VERSION`]). A database without it, or
//!   with an older one (written by an older build), has them built once,
//!   from every record, when it is opened.

use crate::domain::lifecycle::{Resource, State};
use crate::time::Timestamp;
use std::collections::BTreeMap;

/// The version of these indexes this build keeps; a database whose marker
/// says otherwise has them rebuilt at open. 2: the index of holds
/// (`hold_index.rs`) was added, so a database of version 1 has holds
/// placed before the upgrade that must be indexed. 3: subjects' erasure
/// starts joined the deletion starts (issue 12, `personal::start_keys`).
pub(crate) const INDEXES_VERSION: u32 = 3;
/// Where [`INDEXES_VERSION`] is stored.
pub(crate) const INDEXES_KEY: &[u8] = b"m/indexes";
/// Where the counts of unsettled resources by product are stored.
pub(crate) const PRODUCTS_KEY: &[u8] = b"m/products";
/// Prefix of the held-or-deleting index.
pub(crate) const HELD_PREFIX: &[u8] = b"h/";
/// Prefix of the deletion starts the guard counts.
pub(crate) const STARTS_PREFIX: &[u8] = b"s/";
/// Prefix of the records that may need bringing up to date.
pub(crate) const MIGRATE_PREFIX: &[u8] = b"u/";

/// True when the forecast must find `r` outside the deadline index: a
/// resource not yet deleting that a hold covers (its index entry, if any,
/// is a buffer start or a notice, never its deletion), or one whose
/// deletion is under way (listed whatever its copies' retries, stuck ones
/// included). Deleted and purged resources are in the forecast in neither
/// case.
pub(crate) fn held_or_deleting(r: &Resource) -> bool {
    match r.state {
        State::Deleting => true,
        State::Active | State::Retained => !r.holds.is_empty(),
        State::Deleted | State::Purged => false,
    }
}

/// True when `r` may lack what this build stores with a record and older
/// ones did not, which start-up fills in from the config in force: an
/// arrears grace end ([`Resource::fix_arrears_grace`]), or the restriction
/// limit of a restricted backup copy ([`Resource::fix_restriction_limit`];
/// a copy whose store sets no limit stays listed, and is looked at again
/// at each start, in case a later config sets one).
pub(crate) fn needs_migration(r: &Resource) -> bool {
    use crate::domain::lifecycle::CopyState;
    let grace = r.arrears.as_ref().is_some_and(|a| a.buffer.is_none() && a.grace_ends_at.is_none());
    let limit = r.deletion_started_at.is_some()
        && r.copies
            .iter()
            .any(|c| matches!(c.state, CopyState::Restricted | CopyState::Restricting) && c.restricted_until.is_none());
    grace || limit
}

/// `u/<resource>`.
pub(crate) fn migrate_key(id: &str) -> Vec<u8> {
    [MIGRATE_PREFIX, id.as_bytes()].concat()
}

/// When `r`'s deletion started, if that start counts for the guard's
/// windows (an operator's approval exempts it).
pub(crate) fn guard_start(r: &Resource) -> Option<Timestamp> {
    r.deletion_started_at.filter(|_| !r.guard_approved)
}

/// The product `r` needs in the config: every resource not yet settled
/// (purged with every notice sent) does.
pub(crate) fn unsettled_product(r: &Resource) -> Option<&str> {
    (!r.is_settled()).then_some(r.product.as_str())
}

/// Counts `r` out of (`add` false) or into `products`; a product whose
/// count falls to 0 is removed, as a recount would leave it out.
pub(crate) fn tally_product(products: &mut BTreeMap<String, u64>, r: &Resource, add: bool) {
    let Some(p) = unsettled_product(r) else { return };
    let n = products.entry(p.to_owned()).or_default();
    *n = if add { *n + 1 } else { n.saturating_sub(1) };
    if *n == 0 {
        products.remove(p);
    }
}

/// `h/<resource>`.
pub(crate) fn held_key(id: &str) -> Vec<u8> {
    [HELD_PREFIX, id.as_bytes()].concat()
}

/// `t` in whole milliseconds, rounded up: a start is never restored
/// earlier than it was, so the guard's windows may count it a millisecond
/// longer, never shorter (fail closed).
pub(crate) fn ceil_millis(t: Timestamp) -> i64 {
    t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0)
}

/// `s/<millis>/<resource>`, in time order then id (the deadline index's
/// encoding under another prefix), the time rounded up ([`ceil_millis`]).
pub(crate) fn start_key(t: Timestamp, id: &str) -> Vec<u8> {
    let mut k = starts_from(ceil_millis(t));
    k.push(b'/');
    k.extend_from_slice(id.as_bytes());
    k
}

/// `s/<millis>`: sorts before every start key at `millis` or later.
pub(crate) fn starts_from(millis: i64) -> Vec<u8> {
    let ms = (millis as u64) ^ (1 << 63);
    [STARTS_PREFIX, &ms.to_be_bytes()].concat()
}

/// The time of an `s/` key, `None` when it is malformed.
pub(crate) fn start_at(k: &[u8]) -> Option<Timestamp> {
    let ms = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?) ^ (1 << 63);
    (k.get(10) == Some(&b'/')).then_some(())?;
    chrono::DateTime::from_timestamp_millis(ms as i64)
}

/// The `h/` and `s/` keys a record of `r` has.
pub(crate) fn keys_of(r: &Resource) -> Vec<Vec<u8>> {
    let held = held_or_deleting(r).then(|| held_key(&r.id));
    let start = guard_start(r).map(|t| start_key(t, &r.id));
    let migrate = needs_migration(r).then(|| migrate_key(&r.id));
    held.into_iter().chain(start).chain(migrate).collect()
}

/// The stored form of the product counts.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ProductsRecord {
    /// [`INDEXES_VERSION`].
    pub v: u32,
    /// Unsettled resources by product.
    pub products: BTreeMap<String, u64>,
}

impl ProductsRecord {
    /// The stored form of `products`.
    pub fn of(products: &BTreeMap<String, u64>) -> ProductsRecord {
        ProductsRecord { v: INDEXES_VERSION, products: products.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key bytes, spelled out: a change here is a change of format.
    #[test]
    fn keys_keep_their_bytes() {
        assert_eq!(held_key("r1"), b"h/r1");
        assert_eq!(migrate_key("r1"), b"u/r1");
        let t = chrono::DateTime::from_timestamp_millis(1).unwrap();
        assert_eq!(start_key(t, "r1"), b"s/\x80\0\0\0\0\0\0\x01/r1");
        assert_eq!(start_at(&start_key(t, "r1")), Some(t));
        let t = chrono::DateTime::from_timestamp_millis(-1).unwrap();
        assert_eq!(start_key(t, "r1"), b"s/\x7f\xff\xff\xff\xff\xff\xff\xff/r1");
        assert_eq!(start_at(b"s/x"), None);
    }
}
