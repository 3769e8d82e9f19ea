//! The daemon itself: one event loop that owns all its state (no locks inside), fed by the
//! socket, the file watcher, finished jobs and its own timers.
//!
//! Builds run as child `dockwarm prebuild --full --quiet IMAGE` processes, one workspace at a
//! time, rather than inside the daemon:
//! - the daemon stays small while idle (a build's allocations, BuildKit progress buffers and
//!   tar streams, die with its process instead of staying in the daemon's heap);
//! - a build that hangs or crashes takes nothing else down, and a daemon killed mid-build leaves
//!   the build to finish in its own process group; the restarted daemon finds the result;
//! - the child is the very command users run, with its per-fingerprint file lock, build record,
//!   log and registry update, so there is one build path to trust, not two.
//!
//! Which process runs a job is a parameter of the loop (a `Runner`, `ChildRunner` in the
//! daemon), so the loop's decisions are unit-tested with a runner that only records jobs.
//!
//! The queue is never persisted: what is owed is derived from disk each time (the inputs digest
//! of the files now, against `built_digest` in the registry), so a crash cannot leave a stale
//! queue behind.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{DaemonStatus, Failure, JobView, Request, Response};
use super::queue::{Job, Key, Queue};
use super::watcher::{self, DirWatcher, Targets};
use super::DaemonError;
use crate::changes::{self, Look, Observation};
use crate::env::Env;
use crate::registry;
use crate::state::{now_secs, LockGuard, State};
use crate::workspace::Workspace;

/// How the daemon runs; [`Options::from_env`] reads the knobs tests and benchmarks turn.
#[derive(Debug, Clone)]
pub struct Options {
    /// Exit after this long with no registered workspace and nothing queued.
    pub idle_exit: Duration,
    /// How often to look for registry changes made behind the daemon's back.
    pub rescan: Duration,
    /// Builds at once.
    pub concurrency: usize,
}

impl Options {
    /// `DOCKWARM_DAEMON_IDLE_EXIT` (seconds, default 600), `DOCKWARM_DAEMON_RESCAN_MS`
    /// (default 10000), `DOCKWARM_DAEMON_JOBS` (default 1), as `env` sets them.
    pub fn from_env(env: &Env) -> Options {
        let num = |name: &str, default: u64| env.number::<u64>(name).unwrap_or(default);
        Options {
            idle_exit: Duration::from_secs(num("DOCKWARM_DAEMON_IDLE_EXIT", 600)),
            rescan: Duration::from_millis(num("DOCKWARM_DAEMON_RESCAN_MS", 10_000).max(100)),
            concurrency: num("DOCKWARM_DAEMON_JOBS", 1).clamp(1, 64) as usize,
        }
    }
}

/// Longest wait between two tries to reach a stopped engine.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Finished jobs kept for `status`.
const HISTORY: usize = 50;

/// Runs the daemon in this process until it is stopped or idle. Fails at once with
/// [`DaemonError::AlreadyRunning`] when another daemon holds the state directory.
pub fn run(state: State, options: Options) -> Result<(), DaemonError> {
    // Its first look at a workspace must not wait for `docker compose config`.
    crate::compose::ask_compose_in_background();
    let guard = state
        .try_lock("daemon")?
        .ok_or_else(|| DaemonError::AlreadyRunning {
            pid: super::read_pid(&state),
        })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Io {
            what: "start the runtime".into(),
            source,
        })?;
    let exe = std::env::current_exe().map_err(|source| DaemonError::Io {
        what: "find the dockwarm executable".into(),
        source,
    })?;
    let runner = Arc::new(ChildRunner {
        exe: exe.clone(),
        state: state.clone(),
    });
    let result = rt.block_on(serve(state, options, guard, exe, runner));
    // A plan still being computed (a huge input, a slow disk) must not hold the exit: the
    // next daemon computes it again.
    rt.shutdown_background();
    result
}

enum Input {
    Request(Request, oneshot::Sender<Response>),
    /// (workspace, image) pairs whose inputs a file event touched ("" = every image).
    Touched(BTreeSet<(PathBuf, String)>),
    WatchError(notify::Error),
    Done(Key, Vec<PathBuf>, JobResult),
    /// An evaluation computed off the loop: the workspace, the images it was asked about
    /// ("" = all), and what it found.
    Evaluated(PathBuf, BTreeSet<String>, Result<Box<Observation>, String>),
    /// Base images (`FROM` references) whose image ID changed on an engine (its events).
    BaseImagesChanged(Vec<String>),
    /// A look at the refs prebuilt ahead, done off the loop: the builds fetched commits want.
    AheadScanned(crate::ahead::Scan),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
enum JobResult {
    /// Every workspace's image was built.
    Ok,
    /// The build failed with the engine up: a real failure, kept until the next change.
    Failed(String),
    /// The engine did not answer: the workspaces not yet built go back to the queue.
    EngineDown(Vec<PathBuf>),
}

/// Runs one build job to its end. The loop decides what to build and when; a runner only
/// builds. A parameter of the loop, as sccache's server takes its process spawner, so the
/// loop's decisions are unit-tested with a runner that records jobs instead of starting
/// processes.
trait Runner: Send + Sync + 'static {
    /// Builds `job`; the future's answer goes back to the loop as [`Input::Done`].
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult>;
}

/// The daemon's runner: child `dockwarm prebuild` processes of this executable (see the
/// module's comment for why builds run in children).
struct ChildRunner {
    /// This dockwarm executable.
    exe: PathBuf,
    /// The daemon's state directory (and environment).
    state: State,
}

impl Runner for ChildRunner {
    fn run(&self, job: Job) -> BoxFuture<'static, JobResult> {
        let exe = self.exe.clone();
        let state = self.state.clone();
        Box::pin(async move { run_job(&exe, &state, &job).await })
    }
}

struct Tracked {
    project: String,
    debounce: Duration,
}

