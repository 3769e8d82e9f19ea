//! The daemon's disk upkeep: a child `dockwarm prune --budget --all-projects --quiet` after
//! each build, when a workspace vanished, while cleanups are owed, and at least hourly.
//!
//! A child process, like builds, so that the engine calls (`/system/df` among them, which can
//! block for tens of seconds on Engine 20.10) never run on the daemon's event loop. One at a
//! time: a request while one runs makes it run once more when it ends.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::state::State;

/// How long to wait before retrying owed cleanups after a run that failed (engine down).
const RETRY: Duration = Duration::from_secs(5);

/// The daemon's schedule for `prune --budget` children: when the next periodic run is due, and
/// whether one is running, so runs never overlap and a request during one is not lost.
pub struct Maintenance {
    exe: PathBuf,
    cwd: PathBuf,
    every: Duration,
    next: Instant,
    running: Arc<AtomicBool>,
    again: Arc<AtomicBool>,
    /// When the last run failed, not before this.
    failed_at: Arc<Mutex<Option<Instant>>>,
}

impl Maintenance {
    /// The periodic run is hourly ([`crate::disk::ENFORCE_EVERY`]); `DOCKWARM_PRUNE_EVERY_S`
    /// in the state's environment changes it (tests).
    pub fn new(exe: &Path, state: &State) -> Maintenance {
        let every = state
            .env()
            .number::<u64>("DOCKWARM_PRUNE_EVERY_S")
            .map(|s| Duration::from_secs(s.max(1)))
            .unwrap_or(crate::disk::ENFORCE_EVERY);
        Maintenance {
            exe: exe.to_path_buf(),
            cwd: state.root().to_path_buf(),
            every,
            next: Instant::now() + every,
            running: Arc::new(AtomicBool::new(false)),
            again: Arc::new(AtomicBool::new(false)),
            failed_at: Arc::new(Mutex::new(None)),
        }
    }

    /// When [`Maintenance::tick`] next has something to do.
    pub fn next_wake(&self) -> Instant {
        self.next
    }

    /// Runs the periodic upkeep when due, and retries owed cleanups after a failed run.
    pub fn tick(&mut self, state: &State) {
        let now = Instant::now();
        if now >= self.next {
            self.next = now + self.every;
            self.request();
        } else if crate::pending::count(state) > 0 && self.retry_ok(now) {
            self.request();
        }
    }

    fn retry_ok(&self, now: Instant) -> bool {
        let failed = self.failed_at.lock().map(|f| *f).unwrap_or(None);
        failed.is_none_or(|t| now >= t + RETRY)
    }

    /// Runs the upkeep now (or once more after the one running).
    pub fn request(&mut self) {
        if self.running.swap(true, Ordering::SeqCst) {
            self.again.store(true, Ordering::SeqCst);
            return;
        }
        let exe = self.exe.clone();
        let cwd = self.cwd.clone();
        let running = self.running.clone();
        let again = self.again.clone();
        let failed_at = self.failed_at.clone();
        tokio::spawn(async move {
            loop {
                again.store(false, Ordering::SeqCst);
                let ok = run(&exe, &cwd).await;
                if let Ok(mut f) = failed_at.lock() {
                    *f = (!ok).then(Instant::now);
                }
                if !again.load(Ordering::SeqCst) {
                    break;
                }
            }
            running.store(false, Ordering::SeqCst);
        });
    }
}

async fn run(exe: &Path, cwd: &Path) -> bool {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["prune", "--budget", "--all-projects", "--quiet"])
        .current_dir(cwd)
        .env("DOCKWARM_BACKGROUND", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .process_group(0);
    matches!(cmd.status().await, Ok(s) if s.success())
}
