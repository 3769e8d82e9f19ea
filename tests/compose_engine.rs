//! The compose model in use: a target set by an override file is the one prebuilt (the user's
//! `docker compose build` finds it CACHED), compose's own refusals reach the user, and the
//! hooks' path starts no compose process.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use dockwarm::compose::{self, Options, Reader};
use dockwarm::state::State;

use crate::common::{busybox, compose_build, engine, steps, Project};

/// Two targets with different dependency stages: `prod` installs deps.lock, `dev`
/// installs deps-dev.lock. Only the override file says `dev`.
const DOCKERFILE: &str = r#"ARG BASE=dockwarm-test/busybox:latest
FROM ${BASE} AS base
WORKDIR /app

FROM base AS deps
COPY deps.lock ./
RUN --mount=type=cache,target=/cache/deps sh -c 'cp deps.lock /cache/deps/ && date > /app/installed'

FROM deps AS prod
COPY . .

FROM base AS devdeps
COPY deps-dev.lock ./
RUN --mount=type=cache,target=/cache/devdeps sh -c 'cp deps-dev.lock /cache/devdeps/ && date > /app/dev-installed'

FROM devdeps AS dev
COPY . .
"#;

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn override_target_prebuild_is_cached_for_the_user() {
    engine();
    busybox();
    let p = Project::new(&[
        ("Dockerfile", DOCKERFILE),
        (
            "compose.yaml",
            "services:\n  app:\n    build:\n      context: .\n      target: prod\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  app:\n    build:\n      target: dev\n",
        ),
        ("src/main.sh", "echo hi\n"),
    ]);
    // Unique per run, so a CACHED step can only come from this test's prebuild.
    p.write("deps.lock", &format!("prod\n# {}\n", p.name));
    p.write("deps-dev.lock", &format!("dev\n# {}\n", p.name));

    let config = p.json(&["config"]);
    let image = &config["images"][0];
    assert_eq!(image["target"]["value"], "dev", "{config}");
    assert_eq!(
        image["target"]["from"], "compose.override.yaml services.app.build.target",
        "{config}"
    );

    let out = p.json(&["prebuild"]);
    assert_eq!(out[0]["status"], "built", "{out}");

    let log = compose_build(&p.root);
    let deps: Vec<(String, bool)> = steps(&log)
        .into_iter()
        .filter(|(name, _)| name.contains("deps-dev.lock") || name.contains("/cache/devdeps"))
        .collect();
    assert_eq!(deps.len(), 2, "the dev dependency steps in:\n{log}");
    assert!(
        deps.iter().all(|(_, cached)| *cached),
        "not all CACHED: {deps:?}\n{log}"
    );
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn compose_v2() -> bool {
    let ok = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var("DOCKWARM_REQUIRE_ENGINE").as_deref() != Ok("1"),
        "DOCKWARM_REQUIRE_ENGINE=1 but `docker compose version` fails"
    );
    ok
}

