//! Shared helpers of the integration tests: real processes in temp dirs, a real engine.
//!
//! Everything a test creates on the engine carries a unique project name (`dwt<random>`) and
//! the label `dev.dockwarm.test=true`, and is removed when the test's `Project` is dropped.
#![allow(dead_code)]

pub mod second_engine;
pub mod team;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod daemonized;
pub use daemonized::{full_prebuilds_in, Daemonized};

pub const BUSYBOX: &str = "dockwarm-test/busybox:latest";

/// Fails the test unless a Docker engine answers. Engine tests carry
/// `#[cfg_attr(dockwarm_no_engine, ignore = "...")]`: `build.rs` sets that cfg when no engine
/// answered at build time, so they are reported as ignored with the reason; when they run (an
/// engine answered, or `DOCKWARM_REQUIRE_ENGINE=1` as in CI) a missing engine fails them. No
/// engine test can pass by skipping.
#[track_caller]
pub fn engine() {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    assert!(
        up,
        "no Docker engine answers (`docker info` fails): start one (scripts/ensure-engine.sh), or \
         rebuild without DOCKWARM_REQUIRE_ENGINE=1 to have the engine tests reported as ignored"
    );
}

/// Runs a command and returns its output, failing the test with its stderr when it fails.
#[track_caller]
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `git ARGS` in `dir` to set a fixture up: the repository's hooks do not run. A hook fired
/// from here would reach dockwarm without the test's state directory, that is the user's own
/// (a stray daemon there was seen). [`Project::user_git`] runs git as a user does, hooks and all.
#[track_caller]
pub fn git(dir: &Path, args: &[&str]) -> Output {
    sh(Command::new("git")
        .args(["-c", "core.hooksPath=/dev/null"])
        .args(args)
        .current_dir(dir)
        .envs(git_env()))
}

pub fn git_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_AUTHOR_NAME", "dockwarm test"),
        ("GIT_AUTHOR_EMAIL", "test@dockwarm.dev"),
        ("GIT_COMMITTER_NAME", "dockwarm test"),
        ("GIT_COMMITTER_EMAIL", "test@dockwarm.dev"),
    ]
}

/// A busybox base image made locally (no registry here): `docker import` of a rootfs holding
/// the static busybox. Made once per machine; a file lock keeps parallel test binaries from
/// re-importing it (a new import would change its ID, and so every fingerprint, mid-test).
pub fn busybox() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let lock =
            std::fs::File::create(std::env::temp_dir().join("dockwarm-test-busybox.lock")).unwrap();
        fs4::fs_std::FileExt::lock_exclusive(&lock).unwrap();
        let have = Command::new("docker")
            .args(["image", "inspect", BUSYBOX])
            .output()
            .unwrap();
        if !have.status.success() {
            import_busybox(BUSYBOX);
        }
    });
    BUSYBOX
}

