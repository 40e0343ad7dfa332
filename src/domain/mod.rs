//! The domain, free of I/O: for now its vocabulary ([`vocabulary`]); the
//! events, policies, lifecycle and safety rules are to move here (issue 10).

pub mod vocabulary;
