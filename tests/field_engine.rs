//! The field test of issue 15, points 1, 3, 4, 5 and 7 (status): a user's own `docker compose
//! build` beside dockwarm's, a status that must answer while the engine stalls, two clones
//! reaching one fingerprint, and `logs` in worktrees at different fingerprints. Real git (hooks
//! and all), the real dockwarm binary, the real engine and compose v2.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::{engine, wait_for, Daemonized};
use crate::daemon_engine::Proxy;

/// A dependency stage that writes what it installed to `/app/installed` (the file a service's
/// container reads to show which dependencies it runs), then the source.
const DOCKERFILE: &str = "FROM dockwarm-test/busybox:latest AS deps
WORKDIR /app
COPY deps.lock ./
RUN cp deps.lock /app/installed

FROM deps AS runtime
COPY src ./src
CMD [\"cat\", \"/app/installed\"]
";

/// Two services building the one Dockerfile, as in the field.
const COMPOSE: &str = "services:\n  app:\n    build: .\n  worker:\n    build: .\n";

/// A daemonized project (`common::Daemonized`) with the field test's Dockerfile and compose file.
struct Fx(Daemonized);

impl std::ops::Deref for Fx {
    type Target = Daemonized;
    fn deref(&self) -> &Daemonized {
        &self.0
    }
}

impl std::ops::DerefMut for Fx {
    fn deref_mut(&mut self) -> &mut Daemonized {
        &mut self.0
    }
}

impl Fx {
    fn new(dockerfile: &str, compose: &str) -> Fx {
        Fx(Daemonized::new(dockerfile, compose))
    }

    fn status(&self, dir: &Path) -> Value {
        serde_json::from_str(&self.ok(dir, &["status", "--json"])).unwrap()
    }

    fn log(&self) -> String {
        let logs = self.p.state.join("logs");
        ["daemon.log", "background.log"]
            .iter()
            .map(|n| std::fs::read_to_string(logs.join(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The daemon has nothing running or queued and has finished at least `jobs` jobs.
    fn idle_after(&self, jobs: usize) -> bool {
        let out = self.run(&self.p.root, &["daemon", "status", "--json"]);
        let Ok(s) = serde_json::from_slice::<Value>(&out.stdout) else {
            return false;
        };
        let d = &s["daemon"];
        d["running"].as_array().is_some_and(|a| a.is_empty())
            && d["queued"].as_array().is_some_and(|a| a.is_empty())
            && d["history"].as_array().map_or(0, |a| a.len()) >= jobs
    }

    fn jobs(&self) -> usize {
        let out = self.run(&self.p.root, &["daemon", "status", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|s| s["daemon"]["history"].as_array().map(|a| a.len()))
            .unwrap_or(0)
    }

    /// No full prebuild of `dir` runs (the daemon off: the background one `init` started).
    fn settled(&self, dir: &Path) -> bool {
        !dockwarm::daemon::orphans::busy(&dockwarm::state::State::at(&self.p.state), dir)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn compose_project(dir: &Path) -> String {
    dockwarm::compose::normalize_project_name(&dir.file_name().unwrap().to_string_lossy())
}

fn inspect(reference: &str, format: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", format, reference])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_string())
}

fn fingerprint_label(reference: &str) -> Option<String> {
    inspect(
        reference,
        "{{index .Config.Labels \"dev.dockwarm.fingerprint\"}}",
    )
    .filter(|f| !f.is_empty() && f != "<no value>")
}

/// `docker compose ARGS` in `dir`.
fn compose(dir: &Path, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("compose")
        .args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .output()
        .unwrap()
}

struct ComposeDown(PathBuf);

impl Drop for ComposeDown {
    fn drop(&mut self) {
        let _ = compose(&self.0, &["down", "--remove-orphans"]);
    }
}

/// What a service's container says it installed, started without a build.
fn installed(dir: &Path, service: &str) -> String {
    let out = compose(dir, &["up", "--no-build", "--pull", "never", service]);
    assert!(out.status.success(), "compose up {service}: {}", show(&out));
    text(&out.stdout) + &text(&out.stderr)
}

/// Point 1: after the user's own `docker compose build`, a checkout that adds a dependency
/// replaces compose's images under the services' names (the old ones are kept), so `up
/// --no-build`/`run --no-build` run the new dependencies; a name held by an image that is
/// neither dockwarm's nor compose's for this service stays untouched, and `status` says stale
/// and why instead of warm.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn after_the_users_own_compose_build_a_checkout_still_reaches_every_service() {
    engine();
    let fx = Fx::new(DOCKERFILE, COMPOSE);
    let root = fx.p.root.clone();
    let _down = ComposeDown(root.clone());
    let cp = compose_project(&root);
    let (app, worker) = (format!("{cp}-app"), format!("{cp}-worker"));
    // A branch that adds a package, made before the hooks exist.
    common::git(&root, &["checkout", "-qb", "more"]);
    fx.p.write(
        "deps.lock",
        &format!("base==1\nadded==2\n# {}\n", fx.p.name),
    );
    common::git(&root, &["commit", "-qam", "add a package"]);
    common::git(&root, &["checkout", "-q", "main"]);

    fx.ok(&root, &["init"]);
    wait_for("the first build", Duration::from_secs(120), || {
        fx.idle_after(1) && fingerprint_label(&app).is_some()
    });
    // The user's own build: compose's images now hold both names.
    let out = compose(&root, &["build"]);
    assert!(out.status.success(), "{}", show(&out));
    let users_app = inspect(&app, "{{.Id}}").unwrap();
    assert_eq!(fingerprint_label(&app), None, "compose's own image");
    // compose built it on the current dependencies: still warm.
    let st = fx.status(&root);
    let img = &st["workspaces"][0]["images"][0];
    assert_eq!(img["state"], "warm", "{st:#}");
    let held = img["tags"].as_array().unwrap();
    assert!(
        held.iter()
            .any(|t| t["name"] == app.as_str() && t["holder"] == "compose" && t["current"] == true),
        "{st:#}"
    );

    let jobs = fx.jobs();
    fx.git(&root, &["checkout", "-q", "more"]);
    wait_for(
        "the build of the checkout",
        Duration::from_secs(120),
        || fx.idle_after(jobs + 1),
    );
    for service in ["app", "worker"] {
        let said = installed(&root, service);
        assert!(
            said.contains("added==2"),
            "{service} runs the old dependencies: {said}\n{}",
            fx.log()
        );
    }
    assert!(
        inspect(&users_app, "{{.Id}}").is_some(),
        "compose's old image is kept, as `docker compose build` keeps it"
    );
    let st = fx.status(&root);
    assert_eq!(st["workspaces"][0]["images"][0]["state"], "warm", "{st:#}");

    // A name held by an image neither dockwarm nor compose built for this service: left alone,
    // and status says so instead of "warm".
    let sh = Command::new("docker")
        .args(["tag", common::BUSYBOX, &worker])
        .status()
        .unwrap();
    assert!(sh.success());
    let foreign = inspect(&worker, "{{.Id}}").unwrap();
    let jobs = fx.jobs();
    fx.git(&root, &["checkout", "-q", "main"]);
    wait_for(
        "the build of the way back",
        Duration::from_secs(120),
        || fx.idle_after(jobs + 1),
    );
    assert_eq!(inspect(&worker, "{{.Id}}").unwrap(), foreign, "untouched");
    assert!(!installed(&root, "app").contains("added==2"));
    let st = fx.status(&root);
    let img = &st["workspaces"][0]["images"][0];
    assert_eq!(img["state"], "stale", "{st:#}");
    assert!(
        img["why"].as_str().is_some_and(|w| w.contains(&worker)),
        "{st:#}"
    );
    let said = fx.ok(&root, &["status"]);
    assert!(said.contains("stale") && said.contains(&worker), "{said}");
}

/// Point 3: `status` answers while the engine stalls (here: every request but `/_ping` is held,
/// as Engine 20.10 holds `/system/df` while a build exports), from what it knows without it.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn status_answers_while_the_engine_stalls() {
    engine();
    let mut fx = Fx::new(DOCKERFILE, COMPOSE);
    fx.env("DOCKWARM_DAEMON", "0");
    let root = fx.p.root.clone();
    fx.ok(&root, &["init"]);
    wait_for("the first build", Duration::from_secs(120), || {
        fx.settled(&root) && fingerprint_label(&format!("{}-app", compose_project(&root))).is_some()
    });
    let sock = fx.p.tmp.path().join("engine.sock");
    let proxy = Proxy::new(sock.clone());
    fx.env("DOCKER_HOST", format!("unix://{}", sock.display()));
    // Through the proxy, unstalled: the engine's answer.
    let st = fx.status(&root);
    assert_eq!(st["engine"]["up"], true, "{st:#}");
    assert_eq!(st["workspaces"][0]["images"][0]["state"], "warm", "{st:#}");

    proxy.stall_all_but(&["/_ping"]);
    let mut child =
        fx.p.dockwarm_cmd(&root, &["status", "--json"])
            .envs(fx.envs.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let mut done = None;
    wait_for("status to answer", Duration::from_secs(30), || {
        done = child.try_wait().unwrap();
        done.is_some()
    });
    proxy.release();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        st["engine"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{st:#}"
    );
    // What the state directory knows.
    assert_eq!(st["workspaces"][0]["images"][0]["state"], "warm", "{st:#}");
}

/// A dependency stage that needs a file of the context that is not an input (a bind mount:
/// a credential, say): a clone without it fails where a clone with it builds, at one
/// fingerprint.
const GATED: &str = "FROM dockwarm-test/busybox:latest AS deps
WORKDIR /app
COPY deps.lock ./
RUN --mount=type=bind,source=gate,target=/gate cp deps.lock /app/installed

FROM deps AS runtime
COPY src ./src
CMD [\"cat\", \"/app/installed\"]
";

/// Point 4 (and 7's status part): two clones reaching the same fingerprint keep their own build
/// records: one's failure (and its log) is not the other's, and the other's success does not
/// hide it. "last build" gives the dependency stage's and the workspace image's times.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn two_clones_at_one_fingerprint_keep_their_own_build_records() {
    engine();
    let mut fx = Fx::new(GATED, "services:\n  app:\n    build: .\n");
    fx.env("DOCKWARM_DAEMON", "0");
    let a = fx.p.root.clone();
    let b = fx.p.tmp.path().join(format!("{}-b", fx.p.name));
    common::git(
        fx.p.tmp.path(),
        &["clone", "-q", a.to_str().unwrap(), b.to_str().unwrap()],
    );
    std::fs::write(b.join("gate"), "open\n").unwrap();
    let fp = |dir: &Path| -> String {
        let v: Value = serde_json::from_str(&fx.ok(dir, &["fingerprint", "--json"])).unwrap();
        v[0]["fingerprint"].as_str().unwrap().to_string()
    };
    assert_eq!(fp(&a), fp(&b), "one fingerprint");

    fx.ok(&b, &["init"]);
    wait_for("b's build", Duration::from_secs(120), || {
        fx.settled(&b) && fingerprint_label(&format!("{}-app", compose_project(&b))).is_some()
    });
    fx.ok(&a, &["init"]);
    let find = |st: &Value, dir: &Path| -> Value {
        st["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["path"] == dir.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not in {st:#}", dir.display()))["images"][0]
            .clone()
    };
    let mut st = Value::Null;
    wait_for("a's build to fail", Duration::from_secs(120), || {
        st = fx.status(&a);
        fx.settled(&a) && find(&st, &a)["state"] == "failed"
    });
    let (ia, ib) = (find(&st, &a), find(&st, &b));
    assert_eq!(ia["last_build"]["status"], "failed", "{st:#}\n{}", fx.log());
    assert_eq!(ib["state"], "warm", "{st:#}");
    assert_eq!(ib["last_build"]["status"], "built", "{st:#}");
    let (la, lb) = (
        ia["last_build"]["log"].as_str().unwrap(),
        ib["last_build"]["log"].as_str().unwrap(),
    );
    assert_ne!(la, lb, "one log each: {st:#}");
    assert!(
        std::fs::read_to_string(la).unwrap().contains("gate"),
        "{la}"
    );
    // Both stages' times.
    assert!(
        ib["last_build"]["dependency_ms"].as_u64().is_some(),
        "{st:#}"
    );
    assert!(
        ib["last_build"]["workspace_image"]["duration_ms"]
            .as_u64()
            .is_some(),
        "{st:#}"
    );
    let said = fx.ok(&b, &["status"]);
    assert!(said.contains("workspace image"), "{said}");
    cleanup_clone(&b);
}

fn cleanup_clone(dir: &Path) {
    common::cleanup_project(&dir.file_name().unwrap().to_string_lossy());
}

/// Point 5: `logs` shows this workspace's current builds, the dependency build and its own
/// workspace image's, and never another fingerprint's.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn logs_follow_this_workspaces_fingerprints() {
    engine();
    let mut fx = Fx::new(DOCKERFILE, "services:\n  app:\n    build: .\n");
    fx.env("DOCKWARM_DAEMON", "0");
    let root = fx.p.root.clone();
    let tag = |dir: &Path| format!("{}-app", compose_project(dir));
    fx.ok(&root, &["init"]);
    wait_for("the first build", Duration::from_secs(120), || {
        fx.settled(&root) && fingerprint_label(&tag(&root)).is_some()
    });
    let first = fingerprint_label(&tag(&root)).unwrap();
    // A second worktree at other dependencies, built later.
    let other = fx.p.tmp.path().join(format!("{}-other", fx.p.name));
    fx.git(
        &root,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "other",
            other.to_str().unwrap(),
        ],
    );
    std::fs::write(
        other.join("deps.lock"),
        format!("other==9\n# {}\n", fx.p.name),
    )
    .unwrap();
    common::git(&other, &["commit", "-qam", "other deps"]);
    fx.ok(&other, &["init"]);
    wait_for("the other build", Duration::from_secs(120), || {
        fx.settled(&other) && fingerprint_label(&tag(&other)).is_some_and(|f| f != first)
    });
    let second = fingerprint_label(&tag(&other)).unwrap();

    let here = fx.ok(&root, &["logs"]);
    let there = fx.ok(&other, &["logs"]);
    let headers = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("==> "))
            .map(str::to_string)
            .collect()
    };
    let (h, t) = (headers(&here), headers(&there));
    let records = || -> String {
        std::fs::read_dir(fx.p.state.join("builds"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        h.len(),
        2,
        "the dependency and the workspace image logs: {here}\n{}",
        records()
    );
    assert_eq!(t.len(), 2, "{t:?}\n{}\n{}", records(), fx.log());
    assert!(h.iter().any(|l| l.contains(&first[..12])), "{h:?}");
    assert!(!h.iter().any(|l| l.contains(&second[..12])), "{h:?}");
    assert!(t.iter().any(|l| l.contains(&second[..12])), "{t:?}");
    assert!(!t.iter().any(|l| l.contains(&first[..12])), "{t:?}");
    assert!(!h.iter().any(|l| l.contains("-other-")), "{h:?}");
    assert!(
        t.iter().any(|l| l.contains(&compose_project(&other))),
        "{t:?}"
    );
    cleanup_clone(&other);
}

/// Point 7: while a build runs, status says which step it is in; once done, "last build" gives
/// both the dependency image's and the workspace image's times.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn status_names_the_phase_of_a_running_build() {
    engine();
    let slow = DOCKERFILE.replace(
        "RUN cp deps.lock /app/installed",
        "RUN sleep 5 && cp deps.lock /app/installed",
    );
    let mut fx = Fx::new(&slow, "services:\n  app:\n    build: .\n");
    fx.env("DOCKWARM_DAEMON", "0");
    let root = fx.p.root.clone();
    fx.ok(&root, &["init"]);
    let mut st = Value::Null;
    wait_for("status to name the phase", Duration::from_secs(60), || {
        st = fx.status(&root);
        st["workspaces"][0]["images"][0]["phase"] == "workspace_image"
    });
    assert_eq!(
        st["workspaces"][0]["images"][0]["state"], "building",
        "{st:#}"
    );
    wait_for("the build", Duration::from_secs(120), || {
        fx.settled(&root) && fingerprint_label(&format!("{}-app", compose_project(&root))).is_some()
    });
    let st = fx.status(&root);
    let img = &st["workspaces"][0]["images"][0];
    assert_eq!(img["state"], "warm", "{st:#}");
    assert!(img.get("phase").is_none(), "{st:#}");
    let said = fx.ok(&root, &["status"]);
    assert!(
        said.contains("dependency image") && said.contains("workspace image"),
        "{said}"
    );
}