#[test]
fn a_compose_file_compose_rejects_gives_composes_message_and_exit_2() {
    if !compose_v2() {
        return;
    }
    let p = Project::new(&[("Dockerfile", "FROM scratch\n")]);
    let cases = [
        // A YAML error in the override: compose's words, and the file named.
        (
            "compose.yaml",
            "services:\n  app:\n    build: .\n",
            "compose.override.yaml",
            "services:\n  app:\n    build: [\n",
            ": yaml: line 3: did not find expected node content",
        ),
        // A schema error: compose names the file itself.
        (
            "compose.yaml",
            "services:\n  app:\n    build:\n      context: .\n      target: [1, 2]\n",
            "compose.override.yaml",
            "services: {}\n",
            "services.app.build.target must be a string",
        ),
    ];
    for (base, base_text, over, over_text, want) in cases {
        p.write(base, base_text);
        p.write(over, over_text);
        let out = p.dockwarm(&["config"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(want), "{want:?} in: {err}");
        // The file is named, with where to edit.
        let named = if over_text.contains('[') {
            "compose.override.yaml:4:"
        } else {
            "compose.yaml"
        };
        assert!(err.contains(named), "{named:?} in: {err}");
        assert!(err.contains("compose"), "{err}");
    }
    // The own reader names file, line and column itself.
    p.write("compose.yaml", "services:\n  app:\n    build: .\n");
    p.write("compose.override.yaml", "services:\n  app:\n    build: [\n");
    let out = p.dockwarm_env(&p.root, &["config"], &[("DOCKWARM_COMPOSE", "builtin")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("compose.override.yaml:4:"), "{err}");
}

/// A stand-in for `docker` that notes each call, then runs the real one.
fn counting_docker(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let calls = dir.join("docker-calls");
    let script = dir.join("docker");
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v docker"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            real.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, calls)
}

#[test]
fn the_hooks_path_starts_no_compose_process() {
    if !compose_v2() {
        return;
    }
    let p = Project::new(&[
        ("Dockerfile", "FROM scratch\n"),
        (
            "compose.yaml",
            "services:\n  app:\n    build:\n      context: .\n      target: prod\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  app:\n    build:\n      target: dev\n",
        ),
    ]);
    let (docker, calls) = counting_docker(p.tmp.path());
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.remove("COMPOSE_PROJECT_NAME");
    env.insert("DOCKWARM_DOCKER".into(), docker.display().to_string());
    let state = State::at(&p.state);
    let count = || {
        std::fs::read_to_string(&calls)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let load = |spawn: bool| {
        let opts = Options {
            env: &env,
            spawn,
            state: Some(&state),
        };
        compose::load(&p.root, &opts).unwrap().unwrap()
    };
    let target = |m: &compose::Model| m.services[0].build.as_ref().unwrap().target.clone();

    // No cached answer yet: the hooks' path reads the project itself.
    let m = load(false);
    assert_eq!(
        (m.reader, target(&m).as_deref()),
        (Reader::Builtin, Some("dev"))
    );
    assert_eq!(count(), 0);
    // A command may ask compose, once.
    let m = load(true);
    assert_eq!(
        (m.reader, target(&m).as_deref()),
        (Reader::ComposeV2, Some("dev"))
    );
    assert_eq!(count(), 1);
    // Then the hooks' path finds compose's answer without asking again.
    let m = load(false);
    assert_eq!(m.reader, Reader::ComposeV2Cached);
    assert_eq!(load(true).reader, Reader::ComposeV2Cached);
    assert_eq!(count(), 1);
    // A change to the override file is a new question.
    p.write(
        "compose.override.yaml",
        "services:\n  app:\n    build:\n      target: prod\n",
    );
    let m = load(false);
    assert_eq!(
        (m.reader, target(&m).as_deref()),
        (Reader::Builtin, Some("prod"))
    );
    assert_eq!(load(true).reader, Reader::ComposeV2);
    assert_eq!(count(), 2);
    // So is a COMPOSE_* variable.
    env.insert("COMPOSE_PROFILES".into(), "x".into());
    let opts = Options {
        env: &env,
        spawn: false,
        state: Some(&state),
    };
    assert_eq!(
        compose::load(&p.root, &opts).unwrap().unwrap().reader,
        Reader::Builtin
    );
}

/// A dependency stage written in compose's `dockerfile_inline`.
const INLINE_COMPOSE: &str = r#"services:
  app:
    build:
      context: .
      dockerfile_inline: |
        ARG BASE=dockwarm-test/busybox:latest
        FROM $${BASE}
        WORKDIR /app
        COPY deps.lock ./
        RUN --mount=type=cache,target=/cache/inline sh -c 'cp deps.lock /cache/inline/ && date > /app/installed'
        COPY . .
"#;

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn an_inline_dockerfile_is_prebuilt_and_cached_for_the_user() {
    engine();
    busybox();
    let p = Project::new(&[("compose.yaml", INLINE_COMPOSE), ("src/a.sh", "echo\n")]);
    p.write("deps.lock", &format!("inline\n# {}\n", p.name));
    let config = p.json(&["config"]);
    let image = &config["images"][0];
    assert!(
        image["dockerfile_inline"]["value"]
            .as_str()
            .is_some_and(|t| t.contains("COPY deps.lock")),
        "{config}"
    );
    let out = p.json(&["prebuild", "--backend", "buildx"]);
    assert_eq!(out[0]["status"], "built", "{out}");
    let log = compose_build(&p.root);
    let deps: Vec<(String, bool)> = steps(&log)
        .into_iter()
        .filter(|(name, _)| name.contains("deps.lock") || name.contains("/cache/inline"))
        .collect();
    assert_eq!(deps.len(), 2, "the dependency steps in:\n{log}");
    assert!(
        deps.iter().all(|(_, cached)| *cached),
        "not all CACHED: {deps:?}\n{log}"
    );
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn files_the_dependency_stage_reads_from_an_additional_context_are_inputs() {
    engine();
    busybox();
    let p = Project::new(&[
        (
            "compose.yaml",
            "services:\n  app:\n    build:\n      context: ./app\n      additional_contexts:\n        shared: ./libs/shared\n        remote: https://github.com/acme/tools.git\n",
        ),
        (
            "app/Dockerfile",
            "FROM dockwarm-test/busybox:latest\nCOPY app.lock ./\nCOPY --from=shared deps.lock ./\nRUN cat app.lock deps.lock\nCOPY . .\n",
        ),
        ("app/app.lock", "app\n"),
        ("libs/shared/deps.lock", "one\n"),
        ("libs/shared/unrelated.txt", "x\n"),
    ]);
    let fingerprint = || {
        let v = p.json(&["fingerprint"]);
        let inputs: Vec<String> = v[0]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["path"].as_str().unwrap().to_string())
            .collect();
        (v[0]["fingerprint"].as_str().unwrap().to_string(), inputs)
    };
    let (before, inputs) = fingerprint();
    assert_eq!(inputs, vec!["app/app.lock", "libs/shared/deps.lock"]);
    p.write("libs/shared/unrelated.txt", "y\n");
    assert_eq!(fingerprint().0, before, "a file the stage does not read");
    p.write("libs/shared/deps.lock", "two\n");
    assert_ne!(fingerprint().0, before, "the lockfile in the named context");
    // The remote one is listed, not fingerprinted.
    let config = p.json(&["config"]);
    let contexts = &config["images"][0]["additional_contexts"];
    assert_eq!(contexts["shared"]["value"], "libs/shared", "{config}");
    assert!(contexts.get("remote").is_none(), "{config}");
}
