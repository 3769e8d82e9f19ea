//! What `dockwarm doctor` checks, as data: the engine, BuildKit, the state directory and the
//! checkout (its configuration, dependency stages, hooks, volumes, disk), each check one or
//! more [`Finding`]s that carry their own advice.
//!
//! The checks live here rather than in `commands::doctor` so that what is wrong, and how to
//! fix it, is decided once and can be tested without a terminal (and, for the pure ones,
//! without an engine); the command only lays the findings out and colours them.

mod sharing;

use std::path::Path;

use crate::config::{self, Config};
use crate::dockerfile::{self, DepsError};
use crate::engine::{self, Engine};
use crate::fingerprint::{self, FingerprintError};

/// How a check came out. Only [`Level::Fail`] makes `doctor` exit 1: a warning costs time
/// but does not stop dockwarm working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// As it should be.
    Ok,
    /// Works, but slower or more fragile than it could be.
    Warn,
    /// Broken: dockwarm (or the user's own builds) will not do what they are meant to.
    Fail,
}

/// What was checked: one name per line of `doctor`, shared by the findings of one check so a
/// script (or a test) can pick them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Whether an engine endpoint resolves and answers.
    EngineReachable,
    /// The engine's API version (BuildKit needs 1.39).
    ApiVersion,
    /// Whether BuildKit builds are possible (buildx, the session endpoint, `DOCKER_BUILDKIT`).
    BuildKit,
    /// dockwarm's state directory: usable, private, every record readable.
    StateDirectory,
    /// The checkout's configuration resolves.
    Configuration,
    /// Which compose files were read, and by whom.
    ComposeModel,
    /// A compose service dockwarm leaves alone, and why.
    NotPrebuilt,
    /// The shared cache volumes exist on the engine.
    VolumesPresent,
    /// dockwarm's images against the disk budget, and orphaned tags.
    Disk,
    /// BuildKit's own cache.
    BuildCache,
    /// Whether the project name is committed, so other clones share team registry images.
    TeamRegistryNames,
    /// The team registry answers, with the user's credentials.
    TeamRegistry,
    /// dockwarm's git hooks are installed.
    Hooks,
    /// Tag removals owed by earlier archives.
    Cleanups,
    /// The background daemon.
    Daemon,
    /// compose mounts the shared volumes by a fixed name, not one copy per workspace.
    VolumesShared,
    /// Each image's dependency stage could be found.
    DependencyStage,
    /// Dockerfile settings that defeat the cache.
    Dockerfile,
}

impl Check {
    /// The words `doctor` prints before the detail.
    pub fn label(self) -> &'static str {
        match self {
            Check::EngineReachable => "engine reachable",
            Check::ApiVersion => "API version",
            Check::BuildKit => "BuildKit usable",
            Check::StateDirectory => "state directory",
            Check::Configuration => "configuration",
            Check::ComposeModel => "compose model",
            Check::NotPrebuilt => "not prebuilt",
            Check::VolumesPresent => "volumes present",
            Check::Disk => "disk",
            Check::BuildCache => "build cache",
            Check::TeamRegistryNames => "team registry names",
            Check::TeamRegistry => "team registry",
            Check::Hooks => "hooks",
            Check::Cleanups => "cleanups",
            Check::Daemon => "daemon",
            Check::VolumesShared => "volumes shared",
            Check::DependencyStage => "dependency stage",
            Check::Dockerfile => "Dockerfile",
        }
    }
}

/// The language of a [`Snippet`], so a renderer could highlight it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Lines for a compose file.
    Yaml,
    /// Lines for a Dockerfile.
    Dockerfile,
}

/// Text the fix asks the user to put in a file, unindented (the renderer indents it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// What kind of file it goes into.
    pub language: Language,
    /// The lines, `\n`-separated, indented relative to each other only.
    pub text: String,
}

/// How to put a finding right: what to do, and the text to add when it is an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// What to do, in one sentence (ending in `:` when a snippet follows).
    pub advice: String,
    /// The lines to add, when the fix is an edit of a file the advice names.
    pub snippet: Option<Snippet>,
}

