//! The tamper-evident audit log (product-spec §7).
//!
//! Every irreversible step the daemon takes is recorded here so that an
//! operator, an auditor or a customer can later prove what was deleted, when
//! and why — and prove that nobody edited that story afterwards. The proof is
//! a hash chain: each record carries the SHA-256 of its own canonical JSON
//! (RFC 8785) and the hash of the record before it, so changing, removing,
//! reordering or inserting any record breaks the chain at that point.
//! Removing whole records *from the end* keeps the chain intact, which is why
//! [`verify`] accepts the head the daemon keeps in its database.
//!
//! On disk the log is `<state_dir>/audit.jsonl`, one record per line, with
//! rotated segments `audit-000001.jsonl`, `audit-000002.jsonl`, … beside it
//! (oldest first, all older than `audit.jsonl`). `seq` runs from 1 across all
//! of them without gaps.
//!
//! Crash safety: the daemon first stores each sealed record in its database
//! (the outbox), then calls [`AuditLog::append`], which writes and fsyncs.
//! A crash can therefore leave a torn, unterminated last line, which
//! [`AuditLog::open`] cuts off; the daemon then re-appends the outbox records
//! whose `seq` is above [`AuditLog::head`]. Only complete lines are ever
//! trusted, and the log never rewrites a complete line.
//!
//! Records never carry business data; for the same reason nothing in this
//! module logs or reports the contents of a record, only positions, sequence
//! numbers and hashes.
//!
//! # Layout
//! - `record`: one record and the chain head, sealed and hashed.
//! - `canonical`: RFC 8785 canonical JSON, what the hash covers.
//! - `kind`: the vocabulary of record kinds ([`AuditKind`]).
//! - `log`: the segmented, fsynced, append-only file and reading it back.
//! - `verify`: checking a log offline, segment by segment.

use crate::time::{fmt_rfc3339, Timestamp};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use std::path::{Path, PathBuf};

/// The `prev` of the very first record: 64 zeros, so the first record is
/// chained like every other one and verification needs no special case.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// File name of the live (appended-to) log inside the state directory.
const CURRENT_NAME: &str = "audit.jsonl";

/// The highest segment number the six-digit naming scheme can express.
const MAX_SEGMENT_NUMBER: u32 = 999_999;

/// Chunk size for scanning a file backwards for its last lines.
const TAIL_CHUNK: u64 = 8 * 1024;

/// Every key a record line must have, and the only keys it may have, in
/// canonical (sorted) order.
const RECORD_KEYS: [&str; 8] = ["at", "data", "hash", "kind", "prev", "resource", "seq", "tenant"];

mod canonical;
mod kind;
mod log;
mod record;
mod scan;
#[cfg(test)]
mod tests;
mod verify;
#[cfg(test)]
mod verify_tests;

pub use canonical::canonical_json;
pub use kind::AuditKind;
pub use log::{log_files, AuditError, AuditLog};
pub use record::{AuditHead, AuditRecord};
pub use verify::{verify, VerifyFailure, VerifyReport};
#[allow(unused_imports)]
use {canonical::*, log::*, record::*, verify::*};
