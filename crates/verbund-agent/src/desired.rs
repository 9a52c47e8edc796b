//! The desired state of one site's environment, from the desired-state repository.
//!
//! Why the `git` CLI and a bare cache: the agent only needs to fetch one branch and
//! read files at one commit; `git fetch` into a bare repository in the cache directory
//! does that with the site's usual Git credentials (helpers, SSH keys), and
//! `git show <commit>:<path>` reads a file without a work tree, so a half-written
//! checkout can never be applied. The folder is built like kustomize would build it —
//! our kustomizations only have `resources`: a `.yaml` entry is a file of objects, any
//! other entry a folder with its own `kustomization.yaml`, followed recursively.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::process::Command;

use crate::error::{Error, Result};

/// A clone of the desired-state repository's branch in a cache directory.
#[derive(Debug, Clone)]
pub struct Repository {
    url: String,
    branch: String,
    git_dir: PathBuf,
}

impl Repository {
    /// The repository at `url`, branch `branch`, cached in `cache_dir/desired-state.git`.
    pub fn new(url: &str, branch: &str, cache_dir: &Path) -> Self {
        Self {
            url: url.to_string(),
            branch: branch.to_string(),
            git_dir: cache_dir.join("desired-state.git"),
        }
    }

    async fn git(&self, args: &[&str]) -> Result<Vec<u8>> {
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .await
            .map_err(|e| Error::Git {
                command: args.first().copied().unwrap_or_default().to_string(),
                message: e.to_string(),
            })?;
        if !output.status.success() {
            return Err(Error::Git {
                command: args.first().copied().unwrap_or_default().to_string(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(output.stdout)
    }

    /// Fetches the branch and returns its commit.
    pub async fn fetch(&self) -> Result<String> {
        if !self.git_dir.join("HEAD").exists() {
            tokio::fs::create_dir_all(&self.git_dir)
                .await
                .map_err(|e| Error::Git {
                    command: "init".into(),
                    message: e.to_string(),
                })?;
            self.git(&["init", "--bare", "--quiet"]).await?;
        }
        let refspec = format!("+refs/heads/{0}:refs/heads/{0}", self.branch);
        self.git(&["fetch", "--quiet", "--no-tags", &self.url, &refspec])
            .await?;
        let commit = self
            .git(&[
                "rev-parse",
                "--verify",
                &format!("refs/heads/{}^{{commit}}", self.branch),
            ])
            .await?;
        Ok(String::from_utf8_lossy(&commit).trim().to_string())
    }

    /// A file's content at `commit`.
    pub async fn read(&self, commit: &str, path: &str) -> Result<String> {
        let bytes = self.git(&["show", &format!("{commit}:{path}")]).await?;
        String::from_utf8(bytes).map_err(|_| Error::Desired {
            path: path.to_string(),
            message: "is not UTF-8".into(),
        })
    }

    /// Every object of `folder` (e.g. `sites/<site>/<env>`) at `commit`, namespaces
    /// first, otherwise in the order the kustomizations list them.
    pub async fn objects(&self, commit: &str, folder: &str) -> Result<Vec<Value>> {
        let mut objects = Vec::new();
        let mut stack = vec![folder.trim_end_matches('/').to_string()];
        let mut seen = BTreeSet::new();
        let mut files = Vec::new();
        // Depth first, in listed order: a folder's resources before its siblings'.
        while let Some(dir) = stack.pop() {
            if !seen.insert(dir.clone()) {
                continue;
            }
            let path = format!("{dir}/kustomization.yaml");
            let kustomization = parse(&path, &self.read(commit, &path).await?)?;
            let resources = resources(&path, kustomization.first())?;
            let mut folders = Vec::new();
            for r in resources {
                let full = normalise(&format!("{dir}/{r}"));
                if r.ends_with(".yaml") || r.ends_with(".yml") {
                    files.push(full);
                } else {
                    folders.push(full);
                }
            }
            stack.extend(folders.into_iter().rev());
        }
        for path in files {
            objects.extend(parse(&path, &self.read(commit, &path).await?)?);
        }
        Ok(namespaces_first(objects))
    }
}

/// Namespaces first, otherwise the order is kept.
pub fn namespaces_first(objects: Vec<Value>) -> Vec<Value> {
    let (mut namespaces, rest): (Vec<Value>, Vec<Value>) = objects
        .into_iter()
        .partition(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1");
    namespaces.extend(rest);
    namespaces
}

/// `a/b/../c` → `a/c`, `a/./b` → `a/b`.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The objects of a multi-document YAML file (empty documents skipped).
pub fn parse(path: &str, text: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| Error::Desired {
                path: path.to_string(),
                message: e.to_string(),
            })?;
        match value {
            Value::Null => {}
            Value::Object(_) => out.push(value),
            _ => {
                return Err(Error::Desired {
                    path: path.to_string(),
                    message: "a document is not an object".into(),
                })
            }
        }
    }
    Ok(out)
}

fn resources(path: &str, kustomization: Option<&Value>) -> Result<Vec<String>> {
    let Some(k) = kustomization else {
        return Ok(Vec::new());
    };
    for key in [
        "patches",
        "components",
        "bases",
        "generators",
        "transformers",
    ] {
        if k.get(key).is_some() {
            return Err(Error::Desired {
                path: path.to_string(),
                message: format!("uses `{key}`; the agent builds only `resources`"),
            });
        }
    }
    match k.get("resources") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(String::from).ok_or_else(|| Error::Desired {
                    path: path.to_string(),
                    message: "`resources` holds a non-string".into(),
                })
            })
            .collect(),
        Some(_) => Err(Error::Desired {
            path: path.to_string(),
            message: "`resources` is not a list".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            normalise("sites/a/prod/./bookings/x"),
            "sites/a/prod/bookings/x"
        );
        assert_eq!(
            normalise("sites/a/prod/../test/x.yaml"),
            "sites/a/test/x.yaml"
        );
    }

    #[test]
    fn multi_document_files_parse_and_kustomize_extras_are_refused() {
        let objects = parse(
            "f",
            "---\napiVersion: v1\nkind: A\n---\n---\napiVersion: v1\nkind: B\n",
        )
        .unwrap();
        assert_eq!(objects.len(), 2);
        let k = serde_json::json!({"resources": ["a.yaml"], "patches": []});
        assert!(resources("k", Some(&k)).is_err());
    }
}