/// One result of one check: what was checked, how it came out, the detail, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// How it came out.
    pub level: Level,
    /// What was found (a version, a path, what is wrong).
    pub detail: String,
    /// How to fix it, when the user can.
    pub fix: Option<Fix>,
}

impl Finding {
    fn new(check: Check, level: Level, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            level,
            detail: detail.into(),
            fix: None,
        }
    }

    fn ok(check: Check, detail: impl Into<String>) -> Finding {
        Finding::new(check, Level::Ok, detail)
    }

    fn warn(check: Check, detail: impl Into<String>) -> Finding {
        Finding::new(check, Level::Warn, detail)
    }

    fn fail(check: Check, detail: impl Into<String>) -> Finding {
        Finding::new(check, Level::Fail, detail)
    }

    /// With a fix that is only words.
    fn fix(mut self, advice: impl Into<String>) -> Finding {
        self.fix = Some(Fix {
            advice: advice.into(),
            snippet: None,
        });
        self
    }

    /// With a fix that adds `text` to a file the advice names.
    fn fix_with(mut self, advice: impl Into<String>, language: Language, text: String) -> Finding {
        self.fix = Some(Fix {
            advice: advice.into(),
            snippet: Some(Snippet { language, text }),
        });
        self
    }
}

/// Whether any finding failed: `doctor` exits 1 then, so scripts can gate on it.
pub fn any_failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Fail)
}

/// What the checks would otherwise read from the process's environment: the caller reads it
/// (once, at the command's edge), so the checks are pure over their inputs and testable.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `DOCKER_BUILDKIT=0`: the user's own builds use the legacy builder.
    pub buildkit_disabled: bool,
    /// The environment dockwarm was started with (engine, state directory, configuration).
    pub env: crate::env::Env,
}

/// The findings, collected, each also handed to the caller's sink as it is made so a slow
/// check (the disk's `/system/df`) does not hold back the lines before it.
struct Findings<'a> {
    all: Vec<Finding>,
    sink: &'a mut dyn FnMut(&Finding),
    env: &'a crate::env::Env,
}

impl Findings<'_> {
    fn push(&mut self, f: Finding) {
        (self.sink)(&f);
        self.all.push(f);
    }

    fn extend(&mut self, fs: impl IntoIterator<Item = Finding>) {
        for f in fs {
            self.push(f);
        }
    }
}

/// Runs every check for the checkout containing `dir`, in `doctor`'s order, handing each
/// finding to `sink` as soon as it is known and returning them all. Never fails: what cannot
/// be checked is itself a finding.
pub async fn diagnose(
    dir: &Path,
    options: &Options,
    sink: &mut dyn FnMut(&Finding),
) -> Vec<Finding> {
    let env = &options.env;
    let mut r = Findings {
        all: Vec::new(),
        sink,
        env,
    };
    let engine = match engine::resolve_endpoint(env) {
        Err(e) => {
            r.push(Finding::fail(Check::EngineReachable, e.to_string()));
            None
        }
        Ok(endpoint) => match Engine::connect_to(endpoint.clone()).await {
            Ok(engine) => {
                r.push(Finding::ok(Check::EngineReachable, endpoint.to_string()));
                Some(engine)
            }
            Err(e) => {
                r.push(Finding::fail(Check::EngineReachable, e.to_string()));
                None
            }
        },
    };
    if let Some(engine) = &engine {
        engine_checks(engine, options, &mut r).await;
    }
    r.push(state_check(env));
    match config::load(dir, env) {
        Err(e) => r.push(Finding::fail(Check::Configuration, e.to_string())),
        Ok(c) => {
            let from = c
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "derived from compose".into());
            r.push(Finding::ok(
                Check::Configuration,
                format!(
                    "{} image(s), project `{}` ({from})",
                    c.images.len(),
                    c.project.value
                ),
            ));
            if let Some(reader) = c.compose_reader {
                let files: Vec<String> = c
                    .compose_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                r.push(Finding::ok(
                    Check::ComposeModel,
                    format!("{} read by {}", files.join(" + "), reader.describe()),
                ));
            }
            for s in &c.skipped {
                r.push(Finding::warn(
                    Check::NotPrebuilt,
                    format!("service `{}`: {}", s.service, s.reason),
                ));
            }
            let mut on_engine = None;
            if let Some(engine) = &engine {
                volume_checks(engine, &c, &mut r).await;
                disk_check(engine, &c, &mut r).await;
                on_engine = sharing::engine_volumes(engine).await;
            }
            team_registry_check(&c, &mut r).await;
            r.push(hooks_check(&c));
            daemon_check(&mut r);
            if let Some(sharing) = sharing::Sharing::of(&c) {
                r.extend(sharing.check(on_engine.as_deref()));
            }
            let dialect = match &engine {
                Some(e) => e.ignore_dialect(),
                None => crate::ignore::Dialect::Current,
            };
            dockerfile_checks(&c, dialect, &mut r);
        }
    }
    r.all
}