/// Imports a fresh busybox rootfs under `tag`; `marker` changes its content (and so its ID).
pub fn import_busybox_with(tag: &str, marker: &str) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is not installed (apt-get install busybox-static)");
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.path().join("tmp")).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    for applet in [
        "sh", "cat", "ls", "find", "sort", "sleep", "date", "cp", "mkdir", "echo", "wc", "rm",
        "test", "true", "false", "touch",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::write(root.path().join("marker"), marker).unwrap();
    let tar = Command::new("tar")
        .args(["-C"])
        .arg(root.path())
        .args(["-c", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut import = Command::new("docker")
        .args([
            "import",
            "--change",
            "LABEL dev.dockwarm.test=true",
            "--change",
            "ENV PATH=/bin",
            "-",
            tag,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(
        import.wait().unwrap().success(),
        "docker import {tag} failed"
    );
}

fn import_busybox(tag: &str) {
    import_busybox_with(tag, "dockwarm-test");
}

/// A git repository in a temp dir, with its own state dir and a unique project name.
pub struct Project {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub name: String,
    pub state: PathBuf,
}

/// Starts a test project: `project().dockerfile(..).file("deps.lock", "x").build()` gives a
/// committed git repository with a unique project name and its own state dir.
pub fn project() -> ProjectBuilder {
    ProjectBuilder { steps: Vec::new() }
}

/// One step of making a [`Project`]'s files, given the project (its root and unique name).
type Step = Box<dyn FnOnce(&Project)>;

/// The files of a [`Project`] before it is made; see [`project`].
pub struct ProjectBuilder {
    steps: Vec<Step>,
}

impl ProjectBuilder {
    /// A file at `path` (relative to the repository's root; directories are made).
    pub fn file(self, path: &str, text: &str) -> Self {
        let text = text.to_string();
        self.file_naming(path, move |_| text)
    }

    /// A file whose text `text` makes from the project's unique name: a lockfile no other
    /// test has (so a CACHED step can only come from this test), a Dockerfile's cache id.
    pub fn file_naming(mut self, path: &str, text: impl FnOnce(&str) -> String + 'static) -> Self {
        let path = path.to_string();
        self.steps
            .push(Box::new(move |p: &Project| p.write(&path, &text(&p.name))));
        self
    }

    /// An executable file (mode 755) at `path`: a script a `RUN` step calls.
    pub fn executable(mut self, path: &str, text: &str) -> Self {
        let (path, text) = (path.to_string(), text.to_string());
        self.steps.push(Box::new(move |p: &Project| {
            p.write(&path, &text);
            std::fs::set_permissions(
                p.root.join(&path),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }));
        self
    }

    /// A symbolic link at `path` to `target` (as written, so relative to `path`'s directory).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let (path, target) = (path.to_string(), target.to_string());
        self.steps.push(Box::new(move |p: &Project| {
            let at = p.root.join(&path);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&target, at).unwrap();
        }));
        self
    }

    /// The repository's `Dockerfile`.
    pub fn dockerfile(self, text: &str) -> Self {
        self.file("Dockerfile", text)
    }

    /// The repository's `compose.yaml`.
    pub fn compose(self, text: &str) -> Self {
        self.file("compose.yaml", text)
    }

    /// The repository's `dockwarm.toml`.
    pub fn config(self, text: &str) -> Self {
        self.file("dockwarm.toml", text)
    }

    /// Writes the files, `git init`s and commits them.
    pub fn build(self) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let name = format!("dwt{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let root = tmp.path().join(&name);
        std::fs::create_dir_all(&root).unwrap();
        let state = tmp.path().join("state");
        let p = Project {
            tmp,
            root,
            name,
            state,
        };
        for step in self.steps {
            step(&p);
        }
        git(&p.root, &["init", "-q", "-b", "main"]);
        git(&p.root, &["add", "-A"]);
        git(&p.root, &["commit", "-q", "-m", "init"]);
        p
    }
}

impl Project {
    /// A repository named `<unique project name>` with these files, committed; the same as
    /// `project().file(..)...build()`.
    pub fn new(files: &[(&str, &str)]) -> Project {
        files
            .iter()
            .fold(project(), |b, (path, text)| b.file(path, text))
            .build()
    }

    /// `git ARGS` in `dir` as a user runs it, hooks and all: the hooks it fires run the
    /// dockwarm under test (first on PATH) with this project's state directory. Fails the test
    /// unless git succeeds.
    #[track_caller]
    pub fn user_git(&self, dir: &Path, args: &[&str]) -> Output {
        self.user_git_with(dir, args, std::iter::empty::<(&str, &str)>())
    }

    /// [`Project::user_git`] with more environment variables for git and the hooks it fires.
    #[track_caller]
    pub fn user_git_with<K, V>(
        &self,
        dir: &Path,
        args: &[&str],
        envs: impl IntoIterator<Item = (K, V)>,
    ) -> Output
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .envs(git_env())
            .env("DOCKWARM_STATE_DIR", &self.state)
            .env("PATH", path_env())
            .env("NO_COLOR", "1")
            .env_remove("CONDUCTOR_DEFAULT_BRANCH")
            .envs(envs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `dockwarm ARGS` in the repository's root; check the result with [`Run`]'s methods.
    pub fn run(&self, args: &[&str]) -> Run {
        Run {
            what: format!("dockwarm {}", args.join(" ")),
            out: self.dockwarm(args),
        }
    }

    pub fn write(&self, path: &str, text: &str) {
        write_file(&self.root, path, text);
    }

    /// `dockwarm ARGS` in `dir`, with this project's state dir.
    pub fn dockwarm_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.dockwarm_env(dir, args, &[])
    }

    /// Like `dockwarm_in`, with extra environment variables.
    pub fn dockwarm_env(&self, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
        self.dockwarm_cmd(dir, args)
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    }

    /// The command `dockwarm ARGS` in `dir` with this project's state dir, to run as a child.
    pub fn dockwarm_cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dockwarm"));
        c.args(args)
            .current_dir(dir)
            .env("DOCKWARM_STATE_DIR", &self.state)
            .env("NO_COLOR", "1")
            .env_remove("COMPOSE_PROJECT_NAME");
        c
    }

    pub fn dockwarm(&self, args: &[&str]) -> Output {
        self.dockwarm_in(&self.root, args)
    }

    /// Like `dockwarm`, and fails the test unless it succeeds.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.dockwarm(args);
        assert!(
            out.status.success(),
            "dockwarm {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

pub fn write_file(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

impl Drop for Project {
    fn drop(&mut self) {
        cleanup_project(&self.name);
    }
}

/// Removes the images, containers and volumes labelled or named for `project`.
pub fn cleanup_project(project: &str) {
    let list = |args: &[&str]| -> Vec<String> {
        Command::new("docker")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = list(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    if !containers.is_empty() {
        let _ = Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&containers)
            .output();
    }
    let mut images = list(&[
        "images",
        "-q",
        "--filter",
        &format!("label=dev.dockwarm.project={project}"),
    ]);
    images.extend(list(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        &format!("reference={project}*"),
    ]));
    images.extend(list(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        &format!("reference=dockwarm/{project}-*"),
    ]));
    images.sort();
    images.dedup();
    if !images.is_empty() {
        let _ = Command::new("docker")
            .args(["rmi", "-f"])
            .args(&images)
            .output();
    }
    let volumes = list(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=dev.dockwarm.project={project}"),
    ]);
    let mut named = list(&["volume", "ls", "-q", "--filter", &format!("name={project}")]);
    named.extend(volumes);
    if !named.is_empty() {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f"])
            .args(&named)
            .output();
    }
}

/// A finished `dockwarm` run, with assertions that report the caller's line and the whole
/// output when they fail.
pub struct Run {
    what: String,
    /// The process's status, stdout and stderr.
    pub out: Output,
}

impl Run {
    /// stdout, lossily decoded.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    /// stderr, lossily decoded.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn dump(&self) -> String {
        format!(
            "{} ({}):\n--- stdout\n{}--- stderr\n{}",
            self.what,
            self.out.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Expects exit code 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(
            self.out.status.success(),
            "expected success: {}",
            self.dump()
        );
        self
    }

    /// Expects exit code `code` (1: failed, 2: usage or configuration).
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.out.status.code(), Some(code), "{}", self.dump());
        self
    }

    /// Expects stdout to contain `text`.
    #[track_caller]
    pub fn stdout_has(self, text: &str) -> Self {
        assert!(
            self.stdout().contains(text),
            "stdout lacks {text:?}: {}",
            self.dump()
        );
        self
    }

    /// Expects stderr to contain `text`.
    #[track_caller]
    pub fn stderr_has(self, text: &str) -> Self {
        assert!(
            self.stderr().contains(text),
            "stderr lacks {text:?}: {}",
            self.dump()
        );
        self
    }

    /// Expects stderr to be exactly one line: dockwarm's errors are one line each.
    #[track_caller]
    pub fn one_line_error(self) -> Self {
        assert_eq!(
            self.stderr().lines().count(),
            1,
            "not one line: {}",
            self.dump()
        );
        self
    }
}

/// The user's own `docker compose build` (v2) in `dir`, as they run it; its plain progress
/// log. Fails the test when the build fails.
#[track_caller]
pub fn compose_build(dir: &Path) -> String {
    let out = Command::new("docker")
        .args(["compose", "--progress", "plain", "build"])
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "docker compose build failed:\n{log}");
    log
}

