//! The desired state of one site's environment, from the desired-state repository.
//!
//! Why the `git` CLI and a bare cache: the agent only needs to fetch one branch and
//! read files at one commit; `git fetch` into a bare repository in the cache directory
//! does that with the site's usual Git credentials (helpers, SSH keys), and
//! `git show <commit>:<path>` reads a file without a work tree, so a half-written
//! checkout can never be applied. A folder is read with one `git ls-tree` and one
//! `git cat-file --batch` — whole (a site of 1,700 bookings is ~19,000 files), or, for an
//! incremental pass, only the changed bookings' folders beside the rest — and built like
//! kustomize would build it — our kustomizations only have `resources`: a `.yaml` entry
//! is a file of objects, any other entry a folder with its own `kustomization.yaml`,
//! followed recursively. Vendor content (a booking folder's `app/` and `helm.yaml`) is
//! never listed by a kustomization; it is collected beside verbund's own objects, to be
//! applied as the booking's deployer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::process::Command;
use verbund_domain::tenancy::AgentChart;

use crate::error::{Error, Result};

/// A clone of the desired-state repository's branch in a cache directory.
#[derive(Debug, Clone)]
pub struct Repository {
    url: String,
    branch: String,
    git_dir: PathBuf,
    /// The site token, sent as `Authorization: Bearer` to an HTTP(S) repository (through
    /// git's environment, never its command line, which other users can read).
    token: Option<String>,
}

impl Repository {
    /// The repository at `url`, branch `branch`, cached in `cache_dir/desired-state.git`.
    pub fn new(url: &str, branch: &str, cache_dir: &Path) -> Self {
        Self {
            url: url.to_string(),
            branch: branch.to_string(),
            git_dir: cache_dir.join("desired-state.git"),
            token: None,
        }
    }

    /// The same repository, fetched with the site's `token` (verbund's Git endpoint
    /// wants it).
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    async fn git(&self, args: &[&str]) -> Result<Vec<u8>> {
        let mut command = Command::new("git");
        command
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0");
        if let Some(token) = &self.token {
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Bearer {token}"),
                );
        }
        let output = command.output().await.map_err(|e| Error::Git {
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

    /// Every file under `folder` at `commit`, by path: one `git ls-tree` and one
    /// `git cat-file --batch`, however many files there are.
    pub async fn files(&self, commit: &str, folder: &str) -> Result<BTreeMap<String, String>> {
        self.files_of(commit, folder, None).await
    }

    /// The files under `folder` at `commit`, by path; with `only`, a booking folder's
    /// files only for the bookings it names (everything outside booking folders is read).
    async fn files_of(
        &self,
        commit: &str,
        folder: &str,
        only: Option<&BTreeSet<String>>,
    ) -> Result<BTreeMap<String, String>> {
        let folder = folder.trim_end_matches('/');
        let listing = self
            .git(&[
                "ls-tree",
                "-r",
                "--full-tree",
                commit,
                "--",
                &format!("{folder}/"),
            ])
            .await?;
        let listing = String::from_utf8_lossy(&listing);
        let mut paths = Vec::new();
        let mut request = String::new();
        for line in listing.lines() {
            // `<mode> blob <oid>\t<path>`
            let Some((meta, path)) = line.split_once('\t') else {
                continue;
            };
            let mut parts = meta.split(' ');
            let wanted = match (only, booking_of(folder, path)) {
                (Some(only), Some(namespace)) => only.contains(namespace),
                _ => true,
            };
            if !wanted {
                continue;
            }
            if let (Some(_), Some("blob"), Some(oid)) = (parts.next(), parts.next(), parts.next()) {
                request.push_str(oid);
                request.push('\n');
                paths.push(path.to_string());
            }
        }
        let output = self.cat_file(request.into_bytes()).await?;
        let mut files = BTreeMap::new();
        let mut rest = output.as_slice();
        for path in paths {
            // `<oid> blob <size>\n<content>\n`
            let newline = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or_else(|| torn(&path))?;
            let header =
                String::from_utf8_lossy(rest.get(..newline).unwrap_or_default()).to_string();
            let size: usize = header
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| torn(&path))?;
            let body = rest
                .get(newline + 1..newline + 1 + size)
                .ok_or_else(|| torn(&path))?;
            let text = String::from_utf8(body.to_vec()).map_err(|_| Error::Desired {
                path: path.clone(),
                message: "is not UTF-8".into(),
            })?;
            files.insert(path, text);
            rest = rest.get(newline + size + 2..).unwrap_or_default();
        }
        Ok(files)
    }

    async fn cat_file(&self, request: Vec<u8>) -> Result<Vec<u8>> {
        use tokio::io::AsyncWriteExt;
        let failed = |message: String| Error::Git {
            command: "cat-file".into(),
            message,
        };
        let mut child = Command::new("git")
            .arg("--git-dir")
            .arg(&self.git_dir)
            .args(["cat-file", "--batch"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("no stdin".into()))?;
        // Written while the output is read, or a large request would block on a full pipe.
        let writer = tokio::spawn(async move {
            let written = stdin.write_all(&request).await;
            drop(stdin);
            written
        });
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| failed(e.to_string()))?;
        writer
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        Ok(output.stdout)
    }

    /// The namespaces of the bookings whose folders differ between `old` and `new` below
    /// `folder` (changed, added or removed).
    pub async fn changed_bookings(
        &self,
        old: &str,
        new: &str,
        folder: &str,
    ) -> Result<BTreeSet<String>> {
        let bookings = format!("{}/bookings/", folder.trim_end_matches('/'));
        let out = self
            .git(&["diff-tree", "-r", "--name-only", old, new, "--", &bookings])
            .await?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|path| path.strip_prefix(&bookings)?.split('/').next())
            .map(str::to_string)
            .collect())
    }

    /// The desired state of `folder` (e.g. `sites/<site>/<env>`) at `commit`.
    pub async fn desired(&self, commit: &str, folder: &str) -> Result<DesiredState> {
        let files = self.files(commit, folder).await?;
        build(&files, folder)
    }

    /// The desired state of only the bookings `namespaces` name in `folder` at `commit`:
    /// their folders and the kustomizations that list them are read, no other
    /// booking's files. What an incremental pass needs, at the cost of the changed
    /// bookings rather than of the site (a site of 1,700 bookings is ~19,000 files).
    pub async fn desired_of(
        &self,
        commit: &str,
        folder: &str,
        namespaces: &BTreeSet<String>,
    ) -> Result<DesiredState> {
        let files = self.files_of(commit, folder, Some(namespaces)).await?;
        build_of(&files, folder, Some(namespaces))
    }

    /// Every object verbund applies itself in `folder` at `commit` (the vendor content
    /// aside), namespaces first.
    pub async fn objects(&self, commit: &str, folder: &str) -> Result<Vec<Value>> {
        Ok(self.desired(commit, folder).await?.objects)
    }
}

