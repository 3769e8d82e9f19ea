//! The daemon as users run it: a real `dockwarm watch` process, real files, the real engine.
//!
//! "A build" below is a dependency-stage build that ran (the child prebuild's `built …` line
//! in the daemon's log), as opposed to one that found its fingerprint already built.

use crate::common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{engine, full_prebuilds_in, git, wait_until, Daemonized};
use serde_json::Value;

/// The seed's shape: lockfile, install step with a cache mount, then the source. `SLEEP` makes
/// the install step last long enough to be caught mid-build.
fn dockerfile(sleep: u32) -> String {
    format!(
        r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${{BASE}}
WORKDIR /app
COPY deps.lock ./
RUN --mount=type=cache,target=/cache/deps sh -c 'sleep {sleep}; cp deps.lock /cache/deps/ && date > /app/installed'
COPY . .
RUN echo built > /app/done
"#
    )
}

const COMPOSE: &str = "services:\n  app:\n    build:\n      context: .\n";

/// A daemonized project (`common::Daemonized`) whose dependency stage sleeps.
struct Setup(Daemonized);

impl std::ops::Deref for Setup {
    type Target = Daemonized;
    fn deref(&self) -> &Daemonized {
        &self.0
    }
}

impl std::ops::DerefMut for Setup {
    fn deref_mut(&mut self) -> &mut Daemonized {
        &mut self.0
    }
}

impl Setup {
    fn new(sleep: u32) -> Setup {
        Setup(Daemonized::new(&dockerfile(sleep), COMPOSE))
    }

    /// Dependency builds that ran (not "already built").
    fn builds(&self) -> usize {
        let needle = format!("app: built dockwarm/{}-app-deps:", self.p.name);
        self.log().matches(&needle).count()
    }

    fn tag_for(&self, dir: &Path) -> String {
        let text = self.ok(dir, &["fingerprint", "--json"]);
        let v: Value = serde_json::from_str(&text).unwrap();
        let fp = v[0]["fingerprint"].as_str().unwrap();
        format!("dockwarm/{}-app-deps:{}", self.p.name, &fp[..12])
    }
}

