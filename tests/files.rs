//! The daemon's own files when it runs outside systemd (issue 9, point 9):
//! the state dir is 0700 and the audit files 0600 whatever the umask, so a
//! daemon started by hand (umask 022) does not leave the database and the
//! audit log readable by every user.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o7777
}

/// A fresh start: state dir 0700, database dir 0700, audit.jsonl and every
/// rotated segment 0600 (the tests run with the usual umask 022, which
/// would give 0755 and 0644).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_dir_is_0700_and_audit_files_0600() {
    let config = base_config("").replace("state_dir = \"state\"", "state_dir = \"state\"\naudit_segment_bytes = 4096");
    let h = Harness::with_config(&config).await;
    for i in 0..20 {
        h.apply(created(&format!("e{i}"), "t1", &format!("r{i}"), "2027-01-01T00:00:00Z")).await;
    }
    let state = h.state_dir();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("db")), 0o700);
    assert_eq!(mode(&state.join("audit.jsonl")), 0o600);
    let segments: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("audit-"))
        .collect();
    assert!(!segments.is_empty(), "the log rotated");
    for s in segments {
        assert_eq!(mode(&s), 0o600, "{}", s.display());
    }
}

/// A state dir and audit log an older version left open to others are
/// tightened at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_open_state_dir_and_audit_log_are_tightened() {
    let mut h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2027-01-01T00:00:00Z")).await;
    h.stop().await;
    let state = h.state_dir();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(state.join("audit.jsonl"), std::fs::Permissions::from_mode(0o644)).unwrap();
    h.start_with(&base_config("")).await;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("audit.jsonl")), 0o600);
    assert_eq!(h.verify_audit(), h.audit().len() as u64, "the log is intact");
}