/// `docker compose down --remove-orphans` in each directory when the test ends.
pub struct ComposeDown(pub Vec<PathBuf>);

impl Drop for ComposeDown {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = Command::new("docker")
                .args(["compose", "down", "--remove-orphans"])
                .current_dir(dir)
                .output();
        }
    }
}

/// Steps of a BuildKit plain-progress log: (step name, cached?).
pub fn steps(log: &str) -> Vec<(String, bool)> {
    let mut names: Vec<(String, String)> = Vec::new();
    let mut cached = std::collections::HashSet::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((id, text)) = rest.split_once(' ') else {
            continue;
        };
        if !id.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if text.starts_with('[') && !names.iter().any(|(i, _)| i == id) {
            names.push((id.to_string(), text.to_string()));
        } else if text.trim() == "CACHED" {
            cached.insert(id.to_string());
        }
    }
    names
        .into_iter()
        .map(|(id, n)| (n, cached.contains(&id)))
        .collect()
}

/// The directory of the dockwarm under test, first on PATH, so hooks run this build.
pub fn path_env() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_dockwarm"))
        .parent()
        .unwrap()
        .to_path_buf();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Waits for `done`, failing the test after `timeout`.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    wait_until(what, timeout, String::new, done);
}

/// Waits for `done`, checking every 100 ms; after `timeout` fails the test naming `what`, with
/// `detail()` (a daemon's log, say). Tests wait on a condition, never for a fixed time: a
/// generous `timeout` costs nothing when things go well.
#[track_caller]
pub fn wait_until(
    what: &str,
    timeout: Duration,
    detail: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            detail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The engine's ID of the image `reference` names, if it has one.
pub fn image_id(reference: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
