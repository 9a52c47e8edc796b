//! Runs the git executable: one place that isolates git from the caller's environment,
//! feeds standard input without deadlocking, bounds run time and turns failures into
//! [`Error::Git`].

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Environment variables that would redirect git away from the repository we name.
const ISOLATE: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_DATE",
];

/// A git command in `repo`, isolated from the caller's environment, with hooks, signing
/// line-ending conversion and detached housekeeping switched off so that what is committed is what was rendered.
pub(crate) fn command(repo: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo);
    isolate(&mut cmd, args);
    cmd
}

/// Like [`command`], but naming the repository with `--git-dir` and running in `/`, for
/// long-lived readers that must not look like a git at work in the repository.
pub(crate) fn command_for_git_dir(git_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir("/").arg("--git-dir").arg(git_dir);
    isolate(&mut cmd, args);
    cmd
}

fn isolate(cmd: &mut Command, args: &[&str]) {
    cmd.args([
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "commit.gpgSign=false",
        "-c",
        "core.autocrlf=false",
        "-c",
        "core.quotePath=false",
        // Housekeeping runs inside the command that triggers it, never as a
        // detached process that outlives it.
        "-c",
        "gc.autoDetach=false",
    ])
    .args(args);
    for var in ISOLATE {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("LC_ALL", "C");
}

/// The output of a finished git command.
pub(crate) struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.status.success()
    }
}

/// Runs git in `repo` with `args`, feeding `input` on standard input, and fails unless it
/// exits successfully.
pub(crate) fn run(repo: &Path, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>> {
    let out = run_status(repo, args, input, None)?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(failure(args, &out))
    }
}

/// Like [`run`], returning standard output as text.
pub(crate) fn run_text(repo: &Path, args: &[&str]) -> Result<String> {
    let stdout = run(repo, args, None)?;
    String::from_utf8(stdout).map_err(|e| Error::Parse {
        command: args.join(" "),
        detail: e.to_string(),
    })
}

/// The error for a git command that exited unsuccessfully.
pub(crate) fn failure(args: &[&str], out: &Output) -> Error {
    Error::Git {
        command: args.join(" "),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// Runs git and returns its exit status and output whatever the status; kills it after
/// `timeout` if one is given.
pub(crate) fn run_status(
    repo: &Path,
    args: &[&str],
    input: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<Output> {
    let mut cmd = command(repo, args);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(Error::Spawn)?;
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // Written on this thread while two others drain the output, so no pipe fills up.
        // A write error means git stopped reading; its exit status tells why.
        let _ = stdin.write_all(input);
        drop(stdin);
    }
    let status = wait(&mut child, timeout, args)?;
    let stdout = join(stdout);
    let stderr = join(stderr);
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn wait(
    child: &mut Child,
    timeout: Option<Duration>,
    args: &[&str],
) -> Result<std::process::ExitStatus> {
    let Some(timeout) = timeout else {
        return child.wait().map_err(Error::Spawn);
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(Error::Spawn)? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout(args.join(" ")));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> Option<thread::JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(handle: Option<thread::JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// An object read by [`cat_blobs`]: its type (`blob`, `tree`, …) and content.
pub(crate) type Object = (String, Vec<u8>);

/// The contents of the given objects, read through one `git cat-file --batch`, in order.
/// An object git does not have is `None`.
pub(crate) fn cat_blobs(repo: &Path, oids: &[String]) -> Result<Vec<Option<Object>>> {
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let mut input = Vec::with_capacity(oids.len() * 41);
    for oid in oids {
        input.extend_from_slice(oid.as_bytes());
        input.push(b'\n');
    }
    let args = ["cat-file", "--batch"];
    let out = run(repo, &args, Some(&input))?;
    parse_batch(&out, oids.len()).map_err(|detail| Error::Parse {
        command: args.join(" "),
        detail,
    })
}

/// The first `count` objects of the output of `git cat-file --batch`; what is wrong with
/// it when it is truncated or malformed.
fn parse_batch(out: &[u8], count: usize) -> Result<Vec<Option<Object>>, String> {
    let truncated = || "truncated object".to_owned();
    let mut objects = Vec::with_capacity(count);
    let mut rest = out;
    for _ in 0..count {
        let mut lines = rest.splitn(2, |b| *b == b'\n');
        let (Some(header), Some(after)) = (lines.next(), lines.next()) else {
            return Err("truncated header".to_owned());
        };
        let header = String::from_utf8_lossy(header).into_owned();
        rest = after;
        let fields: Vec<&str> = header.split(' ').collect();
        match fields.as_slice() {
            [_, "missing"] => objects.push(None),
            [_, kind, size] => {
                let size: usize = size.parse().map_err(|_| header.clone())?;
                let body = rest.get(..size).ok_or_else(truncated)?;
                objects.push(Some(((*kind).to_owned(), body.to_vec())));
                rest = rest.get(size + 1..).ok_or_else(truncated)?;
            }
            _ => return Err(header),
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: &[u8] = b"ce01 blob 6\nhello\n\n4b82 missing\nabcd tree 0\n\n";

    #[test]
    fn reads_objects_of_a_batch() {
        let objects = parse_batch(BATCH, 3).unwrap();
        assert_eq!(
            objects,
            [
                Some(("blob".to_owned(), b"hello\n".to_vec())),
                None,
                Some(("tree".to_owned(), Vec::new())),
            ]
        );
    }

    /// Output cut short anywhere (git died, or more objects were asked for than it
    /// printed) is an error, never a panic.
    #[test]
    fn truncated_batches_are_errors() {
        for end in 0..BATCH.len() {
            assert!(parse_batch(&BATCH[..end], 3).is_err(), "{end} bytes");
        }
        assert!(parse_batch(BATCH, 4).is_err());
    }

    #[test]
    fn malformed_headers_are_errors() {
        for out in [&b"ce01 blob x\n\n"[..], b"ce01\n", b"ce01 blob 1 2\n"] {
            assert!(parse_batch(out, 1).is_err(), "{out:?}");
        }
    }
}
