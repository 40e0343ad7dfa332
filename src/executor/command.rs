//! The `command` executor: runs an operator-supplied program for each copy.
//!
//! The program is started from argv directly, never through a shell, so ids
//! are single arguments whatever they contain. Ids reach it through argv
//! only (`{tenant}`, `{resource}` or `{subject}`, ...), never through the
//! environment. The child gets no stdin, no
//! inherited environment except `PATH` (the daemon holds secrets in its
//! environment), and a bounded amount of time: the sandboxed child process
//! of [`crate::outbound::process`], which the `command` notifier runs too.

use std::process::ExitStatus;

use super::{
    contains, foreign, parse_template, render, Action, DataKind, ExecError, Piece, Placeholder, SpecError, Target,
    TemplateError,
};
use crate::duration::Dur;
use crate::outbound::process;

/// What is wrong with a `command` executor's spec (shown after `command
/// executor: `).
#[derive(Debug, thiserror::Error)]
pub enum CommandSpecError {
    /// No program.
    #[error("argv must not be empty")]
    EmptyArgv,
    /// An empty program name.
    #[error("argv[0] must not be empty")]
    EmptyProgram,
    /// An argument holds a NUL byte, which no argument can.
    #[error("argv[{index}] {arg:?} contains a NUL byte")]
    ArgNul {
        /// Position in argv.
        index: usize,
        /// The argument.
        arg: String,
    },
    /// An argument's template does not parse.
    #[error("argv[{index}]: {source}")]
    Template {
        /// Position in argv.
        index: usize,
        /// Why.
        source: TemplateError,
    },
    /// The program itself would depend on ids.
    #[error("argv[0] {program:?} must not contain a placeholder (the program must not depend on ids)")]
    ProgramPlaceholder {
        /// `argv[0]`.
        program: String,
    },
    /// Two ids in one argument (or '/'-segment of it) are ambiguous.
    #[error(
        "argv[{index}] {arg:?} joins several ids; ids may contain - . _ : \
         so the result is ambiguous: pass each id as its own argument"
    )]
    JoinedIds {
        /// Position in argv.
        index: usize,
        /// The argument.
        arg: String,
    },
    /// No argument names the resource, so the program could not tell which
    /// one expired.
    #[error("no argument contains {{resource}}, so the command could not tell which resource expired")]
    NoResource,
    /// A personal store's argv does not name the subject, so the program
    /// could not tell whose data to erase.
    #[error(
        "no argument contains {{subject}} (data = \"personal\"), so the command could not tell whose data is meant"
    )]
    NoSubject,
    /// A personal store's argv does not carry the action: such a store is
    /// asked to delete, anonymize, restrict and unrestrict, and a program
    /// that cannot tell them apart would, say, erase data it was asked to
    /// unrestrict.
    #[error(
        "no argument contains {{action}} (data = \"personal\"): the command is asked to delete, anonymize, \
         restrict and unrestrict and must tell them apart"
    )]
    NoAction,
    /// An argument uses a placeholder the store's kind of data does not have
    /// (`{subject}` in a business store, `{resource}` in a personal one).
    #[error(
        "argv[{index}] {arg:?} uses {{{placeholder}}}, which a store of {data} data does not have (data = \"{data}\")"
    )]
    ForeignPlaceholder {
        /// Position in argv.
        index: usize,
        /// The argument.
        arg: String,
        /// The placeholder's name.
        placeholder: &'static str,
        /// The store's kind of data.
        data: DataKind,
    },
    /// A zero timeout would fail every run.
    #[error("timeout must be greater than zero")]
    ZeroTimeout,
}

