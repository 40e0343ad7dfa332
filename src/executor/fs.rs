//! The `fs` executor: removes `root/<path template>` from a local filesystem.
//!
//! The path is built from ids, so the dangers are a path that leaves `root`
//! (through `..` or a symlink) and a path that names more than one resource
//! (or person). The first is checked at config load, again on every render,
//! and once more against the real filesystem with canonical paths; the
//! second is why the template must contain `{resource}` (`{subject}` in a
//! store of personal data, product-spec §8).
//!
//! A third danger is a root that is not the volume it should be: with the
//! volume unmounted, `root` is an empty mount point and every path below it
//! is missing, which would otherwise read as "already deleted" and earn a
//! certificate for data that is still on the volume. So a marker file must
//! exist in the root before any call (see [`check_marker`]); it is created
//! on the mounted volume, so the bare mount point has none.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::{
    contains, foreign, parse_template, render, Action, DataKind, ExecError, Placeholder, SpecError, Target,
    TemplateError,
};

/// What is wrong with an `fs` executor's spec (shown after `fs executor: `).
#[derive(Debug, thiserror::Error)]
pub enum FsSpecError {
    /// The marker is not a single file name directly in the root.
    #[error(
        "marker {marker:?} must be a plain file name in root (no \"/\", not \".\" or \"..\"), \
         or \"\" to turn the check off"
    )]
    MarkerNotPlainName {
        /// The configured marker.
        marker: String,
    },
    /// The root holds a NUL byte, which no path can.
    #[error("root contains a NUL byte")]
    RootNul,
    /// The root is relative, so it would depend on the working directory.
    #[error("root {} must be an absolute path", root.display())]
    RootRelative {
        /// The configured root.
        root: PathBuf,
    },
    /// The root has `.` or `..` components, so it is not the directory it
    /// seems to name.
    #[error("root {} must not contain \".\" or \"..\"", root.display())]
    RootDots {
        /// The configured root.
        root: PathBuf,
    },
    /// The root is `/`: every file on the machine would be below it.
    #[error("root {} must not be the filesystem root", root.display())]
    RootIsFilesystemRoot {
        /// The configured root.
        root: PathBuf,
    },
    /// The path template is empty.
    #[error("path must not be empty")]
    PathEmpty,
    /// The path template holds a NUL byte.
    #[error("path {path:?} contains a NUL byte")]
    PathNul {
        /// The configured template.
        path: String,
    },
    /// The path template is absolute, so it would leave the root.
    #[error("path {path:?} must be relative")]
    PathAbsolute {
        /// The configured template.
        path: String,
    },
    /// The path template does not parse.
    #[error("path: {0}")]
    Template(#[from] TemplateError),
    /// The path depends on the action, so one copy would have two paths.
    #[error("path {path:?} must not contain {{action}} (one copy has one path)")]
    PathHasAction {
        /// The configured template.
        path: String,
    },
    /// The path does not name the resource, so it would name its siblings
    /// too.
    #[error(
        "path {path:?} must contain {{resource}}, \
         otherwise expiring one resource would delete its siblings"
    )]
    PathWithoutResource {
        /// The configured template.
        path: String,
    },
    /// A personal store's path does not name the subject, so erasing one
    /// person's data would erase everyone's in the tenant.
    #[error(
        "path {path:?} must contain {{subject}} (data = \"personal\"), \
         otherwise erasing one person's data would delete everyone's"
    )]
    PathWithoutSubject {
        /// The configured template.
        path: String,
    },
    /// The path uses a placeholder the store's kind of data does not have
    /// (`{subject}` in a business store, `{resource}` in a personal one).
    #[error("path {path:?} uses {{{placeholder}}}, which a store of {data} data does not have (data = \"{data}\")")]
    ForeignPlaceholder {
        /// The configured template.
        path: String,
        /// The placeholder's name.
        placeholder: &'static str,
        /// The store's kind of data.
        data: DataKind,
    },
    /// `//` or a trailing `/`.
    #[error("path {path:?} has an empty component (\"//\" or trailing \"/\")")]
    EmptyComponent {
        /// The configured template.
        path: String,
    },
    /// A `.` or `..` component, which would not stay one level down.
    #[error("path {path:?} has a {component:?} component")]
    DotComponent {
        /// The configured template.
        path: String,
        /// The component.
        component: String,
    },
    /// Two ids in one component are ambiguous.
    #[error(
        "path component {component:?} joins several ids; ids may contain - . _ : \
         so the result is ambiguous (another tenant's data could match): put each in its own component"
    )]
    JoinedIds {
        /// The component.
        component: String,
    },
    /// A component rendered to something other than one plain name (an id
    /// that passed its checks cannot do this; the check is independent).
    #[error("path {path:?} renders a component {name:?} that is not a plain name")]
    RendersNonName {
        /// The configured template.
        path: String,
        /// What the component rendered to.
        name: String,
    },
    /// The path has no component to remove.
    #[error("path has no components")]
    NoComponents,
}