struct Daemon {
    state: State,
    options: Options,
    /// Builds the jobs the loop starts.
    runner: Arc<dyn Runner>,
    tx: mpsc::UnboundedSender<Input>,
    queue: Queue,
    workspaces: BTreeMap<PathBuf, Tracked>,
    /// Shared with the watcher's thread, which drops events for paths that are not inputs
    /// before they reach the loop.
    targets: Arc<RwLock<Targets>>,
    watcher: DirWatcher,
    /// Per workspace: when its debounce ends, and which images changed ("" = all).
    pending: HashMap<PathBuf, (Instant, BTreeSet<String>)>,
    failed: BTreeMap<(PathBuf, String), Failure>,
    /// Workspaces being evaluated off the loop, and the images to evaluate again once that
    /// finishes (a change that arrived meanwhile).
    evaluating: HashMap<PathBuf, BTreeSet<String>>,
    history: VecDeque<JobView>,
    engine_up: Option<bool>,
    retry_at: Option<Instant>,
    backoff: Duration,
    jobs_started: u64,
    started_at: u64,
    next_rescan: Instant,
    registry_stamp: Option<SystemTime>,
    empty_since: Option<Instant>,
    stopping: bool,
    /// Disk upkeep: vanished workspaces' tags, orphans, the budget (child processes).
    maintenance: super::maintenance::Maintenance,
    /// Per workspace: (image, base image reference) of each dependency stage's `FROM`s, from
    /// its last evaluation.
    bases: BTreeMap<PathBuf, Vec<(String, String)>>,
    /// Per workspace: images owed a build although their inputs did not change (their base
    /// image did), until it is queued.
    forced: HashMap<PathBuf, BTreeSet<String>>,
    /// Per engine (its variables, as JSON): the task following its image events, which takes
    /// the references to look after.
    engines: HashMap<String, mpsc::UnboundedSender<BTreeSet<String>>>,
    /// A look at the refs prebuilt ahead is running off the loop; and whether another is owed
    /// when it ends (`Some(None)`: every repository, `Some(Some(path))`: that checkout's).
    ahead_scanning: bool,
    ahead_again: Option<Option<PathBuf>>,
    /// The refs watched ahead, per repository (see [`crate::ahead::Scan::watch`]).
    ahead_watch: Vec<crate::ahead::RefWatch>,
}

impl Daemon {
    /// The loop's state before its first look at the registry: nothing tracked, nothing
    /// queued, the engine's state unknown.
    fn new(
        state: State,
        options: Options,
        runner: Arc<dyn Runner>,
        tx: mpsc::UnboundedSender<Input>,
        targets: Arc<RwLock<Targets>>,
        watcher: DirWatcher,
        maintenance: super::maintenance::Maintenance,
    ) -> Daemon {
        Daemon {
            maintenance,
            state,
            runner,
            tx,
            queue: Queue::new(options.concurrency),
            options,
            workspaces: BTreeMap::new(),
            targets,
            watcher,
            pending: HashMap::new(),
            failed: BTreeMap::new(),
            evaluating: HashMap::new(),
            history: VecDeque::new(),
            engine_up: None,
            retry_at: None,
            backoff: Duration::from_secs(1),
            jobs_started: 0,
            started_at: now_secs(),
            next_rescan: Instant::now(),
            registry_stamp: None,
            empty_since: None,
            stopping: false,
            bases: BTreeMap::new(),
            forced: HashMap::new(),
            engines: HashMap::new(),
            ahead_scanning: false,
            ahead_again: None,
            ahead_watch: Vec::new(),
        }
    }
}

async fn serve(
    state: State,
    options: Options,
    _guard: LockGuard,
    exe: PathBuf,
    runner: Arc<dyn Runner>,
) -> Result<(), DaemonError> {
    let socket = super::socket_path(&state);
    // We hold the lock, so any socket file left is a dead daemon's: replace it.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|source| DaemonError::Io {
        what: format!("listen on {}", socket.display()),
        source,
    })?;
    // The state directory (0700) already keeps other users out; the socket says so too.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600));
    }
    crate::state::write_atomic(
        &super::pid_path(&state),
        std::process::id().to_string().as_bytes(),
    )?;
    // Never hold a workspace directory open as the cwd: it may be archived under us.
    let _ = std::env::set_current_dir(state.root());

    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let events = tx.clone();
    let targets = Arc::new(RwLock::new(Targets::default()));
    let interest = Arc::clone(&targets);
    let watcher = DirWatcher::new(move |e: notify::Result<notify::Event>| match e {
        Ok(event) => {
            // A checkout or build writes many files: only inputs' events cost the loop a wake.
            if !watcher::is_change(&event.kind) {
                return;
            }
            let Ok(targets) = interest.read() else {
                return;
            };
            let touched: BTreeSet<(PathBuf, String)> = event
                .paths
                .iter()
                .flat_map(|path| targets.concerned(path))
                .collect();
            if !touched.is_empty() {
                let _ = events.send(Input::Touched(touched));
            }
        }
        Err(e) => {
            let _ = events.send(Input::WatchError(e));
        }
    })?;
    tokio::spawn(accept(listener, tx.clone()));

    let maintenance = super::maintenance::Maintenance::new(&exe, &state);
    let mut d = Daemon::new(state, options, runner, tx, targets, watcher, maintenance);
    log(&format!(
        "daemon {} started (pid {}, socket {}, {} build(s) at once)",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        socket.display(),
        d.queue.concurrency()
    ));
    d.rescan(true);
    d.look_ahead(None);
    d.dispatch();
    while !d.stopping {
        let wake = d.next_wake();
        tokio::select! {
            input = rx.recv() => match input {
                Some(input) => d.handle(input),
                None => break,
            },
            _ = tokio::time::sleep_until(wake.into()) => d.on_timer(),
        }
        d.dispatch();
    }
    // Let connection tasks write their last answers (the `stop` acknowledgement among them).
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Only the socket and pid file go; the lock goes with the process.
    if super::read_pid(&d.state) == Some(std::process::id()) {
        let _ = std::fs::remove_file(super::pid_path(&d.state));
    }
    let _ = std::fs::remove_file(&socket);
    log("daemon stopped");
    Ok(())
}

async fn accept(listener: UnixListener, tx: mpsc::UnboundedSender<Input>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(connection(stream, tx.clone()));
    }
}