/// Runs `argv` with placeholders substituted; exit 0 means the copy is gone
/// (or restricted).
///
/// Commands must be idempotent: a run that timed out, or whose result the
/// daemon did not record, is run again. On timeout the direct child is
/// killed and reaped; processes it forked are not tracked, so a command
/// should `exec` its long-running step rather than leave it in the
/// background. Dropping the future returned by [`CommandExecutor::run`] also
/// kills the child.
#[derive(Clone, Debug)]
pub struct CommandExecutor {
    argv: Vec<String>,
    timeout: Dur,
}

/// Static checks for a `command` spec of a store holding `data`; see
/// [`super::ExecutorSpec::validate`].
pub(super) fn validate(argv: &[String], timeout: Dur, data: DataKind) -> Result<(), CommandSpecError> {
    let Some(program) = argv.first() else {
        return Err(CommandSpecError::EmptyArgv);
    };
    if program.is_empty() {
        return Err(CommandSpecError::EmptyProgram);
    }
    let (mut names_item, mut has_action) = (false, false);
    for (index, arg) in argv.iter().enumerate() {
        if arg.contains('\0') {
            return Err(CommandSpecError::ArgNul { index, arg: arg.clone() });
        }
        let pieces = parse_template(arg).map_err(|source| CommandSpecError::Template { index, source })?;
        if index == 0 && pieces.iter().any(|p| matches!(p, Piece::Placeholder(_))) {
            return Err(CommandSpecError::ProgramPlaceholder { program: arg.clone() });
        }
        // Ids never contain '/', so ids in different '/'-segments stay apart.
        let joined = arg.split('/').any(|seg| parse_template(seg).is_ok_and(|p| super::id_placeholders(&p) > 1));
        if joined {
            return Err(CommandSpecError::JoinedIds { index, arg: arg.clone() });
        }
        if let Some(ph) = foreign(&pieces, data) {
            return Err(CommandSpecError::ForeignPlaceholder { index, arg: arg.clone(), placeholder: ph.name(), data });
        }
        names_item |= contains(&pieces, Placeholder::naming(data));
        has_action |= contains(&pieces, Placeholder::Action);
    }
    match data {
        DataKind::Business if !names_item => return Err(CommandSpecError::NoResource),
        DataKind::Personal if !names_item => return Err(CommandSpecError::NoSubject),
        DataKind::Personal if !has_action => return Err(CommandSpecError::NoAction),
        _ => {}
    }
    if timeout.is_zero() {
        return Err(CommandSpecError::ZeroTimeout);
    }
    Ok(())
}

impl CommandExecutor {
    /// An executor for `argv` with the given timeout. Not validated here:
    /// [`CommandExecutor::run`] re-validates and refuses an invalid spec.
    pub fn new(argv: Vec<String>, timeout: Dur) -> CommandExecutor {
        CommandExecutor { argv, timeout }
    }

    /// `command:<argv[0]>`, for logs (arguments are left out: they are
    /// templates, and the ids are logged separately).
    pub fn describe(&self) -> String {
        format!("command:{}", self.argv.first().map_or("(empty argv)", String::as_str))
    }

    /// Runs the command for `action` on `target`. Ok(()) only on exit code 0.
    /// The spec is re-validated for the target's kind of data, so an argv
    /// naming `{resource}` is never run to erase a subject.
    pub async fn run(&self, action: Action, target: &Target) -> Result<(), ExecError> {
        validate(&self.argv, self.timeout, target.item.data()).map_err(invalid)?;
        target.check_action(action)?;
        let program = self.argv[0].clone();
        let args = self.render_args(&program, action, target)?;

        let exited = process::run(&program, &args, None, self.timeout).await?;
        check_status(program, exited.status, exited.stderr.line())
    }