/// The minor version of an API version string (`1.43` → 43); 0 when it does not read.
fn api_minor(api: &str) -> u32 {
    api.split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// The engine's API version against BuildKit's minimum (1.39).
fn api_version_check(api: &str, engine_version: &str) -> Finding {
    if api_minor(api) < 39 {
        Finding::fail(
            Check::ApiVersion,
            format!("{api} (engine {engine_version}): BuildKit needs API 1.39 or newer"),
        )
        .fix("upgrade Docker Engine to 18.09 or newer")
    } else {
        Finding::ok(
            Check::ApiVersion,
            format!("{api} (engine {engine_version})"),
        )
    }
}

/// Whether BuildKit builds work: through buildx (`buildx` its version), or through the
/// engine's session endpoint, which API 1.53 deprecates; and whether the user's own builds
/// turned BuildKit off.
fn buildkit_checks(api: &str, buildx: Option<&str>, options: &Options) -> Vec<Finding> {
    const INSTALL_BUILDX: &str =
        "install the buildx plugin (Docker Desktop ships it; Debian: docker-buildx)";
    let mut out = vec![match buildx {
        Some(v) => Finding::ok(
            Check::BuildKit,
            format!("docker buildx {v} (backend `auto` uses buildx)"),
        ),
        None if api_minor(api) >= 53 => Finding::fail(
            Check::BuildKit,
            format!("no docker buildx, and API {api} deprecates the /session endpoint the bollard backend needs"),
        )
        .fix(INSTALL_BUILDX),
        None => Finding::warn(
            Check::BuildKit,
            "no docker buildx plugin: dockwarm builds through the engine's BuildKit (bollard); compose v2 needs buildx for its own builds",
        )
        .fix(INSTALL_BUILDX),
    }];
    if options.buildkit_disabled {
        out.push(
            Finding::warn(
                Check::BuildKit,
                "DOCKER_BUILDKIT=0 makes your own builds use the legacy builder, which never reuses dockwarm's BuildKit cache",
            )
            .fix("unset DOCKER_BUILDKIT"),
        );
    }
    out
}

async fn engine_checks(engine: &Engine, options: &Options, r: &mut Findings<'_>) {
    let api = engine.api_version();
    let server = engine.docker.version().await.ok();
    let engine_version = server
        .as_ref()
        .and_then(|v| v.version.clone())
        .unwrap_or_else(|| "?".into());
    r.push(api_version_check(&api, &engine_version));
    let buildx = crate::build::buildx_version().await;
    r.extend(buildkit_checks(&api, buildx.as_deref(), options));
}

async fn volume_checks(engine: &Engine, c: &Config, r: &mut Findings<'_>) {
    if c.volumes.is_empty() {
        r.push(Finding::ok(
            Check::VolumesPresent,
            "no shared volumes configured",
        ));
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
                r.push(Finding::ok(Check::VolumesPresent, detail));
            }
            Err(e) if engine::is_not_found(&e) => r.push(
                Finding::fail(Check::VolumesPresent, format!("{} is missing", v.name))
                    .fix("run `dockwarm volumes ensure`"),
            ),
            Err(e) => r.push(Finding::fail(
                Check::VolumesPresent,
                format!("{}: {e}", v.name),
            )),
        }
    }
}

