//! `dockwarm doctor`: one line per check, each failure with its fix.

use std::path::Path;

use crate::config::{self, Config};
use crate::dockerfile::{self, DepsError};
use crate::engine::{self, Engine};
use crate::fingerprint::{self, FingerprintError};

enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, detail: &str, fix: Option<&str>) {
        let tag = match level {
            Level::Ok => super::paint("ok  ", "32"),
            Level::Warn => super::paint("warn", "33"),
            Level::Fail => {
                self.failed = true;
                super::paint("FAIL", "31")
            }
        };
        println!("{tag} {what}: {detail}");
        if let Some(fix) = fix {
            println!("     fix: {fix}");
        }
    }
}

/// Checks the engine, BuildKit, the state directory and the checkout containing `dir` (its
/// configuration, dependency stages, hooks, volumes, disk), one line each; false (exit 1) when
/// any failed, so scripts can gate on it.
pub fn run(env: &crate::env::Env, dir: &Path) -> anyhow::Result<bool> {
    let mut r = Report { failed: false };
    let rt = super::runtime()?;
    let engine = rt.block_on(async {
        match engine::resolve_endpoint(env) {
            Err(e) => {
                r.line(Level::Fail, "engine reachable", &e.to_string(), None);
                None
            }
            Ok(endpoint) => match Engine::connect_to(endpoint.clone()).await {
                Ok(engine) => {
                    r.line(Level::Ok, "engine reachable", &endpoint.to_string(), None);
                    Some(engine)
                }
                Err(e) => {
                    r.line(Level::Fail, "engine reachable", &e.to_string(), None);
                    None
                }
            },
        }
    });
    if let Some(engine) = &engine {
        rt.block_on(engine_checks(env, engine, &mut r));
    }
    state_check(env, &mut r);
    match config::load(dir, env) {
        Err(e) => r.line(Level::Fail, "configuration", &e.to_string(), None),
        Ok(c) => {
            let from = c
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "derived from compose".into());
            r.line(
                Level::Ok,
                "configuration",
                &format!(
                    "{} image(s), project `{}` ({from})",
                    c.images.len(),
                    c.project.value
                ),
                None,
            );
            if let Some(reader) = c.compose_reader {
                let files: Vec<String> = c
                    .compose_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                r.line(
                    Level::Ok,
                    "compose model",
                    &format!("{} read by {}", files.join(" + "), reader.describe()),
                    None,
                );
            }
            for s in &c.skipped {
                r.line(
                    Level::Warn,
                    "not prebuilt",
                    &format!("service `{}`: {}", s.service, s.reason),
                    None,
                );
            }
            let mut on_engine = None;
            if let Some(engine) = &engine {
                rt.block_on(volume_checks(engine, &c, &mut r));
                rt.block_on(disk_check(env, engine, &c, &mut r));
                on_engine = rt.block_on(engine_volumes(engine));
            }
            rt.block_on(team_registry_check(env, &c, &mut r));
            hooks_check(&c, &mut r);
            daemon_check(env, &mut r);
            compose_sharing(&c, on_engine.as_deref(), &mut r);
            let dialect = match &engine {
                Some(e) => e.ignore_dialect(),
                None => crate::ignore::Dialect::Current,
            };
            dockerfile_checks(env, &c, dialect, &mut r);
        }
    }
    Ok(!r.failed)
}

async fn engine_checks(env: &crate::env::Env, engine: &Engine, r: &mut Report) {
    let api = engine.api_version();
    let server = engine.docker.version().await.ok();
    let engine_version = server
        .as_ref()
        .and_then(|v| v.version.clone())
        .unwrap_or_else(|| "?".into());
    let minor: u32 = api
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if minor < 39 {
        r.line(
            Level::Fail,
            "API version",
            &format!("{api} (engine {engine_version}): BuildKit needs API 1.39 or newer"),
            Some("upgrade Docker Engine to 18.09 or newer"),
        );
    } else {
        r.line(
            Level::Ok,
            "API version",
            &format!("{api} (engine {engine_version})"),
            None,
        );
    }
    match crate::build::buildx_version().await {
        Some(v) => r.line(Level::Ok, "BuildKit usable", &format!("docker buildx {v} (backend `auto` uses buildx)"), None),
        None if minor >= 53 => r.line(
            Level::Fail,
            "BuildKit usable",
            &format!("no docker buildx, and API {api} deprecates the /session endpoint the bollard backend needs"),
            Some("install the buildx plugin (Docker Desktop ships it; Debian: docker-buildx)"),
        ),
        None => r.line(
            Level::Warn,
            "BuildKit usable",
            "no docker buildx plugin: dockwarm builds through the engine's BuildKit (bollard); compose v2 needs buildx for its own builds",
            Some("install the buildx plugin (Docker Desktop ships it; Debian: docker-buildx)"),
        ),
    }
    if env.docker_buildkit_off() {
        r.line(Level::Warn, "BuildKit usable", "DOCKER_BUILDKIT=0 makes your own builds use the legacy builder, which never reuses dockwarm's BuildKit cache", Some("unset DOCKER_BUILDKIT"));
    }
}

