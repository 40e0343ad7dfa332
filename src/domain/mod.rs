//! The domain, free of I/O: what the agreements say, as types and pure
//! functions. Nothing here reads a clock, a file or a socket; time comes in
//! as `now` (engineering notes: the quinn-proto shape).
//!
//! - [`vocabulary`]: the words events and policies share (billing, cause,
//!   termination reason) so that neither imports the other.
//! - [`event`]: an event as posted, parsed and validated, naming the bad field.
//! - [`policy`]: a product's retention policy, with its version.
//! - [`lifecycle`]: the state machine of one resource, split by sub-machine
//!   (events, deadlines, copies, notices, holds), and which resources a
//!   tenant-wide event concerns.
//! - [`guard`]: the mass-deletion guard, judging whole batches (domain-rules
//!   §1.2: a deletion that runs too early is the worst failure).
//! - [`privacy`]: personal data of account holders (domain-rules §3):
//!   subjects, their classes of personal data and requests, as a pure
//!   state machine beside the resource lifecycle.
//! - [`clock_jump`]: `safety.max_clock_jump`, telling a set, stepped or
//!   resumed wall clock from time passing, for the same reason.

pub mod clock_jump;
pub mod event;
pub mod guard;
pub mod lifecycle;
pub mod policy;
pub mod privacy;
pub mod vocabulary;
