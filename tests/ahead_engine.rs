//! Warm before checkout (issue 14): a commit's fingerprint read from git's objects equals its
//! checkout's; a lockfile change fetched from a bare "origin" is prebuilt before any checkout,
//! and the user's `docker compose build` in a new worktree of it finds the dependency steps
//! CACHED; a fetch that changes no input builds nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    self, busybox, compose_build, engine, image_id, steps, wait_for, ComposeDown, Project,
};

/// A dependency stage that reads a lockfile, a wildcard under a directory, an executable
/// script, a symlink to a file in another directory, and skips what `.dockerignore` excludes.
const DOCKERFILE: &str = r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${BASE} AS deps
WORKDIR /app
COPY deps.lock install.sh extra.lock ./
COPY reqs/*.txt ./reqs/
RUN --mount=type=cache,target=/cache/deps sh -c './install.sh && date > /app/installed'

FROM deps AS runtime
COPY . .
"#;

/// The committed project: unique per run (its lockfile names it), so a CACHED step can only
/// come from this test's prebuild.
fn project() -> Project {
    busybox();
    common::project()
        .dockerfile(DOCKERFILE)
        .compose("services:\n  app:\n    build: .\n")
        // The hook is opt-in (it costs every checkout); the test covers it and, once it is
        // removed, the daemon's watch on the refs. Only the dependency stages ahead here; the
        // commit's whole image has its own test.
        .config("[ahead]\nhook = true\nfull = false\n")
        .file(".dockerignore", "reqs/ignored.txt\n")
        .executable(
            "install.sh",
            "#!/bin/sh\ncat deps.lock reqs/* > /app/deps\n",
        )
        .file("reqs/base.txt", "base==1\n")
        .file("locks/extra.lock", "extra==1\n")
        .symlink("extra.lock", "locks/extra.lock")
        .file("reqs/ignored.txt", "not an input\n")
        .file("src/main.sh", "echo hi\n")
        .file_naming("deps.lock", |name| format!("requests==2.32.3\n# {name}\n"))
        .build()
}

fn fingerprints(p: &Project, dir: &Path, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["fingerprint", "--json"];
    args.extend(extra);
    let out = p.dockwarm_in(dir, &args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["fingerprint"].as_str().unwrap().to_string(),
                r["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn image_exists(reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_commits_fingerprint_from_git_objects_equals_its_checkouts() {
    engine();
    let p = project();
    // HEAD, read from the objects, is the checkout's.
    let here = fingerprints(&p, &p.root, &[]);
    assert_eq!(fingerprints(&p, &p.root, &["--rev", "HEAD"]), here);

    // A branch never checked out here: a lockfile change, a new wildcard input, a script that
    // lost its executable bit.
    p.user_git(&p.root, &["checkout", "-q", "-b", "other"]);
    p.write("deps.lock", &format!("requests==2.32.4\n# {}\n", p.name));
    p.write("reqs/extra.txt", "extra==2\n");
    std::fs::set_permissions(
        p.root.join("install.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    p.user_git(&p.root, &["add", "-A"]);
    p.user_git(&p.root, &["commit", "-qm", "bump"]);
    p.user_git(&p.root, &["checkout", "-q", "main"]);
    let ahead = fingerprints(&p, &p.root, &["--rev", "other"]);
    assert_ne!(ahead, here);
    let wt = p.tmp.path().join(format!("{}-other", p.name));
    p.user_git(
        &p.root,
        &["worktree", "add", "-q", wt.to_str().unwrap(), "other"],
    );
    assert_eq!(fingerprints(&p, &wt, &[]), ahead);
    // The project name stays the main worktree's, as in a checkout.
    assert!(ahead[0]
        .1
        .starts_with(&format!("dockwarm/{}-app-deps:", p.name)));

    let bad = p.dockwarm(&["fingerprint", "--rev", "no-such-branch"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no-such-branch"));
    // A commit whose Dockerfile copies the source first: exit 2, the file named in the commit.
    p.user_git(&p.root, &["checkout", "-q", "-b", "broken"]);
    p.write(
        "Dockerfile",
        "FROM dockwarm-test/busybox:latest\nCOPY . .\nRUN true\n",
    );
    p.user_git(&p.root, &["commit", "-qam", "source first"]);
    let broken = String::from_utf8(p.user_git(&p.root, &["rev-parse", "HEAD"]).stdout).unwrap();
    p.user_git(&p.root, &["checkout", "-q", "main"]);
    let bad = p.dockwarm(&["fingerprint", "--rev", "broken"]);
    let said = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("{}:Dockerfile", &broken[..12])),
        "{said}"
    );
    let _ = p.dockwarm(&["daemon", "stop"]);
}

/// The daemon's own view: jobs started, and the ref records of `status --json`.
/// The user's own `docker compose build` in `wt` finds the three dependency steps CACHED.
#[track_caller]
fn assert_dependency_steps_cached(wt: &Path) {
    let log = compose_build(wt);
    let deps: Vec<(String, bool)> = steps(&log)
        .into_iter()
        .filter(|(name, _)| {
            name.contains("COPY deps.lock") || name.contains("reqs/*.txt") || name.contains("RUN")
        })
        .collect();
    assert_eq!(deps.len(), 3, "the dependency steps in:\n{log}");
    assert!(
        deps.iter().all(|(_, cached)| *cached),
        "not all CACHED: {deps:?}\n{log}"
    );
}

fn status(p: &Project, dir: &Path) -> serde_json::Value {
    let out = p.dockwarm_in(dir, &["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn ahead_of<'a>(s: &'a serde_json::Value, refname: &str) -> Option<&'a serde_json::Value> {
    s["ahead"].as_array()?.iter().find(|a| a["ref"] == refname)
}

fn idle(s: &serde_json::Value) -> bool {
    let d = &s["daemon"];
    d["running"].as_array().is_some_and(|a| a.is_empty())
        && d["queued"].as_array().is_some_and(|a| a.is_empty())
        && d["planning"].as_array().is_none_or(|a| a.is_empty())
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_fetched_lockfile_change_is_prebuilt_before_any_checkout() {
    engine();
    let p = project();
    let (theirs, ours) = origin_and_clones(&p);
    let out = p.dockwarm_in(&ours, &["init"]);
    assert!(out.status.success(), "init: {out:?}");
    wait_for("the first build", Duration::from_secs(180), || {
        idle(&status(&p, &ours))
            && ahead_of(&status(&p, &ours), "refs/remotes/origin/main").is_some()
    });
    let main_ref = ahead_of(&status(&p, &ours), "refs/remotes/origin/main")
        .cloned()
        .unwrap();
    assert_eq!(main_ref["why"], "default branch", "{main_ref}");

    // The teammate changes the lockfile and pushes.
    common::write_file(
        &theirs,
        "deps.lock",
        &format!("requests==2.33.0\n# {}\n", p.name),
    );
    p.user_git(&theirs, &["commit", "-qam", "bump requests"]);
    p.user_git(&theirs, &["push", "-q", "origin", "main"]);
    let pushed = String::from_utf8(p.user_git(&theirs, &["rev-parse", "HEAD"]).stdout).unwrap();
    let pushed = pushed.trim();

    // We only fetch: nothing is checked out.
    let head_before = p.user_git(&ours, &["rev-parse", "HEAD"]).stdout;
    p.user_git(&ours, &["fetch", "-q", "origin"]);
    let (_, tag) = fingerprints(&p, &ours, &["--rev", "origin/main"])
        .into_iter()
        .next()
        .unwrap();
    wait_for(
        &format!("{tag}, prebuilt ahead"),
        Duration::from_secs(180),
        || image_exists(&tag),
    );
    assert_eq!(
        p.user_git(&ours, &["rev-parse", "HEAD"]).stdout,
        head_before
    );
    let daemon_log = std::fs::read_to_string(p.state.join("logs/daemon.log")).unwrap();
    assert!(
        daemon_log.contains("refs/remotes/origin/main moved; looking ahead"),
        "the hook did not tell the daemon:\n{daemon_log}"
    );
    assert!(std::fs::read_to_string(ours.join("deps.lock"))
        .unwrap()
        .contains("2.32.3"));
    wait_for("the ahead record", Duration::from_secs(60), || {
        let s = status(&p, &ours);
        ahead_of(&s, "refs/remotes/origin/main")
            .is_some_and(|a| a["commit"] == pushed && a["images"][0]["state"] == "built")
    });

    // A new workspace on it, without dockwarm's hooks: the user's own build finds the
    // dependency steps CACHED.
    let wt = p.tmp.path().join(format!("{}-new", p.name));
    let _down = ComposeDown(vec![wt.clone()]);
    p.user_git(
        &ours,
        &[
            "-c",
            "core.hooksPath=/dev/null",
            "worktree",
            "add",
            "-q",
            "--detach",
            wt.to_str().unwrap(),
            "origin/main",
        ],
    );
    assert_dependency_steps_cached(&wt);

    // A fetch that changes no input builds nothing.
    let jobs_before = status(&p, &ours)["daemon"]["jobs_started"].as_u64();
    common::write_file(&theirs, "src/main.sh", "echo changed\n");
    p.user_git(&theirs, &["commit", "-qam", "source only"]);
    p.user_git(&theirs, &["push", "-q", "origin", "main"]);
    let source_only =
        String::from_utf8(p.user_git(&theirs, &["rev-parse", "HEAD"]).stdout).unwrap();
    p.user_git(&ours, &["fetch", "-q", "origin"]);
    wait_for(
        "the look at the new commit",
        Duration::from_secs(60),
        || {
            let s = status(&p, &ours);
            idle(&s)
                && ahead_of(&s, "refs/remotes/origin/main")
                    .is_some_and(|a| a["commit"] == source_only.trim())
        },
    );
    let s = status(&p, &ours);
    let rec = ahead_of(&s, "refs/remotes/origin/main").unwrap();
    assert_eq!(rec["images"][0]["state"], "warm", "{rec}");
    assert_eq!(s["daemon"]["jobs_started"].as_u64(), jobs_before, "{s}");

    // Local commits and branches: no look, no build.
    common::write_file(&ours, "notes.txt", "local\n");
    p.user_git(&ours, &["add", "notes.txt"]);
    p.user_git(&ours, &["commit", "-qm", "local"]);
    p.user_git(&ours, &["branch", "topic"]);
    let s2 = status(&p, &ours);
    assert_eq!(s2["daemon"]["jobs_started"].as_u64(), jobs_before, "{s2}");
    assert_eq!(s2["ahead"], s["ahead"]);

    // Without the hook (git before 2.28, husky), the daemon's watch on the refs (and, as a
    // backstop, its rescan) finds the fetch.
    std::fs::remove_file(ours.join(".git/hooks/reference-transaction")).unwrap();
    common::write_file(&theirs, "reqs/new.txt", "new==1\n");
    p.user_git(&theirs, &["add", "-A"]);
    p.user_git(&theirs, &["commit", "-qm", "new requirement"]);
    p.user_git(&theirs, &["push", "-q", "origin", "main"]);
    p.user_git(&ours, &["fetch", "-q", "origin"]);
    let (_, tag) = fingerprints(&p, &ours, &["--rev", "origin/main"])
        .into_iter()
        .next()
        .unwrap();
    wait_for(
        &format!("{tag}, prebuilt ahead without the hook"),
        Duration::from_secs(180),
        || image_exists(&tag),
    );
    let daemon_log = std::fs::read_to_string(p.state.join("logs/daemon.log")).unwrap();
    assert!(
        daemon_log.contains("refs written; looking ahead"),
        "the daemon's watch on the refs did not fire:\n{daemon_log}"
    );
    let _ = p.dockwarm_in(&ours, &["daemon", "stop"]);
}

/// A bare "origin" cloned from the project, a teammate's clone of it, and ours (named like
/// the project, so the test's cleanup finds every image by name): (theirs, ours).
fn origin_and_clones(p: &Project) -> (std::path::PathBuf, std::path::PathBuf) {
    let origin = p.tmp.path().join("origin.git");
    let o = origin.to_str().unwrap();
    p.user_git(
        p.tmp.path(),
        &["clone", "-q", "--bare", p.root.to_str().unwrap(), o],
    );
    let theirs = p.tmp.path().join("teammate");
    p.user_git(p.tmp.path(), &["clone", "-q", o, theirs.to_str().unwrap()]);
    let ours_parent = p.tmp.path().join("mine");
    std::fs::create_dir_all(&ours_parent).unwrap();
    let ours = ours_parent.join(&p.name);
    p.user_git(p.tmp.path(), &["clone", "-q", o, ours.to_str().unwrap()]);
    (theirs, ours)
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_fetched_commit_of_main_is_built_whole_and_a_new_workspace_on_it_only_tags_it() {
    engine();
    let p = project();
    // `.git` stays out of the context (each worktree's differs), as real projects do.
    p.write("dockwarm.toml", "");
    p.write(".dockerignore", "reqs/ignored.txt\n.git\n");
    common::git(&p.root, &["commit", "-qam", "defaults"]);
    let (theirs, ours) = origin_and_clones(&p);
    let out = p.dockwarm_in(&ours, &["init"]);
    assert!(out.status.success(), "init: {out:?}");
    let main = "refs/remotes/origin/main";
    wait_for("the first build", Duration::from_secs(180), || {
        let s = status(&p, &ours);
        idle(&s) && ahead_of(&s, main).is_some()
    });

    // A source change lands on origin's main and is fetched: the daemon builds the commit's
    // whole image from git's objects, under its own tag.
    let push = |text: &str| {
        common::write_file(&theirs, "src/main.sh", text);
        p.user_git(&theirs, &["commit", "-qam", "a source change"]);
        p.user_git(&theirs, &["push", "-q", "origin", "main"]);
        p.user_git(&ours, &["fetch", "-q", "origin"]);
        let head = String::from_utf8(p.user_git(&theirs, &["rev-parse", "HEAD"]).stdout).unwrap();
        let head = head.trim().to_string();
        wait_for("the commit's whole image", Duration::from_secs(180), || {
            let s = status(&p, &ours);
            ahead_of(&s, main).is_some_and(|a| {
                a["commit"] == head.as_str() && a["images"][0]["workspace"] == "built"
            })
        });
    };
    push("echo changed on main\n");
    let ahead_tag = format!("dockwarm/{}-app-ahead:remotes-origin-main", p.name);
    let ahead_id = image_id(&ahead_tag).expect("the ahead image");

    // A new workspace on that commit: its compose name is that very image (tagged, not built).
    let wt = p.tmp.path().join(format!("{}-new", p.name));
    let _down = ComposeDown(vec![wt.clone()]);
    p.user_git(
        &ours,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "agent",
            wt.to_str().unwrap(),
            "origin/main",
        ],
    );
    let out = p.dockwarm_in(&wt, &["init"]);
    assert!(out.status.success(), "init: {out:?}");
    let compose_name = format!("{}-new-app", p.name);
    wait_for(&compose_name, Duration::from_secs(120), || {
        image_id(&compose_name).is_some()
    });
    let labels = |r: &str| {
        String::from_utf8_lossy(
            &Command::new("docker")
                .args(["image", "inspect", "--format", "{{json .Config.Labels}}", r])
                .output()
                .unwrap()
                .stdout,
        )
        .to_string()
    };
    assert_eq!(
        image_id(&compose_name),
        Some(ahead_id.clone()),
        "\nahead: {}\nworkspace: {}",
        labels(&ahead_tag),
        labels(&compose_name)
    );

    // The next commit replaces the tag; the workspace's names keep the old image.
    push("echo changed again\n");
    let next_id = image_id(&ahead_tag).expect("the next ahead image");
    assert_ne!(next_id, ahead_id);
    assert_eq!(image_id(&compose_name), Some(ahead_id));

    // A third commit: the second image, which nothing else names, is removed.
    push("echo third\n");
    assert_eq!(image_id(&next_id), None, "the replaced ahead image stayed");
    let _ = p.dockwarm_in(&ours, &["daemon", "stop"]);
}

/// `cmd` run by `sh` under `umask 002` (group-writable files, as on distributions with user
/// private groups): a checkout then writes 0664/0775, and so must the commit's prebuild.
fn under_umask_002(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 002 && exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args);
    cmd
}

/// The bollard backend's own tar of the commit's files, under another umask: the user's
/// build of a later checkout still finds every dependency step CACHED.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_commit_prebuilt_through_bollard_under_umask_002_is_cached_for_its_checkout() {
    engine();
    let p = project();
    p.user_git(&p.root, &["checkout", "-q", "-b", "next"]);
    p.write("deps.lock", &format!("requests==2.40.0\n# {}\n", p.name));
    p.user_git(&p.root, &["commit", "-qam", "bump"]);
    p.user_git(&p.root, &["checkout", "-q", "main"]);

    let out = under_umask_002(
        env!("CARGO_BIN_EXE_dockwarm"),
        &[
            "prebuild",
            "--rev",
            "next",
            "--backend",
            "bollard",
            "--json",
        ],
    )
    .current_dir(&p.root)
    .env("DOCKWARM_STATE_DIR", &p.state)
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results[0]["status"], "built", "{results}");
    assert_eq!(results[0]["backend"], "bollard", "{results}");

    let wt = p.tmp.path().join(format!("{}-next", p.name));
    let _down = ComposeDown(vec![wt.clone()]);
    let add = under_umask_002(
        "git",
        &["worktree", "add", "-q", wt.to_str().unwrap(), "next"],
    )
    .current_dir(&p.root)
    .envs(common::git_env())
    .output()
    .unwrap();
    assert!(add.status.success(), "{add:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(wt.join("deps.lock"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o664, "the checkout follows the umask");
    assert_dependency_steps_cached(&wt);
}