/// The longest request line the daemon reads; a longer one is answered with an error and the
/// connection closed, so a stray client cannot grow the daemon's memory. Per line, not per
/// connection: a client may send any number of requests on one connection.
const MAX_REQUEST: u64 = 1 << 20;

/// One client: requests in, answers out, until it closes.
async fn connection(stream: UnixStream, tx: mpsc::UnboundedSender<Input>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_REQUEST + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let too_long = line.last() != Some(&b'\n') && line.len() as u64 > MAX_REQUEST;
        let response = if too_long {
            Response::error(format!("bad request: a line over {MAX_REQUEST} bytes"))
        } else if line.trim_ascii().is_empty() {
            continue;
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Ok(request) => {
                    let (reply, answer) = oneshot::channel();
                    if tx.send(Input::Request(request, reply)).is_err() {
                        return;
                    }
                    match answer.await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
                Err(e) => Response::error(format!("bad request: {e}")),
            }
        };
        let mut text = serde_json::to_string(&response).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() || too_long {
            return;
        }
    }
}

use tokio::io::AsyncReadExt as _;

impl Daemon {
    fn handle(&mut self, input: Input) {
        match input {
            Input::Request(request, reply) => {
                let response = self.request(request);
                let _ = reply.send(response);
            }
            Input::Touched(touched) => {
                for (workspace, image) in touched {
                    if image == watcher::AHEAD {
                        // A ref written: the scan compares with the records, so a burst of
                        // events (a fetch writes many refs) costs one look or two.
                        log(&format!(
                            "{}: refs written; looking ahead",
                            workspace.display()
                        ));
                        self.look_ahead(Some(workspace));
                    } else {
                        self.touch(&workspace, &image, None);
                    }
                }
            }
            Input::WatchError(e) => log(&format!("watch error: {e}")),
            Input::Done(key, workspaces, result) => self.finished(key, workspaces, result),
            Input::Evaluated(workspace, images, result) => {
                self.evaluated(&workspace, &images, result)
            }
            Input::BaseImagesChanged(references) => self.base_images_changed(&references),
            Input::AheadScanned(wanted) => self.ahead_scanned(wanted),
        }
    }

    /// Base images changed under their tag: each workspace whose dependency stage builds on
    /// one is evaluated again and its images rebuilt (their fingerprints moved).
    fn base_images_changed(&mut self, references: &[String]) {
        let mut affected: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
        for (workspace, uses) in &self.bases {
            for (image, base) in uses {
                if references.contains(base) {
                    affected
                        .entry(workspace.clone())
                        .or_default()
                        .insert(image.clone());
                }
            }
        }
        log(&format!(
            "base image(s) {} changed on the engine; rebuilding {} workspace(s)",
            references.join(", "),
            affected.len()
        ));
        for (workspace, images) in affected {
            self.forced
                .entry(workspace.clone())
                .or_default()
                .extend(images.iter().cloned());
            self.evaluate(&workspace, &images);
        }
    }

    /// Hands each engine's watcher the base image references of the workspaces built on it,
    /// starting a watcher for an engine seen for the first time.
    fn sync_base_interest(&mut self) {
        let mut per_engine: HashMap<String, (crate::engine::EngineEnv, BTreeSet<String>)> =
            HashMap::new();
        for (workspace, uses) in &self.bases {
            let env = super::engine_env::for_workspace(&self.state, workspace);
            let key = serde_json::to_string(&env).unwrap_or_default();
            let entry = per_engine
                .entry(key)
                .or_insert_with(|| (env, BTreeSet::new()));
            entry.1.extend(uses.iter().map(|(_, base)| base.clone()));
        }
        for (key, sender) in &self.engines {
            if !per_engine.contains_key(key) {
                let _ = sender.send(BTreeSet::new());
            }
        }
        for (key, (env, references)) in per_engine {
            let sender = self.engines.entry(key).or_insert_with(|| {
                let tx = self.tx.clone();
                super::base_images::spawn(env, self.state.env().clone(), move |moved| {
                    let _ = tx.send(Input::BaseImagesChanged(moved));
                })
            });
            let _ = sender.send(references);
        }
    }

    fn request(&mut self, request: Request) -> Response {
        match request {
            Request::Ping => Response {
                ok: true,
                pid: Some(std::process::id()),
                version: Some(env!("CARGO_PKG_VERSION").into()),
                ..Default::default()
            },
            Request::Register { path } => {
                self.rescan(true);
                if !self.workspaces.contains_key(&path) {
                    return Response::error(format!("{} is not registered", path.display()));
                }
                self.evaluate(&path, &BTreeSet::from([String::new()]));
                Response::ok()
            }
            Request::Changed { path, images } => {
                if !self.workspaces.contains_key(&path) {
                    self.rescan(true);
                }
                if !self.workspaces.contains_key(&path) {
                    return Response::error(format!("{} is not registered", path.display()));
                }
                let images = if images.is_empty() {
                    BTreeSet::from([String::new()])
                } else {
                    images.into_iter().collect()
                };
                // git has finished writing: no debounce.
                self.evaluate(&path, &images);
                // A checkout may have switched the main worktree's branch (the default branch
                // where no remote names one) or a branch's upstream: the refs watched ahead
                // follow. A look that finds nothing moved costs a few ref reads, off the loop.
                self.look_ahead(Some(path));
                Response::ok()
            }
            Request::RefsMoved { path, refs } => {
                log(&format!(
                    "{}: {} moved; looking ahead",
                    path.display(),
                    refs.join(", ")
                ));
                self.look_ahead(Some(path));
                Response::ok()
            }
            Request::Status => Response {
                ok: true,
                status: Some(self.status()),
                ..Default::default()
            },
            Request::Stop => {
                log("stop requested");
                self.stopping = true;
                Response::ok()
            }
        }
    }

