//! Pushing the desired state to the Git server the sites pull from, with bounded retries
//! and exponential back-off. A failed push is returned for the caller to log and retry
//! later; it never blocks a booking, whose commit is already in the local repository.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::git;
use crate::repo::DesiredStateRepo;

/// How hard [`DesiredStateRepo::push`] tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOptions {
    /// Attempts in all, at least one.
    pub attempts: u32,
    /// Pause after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Upper bound of a pause.
    pub max_backoff: Duration,
    /// Run time of one attempt after which git is killed.
    pub attempt_timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(120),
        }
    }
}

impl PushOptions {
    /// The pause after failed attempt number `attempt` (counting from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl DesiredStateRepo {
    /// Pushes HEAD to `branch` of `remote_url` with [`PushOptions::default`].
    pub fn push(&self, remote_url: &str, branch: &str) -> Result<()> {
        self.push_with(remote_url, branch, &PushOptions::default())
    }

    /// Pushes HEAD to `branch` of `remote_url` (a fast-forward, never forced), retrying
    /// as `options` say. Blocks the calling thread for at most about
    /// `attempts × attempt_timeout` plus the pauses; async callers run it in
    /// `spawn_blocking`.
    pub fn push_with(&self, remote_url: &str, branch: &str, options: &PushOptions) -> Result<()> {
        let refname = format!("refs/heads/{branch}");
        let valid = !branch.starts_with('-')
            && git::run_status(self.path(), &["check-ref-format", &refname], None, None)?.success();
        if !valid {
            return Err(Error::InvalidBranch(branch.to_owned()));
        }
        let refspec = format!("HEAD:{refname}");
        // `--` keeps a URL starting with `-` from being read as an option.
        let args = ["push", "--porcelain", "--", remote_url, refspec.as_str()];
        let attempts = options.attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            let result = git::run_status(self.path(), &args, None, Some(options.attempt_timeout))
                .and_then(|out| {
                    if out.success() {
                        Ok(())
                    } else {
                        Err(git::failure(&args, &out))
                    }
                });
            match result {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            if attempt < attempts {
                std::thread::sleep(options.backoff(attempt));
            }
        }
        Err(Error::PushFailed {
            remote: remote_url.to_owned(),
            attempts,
            last: Box::new(last.unwrap_or_else(|| Error::Timeout(args.join(" ")))),
        })
    }
}
