//! `retentiond ctl`: a client of the HTTP API (product-spec §2, §4), so
//! operators and scripts need neither curl nor the JSON shapes by heart.
//!
//! Every subcommand is one endpoint (two for `forecast --within` and events
//! dated "now", which first read the daemon's clock from /readyz, and
//! `request decide`, which first reads the request for its tenant). Output
//! is a readable table by default and the server's JSON with `--json` (for
//! `metrics`, its samples as JSON; `request receipt` is JSON either way).
//! Exit codes, so scripts can branch:
//! - 0: done (`restore-check`: restoring is allowed);
//! - 1: any error (one line on stderr starting `retentiond ctl: `), an event
//!   `rejected`, or `status` answered "not ready";
//! - 2: usage error (from clap, or `forecast` with neither option);
//! - 3: `restore-check` refused.
//!
//! The token is sent as `Authorization: Bearer` only, and never printed.
//!
//! # Layout
//! - `args`: the command line (clap): global flags, one subcommand per endpoint;
//! - `transport`: the address, the token, the HTTP client, and a refused or
//!   failed request as one line;
//! - `commands`: what each subcommand sends, and its exit code;
//! - `render`: tables and `key  value` lines, and `--json`.

mod args;
mod commands;
mod render;
mod transport;

pub use args::CtlArgs;

use anyhow::Context;
use render::clean;
use std::io::Write as _;
use std::process::ExitCode;

/// Runs `retentiond ctl` and returns the process's exit code.
pub fn main(args: CtlArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(commands::run(args)));
    match result {
        Ok(done) => {
            // A closed pipe (`ctl audit | head`) is not an error worth a
            // panic; a full disk under `> cert.json` is an error.
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(done.out.as_bytes()).and_then(|()| stdout.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("retentiond ctl: writing standard output: {e}");
                    return ExitCode::from(1);
                }
            }
            if let Some(note) = done.note {
                eprintln!("retentiond ctl: {}", clean(&note));
            }
            ExitCode::from(done.code)
        }
        Err(e) => {
            eprintln!("retentiond ctl: {}", clean(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}