    /// A change under `workspace`: (re)start its debounce. `delay` None: the workspace's own.
    fn touch(&mut self, workspace: &Path, image: &str, delay: Option<Duration>) {
        let delay = delay.unwrap_or_else(|| {
            self.workspaces
                .get(workspace)
                .map(|t| t.debounce)
                .unwrap_or(Duration::from_millis(500))
        });
        let entry = self
            .pending
            .entry(workspace.to_path_buf())
            .or_insert_with(|| (Instant::now(), BTreeSet::new()));
        entry.0 = Instant::now() + delay;
        entry.1.insert(image.to_string());
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_rescan;
        for (deadline, _) in self.pending.values() {
            wake = wake.min(*deadline);
        }
        if let Some(retry) = self.retry_at {
            wake = wake.min(retry);
        }
        wake.min(self.maintenance.next_wake())
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(w, _)| w.clone())
            .collect();
        for workspace in due {
            if let Some((_, images)) = self.pending.remove(&workspace) {
                self.evaluate(&workspace, &images);
            }
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
        }
        if self.next_rescan <= now {
            self.rescan(false);
            // Where the reference-transaction hook is missing (git before 2.28, husky), a
            // fetch is seen here: a few ref reads per repository, compared with the records.
            self.look_ahead(None);
            self.maintenance.tick(&self.state);
        } else if self.maintenance.next_wake() <= now {
            self.maintenance.tick(&self.state);
        }
    }

    /// Re-reads the registry (when it changed, or `force`), drops workspaces whose directory is
    /// gone, and decides whether to exit.
    fn rescan(&mut self, force: bool) {
        self.next_rescan = Instant::now() + self.options.rescan;
        if !self.state.root().is_dir() {
            log("the state directory is gone; exiting");
            self.stopping = true;
            return;
        }
        if !super::socket_path(&self.state).exists() {
            log("the socket was removed; exiting");
            self.stopping = true;
            return;
        }
        let stamp = std::fs::metadata(self.state.root().join("workspaces"))
            .and_then(|m| m.modified())
            .ok();
        if force || stamp != self.registry_stamp || self.registry_stamp.is_none() {
            self.registry_stamp = stamp;
            let listed = registry::list(&self.state);
            let now: BTreeSet<PathBuf> = listed.iter().map(|w| w.path.clone()).collect();
            let gone: Vec<PathBuf> = self
                .workspaces
                .keys()
                .filter(|p| !now.contains(*p))
                .cloned()
                .collect();
            for path in gone {
                self.untrack(&path);
            }
            for ws in listed {
                if !self.workspaces.contains_key(&ws.path) {
                    self.workspaces.insert(
                        ws.path.clone(),
                        Tracked {
                            project: ws.project.clone(),
                            debounce: Duration::from_millis(500),
                        },
                    );
                    log(&format!("watching {}", ws.path.display()));
                    self.evaluate(&ws.path, &BTreeSet::from([String::new()]));
                }
            }
        }
        // A workspace archived without `dockwarm archive` (Conductor deletes the directory).
        let missing: Vec<PathBuf> = self
            .workspaces
            .keys()
            .filter(|p| !p.is_dir())
            .cloned()
            .collect();
        for path in missing {
            self.vanished(&path);
        }
        if self.workspaces.is_empty() && self.queue.is_idle() {
            let since = *self.empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.options.idle_exit {
                log("no workspace to watch; exiting");
                self.stopping = true;
            }
        } else {
            self.empty_since = None;
        }
    }

    /// A workspace deleted without `dockwarm archive`: cleaned up as archive would (its tags
    /// owed, removed by the upkeep child as soon as the engine answers) and unregistered.
    fn vanished(&mut self, path: &Path) {
        log(&format!(
            "{} is gone; unregistering it and removing its image tags",
            path.display()
        ));
        if let Err(e) = crate::cleanup::vanished(&self.state, path) {
            log(&format!("{}: {e}", path.display()));
            let _ = registry::remove(&self.state, path);
        }
        self.untrack(path);
        self.maintenance.request();
    }

    fn untrack(&mut self, path: &Path) {
        self.workspaces.remove(path);
        self.forced.remove(path);
        if self.bases.remove(path).is_some() {
            self.sync_base_interest();
        }
        self.targets_mut().remove_workspace(path);
        self.pending.remove(path);
        self.queue.forget_workspace(path);
        self.failed.retain(|(w, _), _| w != path);
        self.sync_watches();
    }

    /// The watched targets, for a change. A poisoned lock (a panic while held) keeps its
    /// last state: what is watched is rebuilt from the registry at each evaluation anyway.
    fn targets_mut(&self) -> std::sync::RwLockWriteGuard<'_, Targets> {
        self.targets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sync_watches(&mut self) {
        let failed = {
            let targets = self
                .targets
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.watcher.sync(&targets)
        };
        for (dir, why) in failed {
            log(&format!("cannot watch {}: {why}", dir.display()));
        }
    }

    /// Looks at a workspace again (all images when `images` holds ""): its plan is computed
    /// (or reused) off the loop, which keeps answering meanwhile; [`Daemon::evaluated`] takes
    /// the answer. One evaluation per workspace at a time: a change that arrives meanwhile
    /// is looked at once the current one is done.
    fn evaluate(&mut self, workspace: &Path, images: &BTreeSet<String>) {
        self.evaluate_as(workspace, images, Look::Daemon);
    }

    /// [`Daemon::evaluate`], as `look` says (see [`Look`]).
    fn evaluate_as(&mut self, workspace: &Path, images: &BTreeSet<String>, look: Look) {
        if !workspace.is_dir() {
            self.vanished(workspace);
            return;
        }
        if let Some(again) = self.evaluating.get_mut(workspace) {
            again.extend(images.iter().cloned());
            return;
        }
        self.evaluating
            .insert(workspace.to_path_buf(), BTreeSet::new());
        let state = self.state.clone();
        let tx = self.tx.clone();
        let path = workspace.to_path_buf();
        let images = images.clone();
        tokio::task::spawn_blocking(move || {
            let result = Workspace::discover(&path)
                .map_err(|e| e.to_string())
                .and_then(|ws| {
                    let dialect = crate::plan::remembered_dialect(&state);
                    changes::observe(&state, &ws, dialect, look)
                        .map(Box::new)
                        .map_err(|e| e.to_string())
                });
            let _ = tx.send(Input::Evaluated(path, images, result));
        });
    }

    /// Takes an evaluation's answer: what to watch, and a build for each image whose current
    /// inputs were never built in this workspace.
    fn evaluated(
        &mut self,
        workspace: &Path,
        images: &BTreeSet<String>,
        result: Result<Box<Observation>, String>,
    ) {
        let again = self.evaluating.remove(workspace).unwrap_or_default();
        if !again.is_empty() {
            self.evaluate(workspace, &again);
        }
        if !self.workspaces.contains_key(workspace) {
            // Unregistered while it was evaluated.
            return;
        }
        self.targets_mut().remove_workspace(workspace);
        let seen = match result {
            Ok(seen) => seen,
            Err(e) => {
                log(&format!("{}: {e}", workspace.display()));
                self.targets_mut().add_root(workspace);
                self.sync_watches();
                return;
            }
        };
        let config = &seen.plan.config;
        if let Some(t) = self.workspaces.get_mut(workspace) {
            t.debounce = Duration::from_millis(config.debounce_ms.value);
            t.project = config.project.value.clone();
        }
        let bases: Vec<(String, String)> = seen
            .plan
            .images
            .iter()
            .filter_map(|i| Some((i.name.clone(), i.deps.as_ref().ok()?)))
            .flat_map(|(name, plan)| {
                plan.deps
                    .base_images
                    .iter()
                    .map(move |base| (name.clone(), base.clone()))
            })
            .collect();
        if self.bases.get(workspace) != Some(&bases) {
            self.bases.insert(workspace.to_path_buf(), bases);
            self.sync_base_interest();
        }
        for image in &seen.plan.images {
            match &image.deps {
                Ok(plan) => self.targets_mut().add_image(config, plan),
                Err(e) => {
                    log(&format!("{} {}: {e}", workspace.display(), image.name));
                    self.targets_mut().add_root(workspace);
                }
            }
        }
        self.sync_watches();
        let project = config.project.value.clone();
        self.queue_owed(
            workspace,
            images,
            &project,
            seen.plan.digests(),
            &seen.unbuilt,
        );
    }

    /// The decision part of [`Daemon::evaluated`]: queues a build for each of `images` ("" =
    /// all) whose inputs `digests` (image → inputs digest) are `unbuilt` here or whose base
    /// image moved, unless the same digest already failed here.
    fn queue_owed(
        &mut self,
        workspace: &Path,
        images: &BTreeSet<String>,
        project: &str,
        digests: BTreeMap<String, String>,
        unbuilt: &[(String, String)],
    ) {
        let all = images.contains("");
        let unbuilt: BTreeMap<&str, &str> = unbuilt
            .iter()
            .map(|(i, d)| (i.as_str(), d.as_str()))
            .collect();
        for (image, digest) in digests {
            if !all && !images.contains(&image) {
                continue;
            }
            let failed_key = (workspace.to_path_buf(), image.clone());
            // Its base image changed: owed a build whatever its inputs.
            let forced = self
                .forced
                .get(workspace)
                .is_some_and(|f| f.contains(&image));
            if !unbuilt.contains_key(image.as_str()) && !forced {
                self.failed.remove(&failed_key);
                continue;
            }
            match self.failed.get(&failed_key) {
                // Building the same bytes again would fail the same way: wait for a change.
                Some(f) if f.digest == digest && !forced => continue,
                Some(_) => {
                    self.failed.remove(&failed_key);
                }
                None => {}
            }
            let key = Key {
                project: project.to_string(),
                image: image.clone(),
                digest: digest.clone(),
            };
            // A build of the same key already running may have read the old base: the
            // image stays owed until a build that starts after the change.
            let running = self.queue.running().iter().any(|j| j.key == key);
            if forced && !running {
                if let Some(f) = self.forced.get_mut(workspace) {
                    f.remove(&image);
                }
            }
            let pushed = self.queue.push(key, workspace, now_ms());
            if pushed != super::queue::Pushed::Already {
                log(&format!(
                    "{} {image}: inputs {} changed; build {:?}",
                    workspace.display(),
                    &digest[..12.min(digest.len())],
                    pushed
                ));
            }
        }
    }

    /// Looks at the refs prebuilt ahead (of `only`'s repository, or of all), off the loop.
    fn look_ahead(&mut self, only: Option<PathBuf>) {
        if self.stopping || self.workspaces.is_empty() {
            return;
        }
        if self.ahead_scanning {
            self.ahead_again = match (self.ahead_again.take(), only) {
                (Some(Some(a)), Some(b)) if a == b => Some(Some(a)),
                (None, Some(b)) => Some(Some(b)),
                _ => Some(None),
            };
            return;
        }
        self.ahead_scanning = true;
        let state = self.state.clone();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let dialect = crate::plan::remembered_dialect(&state);
            let wanted = crate::ahead::scan(&state, only.as_deref(), dialect);
            let _ = tx.send(Input::AheadScanned(wanted));
        });
    }

    /// Queues, at low priority, what the fetched commits want built, and watches the refs.
    fn ahead_scanned(&mut self, scan: crate::ahead::Scan) {
        self.ahead_scanning = false;
        // A scan of one repository knows only its refs: keep the others' watches.
        let mut watch = scan.watch;
        if scan.all {
            self.ahead_watch.clear();
        } else {
            self.ahead_watch
                .retain(|w| !watch.iter().any(|n| n.repo == w.repo));
        }
        self.ahead_watch.append(&mut watch);
        let all = self.ahead_watch.clone();
        self.targets_mut().set_ahead(&all);
        self.sync_watches();
        for w in scan.wanted {
            // A dependency stage owed is one job whoever wants it (a workspace of the same
            // inputs joins it, and the commit's whole image follows it); a commit's whole image
            // alone is a job of its own: its sources are the commit's.
            let digest = if w.full && w.built {
                format!("{}+{}", w.digest, &w.commit[..12.min(w.commit.len())])
            } else {
                w.digest.clone()
            };
            let key = Key {
                project: w.project,
                image: w.image.clone(),
                digest,
            };
            let target = super::queue::AheadTarget {
                anchor: w.anchor,
                repo: w.repo,
                refname: w.refname.clone(),
                commit: w.commit.clone(),
                full: w.full,
            };
            let pushed = self.queue.push_ahead(key, target, now_ms());
            log(&format!(
                "{}@{} {}: inputs {} not built; ahead build {:?}",
                w.refname,
                &w.commit[..12.min(w.commit.len())],
                w.image,
                &w.digest[..12.min(w.digest.len())],
                pushed
            ));
        }
        if let Some(again) = self.ahead_again.take() {
            self.look_ahead(again);
        }
    }

    /// Starts queued jobs while slots are free and the engine is not known to be down.
    fn dispatch(&mut self) {
        if self.stopping || self.retry_at.is_some() {
            return;
        }
        loop {
            // Workspaces being planned may owe jobs that go before any commit's (a workspace's
            // own job reports what it pulled or built): a job wanted only ahead waits for them.
            if !self.evaluating.is_empty() && self.queue.queued().all(|j| j.is_ahead_only()) {
                break;
            }
            let Some(job) = self.queue.start_next(now_ms()) else {
                break;
            };
            self.jobs_started += 1;
            log(&format!(
                "build {} {} ({}) for {} workspace(s)",
                job.key.project,
                job.key.image,
                &job.key.digest[..12.min(job.key.digest.len())],
                job.workspaces.len()
            ));
            let tx = self.tx.clone();
            let (key, workspaces) = (job.key.clone(), job.workspaces.clone());
            let run = self.runner.run(job);
            tokio::spawn(async move {
                let result = run.await;
                let _ = tx.send(Input::Done(key, workspaces, result));
            });
        }
    }

    fn finished(&mut self, key: Key, workspaces: Vec<PathBuf>, result: JobResult) {
        let Some(job) = self.queue.finish(&key) else {
            return;
        };
        let mut view = job.view();
        view.finished_at_ms = Some(now_ms());
        match result {
            JobResult::Ok => {
                self.engine_up = Some(true);
                self.backoff = Duration::from_secs(1);
                view.result = Some("ok".into());
                crate::ahead::mark_digest(&self.state, &key.image, &key.digest, "built");
                log(&format!("build {} {}: done", key.project, key.image));
                // The budget holds after each build.
                self.maintenance.request();
            }
            JobResult::Failed(error) => {
                self.engine_up = Some(true);
                log(&format!(
                    "build {} {}: failed: {error}",
                    key.project, key.image
                ));
                for w in &workspaces {
                    self.failed.insert(
                        (w.clone(), key.image.clone()),
                        Failure {
                            workspace: w.clone(),
                            image: key.image.clone(),
                            digest: key.digest.clone(),
                            error: error.clone(),
                            at: now_secs(),
                        },
                    );
                }
                if job.ahead.is_some() {
                    crate::ahead::mark_digest(&self.state, &key.image, &key.digest, "failed");
                }
                view.result = Some("failed".into());
                view.error = Some(error);
            }
            JobResult::EngineDown(left) => {
                self.engine_up = Some(false);
                log(&format!(
                    "the engine does not answer; retrying in {}s",
                    self.backoff.as_secs()
                ));
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                let mut again = job;
                again.workspaces = left;
                if !again.workspaces.is_empty() || again.ahead.is_some() {
                    self.queue.requeue_front(again);
                }
                return;
            }
        }
        self.history.push_back(view);
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        // A change seen while the job ran joined it (same digest) or queued nothing; if the
        // inputs moved under the build, it did not count as built. What is owed now comes from
        // the files again, so such a change is not lost.
        for workspace in workspaces {
            if self.workspaces.contains_key(&workspace) {
                self.evaluate(&workspace, &BTreeSet::from([key.image.clone()]));
            }
        }
    }

    fn status(&self) -> DaemonStatus {
        DaemonStatus {
            pid: std::process::id(),
            started_at: self.started_at,
            workspaces: self.workspaces.len(),
            watched_dirs: self.watcher.count(),
            engine: match self.engine_up {
                Some(true) => "up",
                Some(false) => "down",
                None => "unknown",
            }
            .into(),
            engine_endpoint: super::engine_env::last().map(|l| l.endpoint),
            engine_error: super::engine_env::last().and_then(|l| l.error),
            concurrency: self.queue.concurrency(),
            running: self.queue.running().iter().map(Job::view).collect(),
            queued: self.queue.queued().map(Job::view).collect(),
            failed: self.failed.values().cloned().collect(),
            history: self.history.iter().cloned().collect(),
            jobs_started: self.jobs_started,
            planning: self.evaluating.keys().cloned().collect(),
        }
    }
}