async fn volume_checks(engine: &Engine, c: &Config, r: &mut Report) {
    if c.volumes.is_empty() {
        r.line(
            Level::Ok,
            "volumes present",
            "no shared volumes configured",
            None,
        );
        return;
    }
    for v in &c.volumes {
        match engine.docker.inspect_volume(&v.name).await {
            Ok(found) => {
                let ours = found
                    .labels
                    .get(engine::labels::MANAGED)
                    .map(String::as_str)
                    == Some("true");
                let detail = if ours {
                    format!("{} exists", v.name)
                } else {
                    format!("{} exists (created outside dockwarm)", v.name)
                };
                r.line(Level::Ok, "volumes present", &detail, None);
            }
            Err(e) if engine::is_not_found(&e) => r.line(
                Level::Fail,
                "volumes present",
                &format!("{} is missing", v.name),
                Some("run `dockwarm volumes ensure`"),
            ),
            Err(e) => r.line(
                Level::Fail,
                "volumes present",
                &format!("{}: {e}", v.name),
                None,
            ),
        }
    }
}

/// dockwarm's images against the budget, measured now (and saved for `status`), and the
/// BuildKit cache's size; nothing is removed.
async fn disk_check(env: &crate::env::Env, engine: &Engine, c: &Config, r: &mut Report) {
    let Ok(state) = crate::state::State::open(env) else {
        return;
    };
    let options = crate::cleanup::Options {
        projects: Some(std::collections::BTreeSet::from([c.project.value.clone()])),
        budget: true,
        budget_override: None,
        older_than: None,
        dry_run: true,
    };
    let d = crate::disk::human;
    match crate::cleanup::maintain(engine, &state, &options).await {
        Err(e) => r.line(Level::Warn, "disk", &e.to_string(), None),
        Ok(report) => {
            match report.projects.first() {
                Some(p) if p.before > p.budget => r.line(
                    Level::Warn,
                    "disk",
                    &format!(
                        "dockwarm's images of `{}` use {} ({} image(s)), over the {} budget ({})",
                        p.project,
                        d(p.before),
                        p.images,
                        d(p.budget),
                        p.budget_from
                    ),
                    Some("the daemon prunes to the budget after each build and hourly; `dockwarm prune --budget` does it now"),
                ),
                Some(p) => r.line(
                    Level::Ok,
                    "disk",
                    &format!(
                        "dockwarm's images of `{}` use {} ({} image(s)) of the {} budget ({})",
                        p.project,
                        d(p.before),
                        p.images,
                        d(p.budget),
                        p.budget_from
                    ),
                    None,
                ),
                None => r.line(
                    Level::Ok,
                    "disk",
                    &format!(
                        "no dockwarm image of `{}` yet; budget {} ({})",
                        c.project.value,
                        d(c.prune_budget.value),
                        c.prune_budget.from
                    ),
                    None,
                ),
            }
            let orphans = report.orphans.tags.len() + report.orphans.untagged.len();
            if orphans > 0 {
                r.line(
                    Level::Warn,
                    "disk",
                    &format!("{orphans} image name(s) or untagged image(s) of dockwarm's that no workspace needs"),
                    Some("`dockwarm prune` (the daemon does it after each build and hourly)"),
                );
            }
            match (&report.builder, c.builder_budget.value) {
                (Some(b), keep) => r.line(
                    Level::Ok,
                    "build cache",
                    &format!(
                        "BuildKit's cache holds {} ({} of it cache mounts); {}",
                        d(b.size),
                        d(b.cache_mounts),
                        match keep {
                            Some(k) => format!("pruned to {} ({})", d(k), c.builder_budget.from),
                            None => "dockwarm never prunes it unless [prune] builder_budget is set".into(),
                        }
                    ),
                    None,
                ),
                (None, _) => r.line(
                    Level::Warn,
                    "build cache",
                    &format!(
                        "size unknown: the engine's /system/df did not answer within {} s (it blocks while a build exports)",
                        crate::disk::DF_TIMEOUT.as_secs()
                    ),
                    None,
                ),
            }
        }
    }
}

