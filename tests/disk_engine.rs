//! Disk upkeep against real git, the real daemon and the real engine: a workspace removed with
//! `git worktree remove` loses its tags (engine up, and engine down then back), `prune` takes
//! orphaned tags and untagged images, the budget keeps what is current or in a container, and
//! nothing foreign is touched.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{engine, wait_until, Daemonized, Project};
use crate::daemon_engine::Proxy;
use serde_json::Value;

const DOCKERFILE: &str = r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${BASE}
WORKDIR /app
COPY deps.lock ./
RUN cp deps.lock /app/installed
COPY . .
RUN echo built > /app/done
"#;

const COMPOSE: &str = "services:\n  app:\n    build:\n      context: .\n";

/// A daemonized project (`common::Daemonized`) with an optional `dockwarm.toml`.
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
    fn new(toml: Option<&str>) -> Setup {
        let mut files = vec![("Dockerfile", DOCKERFILE), ("compose.yaml", COMPOSE)];
        if let Some(t) = toml {
            files.push(("dockwarm.toml", t));
        }
        let mut d = Daemonized::with_files(&files);
        d.env("DOCKWARM_DAEMON_IDLE_EXIT", "60");
        // No user config of the machine's user leaks in.
        d.env("DOCKWARM_CONFIG", "/nonexistent/dockwarm.toml");
        Setup(d)
    }

    /// A worktree next to the main checkout, set up as Conductor's setup script does.
    fn worktree(&self, name: &str) -> PathBuf {
        let ws = self.p.tmp.path().join(name);
        self.git(
            &self.p.root,
            &["worktree", "add", "-q", "-b", name, ws.to_str().unwrap()],
        );
        self.ok(&ws, &["init"]);
        ws
    }

    fn deps_tag(&self, dir: &Path) -> String {
        let v: Value = serde_json::from_str(&self.ok(dir, &["fingerprint", "--json"])).unwrap();
        let fp = v[0]["fingerprint"].as_str().unwrap();
        format!("dockwarm/{}-app-deps:{}", self.p.name, &fp[..12])
    }
}