/// Builds one job: the dependency stage once (in the first workspace), then each workspace's
/// own image, through child `dockwarm prebuild --full` processes.
async fn run_job(exe: &Path, state: &State, job: &Job) -> JobResult {
    if let (true, Some(target)) = (job.is_ahead_only(), &job.ahead) {
        if !engine_answers(state, Some(&target.anchor)).await {
            return JobResult::EngineDown(Vec::new());
        }
        return match run_ahead_child(exe, state, target, &job.key.image).await {
            Ok(()) => JobResult::Ok,
            Err(_) if !engine_answers(state, Some(&target.anchor)).await => {
                JobResult::EngineDown(Vec::new())
            }
            Err(e) => JobResult::Failed(e),
        };
    }
    let first = job.workspaces.first().map(PathBuf::as_path);
    if !engine_answers(state, first).await {
        return JobResult::EngineDown(job.workspaces.clone());
    }
    let mut errors = Vec::new();
    for (i, workspace) in job.workspaces.iter().enumerate() {
        if !workspace.is_dir() {
            continue;
        }
        match run_child(exe, state, workspace, &job.key.image).await {
            Ok(()) => {}
            Err(e) => {
                if !engine_answers(state, Some(workspace)).await {
                    return JobResult::EngineDown(job.workspaces[i..].to_vec());
                }
                errors.push(format!("{}: {e}", workspace.display()));
            }
        }
    }
    // A workspace joined a commit's job: its whole image still follows, from the dependency
    // stage just built.
    if let (true, Some(target)) = (errors.is_empty(), &job.ahead) {
        if target.full {
            if let Err(e) = run_ahead_child(exe, state, target, &job.key.image).await {
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        JobResult::Ok
    } else {
        JobResult::Failed(errors.join("; "))
    }
}

async fn run_child(exe: &Path, state: &State, workspace: &Path, image: &str) -> Result<(), String> {
    // A build an earlier daemon left running (killed mid-build) holds the workspace: wait for
    // it rather than start a second build beside it.
    if super::orphans::busy(state, workspace) {
        log(&format!(
            "{} is being built by another process (an earlier daemon's build?); waiting for it",
            workspace.display()
        ));
        super::orphans::wait_for(state, workspace).await;
    }
    log(&format!("prebuild {image} in {}", workspace.display()));
    let status = run_prebuild(
        exe,
        state,
        workspace,
        &["prebuild", "--full", "--quiet", image],
    )
    .await?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`dockwarm prebuild --full {image}` failed ({status}); its output is in the daemon log, the build's in `dockwarm logs {image}`"
        ))
    }
}