/// The state directory: usable (a writable directory, or nothing yet), private, and every
/// record in it readable.
/// The team registry: a warning, never a failure, when it is down (builds go local then).
async fn team_registry_check(env: &crate::env::Env, c: &Config, r: &mut Report) {
    let Some(team) = &c.registry else {
        return;
    };
    let registry = &team.value;
    if c.project.from != config::Origin::Toml("[project] name".into()) {
        r.line(
            Level::Warn,
            "team registry names",
            &format!(
                "project `{}` comes from {}, which other clones may name differently, so they would not find each other's images",
                c.project.value, c.project.from
            ),
            Some(&format!("commit `[project] name = \"{}\"` in dockwarm.toml", c.project.value)),
        );
    }
    let checked = match crate::remote::Team::new(registry, env) {
        Ok(t) => t.check().await.map(|access| (access, t.identity())),
        Err(e) => Err(e),
    };
    match checked {
        Ok((access, who)) => {
            let how = match (access, who) {
                (crate::remote::Access::Authenticated, Some(who)) => {
                    format!("authenticated as {who}")
                }
                (crate::remote::Access::Authenticated, None) => "authenticated".into(),
                (crate::remote::Access::Anonymous, _) => "open (no credentials needed)".into(),
            };
            r.line(
                Level::Ok,
                "team registry",
                &format!("{registry} reachable, {how}"),
                None,
            )
        }
        Err(e @ crate::remote::RemoteError::Unauthorized { .. }) => r.line(
            Level::Fail,
            "team registry",
            &e.to_string(),
            Some(&format!(
                "`docker login {}` (dockwarm uses docker's credentials)",
                registry.host
            )),
        ),
        Err(e) => r.line(
            Level::Warn,
            "team registry",
            &format!("{e}; prebuilds build locally meanwhile"),
            Some("`dockwarm registry status` shows what it holds once it answers"),
        ),
    }
}

fn state_check(env: &crate::env::Env, r: &mut Report) {
    let state = match crate::state::State::open(env) {
        Ok(s) => s,
        Err(e) => return r.line(Level::Fail, "state directory", &e.to_string(), None),
    };
    let root = state.root();
    if !root.exists() {
        return r.line(
            Level::Ok,
            "state directory",
            &format!("{} (made on first use)", root.display()),
            None,
        );
    }
    let probe = root.join(format!(".doctor.{}.tmp", std::process::id()));
    if let Err(e) = crate::state::write_atomic(&probe, b"") {
        return r.line(
            Level::Fail,
            "state directory",
            &e.to_string(),
            Some(&format!(
                "make {} writable by you (`chmod u+rwx`), or set DOCKWARM_STATE_DIR",
                root.display()
            )),
        );
    }
    let _ = std::fs::remove_file(&probe);
    let bad = state.corrupt_files();
    if bad.is_empty() {
        r.line(
            Level::Ok,
            "state directory",
            &format!("{} (private to you)", root.display()),
            None,
        );
    } else {
        let names: Vec<String> = bad.iter().map(|p| p.display().to_string()).collect();
        r.line(
            Level::Warn,
            "state directory",
            &format!(
                "{} record(s) do not read and are skipped: {}",
                bad.len(),
                names.join(", ")
            ),
            Some("the next prebuild of those images rewrites a build record; delete a broken workspace file and run `dockwarm init` in that workspace"),
        );
    }
}

