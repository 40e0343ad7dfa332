//! An `fs` store on a volume that is not mounted (issue 9, point 1): the
//! root's marker file decides, so an empty mount point is never taken for
//! "every copy already deleted", and nothing is certified that is still on
//! the volume.

mod common;

use common::*;
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::process::Command;

const TERM_END: &str = "2026-02-01T00:00:00Z";
/// TERM_END + the product's 15-day expiry buffer.
const DEADLINE: &str = "2026-02-16T00:00:00Z";

/// Asserts r1 is still deleting, its copy failed on the missing marker,
/// and nothing says it is gone: no `copy.deleted`, no purge, no certificate.
async fn assert_not_certified(h: &Harness) {
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "deleting", "{r}");
    let copy = &r["copies"][0];
    assert_eq!(copy["state"], "deleting", "{r}");
    let error = copy["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(MARKER), "the error names the missing marker: {r}");
    assert!(h.audit_of("copy.deleted", "r1").is_empty());
    assert!(h.audit_of("resource.purged", "r1").is_empty());
    let (status, cert) = h.get_as(AUDITOR, "/v1/certificates/r1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no certificate: {cert}");
}

/// The marker is missing (the root is not the volume it should be): the
/// copy stays `deleting` and is retried; once the marker is there and the
/// retry time has come, the deletion completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_without_its_marker_is_never_certified_and_completes_once_it_is_there() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    let marker = h.dir.path().join("data").join(MARKER);
    std::fs::remove_file(&marker).unwrap();
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    h.set_clock(DEADLINE).await;
    assert_not_certified(&h).await;
    assert!(data.join("blob").exists());

    // Later retries fail the same way while the marker is missing.
    h.advance("2m").await;
    assert_not_certified(&h).await;

    std::fs::write(&marker, b"").unwrap();
    let next = h.resource("r1").await["copies"][0]["next_attempt_at"].as_str().unwrap().to_string();
    h.set_clock(&next).await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged", "{r}");
    assert!(!data.exists());
    assert!(marker.is_file(), "the marker stays");
    let (status, _) = h.get_as(AUDITOR, "/v1/certificates/r1").await;
    assert_eq!(status, StatusCode::OK);
}

/// A bind mount of `volume` on `mount_point`, unmounted on drop.
struct BindMount {
    mount_point: PathBuf,
    mounted: bool,
}

impl BindMount {
    /// Mounts, or says why it cannot (not root, no mount capability, no
    /// mount(8)).
    fn mount(volume: &Path, mount_point: &Path) -> Result<BindMount, String> {
        let out = Command::new("mount").arg("--bind").arg(volume).arg(mount_point).output();
        match out {
            Ok(o) if o.status.success() => Ok(BindMount { mount_point: mount_point.to_path_buf(), mounted: true }),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn unmount(&mut self) {
        if self.mounted {
            let ok = Command::new("umount").arg(&self.mount_point).status().is_ok_and(|s| s.success());
            assert!(ok, "umount {}", self.mount_point.display());
            self.mounted = false;
        }
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mount_point).status();
        }
    }
}

/// A real mount: the store's root is a mount point. With the volume
/// unmounted the root is an empty directory, the tenant's directory is
/// missing there, and still nothing is recorded as deleted; the data on
/// the volume survives. Mounted again, the deletion completes on the
/// volume. Needs root and the mount capability; skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_volume_keeps_its_data_and_no_certificate_is_issued() {
    let volume_dir = tempfile::tempdir().unwrap();
    let volume = fs_root(&volume_dir.path().join("volume"));
    let blob = volume.join("t1/r1/blob");
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, b"customer business data").unwrap();

    let h = Harness::start().await;
    let mount_point = h.dir.path().join("data");
    // The mount point as an operator leaves it: an empty directory.
    std::fs::remove_file(mount_point.join(MARKER)).unwrap();
    let mut mount = match BindMount::mount(&volume, &mount_point) {
        Ok(m) => m,
        Err(why) => {
            println!("skipped: cannot bind-mount a test volume here ({why})");
            return;
        }
    };
    assert!(h.data_path("t1", "r1").join("blob").exists(), "the volume is mounted");
    h.apply(created("e1", "t1", "r1", TERM_END)).await;
    mount.unmount();
    assert!(!h.data_path("t1", "r1").exists(), "the mount point is empty");

    h.set_clock(DEADLINE).await;
    assert_not_certified(&h).await;
    assert!(blob.exists(), "the data on the volume survives");

    let mut mount = BindMount::mount(&volume, &mount_point).expect("mounts again");
    let next = h.resource("r1").await["copies"][0]["next_attempt_at"].as_str().unwrap().to_string();
    h.set_clock(&next).await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged", "{r}");
    assert!(!blob.exists(), "deleted on the volume itself");
    assert!(volume.join(MARKER).is_file());
    let (status, _) = h.get_as(AUDITOR, "/v1/certificates/r1").await;
    assert_eq!(status, StatusCode::OK);
    mount.unmount();
}