/// Deletes a copy (or a subject's personal data) stored as a file or
/// directory tree below a fixed root.
///
/// Only `Delete` and `Purge` are supported (both remove the path); a
/// filesystem has no portable notion of "restricted", and cannot anonymise
/// what it does not understand.
#[derive(Clone, Debug)]
pub struct FsExecutor {
    root: PathBuf,
    path: String,
    /// The marker's file name; empty: no check.
    marker: String,
}

/// The marker file name used when the config names none.
pub(super) const DEFAULT_MARKER: &str = ".retentiond-root";

/// Whether an `fs` executor can carry out `action`: only by removing the path.
pub(super) fn supports(action: Action) -> bool {
    match action {
        Action::Delete | Action::Purge => true,
        Action::Restrict | Action::Anonymize | Action::Unrestrict => false,
    }
}

/// Static checks for an `fs` spec of a store holding `data`; see
/// [`super::ExecutorSpec::validate`].
pub(super) fn validate(root: &Path, path: &str, marker: &str, data: DataKind) -> Result<(), FsSpecError> {
    // A name, not a path: checked directly in the root, never below or above it.
    if !marker.is_empty() && !is_plain_name(marker) {
        return Err(FsSpecError::MarkerNotPlainName { marker: marker.to_owned() });
    }
    if root.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(FsSpecError::RootNul);
    }
    if !root.is_absolute() {
        return Err(FsSpecError::RootRelative { root: root.to_path_buf() });
    }
    if root.components().any(|c| matches!(c, Component::CurDir | Component::ParentDir)) {
        return Err(FsSpecError::RootDots { root: root.to_path_buf() });
    }
    if !root.components().any(|c| matches!(c, Component::Normal(_))) {
        return Err(FsSpecError::RootIsFilesystemRoot { root: root.to_path_buf() });
    }
    template_components(path, data)?;
    Ok(())
}

/// Parses the path template into per-component templates, rejecting
/// anything that could render to something other than plain names.
fn template_components(path: &str, data: DataKind) -> Result<Vec<Vec<super::Piece<'_>>>, FsSpecError> {
    let owned = || path.to_owned();
    if path.is_empty() {
        return Err(FsSpecError::PathEmpty);
    }
    if path.contains('\0') {
        return Err(FsSpecError::PathNul { path: owned() });
    }
    if path.starts_with('/') {
        return Err(FsSpecError::PathAbsolute { path: owned() });
    }
    // Whole-template parse first so brace errors name the whole template.
    let whole = parse_template(path)?;
    if contains(&whole, Placeholder::Action) {
        return Err(FsSpecError::PathHasAction { path: owned() });
    }
    if let Some(ph) = foreign(&whole, data) {
        return Err(FsSpecError::ForeignPlaceholder { path: owned(), placeholder: ph.name(), data });
    }
    if !contains(&whole, Placeholder::naming(data)) {
        return Err(match data {
            DataKind::Business => FsSpecError::PathWithoutResource { path: owned() },
            DataKind::Personal => FsSpecError::PathWithoutSubject { path: owned() },
        });
    }
    // Ids never contain '/', so splitting the template splits the result.
    path.split('/')
        .map(|component| match component {
            "" => Err(FsSpecError::EmptyComponent { path: owned() }),
            "." | ".." => Err(FsSpecError::DotComponent { path: owned(), component: component.to_owned() }),
            _ => {
                let pieces = parse_template(component)?;
                if super::id_placeholders(&pieces) > 1 {
                    return Err(FsSpecError::JoinedIds { component: component.to_owned() });
                }
                Ok(pieces)
            }
        })
        .collect()
}