/// dockwarm's images against the budget, measured now (and saved for `status`), and the
/// BuildKit cache's size; nothing is removed.
async fn disk_check(engine: &Engine, c: &Config, r: &mut Findings<'_>) {
    let Ok(state) = crate::state::State::open(r.env) else {
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
        Err(e) => r.push(Finding::warn(Check::Disk, e.to_string())),
        Ok(report) => {
            r.push(match report.projects.first() {
                Some(p) if p.before > p.budget => Finding::warn(
                    Check::Disk,
                    format!(
                        "dockwarm's images of `{}` use {} ({} image(s)), over the {} budget ({})",
                        p.project,
                        d(p.before),
                        p.images,
                        d(p.budget),
                        p.budget_from
                    ),
                )
                .fix("the daemon prunes to the budget after each build and hourly; `dockwarm prune --budget` does it now"),
                Some(p) => Finding::ok(
                    Check::Disk,
                    format!(
                        "dockwarm's images of `{}` use {} ({} image(s)) of the {} budget ({})",
                        p.project,
                        d(p.before),
                        p.images,
                        d(p.budget),
                        p.budget_from
                    ),
                ),
                None => Finding::ok(
                    Check::Disk,
                    format!(
                        "no dockwarm image of `{}` yet; budget {} ({})",
                        c.project.value,
                        d(c.prune_budget.value),
                        c.prune_budget.from
                    ),
                ),
            });
            let orphans = report.orphans.tags.len() + report.orphans.untagged.len();
            if orphans > 0 {
                r.push(
                    Finding::warn(
                        Check::Disk,
                        format!("{orphans} image name(s) or untagged image(s) of dockwarm's that no workspace needs"),
                    )
                    .fix("`dockwarm prune` (the daemon does it after each build and hourly)"),
                );
            }
            r.push(match (&report.builder, c.builder_budget.value) {
                (Some(b), keep) => Finding::ok(
                    Check::BuildCache,
                    format!(
                        "BuildKit's cache holds {} ({} of it cache mounts); {}",
                        d(b.size),
                        d(b.cache_mounts),
                        match keep {
                            Some(k) => format!("pruned to {} ({})", d(k), c.builder_budget.from),
                            None => "dockwarm never prunes it unless [prune] builder_budget is set".into(),
                        }
                    ),
                ),
                (None, _) => Finding::warn(
                    Check::BuildCache,
                    format!(
                        "size unknown: the engine's /system/df did not answer within {} s (it blocks while a build exports)",
                        crate::disk::DF_TIMEOUT.as_secs()
                    ),
                ),
            });
        }
    }
}

/// A project name other clones may derive differently (from their directory) than this one
/// does: they would push and look for the team registry's images under different names.
fn registry_names_check(project: &config::Sourced<String>) -> Option<Finding> {
    if project.from == config::Origin::Toml("[project] name".into()) {
        return None;
    }
    Some(
        Finding::warn(
            Check::TeamRegistryNames,
            format!(
                "project `{}` comes from {}, which other clones may name differently, so they would not find each other's images",
                project.value, project.from
            ),
        )
        .fix(format!("commit `[project] name = \"{}\"` in dockwarm.toml", project.value)),
    )
}

/// The team registry: a warning, never a failure, when it is down (builds go local then).
async fn team_registry_check(c: &Config, r: &mut Findings<'_>) {
    let Some(team) = &c.registry else {
        return;
    };
    let registry = &team.value;
    r.extend(registry_names_check(&c.project));
    let checked = match crate::remote::Team::new(registry, r.env) {
        Ok(t) => t.check().await.map(|access| (access, t.identity())),
        Err(e) => Err(e),
    };
    r.push(match checked {
        Ok((access, who)) => {
            let how = match (access, who) {
                (crate::remote::Access::Authenticated, Some(who)) => {
                    format!("authenticated as {who}")
                }
                (crate::remote::Access::Authenticated, None) => "authenticated".into(),
                (crate::remote::Access::Anonymous, _) => "open (no credentials needed)".into(),
            };
            Finding::ok(Check::TeamRegistry, format!("{registry} reachable, {how}"))
        }
        Err(e @ crate::remote::RemoteError::Unauthorized { .. }) => {
            Finding::fail(Check::TeamRegistry, e.to_string()).fix(format!(
                "`docker login {}` (dockwarm uses docker's credentials)",
                registry.host
            ))
        }
        Err(e) => Finding::warn(
            Check::TeamRegistry,
            format!("{e}; prebuilds build locally meanwhile"),
        )
        .fix("`dockwarm registry status` shows what it holds once it answers"),
    });
}

