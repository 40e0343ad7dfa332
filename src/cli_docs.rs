//! `retentiond completions SHELL` and `retentiond man --out DIR`: shell
//! completions (clap_complete) and man pages (clap_mangen) generated from the
//! same clap definitions that parse the command line, so they cannot drift
//! from it. A package build runs both and installs the output (README,
//! "Completions and man pages").

use anyhow::Context;
use clap::Command;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Prints the completion script for `shell` on standard output.
///
/// The script is built in memory first: clap_complete panics when its
/// writer fails, and a closed pipe (`completions bash | head`) is not an
/// error worth a panic.
pub fn completions(shell: clap_complete::Shell, mut cmd: Command) -> anyhow::Result<()> {
    let mut script = Vec::new();
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing the completion script"),
        _ => Ok(()),
    }
}

/// Writes one page per command into `out` (created if missing): `NAME.1`
/// for the top level, `NAME-SUB.1`, `NAME-SUB-SUBSUB.1` and so on for every
/// subcommand at every depth, the names `man` looks up for
/// `man retentiond-ctl-hold`. Returns the files written, parents after
/// their subcommands.
pub fn man_pages(cmd: Command, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // As clap_mangen::generate_to does: no page for clap's own `help`
    // subcommand; building gives each subcommand its display name
    // (`retentiond-ctl-hold`) and copies the global flags down to it.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    // Every page's footer names the program and its version (a
    // subcommand has no version of its own).
    let source = format!("{} {}", cmd.get_name(), cmd.get_version().unwrap_or_default());
    let mut written = Vec::new();
    write_pages(cmd, &source, out, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: Command, source: &str, out: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), source, out, written)?;
    }
    // No date: the pages of one version are the same bytes whenever they
    // are built (reproducible packages).
    let page = clap_mangen::Man::new(cmd).source(source);
    let path = page.generate_to(out).with_context(|| format!("writing {}", out.join(page.get_filename()).display()))?;
    written.push(path);
    Ok(())
}
