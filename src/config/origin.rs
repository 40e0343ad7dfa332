//! Where a value sits in the config file: a byte span becomes
//! `PATH:LINE:COL`, and a relative path becomes an absolute one under the
//! file's directory. Every section's validator reports through this, so all
//! errors and warnings read the same way.

use super::{ConfigError, ConfigWarning};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The file being validated: its path and text (for positions) and the
/// directory its relative paths are resolved against.
pub(super) struct Origin<'a> {
    path: &'a Path,
    text: &'a str,
    base: PathBuf,
}

impl<'a> Origin<'a> {
    /// `text` as read from `path`.
    pub(super) fn new(path: &'a Path, text: &'a str) -> Self {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        // Absolute, so a relative fs root still names one place if the daemon's
        // working directory changes.
        let base = std::path::absolute(&base).unwrap_or(base);
        Origin { path, text, base }
    }

    /// 1-based line and column where `span` starts.
    fn line_col(&self, span: &Range<usize>) -> (usize, usize) {
        line_col(self.text, span.start)
    }

    /// The config refused, pointing at `span`.
    pub(super) fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let (line, col) = self.line_col(&span);
        ConfigError::Invalid { path: self.path.to_path_buf(), line, col, message }
    }

    /// The file is not valid TOML, or does not fit the raw shapes (unknown
    /// key, wrong type, missing field): toml's own message, on one line.
    pub(super) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        self.error(e.span().unwrap_or(0..0), e.message().trim().replace('\n', " "))
    }

    /// A setting accepted but weakening a safeguard, pointing at `span`.
    pub(super) fn warning(&self, span: Range<usize>, message: String) -> ConfigWarning {
        let (line, col) = self.line_col(&span);
        ConfigWarning { path: self.path.to_path_buf(), line, col, message }
    }

    /// `p` as written if absolute, else under the file's directory with `.`
    /// and `..` removed.
    pub(super) fn resolve(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            normalize(&self.base.join(p))
        }
    }
}

/// 1-based line and column of a byte offset (columns count characters);
/// every file the daemon reads reports errors this way.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// Removes `.` and `..` components lexically, so `config/../var` reads as
/// `var` (the `fs` executor refuses roots with `..` in them).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns count characters, not bytes, so an editor's cursor lands on
    /// the spot a message names even after non-ASCII text on the line.
    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\n# é é\nkey = x";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, text.find("key").unwrap()), (3, 1));
        assert_eq!(line_col(text, text.find('x').unwrap()), (3, 7));
        assert_eq!(line_col("é = x", "é = ".len()), (1, 5));
        assert_eq!(line_col(text, 10_000), (3, 8), "past the end: the end");
    }

    #[test]
    fn relative_paths_resolve_under_the_files_directory() {
        let origin = Origin::new(Path::new("/etc/retentiond/r.toml"), "");
        assert_eq!(origin.resolve(PathBuf::from("../var/./state")), PathBuf::from("/etc/var/state"));
        assert_eq!(origin.resolve(PathBuf::from("/srv/data")), PathBuf::from("/srv/data"));
    }
}
