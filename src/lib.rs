//! # retentiond
//!
//! A daemon that enforces data retention for a cloud platform: billing and
//! operations systems tell it what happens to each customer resource; it
//! tracks every deadline itself, keeps business data for the product's buffer
//! period (domain-rules §1.2), then deletes every copy through configured
//! executors and leaves a hash-chained audit trail.
//!
//! # Layout
//! - [`clock`]: the only way to read wall time (system or manual).
//! - [`domain`]: everything the agreements decide, free of I/O: the
//!   vocabulary (billing, cause, termination reason), [`domain::event`]
//!   (parsing and validating events, naming the bad field),
//!   [`domain::policy`] (per-product policies with versions),
//!   [`domain::lifecycle`] (the pure state machine: events and `now` in, new
//!   state and effects out; split by sub-machine), [`domain::guard`] (the
//!   mass-deletion guard judging whole batches) and [`domain::clock_jump`]
//!   (`safety.max_clock_jump`: a set, stepped or resumed wall clock told
//!   apart from time passing).
//! - [`config`]: the TOML file (`config/`): raw serde shapes, one validator
//!   per section (runtime, safety, stores, products), errors and warnings as
//!   `PATH:LINE:COL`, and what `check-config` prints.
//! - [`store`]: durable state behind the [`store::Store`] trait, whose
//!   contract one suite (`conformance`) proves against every engine:
//!   `sled` (the database; the only file that imports sled), `memory`
//!   (for tests); `record`: keys and versioned encodings; `compact`: the
//!   compact (version 2) encoding of resources, event ids and outbox
//!   records; `indexes`: what each record adds beside the deadline index
//!   (for the forecast and start-up); `hold_index`: the holds in force,
//!   by place, authority and review date.
//! - [`engine`]: the single writer and the one place that sleeps, a file
//!   per concern: the handle and its commands, one group-commit step
//!   (commands applied, their writes merged into one store commit by
//!   `pending`, one flush, then answers and calls), ingest,
//!   deadlines, hold reviews, safety (clock jumps, the guard, approve), executor and
//!   notifier calls, admin (reload, sweeps, apply-policy) and the audit
//!   journal; its tests run on the in-memory store.
//! - [`executor`]: how a copy is deleted (`fs`, `command`, `http`).
//! - [`notifier`]: how a notice reaches the tenant (`command`, `http`).
//! - [`outbound`]: what both of them send: the signed HTTP POST (one
//!   [`outbound::HttpSpec`] for an `http` executor and notifier) and the
//!   sandboxed child process (argv, no shell, timeout, kill and reap).
//! - [`sweeps`]: the periodic sweeps on tokio-cron-scheduler (`[schedule]`).
//! - [`service`]: systemd readiness, watchdog, reload and stop notifications.
//! - [`audit`]: the hash-chained audit log (`audit/`: record and hash,
//!   canonical JSON, the record kinds as one type, the segmented log,
//!   verification, with `scan`: canonical lines checked in one pass over
//!   their bytes);
//!   [`certificate`]: the deletion certificate, issued and checked against
//!   the log by the same type (kept outside `audit/`, which depends on
//!   nothing but time, because it reads the config and the lifecycle);
//!   [`receipt`]: the receipt of a privacy request, issued from the
//!   subject's record and checked against the log the same way.
//! - [`api`], [`auth`]: the HTTP API (`api/`: router, authentication and
//!   errors; one file per area: events, resources with restore-check,
//!   forecast (read from the indexes, in pages), holds (from the index
//!   of holds, in pages), admin, audit and certificates, health, and
//!   `openapi`: the OpenAPI 3.1 description, [`api::description`], built
//!   from the handlers' routing attributes) with [`api::wire`], every
//!   request and answer body as types that
//!   `retentiond ctl` (in the binary, `src/ctl/`: arguments, transport,
//!   commands, rendering) reads too, so client and server cannot drift;
//!   its tokens, roles and lock-out of sources that fail to authenticate;
//!   [`json`]: request bodies parsed strictly (no repeated keys);
//!   [`front`]: the connections (limit, timeouts, TLS handshakes, graceful
//!   shutdown); [`tls`]: the listener's certificate, key and client CA,
//!   read and checked with the config and swapped with it on reload.
//! - [`metrics`]: counters and the Prometheus text for `GET /metrics`
//!   (a Grafana dashboard and alert rules over it in `contrib/`).
//! - [`daemon`]: start-up and shutdown in stages.
//! - In the binary beside `src/main.rs` and `src/ctl/`: `src/cli_docs.rs`,
//!   the shell completions and man pages, generated from the same clap
//!   definitions that parse the command line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod certificate;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod duration;
pub mod engine;
pub mod executor;
pub mod front;
pub mod ids;
pub mod json;
pub mod metrics;
pub mod notifier;
pub mod outbound;
pub mod receipt;
pub mod service;
pub mod store;
pub mod sweeps;
pub mod time;
pub mod tls;
