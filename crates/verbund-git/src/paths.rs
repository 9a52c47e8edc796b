//! Repository paths: the checks every path of a change passes (relative, no `..`, no
//! empty parts, no `.git`), so that a path names nothing outside the repository's tree.

use crate::error::{Error, Result};

/// Checks that `path` is a clean relative path (`a/b/c`, no `.`, `..`, empty parts,
/// backslashes or `.git`).
pub(crate) fn check_path(path: &str) -> Result<()> {
    let invalid = || Error::InvalidPath(path.to_owned());
    if path.is_empty() || path.contains('\\') || path.contains('\0') {
        return Err(invalid());
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.eq_ignore_ascii_case(".git") {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Whether `path` is `scope` or lies below it.
pub(crate) fn in_scope(path: &str, scope: &str) -> bool {
    path == scope
        || path
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `path` relative to `folder`, when it lies strictly inside it.
pub(crate) fn inside<'a>(path: &'a str, folder: &str) -> Option<&'a str> {
    path.strip_prefix(folder)?
        .strip_prefix('/')
        .filter(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_paths() {
        for ok in ["a", "a/b.yaml", "sites/s1/prod"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "x/.GIT/y", "a\\b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(in_scope("a/b", "a") && in_scope("a", "a") && !in_scope("ab", "a"));
        assert_eq!(inside("a/b/c", "a"), Some("b/c"));
        assert_eq!(inside("a", "a"), None);
        assert_eq!(inside("ab/c", "a"), None);
    }
}
