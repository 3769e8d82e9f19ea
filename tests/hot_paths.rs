//! The hot paths (issue 9): one plan per build, a hook that reads only what the COPY sources
//! name, a daemon that answers while it plans.
//!
//! Speed itself is measured by `scripts/bench-hooks.sh`, not here: these tests check the
//! behaviour that makes it fast, by what a user (or `DOCKWARM_TRACE_PLANS`) can see.

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{engine, wait_for, Project};
use crate::workspaces_engine::{project, DOCKERFILE};

/// `git ARGS` as a user runs it, hooks and all, with extra environment variables.
#[track_caller]
fn git(p: &Project, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let idle_exit = [("DOCKWARM_DAEMON_IDLE_EXIT", "20")];
    p.user_git_with(&p.root, args, idle_exit.iter().chain(envs).copied())
}

fn stop_daemon(p: &Project) {
    let _ = p.dockwarm(&["daemon", "stop"]);
}

/// A node_modules beside the lockfile holding a file whose name is not UTF-8: any walk of the
/// whole context stops there with an error, so a hook that stays quiet and still notices the
/// lockfile's change read only what `COPY deps.lock ./` names.
#[test]
fn the_hook_reads_only_what_the_copy_sources_name() {
    let p = Project::new(&[
        ("Dockerfile", DOCKERFILE),
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
        ("deps.lock", "a==1\n"),
    ]);
    let modules = p.root.join("node_modules/pkg");
    std::fs::create_dir_all(&modules).unwrap();
    for i in 0..2000 {
        std::fs::write(modules.join(format!("f{i}.js")), "x").unwrap();
    }
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.js");
    std::fs::write(modules.join(odd), "x").unwrap();
    // No engine is needed: point it nowhere, so the handed-off work ends at once.
    let nowhere = format!("unix://{}/none.sock", p.tmp.path().display());
    let envs = [("DOCKER_HOST", nowhere.as_str())];
    let out = p.dockwarm_env(&p.root, &["hooks", "install"], &envs);
    assert!(out.status.success(), "{out:?}");
    git(&p, &["checkout", "-q", "-b", "other"], &envs);
    p.write("deps.lock", "a==2\n");
    git(&p, &["commit", "-qam", "bump"], &envs);
    git(&p, &["checkout", "-q", "main"], &envs);
    let back = git(&p, &["checkout", "other"], &envs);
    let said = String::from_utf8_lossy(&back.stderr);
    assert!(
        said.contains("dependencies of app changed"),
        "the hook did not see the change: {said}"
    );
    assert!(
        !said.contains("UTF-8"),
        "the hook walked node_modules: {said}"
    );
    // A checkout that changes no input says nothing at all.
    let again = git(&p, &["checkout", "-q", "-b", "third"], &envs);
    assert_eq!(String::from_utf8_lossy(&again.stderr), "");
    stop_daemon(&p);
}

/// A lockfile change brought by `git checkout`: the hook plans, and neither the daemon's
/// evaluation nor the build it starts (dependency stage and workspace image) plans again.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_lockfile_change_is_planned_once_for_hook_daemon_and_build() {
    engine();
    let p = project();
    let trace = p.tmp.path().join("plans.log");
    let trace_s = trace.display().to_string();
    let envs = [("DOCKWARM_TRACE_PLANS", trace_s.as_str())];
    let out = p.dockwarm_env(&p.root, &["init"], &envs);
    assert!(out.status.success(), "{out:?}");
    let built = |p: &Project| {
        let v = p.json(&["status"]);
        v["workspaces"][0]["images"][0]["state"] == "warm"
            && v["daemon"]["running"]
                .as_array()
                .is_some_and(|a| a.is_empty())
            && v["daemon"]["queued"]
                .as_array()
                .is_some_and(|a| a.is_empty())
    };
    wait_for("the first build", Duration::from_secs(120), || built(&p));

    git(&p, &["checkout", "-q", "-b", "bump"], &envs);
    p.write("deps.lock", &format!("a==2\n# {}\n", p.name));
    git(&p, &["commit", "-qam", "bump"], &envs);
    git(&p, &["checkout", "-q", "main"], &envs);
    std::fs::write(&trace, "").unwrap();
    git(&p, &["checkout", "-q", "bump"], &envs);
    let tag = format!("{}-app", p.name);
    wait_for("the new build", Duration::from_secs(120), || {
        let out = Command::new("docker")
            .args(["run", "--rm", &tag])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).starts_with("a==2") && built(&p)
    });
    let lines = std::fs::read_to_string(&trace).unwrap();
    let log = std::fs::read_to_string(p.state.join("logs/daemon.log")).unwrap_or_default();
    assert_eq!(
        lines.lines().count(),
        1,
        "plans computed after the checkout (pid workspace):\n{lines}\ndaemon log:\n{log}"
    );
    assert!(
        log.contains("inputs") && log.contains("changed; build"),
        "{log}"
    );
    stop_daemon(&p);
}

/// Planning a workspace with large files among its inputs takes a while: the daemon
/// answers `status` meanwhile (its plans are computed off its loop) and says it is planning.
#[test]
fn the_daemon_answers_while_it_plans() {
    let p = Project::new(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY deps.lock ./\nRUN install\nCOPY . .\n",
        ),
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
        (
            "dockwarm.toml",
            "[[image]]\nname = \"app\"\nservices = [\"app\"]\ninputs = [\"vendor\"]\n",
        ),
        ("deps.lock", "a==1\n"),
    ]);
    // 200 MB to hash: long enough to ask the daemon a few questions meanwhile.
    let vendor = p.root.join("vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    let block = vec![7u8; 1 << 20];
    for i in 0..200 {
        std::fs::write(vendor.join(format!("wheel{i}.whl")), &block).unwrap();
    }
    let nowhere = format!("unix://{}/none.sock", p.tmp.path().display());
    let envs = [
        ("DOCKER_HOST", nowhere.as_str()),
        ("DOCKWARM_DAEMON_IDLE_EXIT", "20"),
    ];
    let out = p.dockwarm_env(&p.root, &["daemon", "start"], &envs);
    assert!(out.status.success(), "{out:?}");
    // init registers the workspace and hands it to the daemon, which starts planning.
    let out = p.dockwarm_env(&p.root, &["init"], &envs);
    assert!(out.status.success(), "{out:?}");
    let mut saw_planning = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let out = p.dockwarm_env(&p.root, &["daemon", "status", "--json"], &envs);
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let planning = v["daemon"]["planning"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if planning.iter().any(|w| w == p.root.to_str().unwrap()) {
            saw_planning = true;
            break;
        }
        if v["daemon"]["queued"]
            .as_array()
            .is_some_and(|q| !q.is_empty())
        {
            break;
        }
    }
    stop_daemon(&p);
    assert!(
        saw_planning,
        "status never answered while the daemon planned the workspace"
    );
}
