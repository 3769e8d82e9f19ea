//! dockwarm's compose model against `docker compose config --format json`, field by field,
//! on a corpus of projects (tests/fixtures/compose/<project>/): real-world shapes written
//! after public projects, and one probe per compose feature dockwarm must read.
//!
//! Each project is read three ways: through compose v2 (dockwarm's default, then its cached
//! answer), by dockwarm's own reader (`DOCKWARM_COMPOSE=builtin`), and with compose v2 hidden
//! (`DOCKWARM_DOCKER` naming no program). Every way must agree with compose on every field
//! a build depends on. A fixture's `test.env` holds the process environment of the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dockwarm::compose::{self, Context, Dockerfile, Model, Options, Reader};
use dockwarm::state::State;
use serde_json::Value;

/// The corpus: (fixture, what it is).
const PROJECTS: &[(&str, &str)] = &[
    // Probes, one per feature.
    (
        "override-target",
        "compose.override.yaml sets target: dev and adds an arg",
    ),
    (
        "override-adds-build",
        "compose.override.yml adds build: to an image-only service",
    ),
    (
        "legacy-names",
        "docker-compose.yml + docker-compose.override.yml, version:, list args",
    ),
    (
        "compose-file-env",
        "COMPOSE_FILE from the environment; the override file is not read",
    ),
    (
        "compose-file-dotenv",
        "COMPOSE_FILE and COMPOSE_PATH_SEPARATOR from .env, files in docker/",
    ),
    (
        "merge-keys",
        "x- extension fields merged with <<: *anchor, nested merges",
    ),
    ("merge-key-list", "<<: [*a, *b], the first listed wins"),
    (
        "include-simple",
        "include: of a sub-project, paths relative to it",
    ),
    (
        "include-project-dir",
        "include: with project_directory and env_file",
    ),
    (
        "extends-same-file",
        "extends: a service of the same file, string and mapping forms",
    ),
    (
        "extends-other-file",
        "extends: file:, paths relative to the other file",
    ),
    (
        "dotenv-rules",
        ".env comments, quotes, escapes, expansion, yaml style, process env wins",
    ),
    (
        "profiles-inactive",
        "services of inactive profiles are not built",
    ),
    ("profiles-active", "COMPOSE_PROFILES from the environment"),
    (
        "profiles-dotenv",
        "COMPOSE_PROFILES from .env, two profiles",
    ),
    (
        "dockerfile-inline",
        "dockerfile_inline, and an override replacing a Dockerfile by one",
    ),
    (
        "additional-contexts",
        "additional_contexts in mapping and list form, local and remote",
    ),
    ("remote-context", "git and URL build contexts stay URLs"),
    (
        "project-name-dotenv",
        "COMPOSE_PROJECT_NAME in .env over name:",
    ),
    ("project-name-file", "name: normalised"),
    (
        "args-forms",
        "args as a list and a mapping, from the environment, unset ones dropped",
    ),
    (
        "interpolation",
        "defaults, nested defaults, :+, $$, bare $VAR in build fields",
    ),
    ("reset-override", "!reset and !override in an override file"),
    ("build-network", "build.network"),
    (
        "yaml-scalars",
        "plain numbers, octal, dates and booleans as go-yaml reads them; a quoted numeric service",
    ),
    (
        "multi-document",
        "two YAML documents in one file, merged like two files",
    ),
    (
        "parent-context",
        "COMPOSE_FILE in a subdirectory, context ..",
    ),
    // Real-world shapes.
    (
        "cookiecutter-django",
        "cookiecutter-django's local.yml: &django anchor, COMPOSE_FILE",
    ),
    (
        "sentry-self-hosted",
        "getsentry/self-hosted: 21 built services from one x- anchor",
    ),
    (
        "mastodon",
        "mastodon/mastodon: web, streaming, sidekiq sharing builds",
    ),
    (
        "laravel-sail",
        "laravel/sail: context in vendor/, args from .env",
    ),
    (
        "posthog-dev",
        "PostHog/posthog: docker-compose.dev-full.yml extending a base file",
    ),
    (
        "immich-dev",
        "immich-app/immich: docker/docker-compose.dev.yml through COMPOSE_FILE",
    ),
    (
        "node-monorepo",
        "a turborepo: Dockerfiles in apps/, context at the root, quoted .env",
    ),
    (
        "go-microservices",
        "docker/awesome-compose style: include with a path list, own .env",
    ),
    (
        "nextjs-app",
        "a Next.js app: required variable, e2e profile, dev override",
    ),
    (
        "python-uv",
        "a uv project: external cache volume, network host, override args",
    ),
    (
        "rails-app",
        "evilmartians' Rails setup: nested x- anchors, args from .env",
    ),
    (
        "netbox-docker",
        "netbox-community/netbox-docker: override adds build to an anchored image",
    ),
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The environment of a run: only what the docker CLI needs, and the fixture's `test.env`.
fn environment(dir: &Path) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = ["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG"]
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect();
    if let Ok(text) = std::fs::read_to_string(dir.join("test.env")) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').unwrap();
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

/// compose's answer, flattened to `services.web.build.target` → value.
fn reference(dir: &Path, env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let out = Command::new("docker")
        .args(["compose", "config", "--format", "json"])
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker compose config in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = |v: &Value| -> String {
        match v {
            Value::String(s) => s.replace("$$", "$"),
            other => other.to_string(),
        }
    };
    let mut flat = BTreeMap::new();
    flat.insert("name".to_string(), text(&json["name"]));
    for (name, svc) in json["services"].as_object().unwrap() {
        let at = format!("services.{name}");
        flat.insert(at.clone(), "service".into());
        if let Some(image) = svc.get("image") {
            flat.insert(format!("{at}.image"), text(image));
        }
        if let Some(build) = svc.get("build").and_then(Value::as_object) {
            // The fields a build depends on that dockwarm models.
            let modelled = [
                "context",
                "dockerfile",
                "dockerfile_inline",
                "target",
                "network",
                "args",
                "additional_contexts",
            ];
            for (k, v) in build.iter().filter(|(k, _)| modelled.contains(&k.as_str())) {
                match v {
                    Value::Object(m) => {
                        for (kk, vv) in m {
                            flat.insert(format!("{at}.build.{k}.{kk}"), text(vv));
                        }
                    }
                    v => {
                        flat.insert(format!("{at}.build.{k}"), text(v));
                    }
                }
            }
        }
        for v in svc
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v["type"] == "volume" {
                if let Some(source) = v.get("source") {
                    flat.insert(format!("{at}.volumes.{}", text(source)), "volume".into());
                }
            }
        }
    }
    for (key, v) in json
        .get("volumes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        flat.insert(format!("volumes.{key}.name"), text(&v["name"]));
        flat.insert(
            format!("volumes.{key}.external"),
            (v.get("external") == Some(&Value::Bool(true))).to_string(),
        );
    }
    flat
}

