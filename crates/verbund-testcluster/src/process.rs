//! Child processes that never outlive the test binary: each runs in its own process group,
//! is stopped (SIGTERM, then SIGKILL after a grace period) when dropped, is SIGKILLed by the
//! kernel when the test binary dies (`PR_SET_PDEATHSIG`, armed from one spawner thread that
//! lives as long as the process), and is killed by an `atexit` hook when it is held by a
//! `static` that is never dropped.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

use crate::{Error, Result, KEEP_VAR};

/// How long a process may take to exit after SIGTERM before it is SIGKILLed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(3);

/// How much of a log an error quotes.
const LOG_TAIL_LINES: usize = 40;
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// A running component, its output going to a log file.
pub(crate) struct Process {
    name: String,
    pid: u32,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with `args` (and `envs` on top of this process's environment), its
    /// stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, OsString)],
        log: &Path,
    ) -> Result<Process> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| Error::Io {
                path: log.to_path_buf(),
                source,
            })?;
        let err = out.try_clone().map_err(|source| Error::Io {
            path: log.to_path_buf(),
            source,
        })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(envs.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        arm_parent_death_signal(&mut command);

        install_exit_hook();
        let child = spawn_on_spawner_thread(command).map_err(|source| Error::Spawn {
            component: name.to_owned(),
            program: program.to_path_buf(),
            source,
        })?;
        let pid = child.id();
        lock(&LIVE_GROUPS).insert(pid);
        tracing::info!(component = name, pid, log = %log.display(), "started");
        Ok(Process {
            name: name.to_owned(),
            pid,
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status if the process has ended (and reaps it), else `None`.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                lock(&LIVE_GROUPS).remove(&self.pid);
                Some(status)
            }
            Ok(None) | Err(_) => None,
        }
    }

    /// The last lines of the process's log.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// The error for a component that did not come up: `reason`, and its log's tail.
    pub(crate) fn start_error(&self, reason: impl Into<String>) -> Error {
        Error::Start {
            component: self.name.clone(),
            reason: reason.into(),
            log: self.log.clone(),
            log_tail: self.log_tail(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        stop_all(std::slice::from_mut(self), STOP_GRACE);
    }
}

/// Stops the processes together: SIGTERM to every process group, then SIGKILL to those
/// still running after `grace`.
pub(crate) fn stop_all(processes: &mut [Process], grace: Duration) {
    let mut running: Vec<&mut Process> = processes
        .iter_mut()
        .filter(|process| process.child.is_some())
        .collect();
    if running.is_empty() {
        return;
    }
    for process in &mut running {
        if process.exit_status().is_none() {
            signal_group(process.pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        running.retain_mut(|process| process.exit_status().is_none());
        if running.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for process in running {
        if let Some(mut child) = process.child.take() {
            tracing::warn!(
                component = process.name.as_str(),
                pid = process.pid,
                "did not stop after SIGTERM, killing"
            );
            signal_group(process.pid, libc::SIGKILL);
            let _ = child.wait();
            lock(&LIVE_GROUPS).remove(&process.pid);
        }
    }
}

fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group the child leads; the
    // child has not been reaped yet (callers check), so the group id is still ours.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Asks the kernel to SIGKILL the child when the thread that forked it ends. Children are
/// forked by the spawner thread, which ends only with the process.
fn arm_parent_death_signal(command: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

static SPAWNER: OnceLock<std::io::Result<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

/// Forks on the one spawner thread, so that the parent-death signal fires only when the
/// test binary ends (a tokio worker thread may end earlier, with its runtime).
fn spawn_on_spawner_thread(command: Command) -> std::io::Result<Child> {
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("verbund-testcluster-spawner".to_owned())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| sender)
    });
    let sender = spawner
        .as_ref()
        .map_err(|err| std::io::Error::new(err.kind(), err.to_string()))?;
    let (reply, answer) = mpsc::channel();
    sender
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the spawner thread has ended"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread has ended"))?
}

/// Process groups of children not yet reaped, for the `atexit` hook.
static LIVE_GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// Temporary folders of clusters not yet dropped, for the `atexit` hook.
static LIVE_DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes `dir` at exit if it is still registered then (a cluster held by a `static`).
pub(crate) fn register_dir(dir: &Path) {
    install_exit_hook();
    lock(&LIVE_DIRS).insert(dir.to_path_buf());
}

pub(crate) fn unregister_dir(dir: &Path) {
    lock(&LIVE_DIRS).remove(dir);
}

/// Whether `VERBUND_KEEP_CLUSTER=1` asks to keep the temporary folder.
pub(crate) fn keep_requested() -> bool {
    std::env::var(KEEP_VAR).is_ok_and(|value| value == "1")
}

