//! Each site's own repository: a bare Git repository per site that follows that site's
//! folder (`sites/<site>`) of the whole desired state, commit by commit.
//!
//! Why: a site's engine must read only its own tenants. A repository of its own holds
//! exactly the objects of its folder and nothing of another site — not even an object
//! that could be asked for by its id — so serving it (see `verbund-api`'s Git endpoint)
//! or pushing it to a Git server of the operator's choice can reveal nothing else.
//! The whole desired state (`desired-state.git`) stays the publisher's record: verify and
//! the history scan read it, and each site repository is derived from it.
//!
//! A site's commit carries the whole-state commit's author, message and audit trailers
//! and holds only `sites/<site>/…`, so the paths the site's roots name are the same in
//! both. Following is idempotent: a site whose folder equals its repository's gets no
//! commit, so the publisher follows every site on start (which also migrates an existing
//! whole-state repository) and the sites it touched after each commit.
//!
//! A site's repository is what the site pulls, so `verify` compares each with its folder
//! of the whole desired state ([`SiteRepos::verify`]): a commit made to it behind
//! verbund's back is reported, and a reconciliation undoes it on the record (audited).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use verbund_git::{Author, CommitId, DesiredStateRepo, Difference};
use verbund_render::names::is_dns_label;

use crate::history::{SharedHistory, SITE_PREFIX};
use crate::{DeliveryError, Result};

/// The site repositories, `<dir>/<site>.git`, opened on first use.
#[derive(Debug)]
pub struct SiteRepos {
    dir: PathBuf,
    open: Mutex<HashMap<String, DesiredStateRepo>>,
    /// With several replicas: the history every copy of a site's repository shares.
    shared: Option<Arc<SharedHistory>>,
}

impl SiteRepos {
    /// The site repositories in `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            open: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Commits go into `shared`, the history the replicas share, before a branch moves.
    pub(crate) fn sharing(mut self, shared: Option<Arc<SharedHistory>>) -> Self {
        self.shared = shared;
        self
    }

    /// The sites whose repositories exist in the folder.
    pub fn existing(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(DeliveryError::Inconsistent(format!(
                    "cannot list `{}`: {e}",
                    self.dir.display()
                )))
            }
        };
        let mut sites: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let site = name.strip_suffix(".git")?;
                (is_dns_label(site) && e.path().join("HEAD").is_file()).then(|| site.to_owned())
            })
            .collect();
        sites.sort();
        Ok(sites)
    }

    /// The folder holding them.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The repository of `site`: `<dir>/<site>.git`. `None` for a name that is no site
    /// name (so no request can reach outside the folder).
    pub fn path(&self, site: &str) -> Option<PathBuf> {
        is_dns_label(site).then(|| self.dir.join(format!("{site}.git")))
    }

    /// The opened repository of `site`, created if it does not exist yet.
    pub fn repo(&self, site: &str) -> Result<DesiredStateRepo> {
        let path = self
            .path(site)
            .ok_or_else(|| DeliveryError::Inconsistent(format!("`{site}` is not a site name")))?;
        let mut open = self
            .open
            .lock()
            .map_err(|_| DeliveryError::Job("the site repositories' lock is poisoned".into()))?;
        if let Some(repo) = open.get(site) {
            return Ok(repo.clone());
        }
        let repo = DesiredStateRepo::open_or_init(&path)?;
        open.insert(site.to_owned(), repo.clone());
        Ok(repo)
    }

    /// How `site`'s repository differs from `whole`'s HEAD at `sites/<site>`, which it
    /// follows (see [`DesiredStateRepo::verify_follows`]; tree names first, so a site in
    /// line costs two tree reads). Changes nothing: a repository that does not exist is
    /// not created, it lacks every file of the folder.
    pub fn verify(&self, site: &str, whole: &DesiredStateRepo) -> Result<Vec<Difference>> {
        let folder = format!("sites/{site}");
        let exists = self.path(site).is_some_and(|p| p.join("HEAD").is_file());
        if exists {
            return Ok(self.repo(site)?.verify_follows(whole, &folder)?);
        }
        // Every file of the folder is missing: what a verify against nothing calls extra.
        Ok(whole
            .verify(&[], std::slice::from_ref(&folder))?
            .into_iter()
            .map(|d| match d {
                Difference::Extra(path) | Difference::Changed(path) | Difference::Missing(path) => {
                    Difference::Missing(path)
                }
            })
            .collect())
    }

    /// Makes `site`'s repository hold what `whole`'s HEAD holds at `sites/<site>`, as
    /// one commit attributed like the whole state's; `None` when it already does.
    pub fn follow(
        &self,
        site: &str,
        whole: &DesiredStateRepo,
        author: &Author,
        message: &str,
        audit_events: &[i64],
    ) -> Result<Option<CommitId>> {
        let repo = self.repo(site)?;
        let folder = format!("sites/{site}");
        let differences = repo.verify_follows(whole, &folder)?;
        if differences.is_empty() && repo.head()?.is_some() {
            return Ok(None);
        }
        let mut change = repo.change()?;
        // Whatever lies beside the folder goes (a commit behind verbund's back put it
        // there); the folder itself is replaced whole.
        let inside = format!("{folder}/");
        for d in &differences {
            if let Difference::Extra(path) = d {
                if !path.starts_with(&inside) {
                    change.put_file(path, None)?;
                }
            }
        }
        change.put_tree_from(&folder, whole)?;
        let commit = match &self.shared {
            Some(shared) => shared.commit(
                &format!("{SITE_PREFIX}{site}"),
                &repo,
                change,
                author,
                message,
                audit_events,
                None,
            )?,
            None => change.commit(author, message, audit_events)?,
        };
        if let Some(c) = &commit {
            tracing::debug!(site, commit = %c, "site repository follows the desired state");
        }
        Ok(commit)
    }
}