fn torn(path: &str) -> Error {
    Error::Desired {
        path: path.to_string(),
        message: "git cat-file answered out of step".into(),
    }
}

/// What a site environment's folder asks the agent to apply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    /// verbund's own objects (namespaces, quotas, policies, bindings, credentials, the
    /// configuration, smoke tests), applied with the agent's rights; namespaces first,
    /// otherwise in the order the kustomizations list them.
    pub objects: Vec<Value>,
    /// Per booking, its vendor content, applied as its deployer.
    pub tenants: Vec<TenantContent>,
}

/// A booking's vendor content: its `app/` manifests and its `helm.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantContent {
    /// `sites/<site>/<env>/bookings/<namespace>`.
    pub folder: String,
    pub namespace: String,
    /// The objects of `app/`, as the renderer placed them.
    pub manifests: Vec<Value>,
    /// The chart to render, if the package is one.
    pub chart: Option<AgentChart>,
}

/// Builds the desired state from a folder's `files` (path → content), the way kustomize
/// would (our kustomizations only have `resources`: a `.yaml` entry is a file of
/// objects, any other entry a folder with its own `kustomization.yaml`, followed
/// recursively), and collects each booking folder's vendor content beside it.
pub fn build(files: &BTreeMap<String, String>, folder: &str) -> Result<DesiredState> {
    build_of(files, folder, None)
}

/// [`build`], and with `only`, the booking folders of other bookings are passed over
/// (their files need not be in `files`).
fn build_of(
    files: &BTreeMap<String, String>,
    folder: &str,
    only: Option<&BTreeSet<String>>,
) -> Result<DesiredState> {
    let root = folder.trim_end_matches('/');
    let read = |path: &str| {
        files.get(path).ok_or_else(|| Error::Desired {
            path: path.to_string(),
            message: "is missing".into(),
        })
    };
    let mut objects = Vec::new();
    let mut tenants = Vec::new();
    let mut stack = vec![root.to_string()];
    let mut seen = BTreeSet::new();
    let mut listed = Vec::new();
    // Depth first, in listed order: a folder's resources before its siblings'.
    while let Some(dir) = stack.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        if let (Some(only), Some(namespace)) = (only, booking_of(root, &dir)) {
            if !only.contains(namespace) {
                continue;
            }
        }
        let path = format!("{dir}/kustomization.yaml");
        let kustomization = parse(&path, read(&path)?)?;
        let resources = resources(&path, kustomization.first())?;
        let mut folders = Vec::new();
        for r in resources {
            let full = normalise(&format!("{dir}/{r}"));
            if r.ends_with(".yaml") || r.ends_with(".yml") {
                listed.push(full);
            } else {
                folders.push(full);
            }
        }
        if let Some(tenant) = tenant_content(files, &dir)? {
            tenants.push(tenant);
        }
        stack.extend(folders.into_iter().rev());
    }
    for path in listed {
        objects.extend(parse(&path, read(&path)?)?);
    }
    Ok(DesiredState {
        objects: namespaces_first(objects),
        tenants,
    })
}

