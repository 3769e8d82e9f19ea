//! Workspaces end to end: real git firing the installed hooks, the real dockwarm binary, the
//! real engine and compose v2.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{busybox, engine, path_env, wait_for, ComposeDown, Project};

pub(crate) const DOCKERFILE: &str = r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${BASE} AS base
WORKDIR /app

FROM base AS deps
COPY deps.lock ./
RUN --mount=type=cache,target=/cache/deps \
    sh -c 'cp deps.lock /cache/deps/ && date > /app/installed'

FROM deps AS runtime
COPY . .
CMD ["cat", "/app/deps.lock"]
"#;

/// A committed project of the seed's shape: lockfile, install with a cache mount, source.
pub(crate) fn project() -> Project {
    busybox();
    common::project()
        .dockerfile(DOCKERFILE)
        .compose("services:\n  app:\n    build: .\n")
        .file("src/main.sh", "echo hi\n")
        .file_naming("deps.lock", |name| format!("requests==2.32.3\n# {name}\n"))
        .build()
}

fn inspect(reference: &str, format: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", format, reference])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn layers(reference: &str) -> Vec<String> {
    serde_json::from_str(&inspect(reference, "{{json .RootFS.Layers}}").unwrap()).unwrap()
}

/// Build records of dependency prebuilds that actually built.
fn built_records(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_dir(state.join("builds"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    serde_json::from_slice::<serde_json::Value>(&std::fs::read(e.path()).ok()?).ok()
                })
                .filter(|r| r["status"] == "built")
                .collect()
        })
        .unwrap_or_default()
}

/// The daemon has nothing running or queued and has finished `jobs` jobs.
pub(crate) fn daemon_idle_after(p: &Project, jobs: usize) -> bool {
    let out = p.dockwarm(&["daemon", "status", "--json"]);
    let Ok(s) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return false;
    };
    let d = &s["daemon"];
    d["running"].as_array().is_some_and(|a| a.is_empty())
        && d["queued"].as_array().is_some_and(|a| a.is_empty())
        && d["history"].as_array().map_or(0, |a| a.len()) >= jobs
}