fn daemon_check(env: &crate::env::Env, r: &mut Report) {
    let Ok(state) = crate::state::State::open(env) else {
        return;
    };
    let owed = crate::pending::count(&state);
    if owed > 0 {
        r.line(
            Level::Warn,
            "cleanups",
            &format!("{owed} archived workspace(s) still have image tags to remove"),
            Some("they are removed the next time dockwarm reaches the engine"),
        );
    }
    match crate::daemon::client::ping(&state) {
        Some(answer) => r.line(
            Level::Ok,
            "daemon",
            &format!(
                "running (pid {})",
                answer
                    .pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
            None,
        ),
        None if crate::daemon::client::disabled(env) => r.line(
            Level::Ok,
            "daemon",
            "off (DOCKWARM_DAEMON=0): hooks start a background prebuild per change",
            None,
        ),
        None => r.line(
            Level::Ok,
            "daemon",
            "not running; hooks and `dockwarm init` start it when a workspace changes",
            None,
        ),
    }
}

fn hooks_check(c: &Config, r: &mut Report) {
    match crate::hooks::status(&c.root, c.ahead.hook.value) {
        Ok(status) if status.installed() => r.line(
            Level::Ok,
            "hooks",
            &format!("installed in {}", status.location),
            None,
        ),
        Ok(status) => {
            let missing: Vec<String> = status
                .hooks
                .iter()
                .filter(|h| h.state.needs_install())
                .map(|h| match h.state {
                    crate::hooks::HookState::Missing => h.name.to_string(),
                    ref other => format!("{} ({other})", h.name),
                })
                .collect();
            r.line(
                Level::Warn,
                "hooks",
                &format!(
                    "not installed in {}: {}",
                    status.location.dir.display(),
                    missing.join(", ")
                ),
                Some("run `dockwarm hooks install` (or `dockwarm init`)"),
            )
        }
        Err(e) => r.line(Level::Warn, "hooks", &e.to_string(), None),
    }
}

/// A volume on the engine, as `doctor` needs it: its name and compose's labels.
struct EngineVolume {
    name: String,
    compose_project: Option<String>,
    compose_key: Option<String>,
}

/// Every volume on the engine (None when it does not answer).
async fn engine_volumes(engine: &Engine) -> Option<Vec<EngineVolume>> {
    let listed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        engine
            .docker
            .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>),
    )
    .await
    .ok()?
    .ok()?;
    Some(
        listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| EngineVolume {
                compose_project: v.labels.get("com.docker.compose.project").cloned(),
                compose_key: v.labels.get("com.docker.compose.volume").cloned(),
                name: v.name,
            })
            .collect(),
    )
}

/// Whether a mount target is a package or build cache (what a shared volume is for), as
/// opposed to data each workspace should keep to itself (a database's files).
fn is_cache_path(target: &str) -> bool {
    let t = target.to_ascii_lowercase();
    t.contains("cache")
        || [
            ".npm",
            ".m2",
            ".gradle",
            "/go/pkg/mod",
            ".pnpm-store",
            ".cargo/registry",
            ".yarn",
        ]
        .iter()
        .any(|suffix| t.trim_end_matches('/').ends_with(suffix))
}

/// The YAML that gives a top-level volume a fixed name, indented for a `fix:` line.
fn fixed_name_yaml(compose_file: &Path, key: &str, name: &str) -> String {
    format!(
        "in {}, give the volume its shared name (compose then mounts that volume in every workspace):\n       volumes:\n         {key}:\n           name: {name}\n           external: true",
        compose_file.display()
    )
}