/// dockwarm's model, flattened the same way.
fn flatten(m: &Model) -> BTreeMap<String, String> {
    let ctx = |c: &Context| match c {
        Context::Local(p) => p.display().to_string(),
        Context::Remote(s) => s.clone(),
    };
    let mut flat = BTreeMap::new();
    flat.insert("name".to_string(), m.name.clone());
    for s in &m.services {
        let at = format!("services.{}", s.name);
        flat.insert(at.clone(), "service".into());
        if let Some(image) = &s.image {
            flat.insert(format!("{at}.image"), image.clone());
        }
        if let Some(b) = &s.build {
            flat.insert(format!("{at}.build.context"), ctx(&b.context));
            match &b.dockerfile {
                Dockerfile::Path(p) => flat.insert(format!("{at}.build.dockerfile"), p.clone()),
                Dockerfile::Inline(t) => {
                    flat.insert(format!("{at}.build.dockerfile_inline"), t.clone())
                }
            };
            for (field, v) in [("target", &b.target), ("network", &b.network)] {
                if let Some(v) = v {
                    flat.insert(format!("{at}.build.{field}"), v.clone());
                }
            }
            for (k, v) in &b.args {
                flat.insert(format!("{at}.build.args.{k}"), v.clone());
            }
            for (k, v) in &b.additional_contexts {
                flat.insert(format!("{at}.build.additional_contexts.{k}"), ctx(v));
            }
        }
        for v in &s.volumes {
            flat.insert(format!("{at}.volumes.{v}"), "volume".into());
        }
    }
    for v in &m.volumes {
        flat.insert(format!("volumes.{}.name", v.key), v.engine_name(&m.name));
        flat.insert(
            format!("volumes.{}.external", v.key),
            v.external.to_string(),
        );
    }
    flat
}

fn diff(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            Some(g) if g == v => {}
            Some(g) => out.push(format!("{k}: compose {v:?}, dockwarm {g:?}")),
            None => out.push(format!("{k}: compose {v:?}, dockwarm has none")),
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            out.push(format!("{k}: compose has none, dockwarm {g:?}"));
        }
    }
    out
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
fn every_project_agrees_with_compose_on_every_path() {
    if !compose_v2() {
        return;
    }
    assert!(PROJECTS.len() >= 30);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let state = State::at(base.join("state"));
    let mut failures = Vec::new();
    for (name, about) in PROJECTS {
        let dir = base.join(name);
        copy_dir(&fixture(name), &dir);
        let env = environment(&dir);
        let want = reference(&dir, &env);
        let mut builtin_env = env.clone();
        builtin_env.insert("DOCKWARM_COMPOSE".into(), "builtin".into());
        let mut hidden_env = env.clone();
        hidden_env.insert(
            "DOCKWARM_DOCKER".into(),
            base.join("no-docker").display().to_string(),
        );
        let ways = [
            ("compose v2", &env, Some(&state), Reader::ComposeV2),
            (
                "compose v2 cached",
                &env,
                Some(&state),
                Reader::ComposeV2Cached,
            ),
            ("own reader", &builtin_env, None, Reader::Builtin),
            ("compose v2 hidden", &hidden_env, None, Reader::Builtin),
        ];
        for (way, env, state, reader) in ways {
            let opts = Options {
                env,
                spawn: true,
                state,
            };
            match compose::load(&dir, &opts) {
                Ok(Some(model)) => {
                    if model.reader != reader {
                        failures.push(format!("{name} ({way}): read by {:?}", model.reader));
                    }
                    for d in diff(&want, &flatten(&model)) {
                        failures.push(format!("{name} ({about}) [{way}]: {d}"));
                    }
                }
                Ok(None) => failures.push(format!("{name} [{way}]: no compose file found")),
                Err(e) => failures.push(format!("{name} [{way}]: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