fn install_exit_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function that never unwinds.
        unsafe {
            libc::atexit(kill_everything_at_exit);
        }
    });
}

extern "C" fn kill_everything_at_exit() {
    let groups: Vec<u32> = match LIVE_GROUPS.try_lock() {
        Ok(groups) => groups.iter().copied().collect(),
        Err(_) => return,
    };
    for pgid in &groups {
        signal_group(*pgid, libc::SIGKILL);
    }
    for pgid in &groups {
        if let Ok(pid) = libc::pid_t::try_from(*pgid) {
            let mut status = 0;
            // SAFETY: waits for our own child, which has just been SIGKILLed.
            unsafe {
                libc::waitpid(pid, &mut status, 0);
            }
        }
    }
    if let Ok(dirs) = LIVE_DIRS.try_lock() {
        for dir in dirs.iter() {
            if keep_requested() {
                disown_dir(dir);
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// The file naming the process that owns a cluster folder.
const OWNER_FILE: &str = "owner.pid";

/// Marks `dir` as this process's, so that a later run may remove it if this process dies
/// without cleaning up (SIGKILL).
pub(crate) fn own_dir(dir: &Path) -> Result<()> {
    crate::write_file(
        &dir.join(OWNER_FILE),
        std::process::id().to_string().as_bytes(),
        0o644,
    )
}

/// Unmarks a folder that is to be kept.
pub(crate) fn disown_dir(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(OWNER_FILE));
}

/// Removes the folders (named `<prefix>*` in `parent`) of clusters whose owning process is
/// gone: left behind by a test binary that was killed. Kept folders have no owner and stay.
pub(crate) fn sweep_abandoned_dirs(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let dir = entry.path();
        let Ok(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let Ok(pid) = owner.trim().parse::<libc::pid_t>() else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            tracing::info!(dir = %dir.display(), owner = pid, "removing an abandoned test cluster folder");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The last lines of a log file (at most 16 KiB of it).
pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines.into_iter().skip(skip).collect::<Vec<_>>().join("\n")
}

/// Free TCP ports on 127.0.0.1, all different: held open together, then released for the
/// components to bind.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let io = |source| Error::Io {
        path: PathBuf::from("127.0.0.1:0"),
        source,
    };
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io)?;
        *port = listener.local_addr().map_err(io)?.port();
        listeners.push(listener);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_process_is_gone_with_its_group() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = dir.path().join("sleep.log");
        // The shell ignores SIGTERM, so this also proves the SIGKILL after the grace.
        let process = Process::spawn(
            "sleeper",
            Path::new("/bin/sh"),
            &[
                "-c".to_owned(),
                "trap '' TERM; sleep 600 & echo started; wait".to_owned(),
            ],
            &[],
            &log,
        )
        .expect("sh starts");
        let pid = process.pid();
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let mut processes = vec![process];
        stop_all(&mut processes, Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(5));
        // The grandchild gets the SIGKILL too, but dies in its own time: allow it a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !living_members(pid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            living_members(pid),
            Vec::<u32>::new(),
            "process group {pid} outlived stop_all"
        );
        assert!(log_tail(&log).contains("started"));
    }

    /// Processes of group `pgid` that are not zombies (a killed grandchild is reaped by
    /// init in its own time).
    fn living_members(pgid: u32) -> Vec<u32> {
        let mut living = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
                living.push(pid);
            }
        }
        living
    }

    #[test]
    fn only_folders_of_dead_owners_are_swept() {
        let parent = tempfile::tempdir().expect("a temp dir");
        let mut finished = Command::new("/bin/true").spawn().expect("true runs");
        let dead = finished.id();
        finished.wait().expect("true ends");
        let folders = [
            ("verbund-testcluster-dead", Some(dead)),
            ("verbund-testcluster-alive", Some(std::process::id())),
            ("verbund-testcluster-kept", None),
            ("someone-else", Some(dead)),
        ];
        for (name, owner) in folders {
            let dir = parent.path().join(name);
            std::fs::create_dir(&dir).expect("created");
            if let Some(owner) = owner {
                std::fs::write(dir.join(OWNER_FILE), owner.to_string()).expect("written");
            }
        }
        sweep_abandoned_dirs(parent.path(), "verbund-testcluster-");
        let mut left: Vec<String> = std::fs::read_dir(parent.path())
            .expect("listed")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "someone-else",
                "verbund-testcluster-alive",
                "verbund-testcluster-kept"
            ]
        );
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports::<8>().expect("ports");
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 8);
    }
}