/// Runs a child `dockwarm ARGS` in `dir` as the daemon's builds run: on the engine of `dir`'s
/// user (not whichever the daemon's starter had), outside any git hook's environment, its
/// output in the daemon's own log, in a process group of its own.
async fn run_prebuild(
    exe: &Path,
    state: &State,
    dir: &Path,
    args: &[&str],
) -> Result<std::process::ExitStatus, String> {
    use std::process::Stdio;
    let mut cmd = tokio::process::Command::new(exe);
    super::engine_env::apply(&super::engine_env::for_workspace(state, dir), &mut cmd);
    cmd.args(args)
        .current_dir(dir)
        .env("DOCKWARM_BACKGROUND", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        // The daemon's own stderr (its log file when detached), not a pipe: a child must
        // outlive a daemon killed mid-build, and a pipe would break under it.
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        // Its own group: a signal meant for the daemon leaves a running build to finish.
        .process_group(0);
    cmd.status()
        .await
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))
}

/// Builds a fetched commit's dependency stage: a child `dockwarm prebuild --rev COMMIT`, run
/// in a registered checkout of the repository, on that checkout's engine.
async fn run_ahead_child(
    exe: &Path,
    state: &State,
    target: &super::queue::AheadTarget,
    image: &str,
) -> Result<(), String> {
    log(&format!(
        "prebuild {image} ahead at {}@{}",
        target.refname,
        &target.commit[..12.min(target.commit.len())]
    ));
    if !target.anchor.is_dir() {
        return Err(format!("{} is gone", target.anchor.display()));
    }
    let rev = format!("--rev={}", target.commit);
    let mut args = vec!["prebuild", &rev, "--quiet"];
    if target.full {
        args.push("--full");
    }
    args.push(image);
    let status = run_prebuild(exe, state, &target.anchor, &args).await?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`dockwarm prebuild --rev {} {image}` failed ({status}); its output is in the daemon log",
            target.commit
        ))
    }
}