/// A shared volume only stays shared if compose mounts it by a fixed name: a top-level key
/// without `name:` becomes `<compose project>_<key>`, one copy per workspace. Checked against
/// dockwarm's `[volumes]` (by the full name compose will use), and against the engine: a
/// volume of the bare name that compose will not mount, or copies of a cache volume in
/// several workspaces (the seed's regression).
fn compose_sharing(c: &Config, on_engine: Option<&[EngineVolume]>, r: &mut Report) {
    let Some(path) = &c.compose_file else { return };
    let cp = &c.compose_project.value;
    let mut fine = 0;
    for t in &c.compose_volumes {
        let here = t.engine_name(cp);
        let configured = c.volumes.iter().find(|v| {
            v.key == t.key
                || v.name == t.key
                || v.name == here
                || v.target.as_ref().is_some_and(|x| t.targets.contains(x))
        });
        if let Some(fixed) = &t.name {
            match configured {
                Some(v) if *fixed != v.name => r.line(
                    Level::Warn,
                    "volumes shared",
                    &format!(
                        "{} volumes.{} mounts `{fixed}`, but dockwarm's shared volume is `{}` ({})",
                        path.display(),
                        t.key,
                        v.name,
                        v.from
                    ),
                    Some(&fixed_name_yaml(path, &t.key, &v.name)),
                ),
                _ => fine += 1,
            }
            continue;
        }
        let mounted = if t.targets.is_empty() {
            String::new()
        } else {
            format!(" (mounted at {})", t.targets.join(", "))
        };
        if let Some(v) = configured {
            let coincidence = if here == v.name {
                format!(
                    " (the same name only in this checkout, whose compose project is `{cp}`; every other worktree gets its own)"
                )
            } else {
                String::new()
            };
            r.line(
                Level::Fail,
                "volumes shared",
                &format!(
                    "{} volumes.{}{mounted} has no `name:`, so compose names it `<compose project>_{}`, one per workspace (`{here}` here){coincidence}, instead of dockwarm's shared `{}` ({})",
                    path.display(),
                    t.key,
                    t.key,
                    v.name,
                    v.from
                ),
                Some(&fixed_name_yaml(path, &t.key, &v.name)),
            );
            continue;
        }
        let Some(on_engine) = on_engine else {
            fine += 1;
            continue;
        };
        if on_engine.iter().any(|e| e.name == t.key) {
            r.line(
                Level::Fail,
                "volumes shared",
                &format!(
                    "{} volumes.{}{mounted} has no `name:`, so compose mounts `{here}` in this workspace (one per workspace), not the volume `{}` that exists on the engine",
                    path.display(),
                    t.key,
                    t.key
                ),
                Some(&fixed_name_yaml(path, &t.key, &t.key)),
            );
            continue;
        }
        let cache: Vec<&String> = t.targets.iter().filter(|x| is_cache_path(x)).collect();
        let mut copies: Vec<&str> = on_engine
            .iter()
            .filter(|e| {
                e.compose_key.as_deref() == Some(t.key.as_str())
                    && e.compose_project
                        .as_ref()
                        .is_some_and(|p| e.name == format!("{p}_{}", t.key))
            })
            .map(|e| e.name.as_str())
            .collect();
        copies.sort();
        if !cache.is_empty() && copies.len() >= 2 {
            let shared = format!("{}_{}", c.project.value, t.key);
            let targets: Vec<&str> = cache.iter().map(|s| s.as_str()).collect();
            r.line(
                Level::Fail,
                "volumes shared",
                &format!(
                    "{} volumes.{} is a cache (mounted at {}) with no `name:`: compose made a copy per workspace ({}), so each workspace fills its own",
                    path.display(),
                    t.key,
                    targets.join(", "),
                    copies.join(", ")
                ),
                Some(&format!(
                    "in dockwarm.toml, add `[volumes]` `{} = \"{}\"` (`dockwarm init` creates `{shared}`), and {}",
                    t.key,
                    targets[0],
                    fixed_name_yaml(path, &t.key, &shared)
                )),
            );
            continue;
        }
        fine += 1;
    }
    if fine > 0 && !c.compose_volumes.is_empty() {
        r.line(
            Level::Ok,
            "volumes shared",
            &format!(
                "{fine} compose volume(s) mounted as intended{}",
                if on_engine.is_none() {
                    " (the engine's volumes not checked)"
                } else {
                    ""
                }
            ),
            None,
        );
    }
}

fn dockerfile_checks(
    env: &crate::env::Env,
    c: &Config,
    dialect: crate::ignore::Dialect,
    r: &mut Report,
) {
    for image in &c.images {
        match fingerprint::plan(c, image, dialect, env) {
            Ok(plan) => r.line(Level::Ok, "dependency stage", &format!("image `{}`: {}", image.name, plan.deps.description), None),
            Err(FingerprintError::Deps { path, source: DepsError::NoDependencyStage { .. } }) => r.line(
                Level::Fail,
                "dependency stage",
                &format!("image `{}`: {path}: the source is copied before the dependencies are installed, so every source change reinstalls them", image.name),
                Some("copy only the lockfiles first and install, then copy the source:\n       COPY pyproject.toml uv.lock ./\n       RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-install-project\n       COPY . ."),
            ),
            Err(e) => r.line(Level::Fail, "dependency stage", &format!("image `{}`: {e}", image.name), None),
        }
        let path = c.root.join(&image.dockerfile.value);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(df) = dockerfile::parse(&text) else {
            continue;
        };
        for a in dockerfile::advice(&df) {
            r.line(
                Level::Warn,
                "Dockerfile",
                &format!("{}:{}: {}", path.display(), a.line, a.message),
                Some(&a.fix),
            );
        }
    }
}