/// True when `s` is usable as exactly one path component below a directory.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])
}

impl FsExecutor {
    /// An executor for `root/path`, requiring `root/marker` (no check when
    /// `marker` is empty). Not validated here: [`FsExecutor::run`]
    /// re-validates and refuses an invalid spec.
    pub fn new(root: PathBuf, path: String, marker: String) -> FsExecutor {
        FsExecutor { root, path, marker }
    }

    /// `fs:<root>`, for logs.
    pub fn describe(&self) -> String {
        format!("fs:{}", self.root.display())
    }

    /// Removes the path for `target` (`Delete`, `Purge`). Ok(()) when it did
    /// not exist or no longer exists afterwards, and only when the root holds
    /// its marker; `Restrict`, `Anonymize` and `Unrestrict` are refused with
    /// [`ExecError::UnsupportedAction`]. The spec is re-validated for the
    /// target's kind of data, so a path naming `{resource}` is never used to
    /// erase a subject.
    pub async fn run(&self, action: Action, target: &Target) -> Result<(), ExecError> {
        validate(&self.root, &self.path, &self.marker, target.item.data()).map_err(invalid)?;
        target.check_action(action)?;
        if !supports(action) {
            return Err(ExecError::UnsupportedAction { action, kind: "fs" });
        }
        let components = self.render_components(action, target)?;
        let root = self.root.clone();
        let marker = self.marker.clone();
        tokio::task::spawn_blocking(move || remove_below(&root, &marker, &components))
            .await
            .map_err(|source| ExecError::TaskFailed { source })?
    }

    /// Renders each path component and re-checks that it is a plain name,
    /// independently of the id checks, so a bad id can never add or remove
    /// a level.
    fn render_components(&self, action: Action, target: &Target) -> Result<Vec<String>, ExecError> {
        let templates = template_components(&self.path, target.item.data()).map_err(invalid)?;
        let mut out = Vec::with_capacity(templates.len());
        for template in &templates {
            let name = render(template, action, target)?;
            if !is_plain_name(&name) {
                return Err(invalid(FsSpecError::RendersNonName { path: self.path.clone(), name }));
            }
            out.push(name);
        }
        Ok(out)
    }
}

/// A spec found invalid before a run: nothing is touched.
fn invalid(e: FsSpecError) -> ExecError {
    ExecError::InvalidSpec { reason: SpecError::Fs(e) }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ExecError + 'a {
    move |source| ExecError::Io { op, path: path.to_path_buf(), source }
}

/// Fails unless `canon_root/marker` is a regular file. `symlink_metadata`
/// does not follow a symlink: a marker that is a link could point at a file
/// on another file system (the one holding the mount point) and pass while
/// the volume is away, so only a regular file directly in the root counts.
/// The root itself may be a symlink (it was canonicalized): the marker is
/// looked for where it leads.
fn check_marker(root: &Path, canon_root: &Path, marker: &str) -> Result<(), ExecError> {
    if marker.is_empty() {
        return Ok(());
    }
    let path = canon_root.join(marker);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() => Ok(()),
        Ok(_) => Err(ExecError::MarkerNotFile { path }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(ExecError::MarkerMissing { root: root.to_path_buf(), marker: marker.to_owned() })
        }
        Err(e) => Err(io_err("inspect marker", &path)(e)),
    }
}