    /// Substitutes placeholders into argv[1..]. An argument that would start
    /// with `-` only because an id does (ids stored before issue 9 may start
    /// with `-`; new ones may not) is refused unless a literal `--` argument
    /// precedes it, so an id can never turn into an option of the operator's
    /// program.
    fn render_args(&self, program: &str, action: Action, target: &Target) -> Result<Vec<String>, ExecError> {
        let mut args = Vec::with_capacity(self.argv.len().saturating_sub(1));
        let mut options_ended = false;
        for (index, template) in self.argv.iter().enumerate().skip(1) {
            let pieces =
                parse_template(template).map_err(|source| invalid(CommandSpecError::Template { index, source }))?;
            let value = render(&pieces, action, target)?;
            if !options_ended && value.starts_with('-') {
                if let Some(Piece::Placeholder(p)) = pieces.first() {
                    return Err(ExecError::OptionLikeArgument { program: program.to_owned(), index, field: p.name() });
                }
            }
            if template == "--" {
                options_ended = true;
            }
            args.push(value);
        }
        Ok(args)
    }
}

/// A spec found invalid before a run: nothing is started.
fn invalid(e: CommandSpecError) -> ExecError {
    ExecError::InvalidSpec { reason: SpecError::Command(e) }
}

/// Maps an exit status to Ok (code 0) or the matching error.
fn check_status(program: String, status: ExitStatus, stderr: String) -> Result<(), ExecError> {
    if status.success() {
        return Ok(());
    }
    match status.code() {
        Some(code) => Err(ExecError::CommandFailed { program, code, stderr }),
        None => Err(ExecError::CommandKilled { program, signal: exit_signal(status), stderr }),
    }
}