/// The state directory: usable (a writable directory, or nothing yet), private, and every
/// record in it readable.
fn state_check(env: &crate::env::Env) -> Finding {
    let state = match crate::state::State::open(env) {
        Ok(s) => s,
        Err(e) => return Finding::fail(Check::StateDirectory, e.to_string()),
    };
    let root = state.root();
    if !root.exists() {
        return Finding::ok(
            Check::StateDirectory,
            format!("{} (made on first use)", root.display()),
        );
    }
    let probe = root.join(format!(".doctor.{}.tmp", std::process::id()));
    if let Err(e) = crate::state::write_atomic(&probe, b"") {
        return Finding::fail(Check::StateDirectory, e.to_string()).fix(format!(
            "make {} writable by you (`chmod u+rwx`), or set DOCKWARM_STATE_DIR",
            root.display()
        ));
    }
    let _ = std::fs::remove_file(&probe);
    let bad = state.corrupt_files();
    if bad.is_empty() {
        Finding::ok(
            Check::StateDirectory,
            format!("{} (private to you)", root.display()),
        )
    } else {
        let names: Vec<String> = bad.iter().map(|p| p.display().to_string()).collect();
        Finding::warn(
            Check::StateDirectory,
            format!(
                "{} record(s) do not read and are skipped: {}",
                bad.len(),
                names.join(", ")
            ),
        )
        .fix("the next prebuild of those images rewrites a build record; delete a broken workspace file and run `dockwarm init` in that workspace")
    }
}

/// Cleanups owed by earlier archives, and whether the daemon runs.
fn daemon_check(r: &mut Findings<'_>) {
    let Ok(state) = crate::state::State::open(r.env) else {
        return;
    };
    let owed = crate::pending::count(&state);
    if owed > 0 {
        r.push(
            Finding::warn(
                Check::Cleanups,
                format!("{owed} archived workspace(s) still have image tags to remove"),
            )
            .fix("they are removed the next time dockwarm reaches the engine"),
        );
    }
    r.push(match crate::daemon::client::ping(&state) {
        Some(answer) => Finding::ok(
            Check::Daemon,
            format!(
                "running (pid {})",
                answer
                    .pid
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
        ),
        None if crate::daemon::client::disabled(r.env) => Finding::ok(
            Check::Daemon,
            "off (DOCKWARM_DAEMON=0): hooks start a background prebuild per change",
        ),
        None => Finding::ok(
            Check::Daemon,
            "not running; hooks and `dockwarm init` start it when a workspace changes",
        ),
    });
}

/// Whether git will run dockwarm's hooks in this checkout.
fn hooks_check(c: &Config) -> Finding {
    match crate::hooks::status(&c.root, c.ahead.hook.value) {
        Ok(status) if status.installed() => {
            Finding::ok(Check::Hooks, format!("installed in {}", status.location))
        }
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
            Finding::warn(
                Check::Hooks,
                format!(
                    "not installed in {}: {}",
                    status.location.dir.display(),
                    missing.join(", ")
                ),
            )
            .fix("run `dockwarm hooks install` (or `dockwarm init`)")
        }
        Err(e) => Finding::warn(Check::Hooks, e.to_string()),
    }
}

/// The fix for a Dockerfile that copies the source before installing the dependencies.
const REORDER_ADVICE: &str = "copy only the lockfiles first and install, then copy the source:";
const REORDER_LINES: &str = "COPY pyproject.toml uv.lock ./\nRUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-install-project\nCOPY . .";