fn exists(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The compose names dockwarm tags for a workspace directory named `dir` (v2 and v1).
fn compose_tags(dir: &str) -> [String; 2] {
    [format!("{dir}-app:latest"), format!("{dir}_app:latest")]
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn git_worktree_remove_takes_the_workspaces_tags_with_it() {
    engine();
    let s = Setup::new(None);
    let root = s.p.root.clone();
    s.ok(&root, &["init"]);
    s.wait_idle(1, Duration::from_secs(90));
    let name = format!("{}-gone", s.p.name);
    let ws = s.worktree(&name);
    s.wait_idle(2, Duration::from_secs(90));
    let tags = compose_tags(&name);
    let main_tags = compose_tags(&s.p.name);
    let deps = s.deps_tag(&root);
    assert!(tags.iter().all(|t| exists(t)), "{tags:?}\n{}", s.log());
    assert!(
        main_tags.iter().all(|t| exists(t)),
        "{main_tags:?}\n{}",
        s.log()
    );

    // As worktrunk's `wt remove` and Conductor do: no `dockwarm archive`.
    s.git(
        &root,
        &["worktree", "remove", "--force", ws.to_str().unwrap()],
    );
    wait_until(
        "the removed workspace's tags to go",
        Duration::from_secs(30),
        || s.log(),
        || tags.iter().all(|t| !exists(t)),
    );
    // The other workspace's names and the shared dependency image stay.
    assert!(main_tags.iter().all(|t| exists(t)), "{}", s.log());
    assert!(exists(&deps));
    let st: Value = serde_json::from_str(&s.ok(&root, &["status", "--json"])).unwrap();
    let listed: Vec<&str> = st["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![s.p.name.as_str()], "{st:#}");
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_worktree_removed_while_the_engine_is_down_loses_its_tags_when_it_returns() {
    engine();
    let mut s = Setup::new(None);
    let root = s.p.root.clone();
    let sock = s.p.tmp.path().join("engine.sock");
    let mut proxy = Proxy::new(sock.clone());
    s.env("DOCKER_HOST", format!("unix://{}", sock.display()));
    s.ok(&root, &["init"]);
    s.wait_idle(1, Duration::from_secs(90));
    let name = format!("{}-down", s.p.name);
    let ws = s.worktree(&name);
    s.wait_idle(2, Duration::from_secs(90));
    let tags = compose_tags(&name);
    assert!(tags.iter().all(|t| exists(t)), "{}", s.log());

    proxy.stop();
    s.git(
        &root,
        &["worktree", "remove", "--force", ws.to_str().unwrap()],
    );
    // The daemon unregisters it and owes the tags; they are still there (checked through the
    // real socket, not the stopped one).
    wait_until(
        "the removal to be owed",
        Duration::from_secs(20),
        || s.log(),
        || {
            dockwarm::pending::count(&dockwarm::state::State::at(&s.p.state)) == 1
                && dockwarm::registry::list(&dockwarm::state::State::at(&s.p.state)).len() == 1
        },
    );
    // The upkeep child has tried to remove them with the engine away: twice since the daemon
    // saw the workspace gone, so at least one try started after the tags were owed (one
    // already running then is followed by another; a lone one, by its retry 5 s later).
    let gone = format!("{name} is gone; unregistering it");
    wait_until(
        "two tries of the owed removal while the engine is down",
        Duration::from_secs(60),
        || s.log(),
        || {
            let log = s.log();
            log.find(&gone).is_some_and(|at| {
                log[at..]
                    .lines()
                    .filter(|l| l.starts_with("dockwarm: cannot reach the Docker engine"))
                    .count()
                    >= 2
            })
        },
    );
    assert!(tags.iter().all(|t| exists(t)), "removed without an engine?");

    proxy.start();
    wait_until(
        "the owed tags to go once the engine is back",
        Duration::from_secs(60),
        || s.log(),
        || tags.iter().all(|t| !exists(t)),
    );
    wait_until(
        "nothing owed",
        Duration::from_secs(20),
        || s.log(),
        || dockwarm::pending::count(&dockwarm::state::State::at(&s.p.state)) == 0,
    );
    assert!(compose_tags(&s.p.name).iter().all(|t| exists(t)));
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn the_daemon_holds_a_small_budget_but_keeps_current_and_container_images_and_foreign_ones() {
    engine();
    // 1 kB: far less than what is present, so everything the rules allow goes.
    let s = Setup::new(Some("[prune]\nbudget = \"1kB\"\nkeep = 3\n"));
    let root = s.p.root.clone();
    s.ok(&root, &["init"]);
    s.wait_idle(1, Duration::from_secs(90));
    let v1 = s.deps_tag(&root);
    let container = format!("{}-c", s.p.name);
    common::sh(Command::new("docker").args([
        "create",
        "--name",
        &container,
        "--label",
        &format!("com.docker.compose.project={}", s.p.name),
        &v1,
        "true",
    ]));
    // Foreign things next to ours: an unlabelled image in our repository, and a volume.
    let lookalike = format!("dockwarm/{}-app-deps:000000000000", s.p.name);
    common::sh(Command::new("docker").args(["tag", common::BUSYBOX, &lookalike]));
    let volume = format!("{}_foreign", s.p.name);
    common::sh(Command::new("docker").args([
        "volume",
        "create",
        "--label",
        "dev.dockwarm.test=true",
        &volume,
    ]));

    let mut tags = vec![v1.clone()];
    for (i, n) in [2, 3].into_iter().enumerate() {
        s.p.write("deps.lock", &format!("base=={n}\n# {}\n", s.p.name));
        s.git(&root, &["commit", "-qam", &format!("lock {n}")]);
        s.wait_idle(2 + i, Duration::from_secs(90));
        tags.push(s.deps_tag(&root));
    }
    let (v2, v3) = (&tags[1], &tags[2]);
    // v2 went (neither current nor in a container: `keep` yields to the budget).
    wait_until(
        "the budget to remove v2",
        Duration::from_secs(30),
        || s.log(),
        || !exists(v2),
    );
    assert!(exists(&v1), "the container's image went\n{}", s.log());
    assert!(exists(v3), "the current fingerprint went\n{}", s.log());
    assert!(exists(&lookalike), "an unlabelled image went");
    assert!(exists(common::BUSYBOX));
    assert!(compose_tags(&s.p.name).iter().all(|t| exists(t)));
    let vol = Command::new("docker")
        .args(["volume", "inspect", &volume])
        .output()
        .unwrap();
    assert!(vol.status.success(), "a foreign volume went");

    // The last measurement is what status shows, against the budget.
    let st: Value = serde_json::from_str(&s.ok(&root, &["status", "--json"])).unwrap();
    let disk = &st["disk"];
    assert_eq!(disk["budget"], 1000, "{st:#}");
    assert!(disk["used"].as_u64().unwrap() > 0, "{st:#}");

    // doctor measures now and says it is over, with the fix; prune --budget --dry-run agrees.
    let out = s.run(&root, &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("disk: dockwarm's images of `{}` use", s.p.name))
            && text.contains("over the 1.0 kB budget")
            && text.contains("dockwarm prune --budget"),
        "{text}"
    );
    let out = s.ok(&root, &["prune", "--budget", "--dry-run"]);
    assert!(out.contains("OVER (everything left is in use)"), "{out}");
    assert!(!out.contains("would remove"), "{out}");

    let _ = Command::new("docker")
        .args(["rm", "-f", &container])
        .output();
    let _ = Command::new("docker").args(["rmi", &lookalike]).output();
    let _ = Command::new("docker")
        .args(["volume", "rm", &volume])
        .output();
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn prune_takes_unregistered_workspaces_tags_and_untagged_images_of_ours_only() {
    engine();
    let s = Setup::new(None);
    // A fixed project name, so the checkout still is this project once moved.
    s.p.write(
        "dockwarm.toml",
        &format!("[project]\nname = \"{}\"\n", s.p.name),
    );
    let root = s.p.root.clone();
    let state = dockwarm::state::State::at(&s.p.state);
    // Registered without the daemon: prebuild --full tags the workspace image.
    dockwarm::registry::put(
        &state,
        &dockwarm::registry::Workspace {
            name: s.p.name.clone(),
            path: root.clone(),
            project: s.p.name.clone(),
            compose_project: s.p.name.clone(),
            registered_at: 0,
            images: Default::default(),
            engine: None,
        },
    )
    .unwrap();
    s.ok(&root, &["prebuild", "--full"]);
    let tags = compose_tags(&s.p.name);
    assert!(tags.iter().all(|t| exists(t)));
    let first = inspect_id(&tags[0]);
    // A source change rebuilds under the same names: the first image is left untagged.
    s.p.write("src/main.sh", "echo changed\n");
    s.ok(&root, &["prebuild", "--full"]);
    assert_ne!(inspect_id(&tags[0]), first);
    assert!(exists(&first), "the old image should be there, untagged");
    // Someone else's untagged image stays: an untagged foreign image is made by re-tagging.
    let foreign = format!("{}-foreign:x", s.p.name);
    common::sh(Command::new("docker").args(["tag", common::BUSYBOX, &foreign]));

    let out = s.ok(&root, &["prune", "--dry-run"]);
    assert!(out.contains("would remove untagged image"), "{out}");
    assert!(exists(&first));
    let out = s.ok(&root, &["prune"]);
    assert!(!exists(&first), "{out}");
    assert!(
        tags.iter().all(|t| exists(t)),
        "a registered workspace's tags went\n{out}"
    );

    // Unregistered but still on disk (registered in another state directory, as far as this
    // one knows): its names stay.
    dockwarm::registry::remove(&state, &root).unwrap();
    let out = s.ok(&root, &["prune"]);
    assert!(tags.iter().all(|t| exists(t)), "{out}");
    // Gone from disk and from the registry behind dockwarm's back: prune takes its names.
    let moved = s.p.tmp.path().join("moved");
    std::fs::rename(&root, &moved).unwrap();
    let out = s.ok(&moved, &["prune", "--dry-run"]);
    assert!(out.contains(&format!("would remove {}", tags[0])), "{out}");
    assert!(tags.iter().all(|t| exists(t)));
    let out = s.ok(&moved, &["prune"]);
    assert!(tags.iter().all(|t| !exists(t)), "{out}");
    assert!(exists(&foreign) && exists(common::BUSYBOX));
    let _ = Command::new("docker").args(["rmi", &foreign]).output();
}

fn inspect_id(reference: &str) -> String {
    let out = common::sh(
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", reference]),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_malformed_budget_is_a_configuration_error_naming_file_line_and_forms() {
    let p = Project::new(&[
        ("Dockerfile", DOCKERFILE),
        ("compose.yaml", COMPOSE),
        ("deps.lock", "x\n"),
        ("dockwarm.toml", "[prune]\nkeep = 2\nbudget = \"20 gigs\"\n"),
    ]);
    for args in [&["config"][..], &["prune", "--dry-run"], &["fingerprint"]] {
        let out = p.dockwarm(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("dockwarm.toml:3:10"), "{err}");
        assert!(
            err.contains("20 gigs") && err.contains("20GB") && err.contains("GiB"),
            "{err}"
        );
    }
    // The same in the user's config.
    let user = p.tmp.path().join("user.toml");
    std::fs::write(&user, "[prune]\nbuilder_budget = \"lots\"\n").unwrap();
    p.write("dockwarm.toml", "[prune]\nkeep = 2\n");
    let out = p.dockwarm_env(
        &p.root,
        &["config"],
        &[("DOCKWARM_CONFIG", user.to_str().unwrap())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("user.toml:2:18") && err.contains("builder_budget"),
        "{err}"
    );
    // A good one is shown with where it came from.
    std::fs::write(&user, "[prune]\nbudget = \"5GB\"\n").unwrap();
    let out = p.dockwarm_env(
        &p.root,
        &["config"],
        &[("DOCKWARM_CONFIG", user.to_str().unwrap())],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("5.0 GB") && text.contains("user.toml [prune] budget"),
        "{text}"
    );
}