#[cfg(unix)]
fn exit_signal(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
fn exit_signal(_status: ExitStatus) -> Option<i32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::process::STDERR_CAP;
    use crate::outbound::ProcessError;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// Serializes these tests: a script file being written while another
    /// test forks can make exec fail with ETXTBSY, and `set_var` must not
    /// race with spawns reading the environment.
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn target() -> Target {
        Target::copy("t1", "snapshots", "r1", "backup-eu")
    }

    /// Writes an executable `/bin/sh` script (the operator's command under
    /// test) into `dir`.
    fn script(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("cmd.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn exec(argv: &[&str], timeout: Dur) -> CommandExecutor {
        CommandExecutor::new(argv.iter().map(|s| s.to_string()).collect(), timeout)
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    const MIN: Dur = Dur::from_secs(60);

    #[tokio::test]
    async fn exit_zero_is_ok() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let sh = script(dir.path(), "exit 0");
        exec(&[s(&sh), "{resource}"], MIN).run(Action::Delete, &target()).await.unwrap();
    }

    #[tokio::test]
    async fn non_zero_exit_carries_code_and_stderr() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let sh = script(dir.path(), "echo \"snapshot $1 is locked\" >&2\nexit 3");
        let err = exec(&[s(&sh), "{resource}"], MIN).run(Action::Purge, &target()).await.unwrap_err();
        match &err {
            ExecError::CommandFailed { code, stderr, .. } => {
                assert_eq!(*code, 3);
                assert_eq!(stderr, "snapshot r1 is locked");
            }
            other => panic!("unexpected {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("code 3") && msg.contains("snapshot r1 is locked"));
    }

    #[tokio::test]
    async fn killed_by_signal_is_reported() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let sh = script(dir.path(), "kill -9 $$");
        let err = exec(&[s(&sh), "{resource}"], MIN).run(Action::Delete, &target()).await.unwrap_err();
        assert!(matches!(err, ExecError::CommandKilled { signal: Some(9), .. }), "{err}");
    }

    #[tokio::test]
    async fn stderr_is_capped_to_its_tail_and_escaped() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        // ~200 KiB: more than a pipe buffer, so an unread pipe would hang.
        let sh = script(
            dir.path(),
            "i=0; while [ $i -lt 4000 ]; do echo 'filler line of about fifty bytes ...........' >&2; i=$((i+1)); done\n\
             printf 'last\\033[31mline\\n' >&2\nexit 1",
        );
        let err = exec(&[s(&sh), "{resource}"], MIN).run(Action::Delete, &target()).await.unwrap_err();
        let ExecError::CommandFailed { code: 1, stderr, .. } = err else {
            panic!("unexpected {err}");
        };
        assert!(stderr.len() <= STDERR_CAP * 2, "{}", stderr.len());
        assert!(stderr.starts_with("[...]"), "{stderr}");
        assert!(stderr.ends_with("last\\u{1b}[31mline"), "{stderr}");
        assert!(!stderr.contains('\n'));
    }

    #[tokio::test]
    async fn placeholders_substituted_and_no_shell() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("argv.txt");
        let pwned = dir.path().join("pwned");
        let sh = script(dir.path(), "out=$1; shift; printf '%s\\n' \"$@\" > \"$out\"");
        let inject = format!("$(touch {})", s(&pwned));
        let argv = [
            s(&sh),
            s(&out),
            "--tenant={tenant}",
            "{resource}",
            "{store}/{copy}",
            "{action}",
            &inject,
            "a;b",
            "`id`",
            "*",
        ];
        exec(&argv, MIN).run(Action::Restrict, &target()).await.unwrap();
        let written = std::fs::read_to_string(&out).unwrap();
        let expected = ["--tenant=t1", "r1", "snapshots/backup-eu", "restrict", &inject, "a;b", "`id`", "*"];
        assert_eq!(written.lines().collect::<Vec<_>>(), expected);
        assert!(!pwned.exists());
    }

    #[tokio::test]
    async fn environment_is_cleared_except_path() {
        let _g = LOCK.lock().await;
        std::env::set_var("RETENTIOND_TEST_SECRET", "hunter2");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let sh = script(dir.path(), "env > \"$1\"");
        let result = exec(&[s(&sh), s(&out), "{resource}"], MIN).run(Action::Delete, &target()).await;
        std::env::remove_var("RETENTIOND_TEST_SECRET");
        result.unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(!env.contains("RETENTIOND_TEST_SECRET"), "{env}");
        assert!(!env.contains("hunter2"), "{env}");
        assert!(!env.lines().any(|l| l.starts_with("HOME=")), "{env}");
        let path = std::env::var("PATH").unwrap();
        assert!(env.lines().any(|l| l == format!("PATH={path}")), "{env}");
    }

    #[tokio::test]
    async fn timeout_kills_and_reaps_the_child() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let sh = script(dir.path(), "echo $$ > \"$1\"\nexec sleep 10");
        let started = std::time::Instant::now();
        let err = exec(&[s(&sh), s(&pidfile), "{resource}"], Dur(Duration::from_millis(300)))
            .run(Action::Delete, &target())
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(err, ExecError::Process(ProcessError::Timeout { .. })), "{err}");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim();
        assert!(!pid.is_empty());
        // Killed and reaped: not even a zombie is left.
        assert!(!Path::new("/proc").join(pid).exists(), "process {pid} still exists");
    }

    #[tokio::test]
    async fn id_cannot_become_an_option() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("argv.txt");
        let sh = script(dir.path(), "out=$1; shift; printf '%s\\n' \"$@\" > \"$out\"");
        let t = Target::copy("t1", "snapshots", "-rf", "backup-eu");

        let err = exec(&[s(&sh), s(&out), "{resource}"], MIN).run(Action::Delete, &t).await.unwrap_err();
        assert!(matches!(err, ExecError::OptionLikeArgument { index: 2, field: "resource", .. }), "{err}");
        assert!(!out.exists());

        // A literal leading '-' is the operator's, and "--" ends options.
        exec(&[s(&sh), s(&out), "--id={resource}", "--", "{resource}"], MIN).run(Action::Delete, &t).await.unwrap();
        let written = std::fs::read_to_string(&out).unwrap();
        assert_eq!(written.lines().collect::<Vec<_>>(), ["--id=-rf", "--", "-rf"]);
    }

    #[tokio::test]
    async fn invalid_ids_and_specs_never_run() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let sh = script(dir.path(), "touch \"$1\"");
        let mut t = target();
        t.tenant = "a b".into();
        let err = exec(&[s(&sh), s(&marker), "{tenant}", "{resource}"], MIN).run(Action::Delete, &t).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidTarget { field: "tenant", .. }), "{err}");
        // Unvalidated spec without {resource}.
        let err = exec(&[s(&sh), s(&marker)], MIN).run(Action::Delete, &target()).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }), "{err}");
        assert!(!marker.exists());
    }

    /// Product-spec §8: a personal store's program gets the subject, the
    /// class and the action as arguments (argv only, never a shell or the
    /// environment), for each of the four personal actions; a purge is
    /// refused without starting it.
    #[tokio::test]
    async fn personal_argv_carries_subject_class_and_action() {
        let _g = LOCK.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("argv.txt");
        let sh = script(dir.path(), "out=$1; shift; printf '%s\\n' \"$@\" > \"$out\"");
        let argv = [s(&sh), s(&out), "{tenant}", "--subject={subject}", "{store}/{class}", "{action}"];
        let person = Target::personal("t1", "crm", "u7", "contact");
        for action in [Action::Delete, Action::Anonymize, Action::Restrict, Action::Unrestrict] {
            exec(&argv, MIN).run(action, &person).await.unwrap();
            let written = std::fs::read_to_string(&out).unwrap();
            assert_eq!(written.lines().collect::<Vec<_>>(), ["t1", "--subject=u7", "crm/contact", action.as_str()]);
        }
        std::fs::remove_file(&out).unwrap();
        let err = exec(&argv, MIN).run(Action::Purge, &person).await.unwrap_err();
        assert!(matches!(err, ExecError::ActionNotForData { action: Action::Purge, data: DataKind::Personal }));
        // A business argv is not run for a subject, nor a personal one for a copy.
        let err = exec(&[s(&sh), s(&out), "{resource}"], MIN).run(Action::Delete, &person).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }), "{err}");
        let err = exec(&argv, MIN).run(Action::Delete, &target()).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }), "{err}");
        assert!(!out.exists());
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let _g = LOCK.lock().await;
        let err = exec(&["/nonexistent/retentiond-purge", "{resource}"], MIN)
            .run(Action::Delete, &target())
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Process(ProcessError::Spawn { .. })), "{err}");
    }

    #[test]
    fn validate_rejects_bad_argv() {
        let v = |argv: &[&str]| {
            validate(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>(), MIN, DataKind::Business)
                .map_err(|e| e.to_string())
        };
        assert!(v(&["/usr/libexec/p", "{tenant}", "{resource}", "{copy}"]).is_ok());
        assert!(v(&["p", "--r={resource}", "--a={action}", "{store}"]).is_ok());

        for (argv, needle) in [
            (&[][..], "must not be empty"),
            (&["", "{resource}"][..], "argv[0] must not be empty"),
            (&["/bin/{tenant}", "{resource}"][..], "argv[0]"),
            (&["/bin/p", "{resource}", "{tenants}"][..], "unknown placeholder {tenants}"),
            (&["/bin/p", "{resource}", "{tenant"][..], "unclosed"),
            (&["/bin/p", "{resource}", "x}"][..], "unmatched"),
            (&["/bin/p", "{tenant}", "{copy}"][..], "{resource}"),
            (&["/bin/p", "{resource}", "a\0b"][..], "NUL"),
        ] {
            let err = v(argv).expect_err(&format!("{argv:?}"));
            assert!(err.contains(needle), "{argv:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = validate(&["/bin/p".into(), "{resource}".into()], Dur::from_secs(0), DataKind::Business)
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout"), "{err}");
    }

    #[test]
    fn describe_is_kind_and_program() {
        assert_eq!(exec(&["/usr/libexec/x", "{resource}"], MIN).describe(), "command:/usr/libexec/x");
    }
}
