//! The core against the real engine and the real clients: fingerprints, dependency-stage
//! prebuilds through both backends, and the user's own builds finding them CACHED.

use crate::common;

use std::process::Command;

use crate::common::{busybox, compose_build, engine, sh, steps, Project};

/// A single-stage Dockerfile in the seed's style: lockfile, install with a cache mount, source.
const SINGLE: &str = r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${BASE}
WORKDIR /app
COPY deps.lock ./
RUN --mount=type=cache,target=/cache/deps \
    sh -c 'if grep -q fail deps.lock; then echo "install failed" >&2; exit 7; fi; cp deps.lock /cache/deps/ && date > /app/installed'
COPY . .
RUN echo built > /app/done
"#;

/// The multi-stage form: the dependency stage is the named stage `deps`.
const MULTI: &str = r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${BASE} AS base
WORKDIR /app

FROM base AS deps
COPY deps.lock ./
RUN --mount=type=cache,target=/cache/deps \
    sh -c 'if grep -q fail deps.lock; then exit 7; fi; cp deps.lock /cache/deps/ && date > /app/installed'

FROM deps AS runtime
COPY . .
CMD ["cat", "/app/installed"]
"#;

const COMPOSE: &str =
    "services:\n  app:\n    build:\n      context: .\n      args:\n        EXTRA: one\n";

fn project(dockerfile: &str) -> Project {
    busybox();
    common::project()
        .dockerfile(dockerfile)
        .compose(COMPOSE)
        .file("src/main.sh", "echo hi\n")
        // Unique per test run, so a CACHED step can only come from this test's prebuild.
        .file_naming("deps.lock", |name| format!("requests==2.32.3\n# {name}\n"))
        .build()
}