/// Whether the engine of `workspace`'s user answers now. Asked before each job and after each
/// failure, so a stopped engine holds the queue instead of failing it.
async fn engine_answers(state: &State, workspace: Option<&Path>) -> bool {
    let engine = match workspace {
        Some(w) => super::engine_env::for_workspace(state, w),
        None => crate::engine::EngineEnv::from_env(state.env()),
    };
    super::engine_env::answers(&engine, state.env()).await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One timestamped line on stderr (the daemon's log file when it runs in the background).
fn log(line: &str) {
    let ms = now_ms();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}.{:03} {line}", ms / 1000, ms % 1000);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// A connection answered by a stand-in loop that pongs every request.
    async fn client() -> (
        BufReader<tokio::net::unix::OwnedReadHalf>,
        tokio::net::unix::OwnedWriteHalf,
    ) {
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(connection(theirs, tx));
        tokio::spawn(async move {
            while let Some(Input::Request(_, reply)) = rx.recv().await {
                let _ = reply.send(Response {
                    ok: true,
                    ..Default::default()
                });
            }
        });
        let (read, write) = ours.into_split();
        (BufReader::new(read), write)
    }

    /// A runner that starts nothing: it records each job and answers with the next of the
    /// results it was given (then `Ok`).
    #[derive(Default)]
    struct Fake {
        jobs: std::sync::Mutex<Vec<Job>>,
        results: std::sync::Mutex<VecDeque<JobResult>>,
    }

    impl Fake {
        fn answering(results: impl IntoIterator<Item = JobResult>) -> Arc<Fake> {
            Arc::new(Fake {
                jobs: Default::default(),
                results: std::sync::Mutex::new(results.into_iter().collect()),
            })
        }

        fn jobs(&self) -> Vec<Job> {
            self.jobs.lock().unwrap().clone()
        }
    }

    impl Runner for Fake {
        fn run(&self, job: Job) -> BoxFuture<'static, JobResult> {
            self.jobs.lock().unwrap().push(job);
            let result = self.results.lock().unwrap().pop_front();
            Box::pin(async move { result.unwrap_or(JobResult::Ok) })
        }
    }

    /// A loop with `runner` and nothing tracked: no socket, no registry, no watched directory,
    /// no rescan or upkeep due; the caller feeds it what its inputs would be.
    struct Harness {
        d: Daemon,
        rx: mpsc::UnboundedReceiver<Input>,
        dir: tempfile::TempDir,
    }

    impl Harness {
        fn new(runner: Arc<Fake>) -> Harness {
            let dir = tempfile::tempdir().unwrap();
            let state = State::at(dir.path().join("state"));
            let (tx, rx) = mpsc::unbounded_channel();
            let watcher = DirWatcher::new(|_: notify::Result<notify::Event>| {}).unwrap();
            // Never run: the upkeep child of a missing executable just fails.
            let maintenance =
                super::super::maintenance::Maintenance::new(&dir.path().join("no-exe"), &state);
            let options = Options {
                idle_exit: Duration::from_secs(600),
                rescan: Duration::from_secs(3600),
                concurrency: 1,
            };
            let mut d = Daemon::new(
                state,
                options,
                runner,
                tx,
                Arc::new(RwLock::new(Targets::default())),
                watcher,
                maintenance,
            );
            d.next_rescan = Instant::now() + Duration::from_secs(3600);
            Harness { d, rx, dir }
        }

        fn workspace(&self, name: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::create_dir_all(&path).unwrap();
            path
        }

        /// What an evaluation would tell the loop: `image`'s inputs are `digest`, not built.
        fn owed(&mut self, workspace: &Path, image: &str, digest: &str) {
            self.d.queue_owed(
                workspace,
                &BTreeSet::from([String::new()]),
                "proj",
                BTreeMap::from([(image.to_string(), digest.to_string())]),
                &[(image.to_string(), digest.to_string())],
            );
        }

        /// Starts what the loop would start, and hands it the next finished job.
        async fn step(&mut self) {
            self.d.dispatch();
            let input = self.rx.recv().await.expect("a finished job");
            assert!(matches!(input, Input::Done(..)), "a finished job");
            self.d.handle(input);
        }
    }

    #[tokio::test]
    async fn one_run_per_inputs_digest_across_workspaces() {
        let runner = Fake::answering([]);
        let mut h = Harness::new(runner.clone());
        let (a, b, c) = (h.workspace("a"), h.workspace("b"), h.workspace("c"));
        h.owed(&a, "app", "d1");
        h.owed(&b, "app", "d1");
        h.owed(&c, "app", "d2");
        h.step().await;
        h.step().await;
        let jobs = runner.jobs();
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(jobs[0].key.digest, "d1");
        assert_eq!(jobs[0].workspaces, vec![a, b]);
        assert_eq!(jobs[1].key.digest, "d2");
        assert_eq!(jobs[1].workspaces, vec![c]);
        assert!(h.d.queue.is_idle());
        assert_eq!(h.d.history.len(), 2);
        assert_eq!(h.d.engine_up, Some(true));
    }

    #[tokio::test]
    async fn an_engine_down_requeues_the_workspaces_left_and_holds_until_the_retry() {
        let mut h = Harness::new(Arc::new(Fake::default()));
        let (a, b) = (h.workspace("a"), h.workspace("b"));
        // The engine stopped after `a` was built: `b` is left.
        let runner = Fake::answering([JobResult::EngineDown(vec![b.clone()])]);
        h.d.runner = runner.clone();
        h.owed(&a, "app", "d1");
        h.owed(&b, "app", "d1");
        h.step().await;
        assert_eq!(h.d.engine_up, Some(false));
        assert!(h.d.retry_at.is_some(), "a retry is set");
        assert_eq!(h.d.backoff, Duration::from_secs(2), "the next wait doubles");
        let queued: Vec<&Job> = h.d.queue.queued().collect();
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0].workspaces, vec![b.clone()]);
        assert!(h.d.history.is_empty(), "not finished: {:?}", h.d.history);
        // Before the retry, nothing starts.
        h.d.dispatch();
        assert_eq!(runner.jobs().len(), 1);
        assert!(h.d.queue.running().is_empty());
        // The backoff has run out: the timer lifts the hold and the rest is built.
        h.d.retry_at = Some(Instant::now());
        h.d.on_timer();
        assert_eq!(h.d.retry_at, None);
        h.step().await;
        let jobs = runner.jobs();
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(jobs[1].key.digest, "d1");
        assert_eq!(jobs[1].workspaces, vec![b]);
        assert_eq!(h.d.engine_up, Some(true));
        assert_eq!(h.d.backoff, Duration::from_secs(1), "reset once built");
        assert!(h.d.queue.is_idle());
    }

    #[tokio::test]
    async fn a_failed_build_is_kept_and_not_retried_for_the_same_digest() {
        let runner = Fake::answering([JobResult::Failed("boom".into())]);
        let mut h = Harness::new(runner.clone());
        let a = h.workspace("a");
        h.owed(&a, "app", "d1");
        h.step().await;
        let failure =
            h.d.failed
                .get(&(a.clone(), "app".to_string()))
                .expect("the failure is recorded");
        assert_eq!(failure.digest, "d1");
        assert_eq!(failure.error, "boom");
        assert_eq!(h.d.engine_up, Some(true), "a failure is not the engine's");
        assert_eq!(h.d.retry_at, None);
        let last = h.d.history.back().expect("in the history");
        assert_eq!(last.result.as_deref(), Some("failed"));
        // The same inputs again: the same failure would follow, so nothing is queued.
        h.owed(&a, "app", "d1");
        assert!(h.d.queue.is_idle());
        h.d.dispatch();
        assert_eq!(runner.jobs().len(), 1);
        // Changed inputs: the failure goes and they are built.
        h.owed(&a, "app", "d2");
        assert!(!h.d.failed.contains_key(&(a.clone(), "app".to_string())));
        h.step().await;
        let jobs = runner.jobs();
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(jobs[1].key.digest, "d2");
        assert!(h.d.failed.is_empty());
    }

    #[tokio::test]
    async fn the_request_cap_is_per_line_not_per_connection() {
        let (mut answers, mut requests) = client().await;
        // 1.5 MiB of requests on one connection, each line well under the cap.
        let ping = format!("{{\"op\":\"ping\"{}}}\n", " ".repeat(16 * 1024));
        for _ in 0..96 {
            requests.write_all(ping.as_bytes()).await.unwrap();
            let mut line = String::new();
            answers.read_line(&mut line).await.unwrap();
            assert!(line.contains("\"ok\":true"), "{line}");
        }
        // One line over the cap is refused, and the connection closed.
        let huge = vec![b' '; (MAX_REQUEST + 10) as usize];
        requests.write_all(&huge).await.unwrap();
        let mut line = String::new();
        answers.read_line(&mut line).await.unwrap();
        assert!(line.contains("over 1048576 bytes"), "{line}");
        line.clear();
        assert_eq!(
            answers.read_line(&mut line).await.unwrap(),
            0,
            "closed: {line}"
        );
    }
}
