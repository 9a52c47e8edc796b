//! Where the test environment's binaries and CRDs are: built by `testenv/build.sh`, found
//! through `VERBUND_TESTENV` or in the workspace's `target/testenv`.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The environment variable naming a test environment folder (with `bin/` and `crds/`).
pub const TESTENV_VAR: &str = "VERBUND_TESTENV";

/// The binaries a [`crate::Cluster`] cannot start without.
pub(crate) const CLUSTER_BINARIES: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

/// A folder holding the built binaries (`bin/`) and the CRDs (`crds/*.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEnv {
    root: PathBuf,
}

impl TestEnv {
    /// Finds the test environment: `VERBUND_TESTENV` if set, else `target/testenv` in the
    /// workspace (the folder holding `testenv/build.sh`, found from `CARGO_MANIFEST_DIR`).
    ///
    /// Fails, saying to run `testenv/build.sh`, when the binaries or CRDs are missing; tests
    /// are expected to fail on that error rather than skip.
    pub fn locate() -> Result<TestEnv> {
        let root = match std::env::var_os(TESTENV_VAR) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => workspace_root()
                .ok_or_else(|| Error::MissingTestEnv {
                    root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
                    missing: "a workspace folder holding `testenv/build.sh`".to_owned(),
                })?
                .join("target")
                .join("testenv"),
        };
        TestEnv::at(root)
    }

    /// The test environment in `root`, checked for the cluster's binaries and the CRDs.
    pub fn at(root: impl Into<PathBuf>) -> Result<TestEnv> {
        let env = TestEnv { root: root.into() };
        for name in CLUSTER_BINARIES {
            env.require_bin(name)?;
        }
        let has_crds = std::fs::read_dir(env.crds_dir())
            .map(|entries| {
                entries
                    .filter_map(std::result::Result::ok)
                    .any(|entry| is_yaml(&entry.path()))
            })
            .unwrap_or(false);
        if !has_crds {
            return Err(Error::MissingTestEnv {
                root: env.root.clone(),
                missing: "`crds/*.yaml`".to_owned(),
            });
        }
        Ok(env)
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a binary in `bin/` (whether or not it exists).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }

    /// The folder of CRD manifests.
    pub fn crds_dir(&self) -> PathBuf {
        self.root.join("crds")
    }

    /// The path of a binary in `bin/`, or the "run `testenv/build.sh`" error if it is absent.
    pub fn require_bin(&self, name: &str) -> Result<PathBuf> {
        let path = self.bin(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingTestEnv {
                root: self.root.clone(),
                missing: format!("`bin/{name}`"),
            })
        }
    }

    /// The CRD manifests, sorted by file name.
    pub fn crd_files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.crds_dir();
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(std::result::Result::ok)
            .map(|entry| entry.path())
            .filter(|path| is_yaml(path))
            .collect();
        files.sort();
        Ok(files)
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("yaml" | "yml")
    )
}

/// The workspace root: the first ancestor of `CARGO_MANIFEST_DIR` (the caller's at run
/// time, else this crate's at build time) that holds `testenv/build.sh`.
pub fn workspace_root() -> Option<PathBuf> {
    let runtime = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let build_time = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    runtime
        .into_iter()
        .chain(std::iter::once(build_time))
        .find_map(|start| {
            start
                .ancestors()
                .find(|dir| dir.join("testenv").join("build.sh").is_file())
                .map(Path::to_path_buf)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_holds_the_build_script() {
        let root = workspace_root().expect("the crate lives in the verbund workspace");
        assert!(root.join("testenv/build.sh").is_file());
        assert!(root.join("crates/verbund-testcluster").is_dir());
    }

    #[test]
    fn a_missing_environment_says_how_to_build_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let err = TestEnv::at(dir.path()).expect_err("an empty folder is no test environment");
        let message = err.to_string();
        assert!(
            message.contains("run `testenv/build.sh`"),
            "unexpected message: {message}"
        );
        assert!(
            message.contains("bin/etcd"),
            "unexpected message: {message}"
        );
    }
}
