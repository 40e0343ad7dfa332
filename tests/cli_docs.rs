//! `retentiond completions SHELL` and `retentiond man --out DIR`, run as a
//! packager runs them: the completions name the subcommands a user tabs
//! through, and there is a readable man page for every command that
//! `--help` lists, at every depth.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_retentiond")).args(args).output().unwrap();
    assert!(out.status.success(), "retentiond {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(run(args).stdout).unwrap()
}

/// The subcommands `retentiond <path> --help` lists under "Commands:"
/// (clap's own `help` left out): read from the help a user sees, not from
/// the clap definitions the generators read.
fn listed_subcommands(path: &[&str]) -> Vec<String> {
    let mut args = path.to_vec();
    args.push("--help");
    let help = stdout(&args);
    let Some((_, commands)) = help.split_once("\nCommands:\n") else { return Vec::new() };
    commands
        .lines()
        .take_while(|l| !l.is_empty())
        // A name stands two spaces in; a wrapped description further in.
        .filter_map(|l| l.strip_prefix("  ").filter(|rest| !rest.starts_with(' ')))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .filter(|name| name != "help")
        .collect()
}

/// Every command path under `path`, `path` itself first.
fn command_tree(path: Vec<String>, into: &mut Vec<Vec<String>>) {
    let args: Vec<&str> = path.iter().map(String::as_str).collect();
    let subs = listed_subcommands(&args);
    into.push(path.clone());
    for sub in subs {
        let mut child = path.clone();
        child.push(sub);
        command_tree(child, into);
    }
}

#[test]
fn completions_name_the_ctl_subcommands_in_every_shell() {
    let ctl = listed_subcommands(&["ctl"]);
    for expected in ["hold", "forecast", "approve", "restore-check", "apply-policy"] {
        assert!(ctl.iter().any(|c| c == expected), "ctl --help lists no {expected}: {ctl:?}");
    }
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&["completions", shell]);
        for sub in ctl.iter().map(String::as_str).chain(["place", "release", "serve", "check-config"]) {
            assert!(script.contains(sub), "{shell} completions do not name {sub}");
        }
        // Long options too, each shell spelling them its own way.
        let config = if shell == "fish" { "-l config" } else { "--config" };
        assert!(script.contains(config), "{shell} completions do not name {config}");
    }
    // What the shells expect: bash registers a function for the command,
    // zsh a #compdef line, fish `complete -c` lines.
    assert!(stdout(&["completions", "bash"]).contains("complete -F _retentiond"));
    assert!(stdout(&["completions", "zsh"]).starts_with("#compdef retentiond"));
    assert!(stdout(&["completions", "fish"]).contains("complete -c retentiond"));
}

/// What the tab key offers in bash, with the script loaded as
/// bash-completion loads it: bash calls the completion function with the
/// words typed so far (`COMP_WORDS`, the one under the cursor last).
fn bash_completes(words: &[&str]) -> String {
    let script = stdout(&["completions", "bash"]);
    let line = words.join(" ");
    let call = format!(
        "COMP_WORDS=({line}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT={point}; \
         _retentiond retentiond {current} {previous}; echo \"${{COMPREPLY[*]}}\"",
        cword = words.len() - 1,
        point = line.len(),
        current = words[words.len() - 1],
        previous = words[words.len() - 2],
    );
    let out = Command::new("bash").arg("-c").arg(format!("{script}\n{call}")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn bash_completes_ctl_subcommands_and_their_options() {
    assert_eq!(bash_completes(&["retentiond", "ctl", "ho"]), "hold");
    assert_eq!(bash_completes(&["retentiond", "ctl", "hold", "pl"]), "place");
    assert_eq!(bash_completes(&["retentiond", "ctl", "hold", "place", "--ho"]), "--hold-id");
    assert_eq!(bash_completes(&["retentiond", "ctl", "fore"]), "forecast");
    assert_eq!(bash_completes(&["retentiond", "serve", "--con"]), "--config");
}

#[test]
fn an_unknown_shell_is_refused_with_the_known_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_retentiond")).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bash") && stderr.contains("zsh") && stderr.contains("fish"), "{stderr}");
}

#[test]
fn there_is_a_man_page_for_every_command_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let printed = stdout(&["man", "--out", out_dir.to_str().unwrap()]);

    let mut tree = Vec::new();
    command_tree(Vec::new(), &mut tree);
    let expected: BTreeSet<String> = tree
        .iter()
        .map(|path| {
            format!("{}.1", ["retentiond".to_owned()].iter().chain(path).cloned().collect::<Vec<_>>().join("-"))
        })
        .collect();
    for page in [
        "retentiond.1",
        "retentiond-serve.1",
        "retentiond-ctl.1",
        "retentiond-ctl-hold.1",
        "retentiond-ctl-hold-place.1",
        "retentiond-audit-verify.1",
        "retentiond-man.1",
    ] {
        assert!(expected.contains(page), "--help does not lead to {page}: {expected:?}");
    }
    let written: BTreeSet<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(written, expected, "one page per command, no other file");
    assert_eq!(printed.lines().count(), expected.len(), "the paths written are printed: {printed}");

    let page = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap();
    for name in &expected {
        let text = page(name);
        // roff: the title line names the page and section 1; only the
        // string definitions clap_mangen puts first may come before it.
        let title = format!(".TH {} 1 ", name.trim_end_matches(".1"));
        let th = text.lines().position(|l| l.starts_with(&title));
        let th = th.unwrap_or_else(|| panic!("{name} has no {title:?} line:\n{text}"));
        assert!(text.lines().take(th).all(|l| l.starts_with(".ie ") || l.starts_with(".el ")), "{name}:\n{text}");
        assert!(text.contains("\n.SH NAME\n") && text.contains("\n.SH SYNOPSIS\n"), "{name}");
    }
    // Options as roff spells them (a hyphen is `\-`), the global ctl flags
    // on every ctl page, and the env variable behind --config.
    let serve = page("retentiond-serve.1");
    assert!(serve.contains("\\-\\-config") && serve.contains("RETENTIOND_CONFIG"), "{serve}");
    let place = page("retentiond-ctl-hold-place.1");
    for option in ["\\-\\-hold\\-id", "\\-\\-authority", "\\-\\-tenant", "\\-\\-addr", "\\-\\-token\\-file"] {
        assert!(place.contains(option), "retentiond-ctl-hold-place.1 lacks {option}");
    }
    // The parent lists its subcommands for the reader to follow.
    let ctl = page("retentiond-ctl.1");
    assert!(ctl.contains("retentiond\\-ctl\\-hold(1)") || ctl.contains("retentiond-ctl-hold(1)"), "{ctl}");
}

/// Where man(1) is installed, every page renders without a warning from
/// groff; elsewhere the test says it skipped.
#[test]
fn man_renders_every_page_without_warnings() {
    let man = Command::new("man").arg("--version").output();
    if !man.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: man(1) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--out", dir.path().to_str().unwrap()]);
    let mut rendered = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let text = render(&path);
        let name = path.file_stem().unwrap().to_str().unwrap();
        assert!(text.contains(name), "{} renders without its name:\n{text}", path.display());
        rendered += 1;
    }
    assert!(rendered > 20, "{rendered} pages");
    let serve = render(&dir.path().join("retentiond-serve.1"));
    assert!(serve.contains("--config") && serve.contains("Run the daemon"), "{serve}");
}

fn render(path: &Path) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-l", "-P", "cat"])
        .arg(path)
        .env("MANWIDTH", "100")
        .env("GROFF_NO_SGR", "1")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "man -l {}: {stderr}", path.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}