/// The compose project name of the checkout `dir`: its directory's name, normalized.
pub(crate) fn compose_project(dir: &Path) -> String {
    dockwarm::compose::normalize_project_name(&dir.file_name().unwrap().to_string_lossy())
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn three_worktrees_share_one_dependency_build_and_start_without_building() {
    engine();
    let p = project();
    let init = p.ok(&["init"]);
    assert!(init.contains("hooks: installed"), "{init}");
    let main_tag = format!("{}-app", compose_project(&p.root));
    wait_for("the main workspace image", Duration::from_secs(120), || {
        inspect(&main_tag, "{{.Id}}").is_some()
    });

    let mut dirs = vec![p.root.clone()];
    for n in ["2", "3"] {
        // Spaces and non-ASCII in the path; compose drops them from the project name.
        let dir = p.tmp.path().join(format!("{} wö {n}", p.name));
        p.user_git(
            &p.root,
            &[
                "worktree",
                "add",
                "-q",
                dir.to_str().unwrap(),
                "-b",
                &format!("w{n}"),
            ],
        );
        let out = p.dockwarm_in(&dir, &["init"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tag = format!("{}-app", compose_project(&dir));
        wait_for("the workspace image", Duration::from_secs(120), || {
            inspect(&tag, "{{.Id}}").is_some()
        });
        dirs.push(dir);
    }
    let _down = ComposeDown(dirs.clone());

    let records = built_records(&p.state);
    assert_eq!(
        records.len(),
        1,
        "one dependency build for three workspaces: {records:?}"
    );

    // The two later workspaces were served warm: each saved at most the measured cold build
    // (its dependency stage and the first workspace image on it), the first saved nothing.
    let saved = |v: &serde_json::Value| {
        (
            v["saved"]["builds"].as_u64().unwrap_or(0),
            v["saved"]["ms"].as_u64().unwrap_or(0),
        )
    };
    let mut status = p.json(&["status"]);
    wait_for(
        "the warm builds' accounting",
        Duration::from_secs(60),
        || {
            status = p.json(&["status"]);
            saved(&status).0 == 2
        },
    );
    let record = &built_records(&p.state)[0];
    let cold = record["duration_ms"].as_u64().unwrap();
    for ws in status["workspaces"].as_array().unwrap() {
        let (builds, ms) = saved(ws);
        let first = ws["path"] == p.root.to_str().unwrap();
        assert_eq!(builds, if first { 0 } else { 1 }, "{status:#}");
        assert!(
            ms <= cold,
            "{ms} ms saved, more than the cold {cold} ms: {status:#}"
        );
        assert_eq!(saved(&ws["images"][0]), (builds, ms), "{status:#}");
    }
    assert!(saved(&status).1 > 0, "{status:#}");
    let deps_tag = records[0]["tag"].as_str().unwrap().to_string();
    let deps_layers = layers(&deps_tag);
    assert!(!deps_layers.is_empty());

    for dir in &dirs {
        let cp = compose_project(dir);
        for tag in [format!("{cp}-app"), format!("{cp}_app")] {
            let l = layers(&tag);
            assert_eq!(
                &l[..deps_layers.len()],
                &deps_layers[..],
                "{tag} shares the dependency layers"
            );
            assert_eq!(
                inspect(&tag, "{{index .Config.Labels \"dev.dockwarm.workspace\"}}").unwrap(),
                dir.display().to_string()
            );
        }
        // compose v2 finds the image: no build, no pull.
        let up = Command::new("docker")
            .args(["compose", "up", "--no-build", "--pull", "never"])
            .current_dir(dir)
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&up.stdout).into_owned() + &String::from_utf8_lossy(&up.stderr);
        assert!(up.status.success(), "{text}");
        assert!(
            text.contains(&p.name),
            "the container ran the image built from this lockfile: {text}"
        );
    }
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn git_commands_that_change_dependencies_prebuild_in_the_background() {
    engine();
    let p = project();
    p.ok(&["init"]);
    let state = p.state.clone();
    wait_for("the first prebuild", Duration::from_secs(120), || {
        built_records(&state).len() == 1
    });

    let bump = |version: &str, message: &str| {
        p.write("deps.lock", &format!("requests=={version}\n# {}\n", p.name));
        common::git(&p.root, &["commit", "-qam", message]);
    };
    // A branch with other dependencies; switching to it prebuilds them.
    p.user_git(&p.root, &["checkout", "-q", "-b", "newdeps"]);
    bump("2.32.4", "bump");
    p.user_git(&p.root, &["checkout", "-q", "main"]);
    let out = p.user_git(&p.root, &["checkout", "newdeps"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dockwarm: dependencies of app changed"),
        "{stderr}"
    );
    wait_for(
        "the prebuild after checkout",
        Duration::from_secs(120),
        || built_records(&state).len() == 2,
    );

    // A file checkout (flag 0) is not a branch switch: nothing happens.
    let out = p.user_git(&p.root, &["checkout", "main", "--", "deps.lock"]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("dockwarm"),
        "{:?}",
        out
    );
    p.user_git(&p.root, &["checkout", "-q", "--", "deps.lock"]);

    // A merge that brings new dependencies.
    p.user_git(&p.root, &["checkout", "-q", "-b", "merge-me"]);
    bump("2.33.0", "bump again");
    p.user_git(&p.root, &["checkout", "-q", "newdeps"]);
    let out = p.user_git(&p.root, &["merge", "--no-edit", "merge-me"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("dependencies of app changed"));
    wait_for("the prebuild after merge", Duration::from_secs(120), || {
        built_records(&state).len() == 3
    });

    // An amend that changes them (post-rewrite).
    p.write("deps.lock", &format!("requests==2.34.0\n# {}\n", p.name));
    let out = p.user_git(&p.root, &["commit", "-qa", "--amend", "--no-edit"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("dependencies of app changed"));
    wait_for("the prebuild after amend", Duration::from_secs(120), || {
        built_records(&state).len() == 4
    });

    // Nothing changed: the hook says nothing.
    let out = p.user_git(&p.root, &["checkout", "-q", "-b", "same"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The dependency stage's steps in a build log: (step, CACHED).
fn dependency_steps(log_path: &Path) -> Vec<(String, bool)> {
    let log = std::fs::read_to_string(log_path).unwrap();
    common::steps(&log)
        .into_iter()
        .filter(|(name, _)| name.contains("deps.lock") || name.contains("/cache/deps"))
        .collect()
}

/// A dependency change is built once: the workspace's image runs the dependency stage, and the
/// dependency image that follows finds every step CACHED (each layer already registered, so it
/// exports nothing), for the first build and for a change committed later.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn the_dependency_image_comes_from_the_workspace_build_cache() {
    engine();
    let p = project();
    p.ok(&["init"]);
    let main_tag = format!("{}-app", compose_project(&p.root));
    let workspace_log = p
        .state
        .join("logs")
        .join(format!("{}-app-workspace.log", compose_project(&p.root)));
    let mut previous = String::new();
    for round in 0..2 {
        if round == 1 {
            p.write("deps.lock", &format!("requests==2.33.0\n# {}\n", p.name));
            p.user_git(&p.root, &["commit", "-qam", "bump"]);
        }
        wait_for(
            "the workspace and dependency images",
            Duration::from_secs(120),
            || built_records(&p.state).len() == round + 1,
        );
        let record = built_records(&p.state)
            .into_iter()
            .find(|r| r["fingerprint"] != previous.as_str())
            .unwrap();
        let fp = record["fingerprint"].as_str().unwrap().to_string();
        wait_for(
            "the workspace image of the change",
            Duration::from_secs(60),
            || {
                inspect(
                    &main_tag,
                    "{{index .Config.Labels \"dev.dockwarm.fingerprint\"}}",
                ) == Some(fp.clone())
            },
        );
        previous = fp;

        let built_there = dependency_steps(&workspace_log);
        assert_eq!(built_there.len(), 2, "{built_there:?}");
        assert!(
            built_there.iter().all(|(_, cached)| !cached),
            "round {round}: the workspace build ran the dependency stage: {built_there:?}"
        );
        let deps_log = PathBuf::from(record["log"].as_str().unwrap());
        let from_cache = dependency_steps(&deps_log);
        assert_eq!(from_cache.len(), 2, "{from_cache:?}");
        assert!(
            from_cache.iter().all(|(_, cached)| *cached),
            "round {round}: the dependency image came from the workspace build's cache: {from_cache:?}"
        );
        let deps_tag = record["tag"].as_str().unwrap();
        let deps_layers = layers(deps_tag);
        assert_eq!(&layers(&main_tag)[..deps_layers.len()], &deps_layers[..]);
    }
}

/// A gate on the host's loopback that a build step polls with `wget`: closed (503) until
/// opened. Returns the port, whether a request has arrived, and the switch that opens it.
fn gate() -> (
    u16,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (asked, open) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (a, o) = (asked.clone(), open.clone());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            a.store(true, Ordering::SeqCst);
            let reply = if o.load(Ordering::SeqCst) {
                "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\ngo"
            } else {
                "HTTP/1.0 503 Wait\r\nContent-Length: 0\r\n\r\n"
            };
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    (port, asked, open)
}

/// The dependency image is built after the workspace's image, from the context as it is then:
/// when the dependency inputs changed meanwhile, the old fingerprint's dependency image is not
/// built from the new inputs; the change gets its own build.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn inputs_changed_during_the_workspace_build_are_left_to_the_next_build() {
    engine();
    use std::sync::atomic::Ordering;
    let (port, asked, open) = gate();
    let p = project();
    p.write(
        "Dockerfile",
        &DOCKERFILE.replace(
            "COPY . .\n",
            &format!(
                "COPY . .\nRUN until wget -q -O- http://127.0.0.1:{port}/ >/dev/null; do sleep 1; done\n"
            ),
        ),
    );
    p.write(
        "compose.yaml",
        "services:\n  app:\n    build:\n      context: .\n      network: host\n",
    );
    common::git(&p.root, &["commit", "-qam", "gate"]);
    let before = p.json(&["fingerprint"])[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    p.ok(&["init"]);
    wait_for(
        "the workspace build to reach the gate",
        Duration::from_secs(120),
        || asked.load(Ordering::SeqCst),
    );
    p.write("deps.lock", &format!("requests==2.33.0\n# {}\n", p.name));
    let after = p.json(&["fingerprint"])[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(before, after);
    open.store(true, Ordering::SeqCst);

    wait_for("the build of the change", Duration::from_secs(120), || {
        !built_records(&p.state).is_empty()
    });
    let records = built_records(&p.state);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["fingerprint"], after.as_str());
    let old_tag = format!("dockwarm/{}-app-deps:{}", p.name, &before[..12]);
    assert!(
        inspect(&old_tag, "{{.Id}}").is_none(),
        "no dependency image for the fingerprint whose inputs are gone"
    );
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn hooks_never_fail_git_on_a_broken_config_or_a_stopped_engine() {
    engine();
    let p = project();
    p.ok(&["hooks", "install"]);

    // An engine that takes connections and never answers: the hook never waits for it. A
    // hook that did would be stopped by its watchdog (3 s), whose line says so.
    let hung = p.tmp.path().join("hung.sock");
    let _hung = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    let bogus = format!("unix://{}", hung.display());
    p.write("deps.lock", "changed\n");
    common::git(&p.root, &["commit", "-qam", "change"]);
    let out = Command::new("git")
        .args(["checkout", "-q", "-b", "while-down"])
        .current_dir(&p.root)
        .envs(common::git_env())
        .env("DOCKWARM_STATE_DIR", &p.state)
        .env("PATH", path_env())
        .env("DOCKER_HOST", &bogus)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("took over"), "the hook waited: {stderr}");
    assert!(stderr.lines().count() <= 1, "{stderr}");

    // A broken dockwarm.toml: one warning line, git succeeds.
    p.write("dockwarm.toml", "[project\nname = 1\n");
    let out = p.user_git(&p.root, &["checkout", "-q", "-b", "broken"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("dockwarm.toml:1:"), "{stderr}");
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn archive_removes_the_workspace_tags_now_or_when_the_engine_is_back() {
    engine();
    let p = project();
    p.ok(&["init"]);
    let cp = compose_project(&p.root);
    let tags = [format!("{cp}-app"), format!("{cp}_app")];
    // The workspace image comes first; the dependency image right after, from cache; then the
    // job ends (an archive before that is "meanwhile": the job itself removes its new tags).
    wait_for(
        "the workspace and dependency images, and the job's end",
        Duration::from_secs(120),
        || {
            tags.iter().all(|t| inspect(t, "{{.Id}}").is_some())
                && built_records(&p.state).len() == 1
                && daemon_idle_after(&p, 1)
        },
    );
    let deps_tag = built_records(&p.state)[0]["tag"]
        .as_str()
        .unwrap()
        .to_string();

    // Archive while the engine is unreachable: recorded, registration gone, tags still there.
    let bogus = format!("unix://{}/no.sock", p.tmp.path().display());
    let out = Command::new(env!("CARGO_BIN_EXE_dockwarm"))
        .arg("archive")
        .current_dir(&p.root)
        .env("DOCKWARM_STATE_DIR", &p.state)
        .env("DOCKER_HOST", &bogus)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("engine unreachable"), "{text}");
    assert!(tags.iter().all(|t| inspect(t, "{{.Id}}").is_some()));
    assert_eq!(
        std::fs::read_dir(p.state.join("pending")).unwrap().count(),
        1
    );
    assert_eq!(
        std::fs::read_dir(p.state.join("workspaces"))
            .unwrap()
            .count(),
        0
    );

    // The next dockwarm that reaches the engine finishes the job, and keeps shared things.
    let out = p.dockwarm(&["volumes", "ls"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("removed 2 image tag(s) left by earlier archives"));
    assert!(tags.iter().all(|t| inspect(t, "{{.Id}}").is_none()));
    assert!(
        inspect(&deps_tag, "{{.Id}}").is_some(),
        "the shared dependency image stays"
    );
    assert_eq!(
        std::fs::read_dir(p.state.join("pending")).unwrap().count(),
        0
    );

    // A tag that a user's image holds is never touched by archive.
    let user_tag = format!("{cp}-app");
    common::sh(Command::new("docker").args(["tag", common::BUSYBOX, &user_tag]));
    p.ok(&["init"]);
    let out = p.ok(&["archive"]);
    assert!(
        out.contains("removed 0 image tag(s)") || !out.contains(&user_tag),
        "{out}"
    );
    assert!(
        inspect(&user_tag, "{{.Id}}").is_some(),
        "the user's image keeps its name"
    );
    let _ = Command::new("docker").args(["rmi", &user_tag]).output();
}

/// A hook that hangs (here: a FIFO where dockwarm.toml should be: reading it blocks, as a file
/// on a stuck network filesystem would) stops itself and lets git finish.
#[test]
fn a_hanging_hook_stops_itself_and_git_goes_on() {
    let p = Project::new(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY deps.lock ./\nRUN install\nCOPY . .\n",
        ),
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
        ("deps.lock", "x\n"),
    ]);
    p.ok(&["hooks", "install"]);
    let fifo = p.root.join("dockwarm.toml");
    common::sh(Command::new("mkfifo").arg(&fifo));
    let started = Instant::now();
    let out = Command::new("git")
        .args(["checkout", "-q", "-b", "hangs"])
        .current_dir(&p.root)
        .envs(common::git_env())
        .env("DOCKWARM_STATE_DIR", &p.state)
        .env("PATH", path_env())
        .env("DOCKWARM_HOOK_TIMEOUT", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // This times the watchdog itself (DOCKWARM_HOOK_TIMEOUT=1): generous, as a loaded machine
    // delays processes by seconds; without it git waits on the FIFO for ever.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("took over 1 s"), "{stderr}");
}

/// BuildKit's cache pruned (or evicted by its GC, cache mounts first): a workspace whose sources
/// differ still builds on the prebuilt dependency layers, through the dependency image's inline
/// cache. Ignored by default because it prunes the engine's whole build cache, which would
/// disturb tests running beside it; `scripts/test.sh` runs it alone afterwards.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
#[ignore = "prunes the engine's build cache; run alone (scripts/test.sh does)"]
fn a_workspace_builds_on_the_dependency_image_after_builder_prune() {
    engine();
    let p = project();
    p.ok(&["init"]);
    let main_tag = format!("{}-app", compose_project(&p.root));
    wait_for(
        "the main workspace and dependency images",
        Duration::from_secs(120),
        || inspect(&main_tag, "{{.Id}}").is_some() && built_records(&p.state).len() == 1,
    );
    let deps_tag = built_records(&p.state)[0]["tag"]
        .as_str()
        .unwrap()
        .to_string();

    common::sh(Command::new("docker").args(["builder", "prune", "-af"]));
    let dir = p.tmp.path().join(format!("{}-after-prune", p.name));
    p.user_git(
        &p.root,
        &[
            "worktree",
            "add",
            "-q",
            dir.to_str().unwrap(),
            "-b",
            "after-prune",
        ],
    );
    std::fs::write(dir.join("src/main.sh"), "echo other sources\n").unwrap();
    let out = p.dockwarm_in(&dir, &["init"]);
    assert!(out.status.success());
    let tag = format!("{}-app", compose_project(&dir));
    wait_for("the new workspace image", Duration::from_secs(120), || {
        inspect(&tag, "{{.Id}}").is_some()
    });
    let deps_layers = layers(&deps_tag);
    assert_eq!(
        &layers(&tag)[..deps_layers.len()],
        &deps_layers[..],
        "the dependency layers were reused, not rebuilt"
    );
    assert_ne!(
        inspect(&tag, "{{.Id}}"),
        inspect(&main_tag, "{{.Id}}"),
        "other sources, another image"
    );
}
