//! The sandboxed child process that the `command` executor and the
//! `command` notifier both run.
//!
//! The program is started from argv directly, never through a shell, so ids
//! are single arguments whatever they contain. The child gets no inherited
//! environment except `PATH` (the daemon holds secrets in its environment),
//! `/` as its working directory, no stdout, and a bounded amount of time:
//! when it runs out, the child is killed and reaped. Standard input is
//! either nothing or the caller's bytes (the notifier's JSON); the tail of
//! standard error is kept for the caller's error message.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStderr, Command};
use tokio::time::Instant;

use crate::duration::Dur;

/// How much of the child's stderr is kept for the error message (the tail,
/// where programs usually print the reason they failed).
pub(crate) const STDERR_CAP: usize = 2048;

/// How long to keep reading stderr after the child has exited. A grandchild
/// that inherited the pipe may hold it open indefinitely; the exit status is
/// what counts, so this only bounds the wait for the last diagnostic lines.
const STDERR_GRACE: Duration = Duration::from_millis(200);

/// An operator's program as the daemon runs it: directly (never through a
/// shell), in `/`, with an empty environment but `PATH` (so no secret of
/// the daemon's leaks into it), stdout discarded, killed if the daemon
/// stops waiting. The caller sets stdin and stderr; [`run`] does both.
pub(crate) fn sandboxed(program: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().current_dir("/").stdout(Stdio::null()).kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// Why a child did not run to its end. Its exit status, when it has one,
/// is the caller's to judge ([`Exited`]).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (not found, not executable, ...).
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program (`argv[0]`).
        program: String,
        /// The underlying OS error.
        source: io::Error,
    },
    /// Waiting for the program failed; its outcome is unknown.
    #[error("waiting for {program} failed: {source}")]
    Wait {
        /// The program (`argv[0]`).
        program: String,
        /// The underlying OS error.
        source: io::Error,
    },
    /// The program ran longer than its timeout and was killed and reaped.
    #[error("{program} timed out after {after} and was killed")]
    Timeout {
        /// The program (`argv[0]`).
        program: String,
        /// The configured timeout.
        after: Dur,
    },
}

/// A child that ran to its end: how it ended and what it said last on
/// stderr.
#[derive(Debug)]
pub struct Exited {
    /// Its exit status (a code, or the signal that ended it).
    pub status: ExitStatus,
    /// The tail of its stderr.
    pub stderr: StderrTail,
}

/// Runs `program` with `args` the sandboxed way (see `sandboxed`), writes
/// `input` (if any) to its standard input and closes it, and waits at most
/// `timeout` for it to exit; on timeout it is killed and reaped, so no zombie or
/// still-running program is left behind. Processes it forked are not
/// tracked, so a program should `exec` its long-running step rather than
/// leave it in the background. Dropping the returned future also kills the
/// child.
///
/// Stderr is read while the child runs (a chatty child never blocks on a
/// full pipe and then looks like a timeout), and for a short grace period
/// after it exits.
pub async fn run(program: &str, args: &[String], input: Option<&[u8]>, timeout: Dur) -> Result<Exited, ProcessError> {
    let mut cmd = sandboxed(program, args);
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn { program: program.to_owned(), source })?;

    let now = Instant::now();
    // A configured timeout of centuries must not overflow the clock.
    let deadline = now.checked_add(timeout.0).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
    let mut stderr = StderrReader::new(child.stderr.take());
    let stdin = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(bytes)) = (stdin, input) {
            // A program that exits without reading is judged by its status.
            let _ = pipe.write_all(bytes).await;
        }
        // The pipe is dropped here: the program reads end of input.
    };
    tokio::pin!(feed);
    let mut fed = false;

    let status = loop {
        let event = tokio::select! {
            status = child.wait() => Event::Exited(status),
            () = &mut feed, if !fed => Event::Fed,
            read = stderr.read_more(), if stderr.is_open() => Event::Read(read),
            () = tokio::time::sleep_until(deadline) => Event::TimedOut,
        };
        match event {
            Event::Exited(status) => {
                break status.map_err(|source| ProcessError::Wait { program: program.to_owned(), source })?
            }
            Event::Fed => fed = true,
            Event::Read(more) => {
                if !more {
                    stderr.close();
                }
            }
            Event::TimedOut => {
                // Kill and reap so no zombie or still-running command is
                // left behind. `start_kill` fails only if the child has
                // already been reaped, which cannot have happened here;
                // `wait` after SIGKILL returns promptly. Either failing
                // still leaves kill_on_drop as a backstop.
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(ProcessError::Timeout { program: program.to_owned(), after: timeout });
            }
        }
    };

    stderr.drain_until(deadline.min(Instant::now() + STDERR_GRACE)).await;
    Ok(Exited { status, stderr: stderr.finish() })
}

/// What woke the wait loop.
enum Event {
    Exited(io::Result<ExitStatus>),
    Fed,
    Read(bool),
    TimedOut,
}

