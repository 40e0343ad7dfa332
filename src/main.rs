//! `retentiond`: parse the command line, set up logging, dispatch.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli_docs;
mod ctl;

#[derive(Parser)]
#[command(
    name = "retentiond",
    version,
    about = "Data-retention daemon: keeps business data for the product's buffer, then deletes every copy, with a hash-chained audit trail"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// The config file.
        #[arg(long, env = "RETENTIOND_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and print the effective policies (exit 2 on error).
    CheckConfig {
        /// The config file.
        #[arg(long, env = "RETENTIOND_CONFIG")]
        config: PathBuf,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the SHA-256 of a token read from standard input, for the tokens file.
    HashToken,
    /// Ask a running daemon to reload its config: sends it SIGHUP. The unit's
    /// ExecReload= uses it, so reloading needs no kill(1) on the host.
    Reload {
        /// The daemon's process id (in the unit: $MAINPID).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        pid: i32,
    },
    /// A client of the HTTP API: events, resources, forecast, holds, pause/resume/approve, clock, audit,
    /// privacy requests and subjects.
    Ctl(Box<ctl::CtlArgs>),
    /// Print the shell completion script for SHELL on standard output (for
    /// bash: /usr/share/bash-completion/completions/retentiond).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write a man page for every command and subcommand into a directory
    /// (retentiond.1, retentiond-ctl-hold.1, ..., for /usr/share/man/man1).
    Man {
        /// The directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain offline: exit 0 with "ok: N records, head H", or 1 naming the first bad record.
    Verify {
        /// audit.jsonl, or the state directory holding it.
        path: PathBuf,
        /// The head the log must end at, as SEQ:HASH (from GET /v1/audit or a
        /// certificate): without it, whole records cut off the end cannot be seen.
        #[arg(long)]
        head: Option<String>,
    },
    /// Check a deletion certificate (JSON, from GET /v1/certificates/ID) against the audit log: exit 0 or 1.
    Certificate {
        /// The certificate file ("-" for standard input).
        #[arg(long)]
        file: PathBuf,
        /// audit.jsonl, or the state directory holding it.
        #[arg(long, default_value = "/var/lib/retentiond")]
        log: PathBuf,
    },
    /// Check a privacy request's receipt (JSON, from `ctl request receipt`
    /// or GET /v1/certificates/requests/ID) against the audit log: exit 0
    /// with "ok: ...", or 1 naming what does not hold.
    Receipt {
        /// The receipt file ("-" for standard input).
        file: PathBuf,
        /// audit.jsonl, or the state directory holding it.
        #[arg(long, default_value = "/var/lib/retentiond")]
        log: PathBuf,
    },
}

fn init_tracing() {
    use tracing_subscriber::fmt::format;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("RETENTIOND_LOG_FORMAT").is_ok_and(|v| v == "json");
    let journal = stderr_is_journal();
    // Colours only on a terminal: the journal and log files get plain text.
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match (json, journal) {
        // JSON keeps its own timestamp field; only the prefix is added.
        (true, true) => builder.json().event_format(JournalPriority(format().json())).init(),
        (true, false) => builder.json().init(),
        // journald stamps every line: one timestamp per line, its own.
        (false, true) => builder.event_format(JournalPriority(format().without_time())).init(),
        (false, false) => builder.init(),
    }
}

/// True when stderr is connected to the journal. systemd sets
/// `JOURNAL_STREAM=DEV:INODE` (decimal) for the stream it gives the
/// service; it is compared with stderr's own device and inode, so a process
/// that merely inherited the variable (a shell started from the service,
/// stderr redirected to a file) keeps the plain format.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    // fstat(2) of fd 2 through a duplicate: std offers no metadata on a
    // borrowed descriptor, and this needs no unsafe code.
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Puts the syslog priority of each event in front of its line as `<N>`
/// (sd-daemon(3)): journald reads it with `SyslogLevelPrefix=yes`, the
/// default, so `journalctl -p warning` shows warnings and errors.
/// Without it every line reaches the journal at priority 6 (info).
struct JournalPriority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// syslog(3) priorities: err 3, warning 4, info 6, debug 7 (trace too).
fn syslog_priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match retentiond::config::load(&config) {
            Ok(c) => {
                if let Some(tokens) = &c.api.tokens_file {
                    if let Err(e) = retentiond::auth::Tokens::load(tokens) {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                }
                // Valid but weakening a safeguard, or unusable on this
                // machine: said, not refused (the file may be checked
                // elsewhere than where it runs).
                for w in c.warnings.iter().map(ToString::to_string).chain(tls_warnings(&c)) {
                    eprintln!("warning: {w}");
                }
                use std::io::Write;
                // Products still used by stored resources can only be checked
                // by the daemon that holds the database (at start and reload).
                let text = format!(
                    "{c}ok: {}\n(products still used by stored resources are checked when the daemon starts or reloads)\n",
                    config.display()
                );
                // A closed pipe (`check-config | head`) is not an error.
                let _ = std::io::stdout().write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Audit { command: AuditCommand::Verify { path, head } } => {
            let expected = match head.as_deref().map(|h| h.split_once(':')) {
                None => None,
                Some(Some((seq, hash))) if seq.parse::<u64>().is_ok() && hash.len() == 64 => {
                    Some(retentiond::audit::AuditHead { seq: seq.parse().unwrap_or(0), hash: hash.to_string() })
                }
                Some(_) => {
                    eprintln!("--head: expected SEQ:HASH, e.g. 42:<64 hex digits>");
                    return ExitCode::from(2);
                }
            };
            verify_command(&path, expected.as_ref())
        }
        Command::Audit { command: AuditCommand::Certificate { file, log } } => {
            check_document(&file, |cert| retentiond::certificate::check(cert, &log))
        }
        Command::Audit { command: AuditCommand::Receipt { file, log } } => {
            check_document(&file, |receipt| retentiond::receipt::check(receipt, &log))
        }
        Command::Ctl(args) => ctl::main(*args),
        Command::Completions { shell } => exit_on(cli_docs::completions(shell, Cli::command())),
        Command::Man { out } => exit_on(cli_docs::man_pages(Cli::command(), &out).map(|pages| {
            for page in pages {
                println!("{}", page.display());
            }
        })),
        Command::Reload { pid } => reload_command(pid),
        Command::HashToken => {
            let mut token = String::new();
            if std::io::stdin().read_line(&mut token).is_err() || token.trim().is_empty() {
                eprintln!("hash-token: give the token on standard input");
                return ExitCode::from(2);
            }
            println!("{}", retentiond::auth::hash_token(token.trim()));
            ExitCode::SUCCESS
        }
        Command::Serve { config } => {
            init_tracing();
            let config = match retentiond::config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            for w in tls_warnings(&config) {
                tracing::warn!("{w}");
            }
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Once, through the log (plain or JSON as configured).
                    tracing::error!("{}", chain(&e));
                    // A config the daemon refuses exits 2 like check-config,
                    // so the unit's RestartPreventExitStatus=2 stops systemd
                    // from retrying it every few seconds.
                    if is_config_refusal(&e) {
                        ExitCode::from(2)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}

fn serve(config: retentiond::config::Config) -> anyhow::Result<()> {
    use retentiond::service;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // Signal handlers go in before the daemon reports ready.
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let mut daemon = retentiond::daemon::Daemon::start(config).await.context("starting retentiond")?;
        let mut gates = daemon.gates.clone();
        // The last reload's outcome, kept in the status line until the next.
        let mut note: Option<String> = None;
        service::ready(&service::status_line(daemon.addr, *gates.borrow_and_update(), None));
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    break;
                }
                _ = hup.recv() => {
                    service::reloading();
                    note = Some(match daemon.reload().await {
                        Ok(report) => {
                            tracing::info!(changed = ?report.changed, "SIGHUP: config reloaded");
                            "config reloaded".to_owned()
                        }
                        // Logged and audited by reload; the old config stays.
                        Err(e) => e.to_string(),
                    });
                    service::ready(&service::status_line(daemon.addr, *gates.borrow_and_update(), note.as_deref()));
                }
                // A pause, an approve, a tripped guard, a clock anomaly, a
                // reload switching dry run: the engine published it.
                Ok(()) = gates.changed() => {
                    service::status(&service::status_line(daemon.addr, *gates.borrow_and_update(), note.as_deref()));
                }
                r = daemon.wait() => {
                    service::stopping();
                    r.context("the engine stopped")?;
                    return Ok(());
                }
            }
        }
        service::stopping();
        daemon.shutdown().await.context("shutting down")?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Exit 0, or 1 with the error and its causes on stderr.
fn exit_on(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with ": ", leaving out a cause whose
/// text the message before it already carries.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// True when the daemon refused to start because of its config (as opposed
/// to a failure a restart may cure, such as a busy port or a disk error).
fn is_config_refusal(e: &anyhow::Error) -> bool {
    use retentiond::daemon::DaemonError;
    use retentiond::engine::EngineError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<DaemonError>(),
            Some(DaemonError::Tokens(_) | DaemonError::Engine(EngineError::ProductsInUse(_)) | DaemonError::Sweeps(_))
        )
    })
}

/// The `http` executors and notifier whose client cannot be built on this
/// machine (an `https://` URL where no CA certificates can be loaded): every
/// call through them would fail, so it is said up front, naming the store.
fn tls_warnings(config: &retentiond::config::Config) -> Vec<String> {
    use retentiond::executor::ExecutorSpec;
    use retentiond::notifier::NotifierSpec;
    use retentiond::outbound::{tls_problem, HttpSpec};
    let stores = config.executors.iter().filter_map(|(name, spec)| match spec {
        ExecutorSpec::Http(HttpSpec { url, .. }) => Some((format!("stores.{name}.executor"), url)),
        _ => None,
    });
    let notifier = match &config.notifier {
        Some(NotifierSpec::Http(HttpSpec { url, .. })) => Some(("notifier".to_owned(), url)),
        _ => None,
    };
    stores
        .chain(notifier)
        .filter_map(|(what, url)| {
            tls_problem(url).map(|why| {
                format!(
                    "{}: {what}: {why}; every call will fail until a CA bundle is installed \
                     (or SSL_CERT_FILE / SSL_CERT_DIR name one)",
                    config.path.display()
                )
            })
        })
        .collect()
}

/// Sends SIGHUP to `pid` (kill(2) through rustix, no unsafe code): the
/// daemon reloads and reports RELOADING=1 then READY=1 to systemd itself.
/// Exit 0 once the signal is sent, 1 if it cannot be (no such process, not
/// ours).
fn reload_command(pid: i32) -> ExitCode {
    use rustix::process::{kill_process, Pid, Signal};
    // clap already refused anything below 1.
    let Some(target) = Pid::from_raw(pid) else {
        eprintln!("reload: --pid must be a positive process id");
        return ExitCode::from(2);
    };
    match kill_process(target, Signal::HUP) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reload: cannot send SIGHUP to process {pid}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a JSON document (a certificate, a receipt) from `file` ("-":
/// standard input) and checks it with `check`: exit 0 printing its summary,
/// 1 with what does not hold, 2 if the file cannot be read or is not JSON.
fn check_document<E: std::fmt::Display>(
    file: &std::path::Path,
    check: impl FnOnce(&serde_json::Value) -> Result<String, E>,
) -> ExitCode {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
    } else {
        std::fs::read_to_string(file)
    };
    let doc = match text.map_err(|e| e.to_string()).and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string())) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    match check(&doc) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn verify_command(path: &std::path::Path, expected: Option<&retentiond::audit::AuditHead>) -> ExitCode {
    match retentiond::audit::verify(path, expected) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(1)
        }
    }
}