fn fingerprint(p: &Project, dir: &std::path::Path) -> String {
    let out = p.dockwarm_in(dir, &["fingerprint", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["fingerprint"].as_str().unwrap().to_string()
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn fingerprint_is_the_same_across_worktrees_and_changes_with_each_input() {
    engine();
    let p = project(SINGLE);
    let base = fingerprint(&p, &p.root);
    assert_eq!(base.len(), 64);

    // Same inputs at another path (a linked worktree): same fingerprint.
    let other = p.tmp.path().join("other worktree");
    common::git(
        &p.root,
        &[
            "worktree",
            "add",
            "-q",
            other.to_str().unwrap(),
            "-b",
            "other",
        ],
    );
    assert_eq!(fingerprint(&p, &other), base);

    // The source (copied after the install) is not an input.
    p.write("src/main.sh", "echo changed\n");
    assert_eq!(fingerprint(&p, &p.root), base);

    // An input file changed.
    p.write("deps.lock", &format!("requests==2.32.4\n# {}\n", p.name));
    let changed_input = fingerprint(&p, &p.root);
    assert_ne!(changed_input, base);

    // A build arg changed.
    p.write("compose.yaml", &COMPOSE.replace("EXTRA: one", "EXTRA: two"));
    let changed_arg = fingerprint(&p, &p.root);
    assert_ne!(changed_arg, changed_input);

    // The base image's ID changed (same reference, re-imported with other content).
    let base_tag = format!("dockwarm-test/{}-base:latest", p.name);
    common::import_busybox_with(&base_tag, "one");
    let first_id = image_id(&base_tag);
    p.write(
        "compose.yaml",
        &format!("{COMPOSE}        BASE: {base_tag}\n"),
    );
    let with_base = fingerprint(&p, &p.root);
    assert_eq!(
        fingerprint(&p, &p.root),
        with_base,
        "stable while nothing changes"
    );
    common::import_busybox_with(&base_tag, "two");
    let rebased = fingerprint(&p, &p.root);
    assert_ne!(rebased, with_base);
    let _ = Command::new("docker")
        .args(["rmi", "-f", &base_tag, &first_id])
        .output();
}

fn image_id(reference: &str) -> String {
    let out =
        sh(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", reference]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The dependency stage's COPY and RUN are both in the user's build log, and both CACHED.
fn assert_dependency_steps_cached(log: &str) {
    let deps: Vec<(String, bool)> = steps(log)
        .into_iter()
        .filter(|(name, _)| name.contains("deps.lock") || name.contains("/cache/deps"))
        .collect();
    assert_eq!(
        deps.len(),
        2,
        "expected the COPY and RUN of the dependency stage in:\n{log}"
    );
    assert!(
        deps.iter().all(|(_, cached)| *cached),
        "not all CACHED: {deps:?}\n{log}"
    );
}

/// After `dockwarm prebuild`, the user's own builds (compose v2, and `docker build` of the full
/// Dockerfile) run no step of the dependency stage; a second prebuild builds nothing.
fn prebuild_then_user_builds_are_cached(dockerfile: &str, backend: &str) {
    engine();
    let p = project(dockerfile);
    let out = p.json(&["prebuild", "--backend", backend]);
    assert_eq!(out[0]["status"], "built", "{out}");
    assert_eq!(out[0]["backend"], backend);
    let tag = out[0]["tag"].as_str().unwrap().to_string();
    let fp = out[0]["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(tag, format!("dockwarm/{}-app-deps:{}", p.name, &fp[..12]));

    let labels = sh(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &tag,
    ]));
    let labels: serde_json::Value = serde_json::from_slice(&labels.stdout).unwrap();
    assert_eq!(labels["dev.dockwarm.managed"], "true");
    assert_eq!(labels["dev.dockwarm.project"], p.name.as_str());
    assert_eq!(labels["dev.dockwarm.fingerprint"], fp.as_str());

    let again = p.json(&["prebuild", "--backend", backend]);
    assert_eq!(again[0]["status"], "already_built");
    assert_eq!(again[0]["fingerprint"], fp.as_str());

    // compose v2, as users on macOS run it.
    assert_dependency_steps_cached(&compose_build(&p.root));

    // The classic CLI with BuildKit, building the whole Dockerfile.
    let build = Command::new("/usr/bin/docker")
        .args([
            "build",
            "--progress=plain",
            "-t",
            &format!("{}-full", p.name),
            ".",
        ])
        .env("DOCKER_BUILDKIT", "1")
        .current_dir(&p.root)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&build.stderr).into_owned();
    assert!(build.status.success(), "docker build failed:\n{log}");
    assert_dependency_steps_cached(&log);
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn buildx_single_stage_prebuild_is_cached_for_the_user() {
    prebuild_then_user_builds_are_cached(SINGLE, "buildx");
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn buildx_multi_stage_prebuild_is_cached_for_the_user() {
    prebuild_then_user_builds_are_cached(MULTI, "buildx");
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn bollard_single_stage_prebuild_is_cached_for_the_user() {
    prebuild_then_user_builds_are_cached(SINGLE, "bollard");
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn bollard_multi_stage_prebuild_is_cached_for_the_user() {
    prebuild_then_user_builds_are_cached(MULTI, "bollard");
}

fn failed_build_names_the_step_and_keeps_the_last_good_image(backend: &str) {
    engine();
    let p = project(SINGLE);
    let good = p.json(&["prebuild", "--backend", backend]);
    let good_tag = good[0]["tag"].as_str().unwrap().to_string();

    p.write("deps.lock", &format!("fail\n# {}\n", p.name));
    let out = p.dockwarm(&["prebuild", "--backend", backend]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("dockwarm: image `app`: step `"),
        "{stderr}"
    );
    assert!(last.contains("RUN"), "the failing step is named: {stderr}");
    assert!(last.contains("full log: "), "{stderr}");
    assert!(
        stderr.lines().count() > 3,
        "the tail of the log is shown: {stderr}"
    );

    let still = Command::new("docker")
        .args(["image", "inspect", &good_tag])
        .output()
        .unwrap();
    assert!(still.status.success(), "the last good image stays tagged");
}

/// A compose `build.network: host` (to reach a package index on the host's loopback) is part of
/// the RUN steps' cache keys: the prebuild must build with it too.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_host_network_build_is_cached_for_the_user() {
    engine();
    let p = project(SINGLE);
    p.write(
        "compose.yaml",
        "services:\n  app:\n    build:\n      context: .\n      network: host\n",
    );
    let out = p.json(&["prebuild"]);
    assert_eq!(out[0]["status"], "built", "{out}");
    assert_dependency_steps_cached(&compose_build(&p.root));
}

#[test]
fn buildx_failed_build_is_reported() {
    failed_build_names_the_step_and_keeps_the_last_good_image("buildx");
}

#[test]
fn bollard_failed_build_is_reported() {
    failed_build_names_the_step_and_keeps_the_last_good_image("bollard");
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn auto_backend_uses_buildx_when_it_answers() {
    engine();
    let p = project(MULTI);
    let out = p.json(&["prebuild"]);
    assert_eq!(out[0]["backend"], "buildx");
}