/// The blocking part of a run: check the root and its marker, resolve
/// `root/components...` one level at a time, staying inside the canonical
/// root, then remove the last component without following it.
///
/// Check-then-act race: every directory on the way is resolved and checked
/// before the removal, but the removal itself goes by path. A process with
/// write access below `root` could, between the check and the removal,
/// replace a checked directory with a symlink to somewhere outside `root`,
/// and the removal would follow it. (`remove_dir_all` itself does not follow
/// symlinks inside the tree it removes, nor the final component.) Closing
/// this fully needs descriptor-relative traversal (`openat` with
/// `O_NOFOLLOW`, or `openat2` with `RESOLVE_BENEATH`), which the crate's
/// safe-only dependencies do not offer; until then `root` must be writable
/// only by the daemon and trusted operators.
fn remove_below(root: &Path, marker: &str, components: &[String]) -> Result<(), ExecError> {
    // An unmounted volume or a typo'd root must be an error, never "already
    // deleted": require an existing directory before anything else.
    let meta =
        std::fs::metadata(root).map_err(|source| ExecError::RootUnavailable { root: root.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(ExecError::RootNotDirectory { root: root.to_path_buf() });
    }
    let canon_root = std::fs::canonicalize(root).map_err(io_err("canonicalize", root))?;
    check_marker(root, &canon_root, marker)?;

    let Some((name, parents)) = components.split_last() else {
        return Err(invalid(FsSpecError::NoComponents));
    };

    // Walk the parent directories one level at a time. Each level that
    // exists is canonicalized and must stay inside the root (symlinks that
    // stay inside are allowed). A level that does not exist means nothing
    // below it exists: already gone. A level that exists but cannot be
    // resolved (a dangling symlink, e.g. to an unmounted volume) is an error,
    // not "gone".
    let mut dir = canon_root.clone();
    for component in parents {
        let next = dir.join(component);
        match std::fs::symlink_metadata(&next) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("inspect", &next)(e)),
            Ok(_) => {}
        }
        let resolved = std::fs::canonicalize(&next).map_err(io_err("canonicalize", &next))?;
        if !resolved.starts_with(&canon_root) {
            return Err(ExecError::PathEscapesRoot {
                path: root.join(components.join("/")),
                resolved,
                root: canon_root,
            });
        }
        dir = resolved;
    }

    let victim = dir.join(name);
    if !marker.is_empty() && dir == canon_root && name == marker {
        return Err(ExecError::WouldRemoveMarker { path: victim });
    }
    let file_type = match std::fs::symlink_metadata(&victim) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", &victim)(e)),
        Ok(m) => m.file_type(),
    };
    // symlink_metadata does not follow links: a symlink is never `is_dir`,
    // so it is removed as a link and its target is left alone.
    let (op, removed) = if file_type.is_dir() {
        ("remove_dir_all", std::fs::remove_dir_all(&victim))
    } else {
        ("remove_file", std::fs::remove_file(&victim))
    };
    match removed {
        Ok(()) => {}
        // Removed concurrently (another run of the same deletion): fine, the
        // check below still decides.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(op, &victim)(e)),
    }

    // Success means "verifiably gone", not "the call returned Ok".
    match std::fs::symlink_metadata(&victim) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("verify", &victim)(e)),
        Ok(_) => Err(ExecError::StillPresent { path: victim }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn target(tenant: &str, resource: &str) -> Target {
        Target::copy(tenant, "files", resource, "primary")
    }

    fn exec(root: &Path) -> FsExecutor {
        FsExecutor::new(root.to_path_buf(), "{tenant}/{resource}".into(), DEFAULT_MARKER.into())
    }

    /// An empty root holding its marker, as a mounted volume does.
    fn marked_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DEFAULT_MARKER), b"").unwrap();
        dir
    }

    /// root/t1/{r1,r2} with files inside, r1 nested, and the marker.
    fn layout() -> tempfile::TempDir {
        let dir = marked_root();
        let root = dir.path();
        fs::create_dir_all(root.join("t1/r1/sub/deeper")).unwrap();
        fs::write(root.join("t1/r1/a.txt"), b"a").unwrap();
        fs::write(root.join("t1/r1/sub/deeper/b.txt"), b"b").unwrap();
        fs::create_dir_all(root.join("t1/r2")).unwrap();
        fs::write(root.join("t1/r2/keep.txt"), b"keep").unwrap();
        dir
    }

    #[tokio::test]
    async fn deletes_resource_tree_and_keeps_siblings() {
        let dir = layout();
        let root = dir.path();
        exec(root).run(Action::Delete, &target("t1", "r1")).await.unwrap();
        assert!(!root.join("t1/r1").exists());
        assert!(root.join("t1").is_dir());
        assert_eq!(fs::read(root.join("t1/r2/keep.txt")).unwrap(), b"keep");
    }

    #[tokio::test]
    async fn purge_removes_a_plain_file() {
        let dir = layout();
        let root = dir.path();
        fs::write(root.join("t1/file-res"), b"x").unwrap();
        exec(root).run(Action::Purge, &target("t1", "file-res")).await.unwrap();
        assert!(!root.join("t1/file-res").exists());
        assert!(root.join("t1/r2/keep.txt").exists());
    }

    #[tokio::test]
    async fn missing_target_is_already_gone() {
        let dir = layout();
        let root = dir.path();
        let e = exec(root);
        // Resource missing, tenant missing, and a second run after deleting.
        e.run(Action::Delete, &target("t1", "nope")).await.unwrap();
        e.run(Action::Delete, &target("t9", "r1")).await.unwrap();
        e.run(Action::Delete, &target("t1", "r1")).await.unwrap();
        e.run(Action::Delete, &target("t1", "r1")).await.unwrap();
        assert!(root.join("t1/r2/keep.txt").exists());
    }

    #[tokio::test]
    async fn refuses_tenant_symlink_leaving_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(outside.path().join("r1")).unwrap();
        fs::write(outside.path().join("r1/precious.txt"), b"p").unwrap();
        let dir = marked_root();
        symlink(outside.path(), dir.path().join("t1")).unwrap();

        let err = exec(dir.path()).run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::PathEscapesRoot { .. }), "{err}");
        assert_eq!(fs::read(outside.path().join("r1/precious.txt")).unwrap(), b"p");
        assert!(dir.path().join("t1").is_symlink());
    }

    #[tokio::test]
    async fn refuses_escape_even_when_the_rest_is_missing() {
        // root/t1 -> outside, and outside/x does not exist: the path leaves
        // the root, so this is refused rather than called "already gone".
        let outside = tempfile::tempdir().unwrap();
        let dir = marked_root();
        symlink(outside.path(), dir.path().join("t1")).unwrap();
        let e = FsExecutor::new(dir.path().into(), "{tenant}/x/{resource}".into(), DEFAULT_MARKER.into());
        let err = e.run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::PathEscapesRoot { .. }), "{err}");
    }

    #[tokio::test]
    async fn symlink_inside_root_is_followed() {
        let dir = layout();
        let root = dir.path();
        symlink(root.join("t1"), root.join("alias")).unwrap();
        exec(root).run(Action::Delete, &target("alias", "r1")).await.unwrap();
        assert!(!root.join("t1/r1").exists());
        assert!(root.join("t1/r2/keep.txt").exists());
    }

    #[tokio::test]
    async fn dangling_parent_symlink_is_an_error_not_gone() {
        let dir = marked_root();
        symlink("/nonexistent-retentiond-test/vol", dir.path().join("t1")).unwrap();
        let err = exec(dir.path()).run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::Io { op: "canonicalize", .. }), "{err}");
    }

    #[tokio::test]
    async fn final_symlink_is_removed_as_a_link() {
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(outside.path().join("data")).unwrap();
        fs::write(outside.path().join("data/precious.txt"), b"p").unwrap();
        fs::write(outside.path().join("file.txt"), b"f").unwrap();
        let dir = layout();
        let root = dir.path();
        symlink(outside.path().join("data"), root.join("t1/dirlink")).unwrap();
        symlink(outside.path().join("file.txt"), root.join("t1/filelink")).unwrap();

        let e = exec(root);
        e.run(Action::Delete, &target("t1", "dirlink")).await.unwrap();
        e.run(Action::Delete, &target("t1", "filelink")).await.unwrap();
        assert!(fs::symlink_metadata(root.join("t1/dirlink")).is_err());
        assert!(fs::symlink_metadata(root.join("t1/filelink")).is_err());
        assert_eq!(fs::read(outside.path().join("data/precious.txt")).unwrap(), b"p");
        assert_eq!(fs::read(outside.path().join("file.txt")).unwrap(), b"f");
    }

    #[tokio::test]
    async fn missing_or_non_directory_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-mounted");
        let err = exec(&missing).run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::RootUnavailable { .. }), "{err}");

        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = exec(&file).run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::RootNotDirectory { .. }), "{err}");
    }

    #[tokio::test]
    async fn restrict_is_unsupported_and_touches_nothing() {
        let dir = layout();
        let err = exec(dir.path()).run(Action::Restrict, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::UnsupportedAction { action: Action::Restrict, kind: "fs" }), "{err}");
        assert!(dir.path().join("t1/r1/a.txt").exists());
    }

    #[tokio::test]
    async fn invalid_ids_never_become_paths() {
        let dir = layout();
        let e = exec(dir.path());
        for resource in ["..", ".", "", "a/b", "../t1"] {
            let err = e.run(Action::Delete, &target("t1", resource)).await.unwrap_err();
            assert!(matches!(err, ExecError::InvalidTarget { field: "resource", .. }), "{resource:?}: {err}");
        }
        assert!(dir.path().join("t1/r1/a.txt").exists());
        assert!(dir.path().join("t1/r2/keep.txt").exists());
    }

    #[tokio::test]
    async fn unvalidated_bad_spec_does_not_run() {
        let dir = layout();
        // No {resource}: would delete the whole tenant.
        let e = FsExecutor::new(dir.path().into(), "{tenant}".into(), DEFAULT_MARKER.into());
        let err = e.run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }), "{err}");
        assert!(dir.path().join("t1/r1/a.txt").exists());
    }

    /// An unmounted volume: the mount point is an empty directory (or holds
    /// only what was put there by mistake). Without the marker nothing is
    /// "already gone": every call fails, whatever the target.
    #[tokio::test]
    async fn a_root_without_its_marker_fails_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let e = exec(dir.path());
        for (tenant, resource) in [("t1", "r1"), ("t9", "nope")] {
            let err = e.run(Action::Delete, &target(tenant, resource)).await.unwrap_err();
            assert!(matches!(err, ExecError::MarkerMissing { .. }), "{err}");
            assert!(err.to_string().contains(".retentiond-root"), "{err}");
        }
        // Data on the bare mount point is not touched either.
        fs::create_dir_all(dir.path().join("t1/r1")).unwrap();
        let err = e.run(Action::Purge, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::MarkerMissing { .. }), "{err}");
        assert!(dir.path().join("t1/r1").is_dir());
        // Once the marker is there (the volume is mounted), it works.
        fs::write(dir.path().join(DEFAULT_MARKER), b"").unwrap();
        e.run(Action::Purge, &target("t1", "r1")).await.unwrap();
        assert!(!dir.path().join("t1/r1").exists());
        assert!(dir.path().join(DEFAULT_MARKER).is_file());
    }

    /// Only a regular file directly in the root counts: a symlink (which
    /// could lead to a file on the file system under the mount point) or a
    /// directory does not.
    #[tokio::test]
    async fn the_marker_must_be_a_regular_file_not_a_link_or_directory() {
        let elsewhere = tempfile::tempdir().unwrap();
        fs::write(elsewhere.path().join("m"), b"").unwrap();
        let dir = layout();
        let marker = dir.path().join(DEFAULT_MARKER);
        fs::remove_file(&marker).unwrap();
        symlink(elsewhere.path().join("m"), &marker).unwrap();
        let err = exec(dir.path()).run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::MarkerNotFile { .. }), "{err}");
        fs::remove_file(&marker).unwrap();
        fs::create_dir(&marker).unwrap();
        let err = exec(dir.path()).run(Action::Delete, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::MarkerNotFile { .. }), "{err}");
        assert!(dir.path().join("t1/r1/a.txt").exists());
    }

    /// A root reached through a symlink (`/srv/tenant-data -> /mnt/vol`)
    /// is checked where it leads.
    #[tokio::test]
    async fn a_symlinked_root_is_checked_where_it_leads() {
        let dir = layout();
        let link_dir = tempfile::tempdir().unwrap();
        let link = link_dir.path().join("root");
        symlink(dir.path(), &link).unwrap();
        exec(&link).run(Action::Delete, &target("t1", "r1")).await.unwrap();
        assert!(!dir.path().join("t1/r1").exists());
    }

    /// `marker = ""` turns the check off: a root without any marker works.
    #[tokio::test]
    async fn an_empty_marker_turns_the_check_off() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("t1/r1")).unwrap();
        let e = FsExecutor::new(dir.path().into(), "{tenant}/{resource}".into(), String::new());
        e.run(Action::Delete, &target("t1", "r1")).await.unwrap();
        assert!(!dir.path().join("t1/r1").exists());
    }

    /// A resource named like the marker, with a `{resource}` template
    /// directly in the root (or through an alias of the root), would remove
    /// the marker and so the check for every other deletion: refused.
    #[tokio::test]
    async fn the_marker_itself_is_never_deleted() {
        let dir = layout();
        symlink(dir.path(), dir.path().join("self")).unwrap();
        let flat = FsExecutor::new(dir.path().into(), "{resource}".into(), DEFAULT_MARKER.into());
        let err = flat.run(Action::Purge, &target("t1", DEFAULT_MARKER)).await.unwrap_err();
        assert!(matches!(err, ExecError::WouldRemoveMarker { .. }), "{err}");
        let err = exec(dir.path()).run(Action::Purge, &target("self", DEFAULT_MARKER)).await.unwrap_err();
        assert!(matches!(err, ExecError::WouldRemoveMarker { .. }), "{err}");
        assert!(dir.path().join(DEFAULT_MARKER).is_file());
        // Deeper down, a file of that name is ordinary data.
        fs::write(dir.path().join("t1").join(DEFAULT_MARKER), b"x").unwrap();
        exec(dir.path()).run(Action::Purge, &target("t1", DEFAULT_MARKER)).await.unwrap();
        assert!(!dir.path().join("t1").join(DEFAULT_MARKER).exists());
    }

    /// Product-spec §8: a personal store's path names the subject; a
    /// `delete` removes that subject's data and nobody else's, behind the
    /// same root and marker checks as a copy.
    #[tokio::test]
    async fn deletes_one_subjects_personal_data_and_keeps_the_others() {
        let dir = marked_root();
        let root = dir.path();
        for subject in ["t1", "u1", "u2"] {
            fs::create_dir_all(root.join("t1").join(subject)).unwrap();
            fs::write(root.join("t1").join(subject).join("contact.json"), b"{}").unwrap();
        }
        let e = FsExecutor::new(root.into(), "{tenant}/{subject}".into(), DEFAULT_MARKER.into());
        e.run(Action::Delete, &Target::personal("t1", "crm", "u1", "contact")).await.unwrap();
        assert!(!root.join("t1/u1").exists());
        assert!(root.join("t1/u2/contact.json").exists() && root.join("t1/t1/contact.json").exists());
        // Idempotent, and a subject id is checked like any id (new: no leading '-').
        e.run(Action::Delete, &Target::personal("t1", "crm", "u1", "contact")).await.unwrap();
        for bad in ["..", "a/b", "-u2"] {
            let err = e.run(Action::Delete, &Target::personal("t1", "crm", bad, "contact")).await.unwrap_err();
            assert!(matches!(err, ExecError::InvalidTarget { field: "subject", .. }), "{bad:?}: {err}");
        }
        assert!(root.join("t1/u2/contact.json").exists());
    }

    /// A filesystem cannot restrict or anonymise (no key or mapping may be
    /// kept, domain-rules §3, and the bytes mean nothing to it), and a purge
    /// is a business backup's: each is refused, touching nothing.
    #[tokio::test]
    async fn personal_data_is_only_deleted_never_anonymised_restricted_or_purged() {
        let dir = marked_root();
        fs::create_dir_all(dir.path().join("t1/u1")).unwrap();
        let e = FsExecutor::new(dir.path().into(), "{tenant}/{subject}".into(), DEFAULT_MARKER.into());
        let person = Target::personal("t1", "crm", "u1", "contact");
        for action in [Action::Anonymize, Action::Restrict, Action::Unrestrict] {
            let err = e.run(action, &person).await.unwrap_err();
            assert!(matches!(err, ExecError::UnsupportedAction { kind: "fs", action: a } if a == action), "{err}");
        }
        let err = e.run(Action::Purge, &person).await.unwrap_err();
        assert!(matches!(err, ExecError::ActionNotForData { action: Action::Purge, data: DataKind::Personal }));
        assert!(dir.path().join("t1/u1").is_dir());
    }

    /// A store's path serves its own kind of data only: a business path
    /// handed a subject, or a personal path handed a copy, is refused
    /// before anything is touched (the spec is re-checked for the target).
    #[tokio::test]
    async fn a_path_of_one_kind_of_data_never_serves_the_other() {
        let dir = layout();
        fs::create_dir_all(dir.path().join("t1/u1")).unwrap();
        let person = Target::personal("t1", "crm", "r1", "contact");
        let err = exec(dir.path()).run(Action::Delete, &person).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }) && err.to_string().contains("{resource}"), "{err}");
        let personal = FsExecutor::new(dir.path().into(), "{tenant}/{subject}".into(), DEFAULT_MARKER.into());
        let err = personal.run(Action::Delete, &target("t1", "u1")).await.unwrap_err();
        assert!(matches!(err, ExecError::InvalidSpec { .. }) && err.to_string().contains("{subject}"), "{err}");
        let err = exec(dir.path()).run(Action::Anonymize, &target("t1", "r1")).await.unwrap_err();
        assert!(matches!(err, ExecError::ActionNotForData { data: DataKind::Business, .. }), "{err}");
        assert!(dir.path().join("t1/r1/a.txt").exists() && dir.path().join("t1/u1").is_dir());
    }

    #[test]
    fn validate_checks_the_marker_is_a_plain_name() {
        let v = |marker: &str| {
            validate(Path::new("/srv/d"), "{tenant}/{resource}", marker, DataKind::Business).map_err(|e| e.to_string())
        };
        for ok in [DEFAULT_MARKER, "", "MOUNTED", "volume.id"] {
            assert!(v(ok).is_ok(), "{ok:?}");
        }
        for bad in ["a/b", "/abs", ".", "..", "sub/", "x\0y"] {
            let err = v(bad).expect_err(bad);
            assert!(err.contains("marker") && err.contains("plain file name"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn validate_rejects_bad_templates() {
        let ok = |root: &str, path: &str| {
            validate(Path::new(root), path, DEFAULT_MARKER, DataKind::Business).map_err(|e| e.to_string())
        };
        assert!(ok("/srv/d", "{tenant}/{resource}").is_ok());
        assert!(ok("/srv/d", "{resource}").is_ok());
        assert!(ok("/srv/d", "t-{tenant}/{store}/{copy}/r-{resource}.d").is_ok());

        for (root, path, needle) in [
            ("/srv/d", "/{tenant}/{resource}", "relative"),
            ("/srv/d", "{tenant}/../{resource}", "\"..\""),
            ("/srv/d", "{tenant}/./{resource}", "\".\""),
            ("/srv/d", "{tenant}//{resource}", "empty component"),
            ("/srv/d", "{tenant}/{resource}/", "empty component"),
            ("/srv/d", "", "empty"),
            ("/srv/d", "{tenant}/{resorce}", "unknown placeholder {resorce}"),
            ("/srv/d", "{tenant}/{resource", "unclosed"),
            ("/srv/d", "{tenant}/resource}", "unmatched"),
            ("/srv/d", "{tenant}", "must contain {resource}"),
            ("/srv/d", "{tenant}/{action}/{resource}", "{action}"),
            ("/srv/d", "{resource}\0", "NUL"),
            ("srv/d", "{resource}", "absolute"),
            ("/", "{resource}", "filesystem root"),
            ("/srv/../d", "{resource}", "\"..\""),
        ] {
            let err = ok(root, path).expect_err(path);
            assert!(err.contains(needle), "{root} {path:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn describe_is_kind_and_root() {
        assert_eq!(exec(Path::new("/srv/data")).describe(), "fs:/srv/data");
    }
}