/// Each image's dependency stage, and the Dockerfile's cache advice.
fn dockerfile_checks(c: &Config, dialect: crate::ignore::Dialect, r: &mut Findings<'_>) {
    for image in &c.images {
        r.push(match fingerprint::plan(c, image, dialect, r.env) {
            Ok(plan) => Finding::ok(
                Check::DependencyStage,
                format!("image `{}`: {}", image.name, plan.deps.description),
            ),
            Err(FingerprintError::Deps {
                path,
                source: DepsError::NoDependencyStage { .. },
            }) => Finding::fail(
                Check::DependencyStage,
                format!("image `{}`: {path}: the source is copied before the dependencies are installed, so every source change reinstalls them", image.name),
            )
            .fix_with(REORDER_ADVICE, Language::Dockerfile, REORDER_LINES.into()),
            Err(e) => Finding::fail(
                Check::DependencyStage,
                format!("image `{}`: {e}", image.name),
            ),
        });
        let path = c.root.join(&image.dockerfile.value);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(df) = dockerfile::parse(&text) else {
            continue;
        };
        r.extend(dockerfile::advice(&df).into_iter().map(|a| {
            Finding::warn(
                Check::Dockerfile,
                format!("{}:{}: {}", path.display(), a.line, a.message),
            )
            .fix(a.fix)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, Sourced};

    #[test]
    fn an_engine_older_than_buildkit_fails_with_the_upgrade() {
        let f = api_version_check("1.38", "18.06.1");
        assert_eq!(f.level, Level::Fail);
        assert_eq!(
            f.detail,
            "1.38 (engine 18.06.1): BuildKit needs API 1.39 or newer"
        );
        assert_eq!(
            f.fix.map(|f| f.advice).as_deref(),
            Some("upgrade Docker Engine to 18.09 or newer")
        );
        let f = api_version_check("1.47", "27.3.1");
        assert_eq!((f.level, f.fix), (Level::Ok, None));
        assert_eq!(api_version_check("garbage", "?").level, Level::Fail);
    }

    #[test]
    fn without_buildx_only_a_new_api_fails() {
        let options = Options::default();
        let levels = |api, buildx| -> Vec<Level> {
            buildkit_checks(api, buildx, &options)
                .iter()
                .map(|f| f.level)
                .collect()
        };
        assert_eq!(levels("1.53", Some("v0.17.1")), [Level::Ok]);
        assert_eq!(levels("1.47", None), [Level::Warn]);
        assert_eq!(levels("1.53", None), [Level::Fail]);
        let f = &buildkit_checks("1.53", None, &options)[0];
        assert!(f.fix.as_ref().unwrap().advice.contains("docker-buildx"));
    }

    #[test]
    fn docker_buildkit_0_is_one_more_warning() {
        let options = Options {
            buildkit_disabled: true,
            ..Options::default()
        };
        let found = buildkit_checks("1.47", Some("v0.17.1"), &options);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].level, Level::Warn);
        assert_eq!(found[1].check, Check::BuildKit);
        assert!(found[1].detail.starts_with("DOCKER_BUILDKIT=0 "));
        assert_eq!(
            found[1].fix.as_ref().map(|f| f.advice.as_str()),
            Some("unset DOCKER_BUILDKIT")
        );
    }

    #[test]
    fn a_committed_project_name_needs_no_advice() {
        let committed = Sourced {
            value: "shop".to_string(),
            from: Origin::Toml("[project] name".into()),
        };
        assert_eq!(registry_names_check(&committed), None);
        let derived = Sourced {
            value: "shop".to_string(),
            from: Origin::MainWorktreeName,
        };
        let f = registry_names_check(&derived).unwrap();
        assert_eq!(f.level, Level::Warn);
        assert!(f.detail.starts_with("project `shop` comes from "), "{f:?}");
        assert_eq!(
            f.fix.unwrap().advice,
            "commit `[project] name = \"shop\"` in dockwarm.toml"
        );
    }

    #[test]
    fn only_failures_fail() {
        let warned = [
            Finding::warn(Check::Hooks, "x"),
            Finding::ok(Check::Daemon, "y"),
        ];
        assert!(!any_failed(&warned));
        assert!(any_failed(&[Finding::fail(Check::Disk, "z")]));
    }
}
