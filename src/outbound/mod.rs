//! Outbound calls: the two ways the daemon reaches a program or service an
//! operator configured, shared by the executors (which delete) and the
//! notifier (which tells tenants).
//!
//! Both callers used to carry their own copy of this code; a fix to one copy
//! (a redirect followed, a secret leaked into a child's environment) then
//! had to be remembered in the other. Here it exists once:
//!
//! - [`http`]: the signed HTTP POST. [`HttpSpec`] is the `kind = "http"`
//!   config of both an executor and the notifier; [`SignedPost`] sends a
//!   JSON body with the `Idempotency-Key` and HMAC `X-Retentiond-Signature`
//!   headers, follows no redirect, and counts only a 2xx other than 202 as
//!   done.
//! - [`process`]: the sandboxed child process: argv without a shell, an
//!   empty environment but `PATH`, a timeout after which the child is
//!   killed and reaped, and the tail of its stderr for the error.
//!
//! What a call *means* stays with the caller: the executor builds the body
//! from an action and a copy and maps failures to
//! [`crate::executor::ExecError`]; the notifier sends a notice and maps
//! them to [`crate::notifier::NotifyError`], each with its own wording.

pub mod http;
pub mod process;

pub use http::{
    signature, tls_problem, trust_roots_for, ClientError, HttpSpec, HttpSpecError, PostError, Prepared, SecretError,
    SecretProblem, SecretSource, SignedPost, TlsProblem, IDEMPOTENCY_HEADER, SIGNATURE_HEADER,
};
pub use process::{Exited, ProcessError, StderrTail};
