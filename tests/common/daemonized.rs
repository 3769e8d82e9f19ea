//! A test project whose dockwarm runs with its daemon: extra environment for every dockwarm and
//! git it runs, the daemon's status and log, and a daemon stopped (killed if it must be) when
//! the test ends. The daemon, fault, disk and field tests each wrap one.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{busybox, project, Project};

/// A committed project (the given Dockerfile and compose file, `src/main.sh`, and a
/// `deps.lock` unique to it, so a CACHED step can only come from this test) and the
/// environment its dockwarm runs with.
pub struct Daemonized {
    /// The project.
    pub p: Project,
    /// Set for every dockwarm and user git this fixture runs, after its own.
    pub envs: Vec<(OsString, OsString)>,
}

impl Daemonized {
    /// The project on the test busybox, its daemon quick to rescan and to leave when idle.
    pub fn new(dockerfile: &str, compose: &str) -> Daemonized {
        Daemonized::with_files(&[("Dockerfile", dockerfile), ("compose.yaml", compose)])
    }

    /// [`Daemonized::new`] with any files (a `dockwarm.toml`, say) beside `src/main.sh`.
    pub fn with_files(files: &[(&str, &str)]) -> Daemonized {
        busybox();
        let p = files
            .iter()
            .fold(project(), |b, (path, text)| b.file(path, text))
            .file("src/main.sh", "echo hi\n")
            .file_naming("deps.lock", |name| format!("base==1\n# {name}\n"))
            .build();
        let mut d = Daemonized {
            p,
            envs: Vec::new(),
        };
        d.env("DOCKWARM_DAEMON_IDLE_EXIT", "30");
        d.env("DOCKWARM_DAEMON_RESCAN_MS", "500");
        d
    }

    /// Sets (or replaces) a variable for what this fixture runs.
    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) {
        let k = k.as_ref().to_os_string();
        self.envs.retain(|(n, _)| *n != k);
        self.envs.push((k, v.as_ref().to_os_string()));
    }

    /// `dockwarm ARGS` in `dir`, not yet run.
    pub fn cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dockwarm"));
        c.args(args)
            .current_dir(dir)
            .env("DOCKWARM_STATE_DIR", &self.p.state)
            .env("NO_COLOR", "1")
            .env_remove("COMPOSE_PROJECT_NAME")
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `dockwarm ARGS` in `dir`.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.cmd(dir, args).output().unwrap()
    }

    /// Runs `dockwarm ARGS` in `dir` and fails the test (with the daemon's log) unless it
    /// succeeds; its stdout.
    #[track_caller]
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "dockwarm {args:?}: {}\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `git ARGS` in `dir` as the user runs it: hooks and all, on this fixture's state
    /// directory and environment.
    #[track_caller]
    pub fn git(&self, dir: &Path, args: &[&str]) -> Output {
        self.p
            .user_git_with(dir, args, self.envs.iter().map(|(k, v)| (k, v)))
    }

    /// `daemon status --json`, bounded: a daemon that does not answer fails the test.
    #[track_caller]
    pub fn daemon(&self) -> Value {
        serde_json::from_str(&self.ok(&self.p.root, &["daemon", "status", "--json"])).unwrap()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.p.state.join("logs/daemon.log")).unwrap_or_default()
    }

    /// Waits until the daemon has nothing running or queued and `done` jobs finished; its
    /// last status.
    #[track_caller]
    pub fn wait_idle(&self, done: usize, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.daemon();
            let d = &s["daemon"];
            let idle = d["running"].as_array().is_some_and(|a| a.is_empty())
                && d["queued"].as_array().is_some_and(|a| a.is_empty());
            let finished = d["history"].as_array().map(|a| a.len()).unwrap_or(0);
            if idle && finished >= done {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon not idle after {within:?}: {s:#}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid the daemon wrote, if it did.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.p.state.join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Daemonized {
    fn drop(&mut self) {
        // Whatever a test did to the state dir's modes or the engine's address, the daemon is
        // stopped through its socket, and killed when it does not go.
        let _ = std::fs::set_permissions(&self.p.state, std::fs::Permissions::from_mode(0o700));
        self.envs.retain(|(k, _)| k != "DOCKER_HOST");
        let _ = self.run(self.p.tmp.path(), &["daemon", "stop"]);
        if let Some(pid) = self.pid().filter(|p| *p != std::process::id()) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// `dockwarm prebuild --full` processes whose working directory is `dir`: the builds a daemon
/// (or one killed with `kill -9`) runs there now.
pub fn full_prebuilds_in(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is = args.iter().any(|a| *a == b"prebuild") && args.iter().any(|a| *a == b"--full");
        if is && std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c == dir) {
            pids.push(pid);
        }
    }
    pids
}