fn image_exists(tag: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", tag])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Writes `text` the way editors and `uv lock` do: a temporary file renamed over the old one.
fn save_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn history(s: &Value) -> Vec<Value> {
    s["daemon"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn an_edit_builds_after_its_debounce_and_a_burst_of_writes_builds_once() {
    engine();
    let s = Setup::new(0);
    let root = s.p.root.clone();
    s.ok(&root, &["daemon", "start"]);
    s.ok(&root, &["init"]);
    s.wait_idle(1, Duration::from_secs(60));
    assert_eq!(s.builds(), 1, "{}", s.log());

    // One edit, saved atomically: built once its debounce ends, and tagged.
    let lock = root.join("deps.lock");
    save_atomically(&lock, &format!("edited==2\n# {}\n", s.p.name));
    let written = now_ms();
    let after = s.wait_idle(2, Duration::from_secs(60));
    let job = history(&after).last().cloned().unwrap();
    let started = job["started_at_ms"].as_u64().unwrap();
    // This times the debounce timer itself (500 ms after the last event): the build follows
    // the edit's own event, not a later trigger. Generous, as a loaded machine adds seconds.
    assert!(
        started.saturating_sub(written) <= 5000,
        "build started {} ms after the write",
        started.saturating_sub(written)
    );
    assert_eq!(job["result"], "ok", "{job:#}");
    let tag = s.tag_for(&root);
    assert!(image_exists(&tag), "{tag} missing\n{}", s.log());
    assert!(image_exists(&format!("{}-app", s.p.name)));
    assert_eq!(s.builds(), 2, "{}", s.log());

    // 100 writes within a second, in place and by rename: one build, of the last content.
    for i in 0..100 {
        let text = format!("burst=={i}\n# {}\n", s.p.name);
        if i % 2 == 0 {
            std::fs::write(&lock, text).unwrap();
        } else {
            save_atomically(&lock, &text);
        }
        // The workload: the burst spread over about a second, as a tool writing it would.
        std::thread::sleep(Duration::from_millis(8));
    }
    let after = s.wait_idle(3, Duration::from_secs(60));
    // A window, not a wait: a late extra job would come from a debounce still pending, which
    // the daemon's status does not show; twice the 500 ms debounce.
    std::thread::sleep(Duration::from_secs(1));
    let after_wait = s.daemon();
    assert_eq!(
        history(&after_wait).len(),
        history(&after).len(),
        "a late extra job: {after_wait:#}"
    );
    assert_eq!(history(&after).len(), 3, "{after:#}");
    assert_eq!(s.builds(), 3, "{}", s.log());
    let tag = s.tag_for(&root);
    assert!(image_exists(&tag), "the final content's {tag} is missing");
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", &tag, "cat", "/app/deps.lock"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("burst==99"));

    // status agrees.
    let st: Value = serde_json::from_str(&s.ok(&root, &["status", "--json"])).unwrap();
    let img = &st["workspaces"][0]["images"][0];
    assert_eq!(img["state"], "warm", "{st:#}");
    assert_eq!(img["exact"], true);
    assert!(img["last_build"]["duration_ms"].as_u64().is_some());
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn five_worktrees_with_the_same_inputs_build_once() {
    engine();
    let s = Setup::new(0);
    let root = s.p.root.clone();
    let mut trees: Vec<PathBuf> = vec![root.clone()];
    for i in 1..5 {
        let dir = s.p.tmp.path().join(format!("{}-wt{i}", s.p.name));
        git(
            &root,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("b{i}"),
                dir.to_str().unwrap(),
            ],
        );
        trees.push(dir);
    }
    s.ok(&root, &["daemon", "start"]);
    for t in &trees {
        s.ok(t, &["init"]);
    }
    s.wait_idle(1, Duration::from_secs(120));
    let jobs = history(&s.daemon()).len();
    // The same new lockfile lands in all five.
    let text = format!("shared==2\n# {}\n", s.p.name);
    for t in &trees {
        save_atomically(&t.join("deps.lock"), &text);
    }
    let before = s.builds();
    // Every workspace's debounce fired and its own image was built on the new inputs.
    let all_warm = || {
        let st: Value = serde_json::from_str(&s.ok(&root, &["status", "--json"])).unwrap();
        st["workspaces"].as_array().is_some_and(|w| {
            w.len() == trees.len() && w.iter().all(|w| w["images"][0]["state"] == "warm")
        })
    };
    wait_until(
        "the five workspaces warm on the new lockfile",
        Duration::from_secs(120),
        || s.log(),
        || history(&s.daemon()).len() > jobs && all_warm(),
    );
    let after = s.wait_idle(jobs + 1, Duration::from_secs(120));
    assert_eq!(s.builds() - before, 1, "{}", s.log());
    assert_eq!(s.builds(), 2, "{}", s.log());
    let st: Value = serde_json::from_str(&s.ok(&root, &["status", "--json"])).unwrap();
    let states: Vec<&str> = st["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["images"][0]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["warm"; 5], "{st:#}\n{after:#}");
    // Each workspace got its own image, tagged with its compose names.
    for t in &trees {
        let name = t.file_name().unwrap().to_string_lossy().to_lowercase();
        assert!(image_exists(&format!("{name}-app")), "{name}-app");
    }
    for t in &trees[1..] {
        let name = t.file_name().unwrap().to_string_lossy().to_lowercase();
        common::cleanup_project(&name);
    }
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn kill_9_during_a_build_then_start_recovers() {
    engine();
    let s = Setup::new(4);
    let root = s.p.root.clone();
    s.ok(&root, &["daemon", "start"]);
    let first = s.pid().unwrap();
    s.ok(&root, &["init"]);
    // Killed with its build child running (the install step sleeps 4 s).
    wait_until(
        "the daemon's build child to start",
        Duration::from_secs(20),
        || s.log(),
        || {
            s.daemon()["daemon"]["running"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                && !full_prebuilds_in(&root).is_empty()
        },
    );
    assert!(std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap()
        .success());
    wait_until(
        "the daemon to die of kill -9",
        Duration::from_secs(10),
        || s.log(),
        || !Path::new(&format!("/proc/{first}")).exists(),
    );
    // The dead daemon's socket and pid file are still there: they must not block a start.
    assert!(s.p.state.join("daemon.sock").exists());
    assert_eq!(s.daemon()["running"], false);
    s.ok(&root, &["daemon", "start"]);
    let second = s.pid().unwrap();
    assert_ne!(first, second);
    let st = s.wait_idle(1, Duration::from_secs(60));
    assert_eq!(st["daemon"]["pid"].as_u64(), Some(second as u64));
    let tag = s.tag_for(&root);
    assert!(image_exists(&tag), "{tag}\n{}", s.log());
    let status: Value = serde_json::from_str(&s.ok(&root, &["status", "--json"])).unwrap();
    assert_eq!(
        status["workspaces"][0]["images"][0]["state"], "warm",
        "{status:#}"
    );
    // One dependency build in all: the killed daemon's child finished it; the new daemon found
    // it built (or waited for it on the fingerprint lock). Every build child has exited, so
    // the log holds all their lines.
    wait_until(
        "every build child to exit",
        Duration::from_secs(60),
        || s.log(),
        || full_prebuilds_in(&root).is_empty(),
    );
    assert_eq!(s.builds(), 1, "{}", s.log());
}

/// A stand-in for the engine's socket that can be stopped and started again: a byte forwarder
/// from a socket of ours to the real one, so "the engine restarts" without touching dockerd.
pub struct Proxy {
    path: PathBuf,
    up: Arc<AtomicBool>,
    /// While set: requests are held unless their request line contains one of these.
    stalled: Arc<Mutex<Option<Vec<String>>>>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn new(path: PathBuf) -> Proxy {
        let mut p = Proxy {
            path,
            up: Arc::new(AtomicBool::new(false)),
            stalled: Arc::new(Mutex::new(None)),
            conns: Arc::new(Mutex::new(Vec::new())),
            thread: None,
        };
        p.start();
        p
    }

    pub fn start(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let up = self.up.clone();
        let conns = self.conns.clone();
        let stalled = self.stalled.clone();
        self.thread = Some(std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = UnixStream::connect("/var/run/docker.sock") else {
                            continue;
                        };
                        let mut all = conns.lock().unwrap();
                        all.push(client.try_clone().unwrap());
                        all.push(server.try_clone().unwrap());
                        pipe(
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            Some(stalled.clone()),
                        );
                        pipe(server, client, None);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    pub fn stop(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        self.release();
    }

    /// Holds every request but those whose request line contains one of `except`, as an engine
    /// busy exporting layers holds its answers, until [`Proxy::release`].
    pub fn stall_all_but(&self, except: &[&str]) {
        *self.stalled.lock().unwrap() = Some(except.iter().map(|s| s.to_string()).collect());
    }

    pub fn release(&self) {
        *self.stalled.lock().unwrap() = None;
    }
}

/// Whether a request (the start of a chunk a client sent) is held now.
fn held(stalled: &Mutex<Option<Vec<String>>>, chunk: &[u8]) -> bool {
    let line = chunk.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    stalled
        .lock()
        .unwrap()
        .as_ref()
        .is_some_and(|except| !except.iter().any(|e| line.contains(e.as_str())))
}

type Stall = Option<Arc<Mutex<Option<Vec<String>>>>>;

fn pipe(mut from: UnixStream, mut to: UnixStream, stalled: Stall) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    while stalled.as_ref().is_some_and(|s| held(s, &buf[..n])) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn the_engine_restarting_under_the_daemon_delays_a_build_but_does_not_lose_it() {
    engine();
    let mut s = Setup::new(0);
    let root = s.p.root.clone();
    let sock = s.p.tmp.path().join("engine.sock");
    let mut proxy = Proxy::new(sock.clone());
    s.env("DOCKER_HOST", format!("unix://{}", sock.display()));
    s.ok(&root, &["daemon", "start"]);
    s.ok(&root, &["init"]);
    s.wait_idle(1, Duration::from_secs(60));

    // The engine goes away; a change arrives; the queue holds it.
    proxy.stop();
    save_atomically(
        &root.join("deps.lock"),
        &format!("during-outage==3\n# {}\n", s.p.name),
    );
    wait_until(
        "the daemon to see the engine down and hold the change",
        Duration::from_secs(20),
        || format!("{:#}\n{}", s.daemon(), s.log()),
        || {
            let d = s.daemon();
            d["daemon"]["engine"] == "down"
                && d["daemon"]["queued"]
                    .as_array()
                    .is_some_and(|q| !q.is_empty())
        },
    );
    // status still answers from the state directory.
    let st: Value = serde_json::from_str(&s.ok(&root, &["status", "--json"])).unwrap();
    assert_eq!(st["engine"]["up"], false, "{st:#}");
    assert_eq!(
        st["workspaces"][0]["images"][0]["state"], "queued",
        "{st:#}"
    );

    // The outage outlasts a retry: the first one (after 1 s) finds the engine still down.
    wait_until(
        "a retry while the engine is down",
        Duration::from_secs(20),
        || s.log(),
        || {
            s.log()
                .contains("the engine does not answer; retrying in 2s")
        },
    );
    // The engine is back: the queued build runs.
    proxy.start();
    let after = s.wait_idle(2, Duration::from_secs(60));
    assert_eq!(
        history(&after).last().unwrap()["result"],
        "ok",
        "{after:#}\n{}",
        s.log()
    );
    assert_eq!(after["daemon"]["engine"], "up");
    s.envs.retain(|(k, _)| k != "DOCKER_HOST");
    let tag = s.tag_for(&root);
    assert!(image_exists(&tag), "{tag}\n{}", s.log());
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn one_daemon_per_state_dir_and_it_leaves_when_the_workspaces_are_gone() {
    engine();
    let mut s = Setup::new(0);
    s.envs[0].1 = "1".into();
    let root = s.p.root.clone();
    let ws = s.p.tmp.path().join(format!("{}-gone", s.p.name));
    git(
        &root,
        &["worktree", "add", "-q", "-b", "gone", ws.to_str().unwrap()],
    );
    // init starts the daemon on demand.
    s.ok(&ws, &["init"]);
    s.wait_idle(1, Duration::from_secs(60));
    let pid = s.pid().unwrap();
    assert!(s
        .ok(&root, &["daemon", "start"])
        .contains("already running"));
    let out = s.run(&root, &["watch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    // A registered workspace deleted without `archive` (Conductor removes the directory): the
    // daemon unregisters it, and with nothing left to watch it exits after its grace period.
    std::fs::remove_dir_all(&ws).unwrap();
    wait_until(
        "the deleted workspace to be unregistered",
        Duration::from_secs(10),
        || s.log(),
        || s.p.state.join("workspaces").read_dir().unwrap().count() == 0,
    );
    wait_until(
        "the daemon to exit with nothing to watch",
        Duration::from_secs(10),
        || s.log(),
        || !Path::new(&format!("/proc/{pid}")).exists(),
    );
    assert!(!s.p.state.join("daemon.sock").exists());
    common::cleanup_project(&format!("{}-gone", s.p.name));
}