/// The last bytes a child wrote to stderr: at most twice `STDERR_CAP`
/// (2 KiB), of which [`StderrTail::line`] shows the last `STDERR_CAP`.
#[derive(Debug, Default)]
pub struct StderrTail {
    kept: Vec<u8>,
    truncated: bool,
}

impl StderrTail {
    /// The kept bytes, raw, for a caller with its own format.
    pub fn bytes(&self) -> &[u8] {
        &self.kept
    }

    /// The last `STDERR_CAP` (2 KiB) bytes as one line: lossy UTF-8, control
    /// characters escaped (so a child cannot forge log lines), trailing
    /// whitespace trimmed, `[...]` in front when the start was cut.
    pub fn line(&self) -> String {
        let start = self.kept.len().saturating_sub(STDERR_CAP);
        let truncated = self.truncated || start > 0;
        let text = String::from_utf8_lossy(&self.kept[start..]);
        let mut out = String::with_capacity(text.len() + 8);
        if truncated {
            out.push_str("[...]");
        }
        for c in text.trim_end().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// Reads the child's stderr, keeping only its tail.
///
/// Reading continues past the cap (and the excess is discarded) so a chatty
/// child never blocks on a full pipe and then looks like a timeout.
struct StderrReader {
    pipe: Option<ChildStderr>,
    tail: StderrTail,
    chunk: Box<[u8; 4096]>,
}

impl StderrReader {
    fn new(pipe: Option<ChildStderr>) -> StderrReader {
        StderrReader { pipe, tail: StderrTail::default(), chunk: Box::new([0; 4096]) }
    }

    fn is_open(&self) -> bool {
        self.pipe.is_some()
    }

    fn close(&mut self) {
        self.pipe = None;
    }

    /// Reads one chunk. False at end of stream or on a read error (the
    /// excerpt is a diagnostic; losing it must not change the outcome).
    /// Cancel safe: a read that did not complete consumed nothing.
    async fn read_more(&mut self) -> bool {
        let Some(pipe) = self.pipe.as_mut() else {
            return false;
        };
        match pipe.read(&mut self.chunk[..]).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                let kept = &mut self.tail.kept;
                kept.extend_from_slice(&self.chunk[..n]);
                if kept.len() > 2 * STDERR_CAP {
                    let excess = kept.len() - STDERR_CAP;
                    kept.drain(..excess);
                    self.tail.truncated = true;
                }
                true
            }
        }
    }

    /// Reads until end of stream or `until`, whichever comes first.
    async fn drain_until(&mut self, until: Instant) {
        while self.is_open() {
            match tokio::time::timeout_at(until, self.read_more()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => self.close(),
            }
        }
    }

    fn finish(self) -> StderrTail {
        self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/bin/sh -c SCRIPT sh ARGS...`: the test's program, without writing
    /// an executable file (which could fail with ETXTBSY while another test
    /// forks).
    fn sh(script: &str, args: &[&str]) -> Vec<String> {
        ["-c", script, "sh"].iter().chain(args).map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn input_reaches_stdin_and_stderr_is_read_while_the_child_runs() {
        let dir = tempfile::tempdir().unwrap();
        let got = dir.path().join("stdin");
        // ~200 KiB on stderr: more than a pipe buffer, so a child whose
        // stderr is not read while it runs would block and never exit.
        let script = "cat > \"$1\"; i=0; while [ $i -lt 4000 ]; do \
                      echo 'filler line of about fifty bytes ...........' >&2; i=$((i+1)); done; \
                      echo 'last words' >&2; exit 4";
        let input = b"{\"key\":\"r1:deletion_completed\"}\n";
        let exited =
            run("/bin/sh", &sh(script, &[got.to_str().unwrap()]), Some(input), Dur::from_secs(60)).await.unwrap();
        assert_eq!(exited.status.code(), Some(4));
        assert_eq!(std::fs::read(&got).unwrap(), input);
        let line = exited.stderr.line();
        assert!(line.starts_with("[...]") && line.ends_with("...........\\nlast words"), "{line}");
        assert!(exited.stderr.bytes().len() <= 2 * STDERR_CAP);
        assert!(exited.stderr.bytes().ends_with(b"last words\n"));
    }

    /// A child that never reads its input and never exits is killed and
    /// reaped at the timeout, with its input still unwritten.
    #[tokio::test]
    async fn timeout_kills_and_reaps_a_child_that_ignores_its_input() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let input = vec![b'x'; 1 << 20];
        let err = run(
            "/bin/sh",
            &sh("echo $$ > \"$1\"; exec sleep 10", &[pidfile.to_str().unwrap()]),
            Some(&input),
            Dur::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(&err, ProcessError::Timeout { program, .. } if program == "/bin/sh"), "{err}");
        assert_eq!(err.to_string(), "/bin/sh timed out after 1s and was killed");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim();
        assert!(!pid.is_empty());
        assert!(!std::path::Path::new("/proc").join(pid).exists(), "process {pid} still exists");
    }
}