/// The vendor content of `dir`, if it is a booking folder (`…/bookings/<namespace>`)
/// with any.
fn tenant_content(files: &BTreeMap<String, String>, dir: &str) -> Result<Option<TenantContent>> {
    let Some((parent, namespace)) = dir.rsplit_once('/') else {
        return Ok(None);
    };
    if !parent.ends_with("/bookings") && parent != "bookings" {
        return Ok(None);
    }
    let app = format!("{dir}/app/kustomization.yaml");
    let mut manifests = Vec::new();
    if let Some(text) = files.get(&app) {
        for r in resources(&app, parse(&app, text)?.first())? {
            let path = normalise(&format!("{dir}/app/{r}"));
            let content = files.get(&path).ok_or_else(|| Error::Desired {
                path: path.clone(),
                message: "is missing".into(),
            })?;
            manifests.extend(parse(&path, content)?);
        }
    }
    let chart_path = format!("{dir}/{}", AgentChart::FILE);
    let chart = match files.get(&chart_path) {
        Some(text) => {
            Some(
                serde_yaml_ng::from_str::<AgentChart>(text).map_err(|e| Error::Desired {
                    path: chart_path.clone(),
                    message: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    if manifests.is_empty() && chart.is_none() {
        return Ok(None);
    }
    Ok(Some(TenantContent {
        folder: dir.to_string(),
        namespace: namespace.to_string(),
        manifests,
        chart,
    }))
}

/// The booking whose folder `path` lies in (or is), for a site environment's `folder`:
/// `<folder>/bookings/<namespace>[/…]` → `<namespace>`.
fn booking_of<'a>(folder: &str, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(folder)?.strip_prefix("/bookings/")?;
    rest.split('/').next().filter(|n| !n.is_empty())
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
    fn a_path_names_the_booking_whose_folder_it_lies_in() {
        let folder = "sites/a/prod";
        assert_eq!(booking_of(folder, "sites/a/prod/bookings/x-1"), Some("x-1"));
        assert_eq!(
            booking_of(folder, "sites/a/prod/bookings/x-1/app/m.yaml"),
            Some("x-1")
        );
        assert_eq!(booking_of(folder, "sites/a/prod/shards/00"), None);
        assert_eq!(booking_of(folder, "sites/a/prod/bookings/"), None);
        assert_eq!(booking_of(folder, "sites/a/test/bookings/x-1"), None);
    }

    /// Two bookings, each listed by a shard: building only one reads neither the
    /// other's folder nor needs its files.
    #[test]
    fn only_the_named_bookings_are_built() {
        let booking = |ns: &str| {
            [
                (
                    format!("s/bookings/{ns}/kustomization.yaml"),
                    "resources: [namespace.yaml]\n".to_string(),
                ),
                (
                    format!("s/bookings/{ns}/namespace.yaml"),
                    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
                ),
                (
                    format!("s/bookings/{ns}/app/kustomization.yaml"),
                    "resources: [m.yaml]\n".to_string(),
                ),
                (
                    format!("s/bookings/{ns}/app/m.yaml"),
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n".to_string(),
                ),
            ]
        };
        let mut files: BTreeMap<String, String> = [
            (
                "s/kustomization.yaml".to_string(),
                "resources: [shards/00]\n".to_string(),
            ),
            (
                "s/shards/00/kustomization.yaml".to_string(),
                "resources: [../../bookings/a, ../../bookings/b]\n".to_string(),
            ),
        ]
        .into_iter()
        .chain(booking("a"))
        .chain(booking("b"))
        .collect();
        let whole = build(&files, "s").unwrap();
        assert_eq!(whole.objects.len(), 2);
        assert_eq!(whole.tenants.len(), 2);
        // Without b's files, as `files_of` reads them for an incremental pass.
        files.retain(|path, _| booking_of("s", path) != Some("b"));
        assert!(build(&files, "s").is_err(), "b's folder is missing");
        let only: BTreeSet<String> = ["a".to_string()].into();
        let part = build_of(&files, "s", Some(&only)).unwrap();
        assert_eq!(part.objects, vec![whole.objects[0].clone()]);
        assert_eq!(part.tenants, vec![whole.tenants[0].clone()]);
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
