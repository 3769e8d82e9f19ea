//! The resolved configuration of one workspace, and where each value came from.
//!
//! `dockwarm.toml` at the repository root wins; whatever it leaves out is derived from the
//! compose file, then from defaults. Every value carries its origin so that `dockwarm config`
//! can answer "why is it building *that*?".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compose::{self, clean, ComposeError, Model as ComposeModel};
use crate::env::Env;
use crate::state::State;
use crate::workspace::{Workspace, WorkspaceError};

/// The repository's own configuration file, looked for at the workspace root (committed, so
/// every worktree of the repository reads the same one).
pub const FILE_NAME: &str = "dockwarm.toml";

/// Why the configuration could not be resolved; each names the file (or variable) to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A TOML file (dockwarm.toml or the user's config) does not parse, or a value in it is
    /// malformed: pointed at by line and column so the user can go straight there.
    #[error("{path}:{line}:{column}: {message}")]
    Toml {
        /// The file, as shown to the user.
        path: String,
        /// 1-based line of the offending value.
        line: usize,
        /// 1-based column of the offending value.
        column: usize,
        /// What is wrong, and what is accepted instead.
        message: String,
    },
    /// A value parses but is not allowed (a bad project name, a duplicate `[[image]]`, an
    /// unknown backend in `DOCKWARM_BACKEND`).
    #[error("{path}: {message}")]
    Invalid {
        /// The file or environment variable the value came from.
        path: String,
        /// What is wrong with it and what would be accepted.
        message: String,
    },
    /// A configuration file exists but cannot be read (permissions, not a file).
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file that could not be read.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The compose model, which most of the configuration is derived from, could not be read.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// The directory is not inside a git checkout, or its `.git` cannot be read.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// Nothing to prebuild: no compose service with `build:`, no `[[image]]`, no root
    /// Dockerfile; the hooks treat it as "nothing to do" rather than an error.
    #[error("no image to prebuild in {root}: add a compose file whose services have `build:`, or [[image]] to {FILE_NAME}")]
    NoImages {
        /// The workspace root that was searched.
        root: String,
    },
    /// An image asked for by name on the command line is not configured.
    #[error("no image named `{name}`; configured images: {known}")]
    UnknownImage {
        /// The name asked for.
        name: String,
        /// The configured images' names, comma-separated, so the user can pick one.
        known: String,
    },
}

impl crate::error::Classify for ConfigError {
    /// Always: each variant names the file, variable or argument the user must change (or
    /// make readable) before dockwarm can know what to build.
    fn is_usage(&self) -> bool {
        true
    }
}

/// A value and where it came from ("dockwarm.toml", "compose.yaml services.web.build", ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sourced<T> {
    /// The resolved value dockwarm acts on.
    pub value: T,
    /// Where it came from; `dockwarm config` prints it in words.
    pub from: Origin,
}

fn sourced<T>(value: T, from: Origin) -> Sourced<T> {
    Sourced { value, from }
}

/// Where a configured value came from, so code can ask (is this the default? which
/// variable?) and `dockwarm config` can say it. Shown, and serialized, as the words
/// `dockwarm config` prints ("default", `dockwarm.toml [ahead] enabled`, ...); a stored plan
/// reads them back with [`Origin::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// dockwarm's own default: "default".
    Default,
    /// dockwarm's own default, with what it amounts to: "default (never pruned)".
    DefaultNoted(String),
    /// A key of the workspace's [`FILE_NAME`]: `dockwarm.toml [ahead] enabled`.
    Toml(String),
    /// A key of the user's own config file ([`user_config_path`]).
    UserConfig {
        /// The file, as found.
        path: PathBuf,
        /// The table and key: `[prune] budget`.
        key: String,
    },
    /// An environment variable, by name: "DOCKWARM_BACKEND".
    Env(String),
    /// The project name dockwarm derives from the main worktree's directory.
    MainWorktreeName,
    /// The compose project name derived from the workspace's directory (no compose file).
    WorkspaceDirName,
    /// A dependency stage found in the Dockerfile, not named by the user.
    Dockerfile,
    /// The image dockwarm builds from a Dockerfile at the workspace root (no compose file).
    RootDockerfile,
    /// What the compose model recorded for a key ([`compose::Origin`], as it shows): a
    /// compose file and key, or the reader that answered ("compose.yaml
    /// services.web.build.context").
    Compose(String),
}

impl Origin {
    /// The origin `text` describes: the inverse of [`Display`](std::fmt::Display), for stored
    /// plans and the compose project name's origin. Text of no other form is compose's.
    pub fn parse(text: &str) -> Origin {
        const USER_KEYS: [&str; 3] = [
            " [prune] budget",
            " [prune] builder_budget",
            " [registry] url",
        ];
        match text {
            "default" => return Origin::Default,
            "the main worktree's directory name" => return Origin::MainWorktreeName,
            "the workspace's directory name" => return Origin::WorkspaceDirName,
            "derived from the Dockerfile" => return Origin::Dockerfile,
            "the Dockerfile at the workspace root" => return Origin::RootDockerfile,
            _ => {}
        }
        if let Some(note) = text
            .strip_prefix("default (")
            .and_then(|t| t.strip_suffix(')'))
        {
            return Origin::DefaultNoted(note.to_string());
        }
        if let Some(key) = text
            .strip_prefix(FILE_NAME)
            .and_then(|t| t.strip_prefix(' '))
        {
            return Origin::Toml(key.to_string());
        }
        if !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Origin::Env(text.to_string());
        }
        for key in USER_KEYS {
            if let Some(path) = text.strip_suffix(key).filter(|p| p.ends_with(".toml")) {
                return Origin::UserConfig {
                    path: PathBuf::from(path),
                    key: key[1..].to_string(),
                };
            }
        }
        Origin::Compose(text.to_string())
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::DefaultNoted(note) => write!(f, "default ({note})"),
            Origin::Toml(key) => write!(f, "{FILE_NAME} {key}"),
            Origin::UserConfig { path, key } => write!(f, "{} {key}", path.display()),
            Origin::Env(name) => f.write_str(name),
            Origin::MainWorktreeName => f.write_str("the main worktree's directory name"),
            Origin::WorkspaceDirName => f.write_str("the workspace's directory name"),
            Origin::Dockerfile => f.write_str("derived from the Dockerfile"),
            Origin::RootDockerfile => f.write_str("the Dockerfile at the workspace root"),
            Origin::Compose(text) => f.write_str(text),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Origin, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Origin::parse(&text))
    }
}

/// Which client builds the dependency stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// buildx when `docker buildx` answers, else bollard.
    Auto,
    /// `docker buildx build`: BuildKit through the CLI plugin, as compose builds.
    Buildx,
    /// The engine's build API directly, for engines or machines without buildx.
    Bollard,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "buildx" => Ok(Backend::Buildx),
            "bollard" => Ok(Backend::Bollard),
            other => Err(format!(
                "unknown backend `{other}` (expected auto, buildx or bollard)"
            )),
        }
    }
}

/// Everything dockwarm needs to know about one workspace, resolved once from dockwarm.toml,
/// compose, the environment and defaults, each value with its origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The workspace root (this checkout).
    pub root: PathBuf,
    /// The file the configuration was read from, if any.
    pub file: Option<PathBuf>,
    /// The first compose file (the one compose found, or `COMPOSE_FILE`'s first).
    pub compose_file: Option<PathBuf>,
    /// Every compose file in compose's merge order (overrides included).
    pub compose_files: Vec<PathBuf>,
    /// Every file the compose model was read from (compose, included, extended and env
    /// files): a change to any of them may change what compose builds.
    pub compose_inputs: Vec<PathBuf>,
    /// Who read the compose model: compose v2 itself, or dockwarm's own reader.
    pub compose_reader: Option<compose::Reader>,
    /// Built services dockwarm cannot prebuild, and why (a remote build context, ...).
    pub skipped: Vec<Skipped>,
    /// The compose model's top-level volumes (with the engine names compose gives them).
    pub compose_volumes: Vec<compose::Volume>,
    /// The prefix of everything shared by the repository's workspaces.
    pub project: Sourced<String>,
    /// This workspace's compose project (names its containers and images).
    pub compose_project: Sourced<String>,
    /// The shared runtime caches (`[volumes]`, else compose's external volumes): created once
    /// per project and mounted by every workspace, never made per workspace.
    pub volumes: Vec<VolumeSpec>,
    /// The images dockwarm prebuilds the dependency stage of (at least one).
    pub images: Vec<ImageSpec>,
    /// Which client builds the dependency stage (`DOCKWARM_BACKEND`, `[build] backend`).
    pub backend: Sourced<Backend>,
    /// How long the daemon waits for file changes to settle before it prebuilds (`[watch]`).
    pub debounce_ms: Sourced<u64>,
    /// How many of each image's newest unused dependency images pruning keeps (`[prune] keep`;
    /// `prune --keep` overrides it).
    pub prune_keep: Sourced<u32>,
    /// What the resolution read: a change to any of it can change the configuration.
    pub read: ConfigInputs,
    /// Bytes dockwarm's images of this project may use; the daemon removes the least recently
    /// used ones beyond it.
    pub prune_budget: Sourced<u64>,
    /// Bytes of BuildKit cache to keep when the user opts in to pruning it; None: never pruned.
    pub builder_budget: Sourced<Option<u64>>,
    /// `[ahead]`: prebuilding what `git fetch` brings, before any checkout.
    #[serde(default)]
    pub ahead: Ahead,
    /// The team registry dependency images are shared through (`[registry]`,
    /// `DOCKWARM_REGISTRY`); None: this machine only.
    #[serde(default)]
    pub registry: Option<Sourced<crate::remote::TeamRegistry>>,
}

/// `[ahead]`: whether the daemon prebuilds fetched commits of the default branch and of the
/// checked-out branches' upstreams, and which other refs it watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ahead {
    /// Whether the daemon prebuilds fetched commits at all (default on).
    pub enabled: Sourced<bool>,
    /// More refs to prebuild ahead: `origin/release` or `refs/remotes/origin/release`.
    pub refs: Sourced<Vec<String>>,
    /// Whether to install git's `reference-transaction` hook too (default off). git runs it
    /// for every ref update, eight times for one `git checkout`, so it costs every checkout
    /// several milliseconds; the daemon's watch on the ref files sees fetches without it.
    /// With it, a fetch is seen even while no daemon runs.
    #[serde(default = "hook_default")]
    pub hook: Sourced<bool>,
    /// Whether the default branch's new commits get their whole image built ahead, not only
    /// the dependency stage (default on): agents start new workspaces from the newest main,
    /// and such a workspace then only tags that image. Costs one image build per commit the
    /// default branch moves to.
    #[serde(default = "full_default")]
    pub full: Sourced<bool>,
}

fn hook_default() -> Sourced<bool> {
    sourced(false, Origin::Default)
}

fn full_default() -> Sourced<bool> {
    sourced(true, Origin::Default)
}

impl Default for Ahead {
    fn default() -> Ahead {
        Ahead {
            enabled: sourced(true, Origin::Default),
            refs: sourced(Vec::new(), Origin::Default),
            hook: hook_default(),
            full: full_default(),
        }
    }
}

/// A built service left to compose, with the reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    /// The compose service whose build dockwarm does not prebuild.
    pub service: String,
    /// Why, in words `dockwarm config` and `doctor` show (a remote context, ...).
    pub reason: String,
}

/// The files a configuration was read from (or looked for: a compose file that appears
/// changes the answer) and the environment variables it consulted, with their values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigInputs {
    /// Every file read or looked for, missing ones included: the cached plan is stale when
    /// any of them appears, changes or goes.
    pub files: Vec<PathBuf>,
    /// Each environment variable consulted and its value then (None: unset), compared with
    /// the environment of the next run.
    pub env: BTreeMap<String, Option<String>>,
}

/// One shared runtime cache volume: named for the project, so every workspace mounts the same
/// one and package downloads survive from one worktree to the next.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// The key in `[volumes]` (or compose's top-level volume key).
    pub key: String,
    /// The engine's name of the volume.
    pub name: String,
    /// Where services mount it, when known.
    pub target: Option<String>,
    /// Where it was configured (`dockwarm.toml [volumes] KEY`, or the compose volume).
    pub from: Origin,
}

/// One image dockwarm prebuilds: how compose (or the `[[image]]` table) builds it, so the
/// dependency stage can be built exactly as the user's own build will ask for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Its name in dockwarm's output and on the command line: the `[[image]]` name, else the
    /// first compose service that builds it.
    pub name: String,
    /// Where it was configured (the `[[image]]` entry or the compose service's `build:`).
    pub from: Origin,
    /// Relative to the workspace root.
    pub context: Sourced<PathBuf>,
    /// Relative to the workspace root (unused when `dockerfile_inline` is set).
    pub dockerfile: Sourced<PathBuf>,
    /// compose's `dockerfile_inline`: the Dockerfile's text, built as given.
    pub dockerfile_inline: Option<Sourced<String>>,
    /// compose's `additional_contexts` that are local directories, relative to the root
    /// (remote ones are left to the builder: they are not inputs dockwarm can fingerprint).
    pub additional_contexts: BTreeMap<String, Sourced<PathBuf>>,
    /// The final stage the user's build targets (compose's `target`); None: the last stage.
    /// The dependency stage is looked for among the stages it depends on.
    pub target: Sourced<Option<String>>,
    /// The build's network (`host` to reach a package index on the host's loopback).
    pub network: Sourced<Option<String>>,
    /// The stage to prebuild as the dependency stage, when the user names it; None: derived
    /// from the Dockerfile.
    pub deps_target: Sourced<Option<String>>,
    /// Build args, as compose passes them: they change what the stages build, so they are
    /// fingerprinted and given to the dependency build.
    pub args: BTreeMap<String, Sourced<String>>,
    /// More files to fingerprint beside the dependency stage's COPY/ADD sources (a
    /// `.python-version` the stage reads indirectly), relative to the context.
    pub inputs: Sourced<Vec<String>>,
    /// The compose services built from this image: they name its compose tags, and the
    /// containers that hold them.
    pub services: Sourced<Vec<String>>,
    /// The names compose gives this image in this workspace: each service's `image:`, else
    /// `<compose project>-<service>` (v2) and `<compose project>_<service>` (v1).
    pub compose_tags: Vec<String>,
}

impl ImageSpec {
    /// The Dockerfile's text: compose's `dockerfile_inline`, else the file.
    pub fn read_dockerfile(&self, root: &Path) -> std::io::Result<String> {
        match &self.dockerfile_inline {
            Some(text) => Ok(text.value.clone()),
            None => std::fs::read_to_string(root.join(&self.dockerfile.value)),
        }
    }

    /// The named build contexts, as absolute directories (what `--build-context` takes).
    pub fn named_context_dirs(&self, root: &Path) -> BTreeMap<String, PathBuf> {
        self.additional_contexts
            .iter()
            .map(|(k, v)| (k.clone(), root.join(&v.value)))
            .collect()
    }

    /// The build args without their origins: what the fingerprint and the builders take.
    pub fn arg_values(&self) -> BTreeMap<String, String> {
        self.args
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    }
}

impl Config {
    /// Selects images by name; all of them when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<&ImageSpec>, ConfigError> {
        if names.is_empty() {
            return Ok(self.images.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.images
                    .iter()
                    .find(|i| &i.name == n)
                    .ok_or_else(|| ConfigError::UnknownImage {
                        name: n.clone(),
                        known: self
                            .images
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            })
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: Option<RawProject>,
    volumes: Option<BTreeMap<String, String>>,
    #[serde(rename = "image")]
    images: Option<Vec<RawImage>>,
    build: Option<RawBuild>,
    watch: Option<RawWatch>,
    prune: Option<RawPrune>,
    ahead: Option<RawAhead>,
    registry: Option<RawRegistry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAhead {
    enabled: Option<bool>,
    refs: Option<Vec<String>>,
    hook: Option<bool>,
    full: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    url: Option<String>,
    /// Hosts that may be spoken to in plain HTTP (loopback always may).
    #[serde(default)]
    insecure: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    name: String,
    context: Option<String>,
    dockerfile: Option<String>,
    target: Option<String>,
    deps_target: Option<String>,
    network: Option<String>,
    #[serde(default)]
    args: BTreeMap<String, String>,
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    services: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    backend: Option<Backend>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    debounce_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrune {
    keep: Option<u32>,
    budget: Option<toml::Spanned<String>>,
    builder_budget: Option<toml::Spanned<String>>,
}

/// The user's own configuration (`$XDG_CONFIG_HOME/dockwarm/config.toml`): defaults for every
/// repository, which a repository's dockwarm.toml overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUserConfig {
    prune: Option<RawPrune>,
    registry: Option<RawRegistry>,
}

/// The user's own `[registry]` (a registry for one user, on every repository that names none),
/// with the file it came from.
fn user_registry(env: &Env) -> Result<Option<(RawRegistry, String)>, ConfigError> {
    let Some(path) = user_config_path(env) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ConfigError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let raw: RawUserConfig = toml::from_str(&text).map_err(|e| toml_error(&text, &path, &e))?;
    Ok(raw.registry.map(|r| (r, path.display().to_string())))
}

/// The budgets of the user's config, with their origins.
#[derive(Debug, Clone, Serialize)]
pub struct UserPrune {
    /// Bytes dockwarm's images may use, for repositories whose dockwarm.toml sets no budget.
    pub budget: Sourced<u64>,
    /// Bytes of BuildKit cache to keep; None: the builder's cache is never pruned.
    pub builder_budget: Sourced<Option<u64>>,
}

/// `DOCKWARM_CONFIG`, else `$XDG_CONFIG_HOME/dockwarm/config.toml`, else
/// `~/.config/dockwarm/config.toml`, as `env` sets them.
pub fn user_config_path(env: &Env) -> Option<PathBuf> {
    env.path("DOCKWARM_CONFIG")
        .or_else(|| {
            env.path("XDG_CONFIG_HOME")
                .map(|d| d.join("dockwarm/config.toml"))
        })
        .or_else(|| {
            env.path("HOME")
                .map(|h| h.join(".config/dockwarm/config.toml"))
        })
}

/// The user's budgets (defaults where the file says nothing, or there is no file).
pub fn user_prune(env: &Env) -> Result<UserPrune, ConfigError> {
    let mut out = UserPrune {
        budget: sourced(
            crate::disk::DEFAULT_BUDGET,
            Origin::DefaultNoted(crate::disk::DEFAULT_BUDGET_TEXT.into()),
        ),
        builder_budget: sourced(None, Origin::DefaultNoted("never pruned".into())),
    };
    let Some(path) = user_config_path(env) else {
        return Ok(out);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(ConfigError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let raw: RawUserConfig = toml::from_str(&text).map_err(|e| toml_error(&text, &path, &e))?;
    if let Some(p) = raw.prune {
        if let Some(b) = &p.budget {
            out.budget = sourced(
                size(b, &text, &path, "budget")?,
                Origin::UserConfig {
                    path: path.clone(),
                    key: "[prune] budget".into(),
                },
            );
        }
        if let Some(b) = &p.builder_budget {
            out.builder_budget = sourced(
                Some(size(b, &text, &path, "builder_budget")?),
                Origin::UserConfig {
                    path: path.clone(),
                    key: "[prune] builder_budget".into(),
                },
            );
        }
    }
    Ok(out)
}

/// A size value, or an error naming the file, line and column and the accepted forms.
fn size(
    value: &toml::Spanned<String>,
    text: &str,
    path: &Path,
    key: &str,
) -> Result<u64, ConfigError> {
    crate::disk::parse_size(value.get_ref()).map_err(|e| {
        let (line, column) = line_col(text, value.span().start);
        ConfigError::Toml {
            path: path.display().to_string(),
            line,
            column,
            message: format!("[prune] {key}: {e}"),
        }
    })
}

/// Loads the configuration of the checkout containing `dir`, in the environment `env`.
pub fn load(dir: &Path, env: &Env) -> Result<Config, ConfigError> {
    let ws = Workspace::discover(dir)?;
    resolve(&ws, env)
}

/// Resolves the configuration, asking compose v2 for its model when its cached answer is
/// out of date. `env` is the environment compose interpolates and the knobs come from.
pub fn resolve(ws: &Workspace, env: &Env) -> Result<Config, ConfigError> {
    resolve_env(ws, env, true)
}

/// Resolves the configuration without starting any process: compose v2's cached answer when
/// it still matches what compose would read, else dockwarm's own reading (the git hooks).
pub fn resolve_cached(ws: &Workspace, env: &Env) -> Result<Config, ConfigError> {
    resolve_env(ws, env, false)
}

/// Resolves in the environment `vars`.
fn resolve_env(ws: &Workspace, vars: &Env, spawn: bool) -> Result<Config, ConfigError> {
    let env = &vars.compose_vars();
    let toml_path = ws.root.join(FILE_NAME);
    let (raw, file, text) = match std::fs::read_to_string(&toml_path) {
        Ok(text) => (
            parse_toml(&text, &toml_path)?,
            Some(toml_path.clone()),
            text,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (RawConfig::default(), None, String::new())
        }
        Err(e) => {
            return Err(ConfigError::Unreadable {
                path: toml_path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let state = State::open(vars).ok();
    let compose = compose::load(
        &ws.root,
        &compose::Options {
            env,
            spawn,
            state: state.as_ref(),
        },
    )?;

    let project = match raw.project.as_ref().and_then(|p| p.name.clone()) {
        Some(name) => {
            let normal = compose::normalize_project_name(&name);
            if normal != name || name.is_empty() {
                return Err(ConfigError::Invalid {
                    path: toml_path.display().to_string(),
                    message: format!("project.name `{name}` must be lower case letters, digits, `_` or `-` (e.g. `{normal}`)"),
                });
            }
            sourced(name, Origin::Toml("[project] name".into()))
        }
        None => sourced(
            compose::normalize_project_name(&ws.main_dir_name()),
            Origin::MainWorktreeName,
        ),
    };

    let compose_project = match &compose {
        Some(m) => sourced(m.name.clone(), Origin::parse(&m.name_from)),
        None => match env.get("COMPOSE_PROJECT_NAME").filter(|s| !s.is_empty()) {
            Some(name) if compose::is_valid_project_name(name) => {
                sourced(name.clone(), Origin::Env("COMPOSE_PROJECT_NAME".into()))
            }
            Some(name) => {
                return Err(ConfigError::Invalid {
                    path: "COMPOSE_PROJECT_NAME".into(),
                    message: format!("invalid project name {name:?}: compose accepts only lower case letters, digits, `_` and `-`, starting with a letter or digit"),
                })
            }
            None => sourced(
                compose::normalize_project_name(&ws.dir_name()),
                Origin::WorkspaceDirName,
            ),
        },
    };

    let volumes = resolve_volumes(&raw, compose.as_ref(), &project.value);
    let mut skipped = Vec::new();
    let mut images = resolve_images(&raw, compose.as_ref(), ws, &toml_path, &mut skipped)?;
    for image in &mut images {
        image.compose_tags = compose_tags(
            &image.services.value,
            compose.as_ref(),
            &compose_project.value,
        );
    }

    let backend = match env
        .get("DOCKWARM_BACKEND")
        .cloned()
        .filter(|s| !s.is_empty())
    {
        Some(b) => sourced(
            b.parse().map_err(|m| ConfigError::Invalid {
                path: "DOCKWARM_BACKEND".into(),
                message: m,
            })?,
            Origin::Env("DOCKWARM_BACKEND".into()),
        ),
        None => match raw.build.as_ref().and_then(|b| b.backend) {
            Some(b) => sourced(b, Origin::Toml("[build] backend".into())),
            None => sourced(Backend::Auto, Origin::Default),
        },
    };
    let debounce_ms = match raw.watch.as_ref().and_then(|w| w.debounce_ms) {
        Some(ms) => sourced(ms, Origin::Toml("[watch] debounce_ms".into())),
        None => sourced(500, Origin::Default),
    };
    let prune_keep = match raw.prune.as_ref().and_then(|p| p.keep) {
        Some(k) => sourced(k, Origin::Toml("[prune] keep".into())),
        None => sourced(3, Origin::Default),
    };
    let mut read = ConfigInputs::default();
    read.files.push(toml_path.clone());
    match &compose {
        Some(m) => {
            read.files.extend(m.read_files.iter().cloned());
            read.env.extend(m.read_env.clone());
        }
        None => {
            read.files
                .extend(compose::FILE_NAMES.iter().map(|n| ws.root.join(n)));
            read.files.push(ws.root.join(".env"));
        }
    }
    read.files.extend(user_config_path(vars));
    let mut env_names: Vec<String> = vec![
        "COMPOSE_PROJECT_NAME".into(),
        "DOCKWARM_BACKEND".into(),
        "DOCKWARM_COMPOSE".into(),
        "DOCKWARM_REGISTRY".into(),
    ];
    env_names.extend(env.keys().filter(|k| k.starts_with("COMPOSE_")).cloned());
    for name in env_names {
        let value = env.get(&name).cloned();
        read.env.insert(name, value);
    }
    let user = user_prune(vars)?;
    let raw_prune = raw.prune.as_ref();
    let prune_budget = match raw_prune.and_then(|p| p.budget.as_ref()) {
        Some(b) => sourced(
            size(b, &text, &toml_path, "budget")?,
            Origin::Toml("[prune] budget".into()),
        ),
        None => user.budget,
    };
    let builder_budget = match raw_prune.and_then(|p| p.builder_budget.as_ref()) {
        Some(b) => sourced(
            Some(size(b, &text, &toml_path, "builder_budget")?),
            Origin::Toml("[prune] builder_budget".into()),
        ),
        None => user.builder_budget,
    };
    let mut ahead = Ahead::default();
    if let Some(a) = raw.ahead.as_ref() {
        if let Some(enabled) = a.enabled {
            ahead.enabled = sourced(enabled, Origin::Toml("[ahead] enabled".into()));
        }
        if let Some(refs) = &a.refs {
            ahead.refs = sourced(refs.clone(), Origin::Toml("[ahead] refs".into()));
        }
        if let Some(hook) = a.hook {
            ahead.hook = sourced(hook, Origin::Toml("[ahead] hook".into()));
        }
        if let Some(full) = a.full {
            ahead.full = sourced(full, Origin::Toml("[ahead] full".into()));
        }
    }
    let registry = resolve_registry(raw.registry.as_ref(), env, vars, &toml_path)?;
    Ok(Config {
        ahead,
        registry,
        read,
        root: ws.root.clone(),
        file,
        compose_file: compose.as_ref().and_then(|m| m.files.first().cloned()),
        compose_files: compose
            .as_ref()
            .map(|m| m.files.clone())
            .unwrap_or_default(),
        compose_inputs: compose
            .as_ref()
            .map(|m| m.inputs.clone())
            .unwrap_or_default(),
        compose_reader: compose.as_ref().map(|m| m.reader),
        skipped,
        compose_volumes: compose
            .as_ref()
            .map(|m| m.volumes.clone())
            .unwrap_or_default(),
        project,
        compose_project,
        volumes,
        images,
        backend,
        debounce_ms,
        prune_keep,
        prune_budget,
        builder_budget,
    })
}

/// `DOCKWARM_REGISTRY` (`off` turns a configured one off), else dockwarm.toml's
/// `[registry] url`, else the user's own config's. `insecure` lists of both files count.
fn resolve_registry(
    raw: Option<&RawRegistry>,
    env: &BTreeMap<String, String>,
    vars: &Env,
    toml_path: &Path,
) -> Result<Option<Sourced<crate::remote::TeamRegistry>>, ConfigError> {
    let user = user_registry(vars)?;
    let mut insecure = raw.map(|r| r.insecure.clone()).unwrap_or_default();
    if let Some((u, _)) = &user {
        insecure.extend(u.insecure.iter().cloned());
    }
    let (url, from, path) = match env
        .get("DOCKWARM_REGISTRY")
        .filter(|s| !s.trim().is_empty())
    {
        Some(v) if v.trim() == "off" => return Ok(None),
        Some(v) => (
            v.clone(),
            Origin::Env("DOCKWARM_REGISTRY".into()),
            "DOCKWARM_REGISTRY".to_string(),
        ),
        None => match raw.and_then(|r| r.url.clone()) {
            Some(u) => (
                u,
                Origin::Toml("[registry] url".into()),
                toml_path.display().to_string(),
            ),
            None => match user.and_then(|(u, path)| u.url.map(|url| (url, path))) {
                Some((url, path)) => (
                    url,
                    Origin::UserConfig {
                        path: PathBuf::from(&path),
                        key: "[registry] url".into(),
                    },
                    path,
                ),
                None => return Ok(None),
            },
        },
    };
    let parsed = crate::remote::TeamRegistry::parse(&url, &insecure).map_err(|message| {
        ConfigError::Invalid {
            path,
            message: format!("[registry] url {message}"),
        }
    })?;
    Ok(Some(sourced(parsed, from)))
}

fn compose_tags(services: &[String], compose: Option<&ComposeModel>, project: &str) -> Vec<String> {
    let mut tags = Vec::new();
    for name in services {
        let explicit = compose
            .and_then(|c| c.service(name))
            .and_then(|s| s.image.clone());
        match explicit {
            Some(image) => tags.push(image),
            None => tags.extend(compose::image_names(project, name)),
        }
    }
    tags.dedup();
    tags
}

fn parse_toml(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| toml_error(text, path, &e))
}

fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
    ConfigError::Toml {
        path: path.display().to_string(),
        line,
        column,
        message: e.message().trim().to_string(),
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

fn resolve_volumes(
    raw: &RawConfig,
    compose: Option<&ComposeModel>,
    project: &str,
) -> Vec<VolumeSpec> {
    if let Some(vols) = &raw.volumes {
        return vols
            .iter()
            .map(|(key, target)| VolumeSpec {
                key: key.clone(),
                name: format!("{project}_{key}"),
                target: Some(target.clone()),
                from: Origin::Toml(format!("[volumes] {key}")),
            })
            .collect();
    }
    // Without [volumes], the compose file's external volumes are the shared ones: compose
    // refuses to start without them, and they are the only ones not made per workspace.
    compose
        .map(|c| {
            c.volumes
                .iter()
                .filter(|v| v.external)
                .map(|v| VolumeSpec {
                    key: v.key.clone(),
                    name: v.name.clone().unwrap_or_else(|| v.key.clone()),
                    target: None,
                    from: Origin::Compose(format!(
                        "{} (external)",
                        c.origin(&format!("volumes.{}", v.key))
                    )),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What dockwarm builds from one compose `build:`: paths relative to the workspace root.
struct FromCompose {
    context: PathBuf,
    dockerfile: PathBuf,
    inline: Option<String>,
    additional_contexts: BTreeMap<String, PathBuf>,
    /// Remote named contexts: neither fingerprinted nor given to the dependency build.
    remote_contexts: BTreeMap<String, String>,
}

/// The local parts of a compose build, or why it cannot be prebuilt.
fn from_compose(root: &Path, b: &compose::Build) -> Result<FromCompose, String> {
    let context = match &b.context {
        compose::Context::Local(p) => relative_to(root, p),
        compose::Context::Remote(url) => {
            return Err(format!(
                "its build context {url} is remote: nothing local to fingerprint, compose builds it"
            ))
        }
    };
    let (dockerfile, inline) = match &b.dockerfile {
        compose::Dockerfile::Path(p) => (clean(&context.join(p)), None),
        compose::Dockerfile::Inline(text) => (context.join("Dockerfile"), Some(text.clone())),
    };
    let additional_contexts = b
        .additional_contexts
        .iter()
        .filter_map(|(k, c)| match c {
            compose::Context::Local(p) => Some((k.clone(), relative_to(root, p))),
            compose::Context::Remote(_) => None,
        })
        .collect();
    let remote_contexts = b
        .additional_contexts
        .iter()
        .filter_map(|(k, c)| match c {
            compose::Context::Remote(url) => Some((k.clone(), url.clone())),
            compose::Context::Local(_) => None,
        })
        .collect();
    Ok(FromCompose {
        context,
        dockerfile,
        inline,
        additional_contexts,
        remote_contexts,
    })
}

/// The origin of an optional value: the default when nothing set it.
fn unset_default(value: &Option<String>, origin: Origin) -> Origin {
    match value {
        Some(_) => origin,
        None => Origin::Default,
    }
}

/// `path` relative to `root` (with `..` when outside it), as compose's absolute paths are.
fn relative_to(root: &Path, path: &Path) -> PathBuf {
    if let Ok(rel) = path.strip_prefix(root) {
        return clean(rel);
    }
    if let (Ok(r), Ok(p)) = (root.canonicalize(), path.canonicalize()) {
        if let Ok(rel) = p.strip_prefix(&r) {
            return clean(rel);
        }
    }
    let mut base: Vec<_> = root.components().collect();
    let target: Vec<_> = path.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    base.truncate(common);
    let mut out = PathBuf::new();
    for _ in common..root.components().count() {
        out.push("..");
    }
    for c in &target[common..] {
        out.push(c);
    }
    out
}

/// The images to prebuild, and where each setting came from. The `[[image]]` entries win
/// when the toml has any; otherwise compose's services say what to build; a project with
/// neither falls back on its root Dockerfile. No image at all is an error.
fn resolve_images(
    raw: &RawConfig,
    compose: Option<&ComposeModel>,
    ws: &Workspace,
    toml_path: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<ImageSpec>, ConfigError> {
    if let Some(raws) = &raw.images {
        return images_from_toml(raws, compose, ws, toml_path);
    }
    let mut images = compose.map_or_else(Vec::new, |c| images_from_compose(c, ws, skipped));
    if images.is_empty() && compose.is_none() && ws.root.join("Dockerfile").is_file() {
        images.push(root_dockerfile_image());
    }
    if images.is_empty() {
        return Err(ConfigError::NoImages {
            root: ws.root.display().to_string(),
        });
    }
    Ok(images)
}

/// What the compose model says set `key`, as a config origin: `dockwarm config` shows the
/// compose file and key behind each value it took from compose, and compose's defaults as
/// dockwarm's ("default").
fn compose_origin(compose: &ComposeModel, key: &str) -> Origin {
    match compose.origin(key) {
        compose::Origin::Default => Origin::Default,
        origin => Origin::Compose(origin.to_string()),
    }
}

/// The images the user lists as `[[image]]`: they exist so that a project can say what to
/// prebuild itself (images compose does not describe, or several services' images tuned by
/// hand). Each needs its own name, the one `dockwarm` commands and tags use.
fn images_from_toml(
    raws: &[RawImage],
    compose: Option<&ComposeModel>,
    ws: &Workspace,
    toml_path: &Path,
) -> Result<Vec<ImageSpec>, ConfigError> {
    let mut images: Vec<ImageSpec> = Vec::new();
    for (i, r) in raws.iter().enumerate() {
        if r.name.is_empty() || images.iter().any(|x| x.name == r.name) {
            return Err(ConfigError::Invalid {
                path: toml_path.display().to_string(),
                message: format!("[[image]] #{} needs a unique, non-empty `name`", i + 1),
            });
        }
        images.push(toml_image(&format!("image[{i}]"), r, compose, ws));
    }
    Ok(images)
}

/// The compose build an `[[image]]` is like: its first listed service's `build:`, which
/// fills in the fields the toml leaves out, so that an entry naming a service need not
/// repeat what compose already says.
struct LikeService<'a> {
    /// The service, under `services:`.
    name: &'a str,
    /// Its `build:`, as compose reads it.
    build: &'a compose::Build,
    /// The build's local parts, relative to the workspace root.
    local: FromCompose,
    /// The model, for the origin of each value taken from it.
    model: &'a ComposeModel,
}

impl<'a> LikeService<'a> {
    /// The build of `r`'s first service; `None` when it lists none, or that service has no
    /// `build:` that can be prebuilt.
    fn of(r: &'a RawImage, compose: Option<&'a ComposeModel>, ws: &Workspace) -> Option<Self> {
        let name = r.services.first()?;
        let model = compose?;
        let build = model.service(name)?.build.as_ref()?;
        let local = from_compose(&ws.root, build).ok()?;
        Some(LikeService {
            name,
            build,
            local,
            model,
        })
    }

    /// Where the service's `build{field}` came from.
    fn origin(&self, field: &str) -> Origin {
        compose_origin(self.model, &format!("services.{}.build{field}", self.name))
    }

    /// Where `build{field}`, taken from `svc`, came from: the default without a service.
    fn origin_in(svc: Option<&Self>, field: &str) -> Origin {
        svc.map_or(Origin::Default, |s| s.origin(field))
    }

    /// An optional setting (`target`, `network`: `build{field}`) from `svc`: what compose
    /// does not set is the default, not that compose key's.
    fn optional(
        svc: Option<&Self>,
        field: &str,
        value: impl Fn(&compose::Build) -> Option<String>,
    ) -> Sourced<Option<String>> {
        let value = svc.and_then(|s| value(s.build));
        let from = unset_default(&value, Self::origin_in(svc, field));
        sourced(value, from)
    }

    /// The service's build args, each with its origin.
    fn args(&self) -> BTreeMap<String, Sourced<String>> {
        self.build
            .args
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    sourced(v.clone(), self.origin(&format!(".args.{k}"))),
                )
            })
            .collect()
    }

    /// The service's local named contexts, each with its origin.
    fn additional_contexts(&self) -> BTreeMap<String, Sourced<PathBuf>> {
        self.local
            .additional_contexts
            .iter()
            .map(|(k, p)| {
                let from = self.origin(&format!(".additional_contexts.{k}"));
                (k.clone(), sourced(p.clone(), from))
            })
            .collect()
    }
}

/// One `[[image]]` entry (`here`: `image[0]`, for origins): the toml's own values, the
/// rest from the first listed service's `build:` ([`LikeService`]), or defaults.
fn toml_image(
    here: &str,
    r: &RawImage,
    compose: Option<&ComposeModel>,
    ws: &Workspace,
) -> ImageSpec {
    let like = LikeService::of(r, compose, ws);
    let svc = like.as_ref();
    let toml = |field: &str| Origin::Toml(format!("{here} {field}"));
    let (context, dockerfile, dockerfile_inline) = toml_dockerfile(here, r, svc);
    let mut args = svc.map(LikeService::args).unwrap_or_default();
    for (k, v) in &r.args {
        args.insert(k.clone(), sourced(v.clone(), toml("args")));
    }
    // A value the toml leaves unset (or an empty list) is not the toml's.
    let toml_or = |set: bool, field: &str, otherwise: Origin| {
        if set {
            toml(field)
        } else {
            otherwise
        }
    };
    ImageSpec {
        name: r.name.clone(),
        from: Origin::Toml(here.to_string()),
        context,
        dockerfile,
        dockerfile_inline,
        additional_contexts: svc
            .map(LikeService::additional_contexts)
            .unwrap_or_default(),
        target: match &r.target {
            Some(t) => sourced(Some(t.clone()), toml("target")),
            None => LikeService::optional(svc, ".target", |b| b.target.clone()),
        },
        network: match &r.network {
            Some(n) => sourced(Some(n.clone()), toml("network")),
            None => LikeService::optional(svc, ".network", |b| b.network.clone()),
        },
        deps_target: sourced(
            r.deps_target.clone(),
            toml_or(r.deps_target.is_some(), "deps_target", Origin::Dockerfile),
        ),
        args,
        inputs: sourced(
            r.inputs.clone(),
            toml_or(!r.inputs.is_empty(), "inputs", Origin::Default),
        ),
        services: sourced(
            r.services.clone(),
            toml_or(!r.services.is_empty(), "services", Origin::Default),
        ),
        compose_tags: Vec::new(),
    }
}

/// The context, Dockerfile and inline Dockerfile of `[[image]]` `r` (`here`, for origins):
/// the toml's, else its service's. The service's Dockerfile (inline or not) is taken only
/// while the toml names no context of its own, as it is relative to the service's context;
/// otherwise it is `Dockerfile` in the context, as `docker build` has it.
fn toml_dockerfile(
    here: &str,
    r: &RawImage,
    svc: Option<&LikeService>,
) -> (Sourced<PathBuf>, Sourced<PathBuf>, Option<Sourced<String>>) {
    let toml = |field: &str| Origin::Toml(format!("{here} {field}"));
    let context = match &r.context {
        Some(c) => sourced(clean(Path::new(c)), toml("context")),
        None => sourced(
            svc.map(|s| s.local.context.clone()).unwrap_or_default(),
            LikeService::origin_in(svc, ".context"),
        ),
    };
    let mut inline = None;
    let dockerfile = match (&r.dockerfile, svc) {
        (Some(d), _) => sourced(clean(&context.value.join(d)), toml("dockerfile")),
        (None, Some(s)) if r.context.is_none() => {
            inline = s
                .local
                .inline
                .clone()
                .map(|t| sourced(t, s.origin(".dockerfile_inline")));
            sourced(s.local.dockerfile.clone(), s.origin(".dockerfile"))
        }
        (None, _) => sourced(clean(&context.value.join("Dockerfile")), Origin::Default),
    };
    (context, dockerfile, inline)
}

/// One image per distinct compose `build:`, named after the first service that uses it:
/// without `[[image]]`, the compose file is the description of what the user builds, and
/// services sharing a `build:` share its image. A service whose build cannot be prebuilt
/// (a remote context), or only in part (a remote named context), goes to `skipped` so
/// `dockwarm config` can say why, rather than failing the whole configuration.
fn images_from_compose(
    model: &ComposeModel,
    ws: &Workspace,
    skipped: &mut Vec<Skipped>,
) -> Vec<ImageSpec> {
    let mut images: Vec<ImageSpec> = Vec::new();
    let mut seen: Vec<compose::Build> = Vec::new();
    for svc in &model.services {
        let Some(build) = &svc.build else { continue };
        if let Some(i) = seen.iter().position(|b| b == build) {
            images[i].services.value.push(svc.name.clone());
            continue;
        }
        let f = match from_compose(&ws.root, build) {
            Ok(f) => f,
            Err(reason) => {
                skipped.push(Skipped {
                    service: svc.name.clone(),
                    reason,
                });
                continue;
            }
        };
        seen.push(build.clone());
        for (name, url) in &f.remote_contexts {
            skipped.push(Skipped {
                service: svc.name.clone(),
                reason: format!("additional context `{name}` ({url}) is remote: not fingerprinted and not given to the dependency build, so a dependency stage reading it is not prebuilt as the user builds it"),
            });
        }
        images.push(compose_image(model, svc, build, f));
    }
    images
}

/// The image of compose service `svc`'s `build:` (`f`: its local parts), each value with
/// the compose file and key that set it.
fn compose_image(
    model: &ComposeModel,
    svc: &compose::Service,
    build: &compose::Build,
    f: FromCompose,
) -> ImageSpec {
    let at = |field: &str| compose_origin(model, &format!("services.{}.build{field}", svc.name));
    ImageSpec {
        name: svc.name.clone(),
        from: at(""),
        context: sourced(f.context, at(".context")),
        dockerfile: sourced(f.dockerfile, at(".dockerfile")),
        dockerfile_inline: f.inline.map(|t| sourced(t, at(".dockerfile_inline"))),
        additional_contexts: f
            .additional_contexts
            .into_iter()
            .map(|(k, p)| {
                let from = at(&format!(".additional_contexts.{k}"));
                (k, sourced(p, from))
            })
            .collect(),
        target: sourced(
            build.target.clone(),
            unset_default(&build.target, at(".target")),
        ),
        network: sourced(
            build.network.clone(),
            unset_default(&build.network, at(".network")),
        ),
        deps_target: sourced(None, Origin::Dockerfile),
        args: build
            .args
            .iter()
            .map(|(k, v)| (k.clone(), sourced(v.clone(), at(&format!(".args.{k}")))))
            .collect(),
        inputs: sourced(Vec::new(), Origin::Default),
        services: sourced(
            vec![svc.name.clone()],
            compose_origin(model, &format!("services.{}", svc.name)),
        ),
        compose_tags: Vec::new(),
    }
}

/// The fallback for a project with neither `[[image]]` nor a compose file: a Dockerfile at
/// the workspace root is what `docker build .` builds, so dockwarm prebuilds it as `app`.
fn root_dockerfile_image() -> ImageSpec {
    ImageSpec {
        name: "app".into(),
        from: Origin::RootDockerfile,
        context: sourced(PathBuf::new(), Origin::Default),
        dockerfile: sourced(PathBuf::from("Dockerfile"), Origin::Default),
        dockerfile_inline: None,
        additional_contexts: BTreeMap::new(),
        target: sourced(None, Origin::Default),
        network: sourced(None, Origin::Default),
        deps_target: sourced(None, Origin::Dockerfile),
        args: BTreeMap::new(),
        inputs: sourced(Vec::new(), Origin::Default),
        services: sourced(Vec::new(), Origin::Default),
        compose_tags: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_config_is_where_the_environment_says() {
        let path = |vars: &[(&str, &str)]| user_config_path(&Env::from_vars(vars.iter().copied()));
        assert_eq!(
            path(&[("DOCKWARM_CONFIG", "/c.toml"), ("HOME", "/h")]),
            Some(PathBuf::from("/c.toml"))
        );
        assert_eq!(
            path(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]),
            Some(PathBuf::from("/x/dockwarm/config.toml"))
        );
        assert_eq!(
            path(&[("DOCKWARM_CONFIG", ""), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.config/dockwarm/config.toml"))
        );
        assert_eq!(path(&[]), None);
    }

    /// The own reader, without the process's environment: unit tests start no process.
    fn resolve(ws: &Workspace) -> Result<Config, ConfigError> {
        let env = BTreeMap::from([("DOCKWARM_COMPOSE".to_string(), "builtin".to_string())]);
        resolve_env(ws, &Env::from_vars(env), false)
    }

    fn make_ws(files: &[(&str, &str)]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("My Repo");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        for (name, text) in files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let ws = Workspace {
            root: root.clone(),
            main_root: root,
        };
        (dir, ws)
    }

    #[test]
    fn images_are_derived_from_compose_builds() {
        let (_d, ws) = make_ws(&[(
            "compose.yaml",
            "services:\n  web:\n    build: .\n  worker:\n    build: .\n  api:\n    build:\n      context: ./api\n      target: runtime\n      args: {PY: '3.12'}\n",
        )]);
        let c = resolve(&ws).unwrap();
        assert_eq!(c.project.value, "myrepo");
        assert_eq!(c.images.len(), 2);
        // Services in compose's order: by name.
        assert_eq!(c.images[1].name, "web");
        assert_eq!(c.images[1].services.value, vec!["web", "worker"]);
        assert_eq!(c.images[1].dockerfile.value, PathBuf::from("Dockerfile"));
        assert_eq!(c.images[0].context.value, PathBuf::from("api"));
        assert_eq!(
            c.images[0].dockerfile.value,
            PathBuf::from("api/Dockerfile")
        );
        assert_eq!(c.images[0].target.value.as_deref(), Some("runtime"));
        assert_eq!(c.images[0].args["PY"].value, "3.12");
        assert_eq!(
            c.images[0].args["PY"].from,
            Origin::Compose("compose.yaml services.api.build.args.PY".into())
        );
    }

    #[test]
    fn toml_overrides_and_fills_from_compose() {
        let (_d, ws) = make_ws(&[
            ("compose.yaml", "services:\n  web:\n    build:\n      context: .\n      dockerfile: docker/Dockerfile\n      target: runtime\n"),
            ("dockwarm.toml", "[project]\nname = \"adcp\"\n[volumes]\nuv = \"/cache/uv\"\n[[image]]\nname = \"app\"\nservices = [\"web\"]\ndeps_target = \"deps\"\nargs = { A = \"1\" }\n[watch]\ndebounce_ms = 200\n"),
        ]);
        let c = resolve(&ws).unwrap();
        assert_eq!(c.project.value, "adcp");
        assert_eq!(c.volumes[0].name, "adcp_uv");
        let app = &c.images[0];
        assert_eq!(app.dockerfile.value, PathBuf::from("docker/Dockerfile"));
        assert_eq!(app.target.value.as_deref(), Some("runtime"));
        assert_eq!(app.deps_target.value.as_deref(), Some("deps"));
        assert_eq!(c.debounce_ms.value, 200);
        assert!(c.ahead.enabled.value && c.ahead.enabled.from == Origin::Default);
    }

    #[test]
    fn ahead_can_be_turned_off_and_given_more_refs() {
        let (_d, ws) = make_ws(&[
            ("compose.yaml", "services:\n  web:\n    build: .\n"),
            (
                "dockwarm.toml",
                "[ahead]\nenabled = false\nrefs = [\"origin/release\"]\n",
            ),
        ]);
        let c = resolve(&ws).unwrap();
        assert!(!c.ahead.enabled.value);
        assert_eq!(c.ahead.enabled.from, Origin::Toml("[ahead] enabled".into()));
        assert_eq!(
            c.ahead.enabled.from.to_string(),
            "dockwarm.toml [ahead] enabled"
        );
        assert_eq!(c.ahead.refs.value, vec!["origin/release".to_string()]);
    }

    #[test]
    fn malformed_toml_names_file_line_and_column() {
        let (_d, ws) = make_ws(&[(
            "dockwarm.toml",
            "[project]\nname = \"a\"\n[[image]]\nname = 3\n",
        )]);
        let err = resolve(&ws).unwrap_err().to_string();
        assert!(err.contains("dockwarm.toml:4:8:"), "{err}");
        let (_d, ws) = make_ws(&[("dockwarm.toml", "[project]\nnmae = \"a\"\n")]);
        let err = resolve(&ws).unwrap_err().to_string();
        assert!(
            err.contains("dockwarm.toml:2:1:") && err.contains("nmae"),
            "{err}"
        );
    }

    #[test]
    fn external_compose_volumes_are_the_shared_ones() {
        let (_d, ws) = make_ws(&[(
            "docker-compose.yml",
            "name: demo\nservices:\n  a:\n    build: .\n    volumes: [uv:/cache/uv, data:/data]\nvolumes:\n  uv:\n    external: true\n    name: demo_uv\n  data: {}\n",
        )]);
        let c = resolve(&ws).unwrap();
        assert_eq!(c.compose_project.value, "demo");
        assert_eq!(c.volumes.len(), 1);
        assert_eq!(c.volumes[0].name, "demo_uv");
    }

    #[test]
    fn the_team_registry_comes_from_the_environment_or_the_file() {
        let compose = ("compose.yaml", "services:\n  web:\n    build: .\n");
        let toml = (
            "dockwarm.toml",
            "[registry]\nurl = \"cache.lan:5000/team\"\ninsecure = [\"cache.lan\"]\n",
        );
        let (_d, ws) = make_ws(&[compose, ("Dockerfile", "FROM scratch\n"), toml]);
        let c = resolve(&ws).unwrap();
        let r = c.registry.unwrap();
        assert_eq!(r.value.host, "cache.lan:5000");
        assert!(r.value.plain_http);
        assert_eq!(r.from, Origin::Toml("[registry] url".into()));
        let mut env = BTreeMap::from([("DOCKWARM_COMPOSE".to_string(), "builtin".to_string())]);
        env.insert("DOCKWARM_REGISTRY".into(), "ghcr.io/org/cache".into());
        let r = resolve_env(&ws, &Env::from_vars(env.clone()), false)
            .unwrap()
            .registry
            .unwrap();
        assert_eq!(
            (r.value.host.as_str(), r.from),
            ("ghcr.io", Origin::Env("DOCKWARM_REGISTRY".into()))
        );
        env.insert("DOCKWARM_REGISTRY".into(), "off".into());
        assert!(resolve_env(&ws, &Env::from_vars(env.clone()), false)
            .unwrap()
            .registry
            .is_none());
        env.insert(
            "DOCKWARM_REGISTRY".into(),
            "http://cache.example:5000/t".into(),
        );
        let e = resolve_env(&ws, &Env::from_vars(env.clone()), false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("DOCKWARM_REGISTRY: [registry] url"), "{e}");
    }

    #[test]
    fn nothing_to_build_is_explained() {
        let (_d, ws) = make_ws(&[("compose.yaml", "services:\n  db:\n    image: postgres\n")]);
        assert!(matches!(resolve(&ws), Err(ConfigError::NoImages { .. })));
    }

    #[test]
    fn an_origin_reads_back_from_the_words_it_prints() {
        let all = [
            (Origin::Default, "default"),
            (Origin::DefaultNoted("20GB".into()), "default (20GB)"),
            (
                Origin::Toml("image[0] context".into()),
                "dockwarm.toml image[0] context",
            ),
            (
                Origin::UserConfig {
                    path: PathBuf::from("/home/u/.config/dockwarm/config.toml"),
                    key: "[prune] budget".into(),
                },
                "/home/u/.config/dockwarm/config.toml [prune] budget",
            ),
            (Origin::Env("DOCKWARM_BACKEND".into()), "DOCKWARM_BACKEND"),
            (
                Origin::MainWorktreeName,
                "the main worktree's directory name",
            ),
            (Origin::WorkspaceDirName, "the workspace's directory name"),
            (Origin::Dockerfile, "derived from the Dockerfile"),
            (
                Origin::RootDockerfile,
                "the Dockerfile at the workspace root",
            ),
            (
                Origin::Compose("compose.yaml services.web.build.target".into()),
                "compose.yaml services.web.build.target",
            ),
            (
                Origin::Compose("COMPOSE_PROJECT_NAME in .env".into()),
                "COMPOSE_PROJECT_NAME in .env",
            ),
        ];
        for (origin, text) in all {
            assert_eq!(origin.to_string(), text);
            assert_eq!(Origin::parse(text), origin);
            let json = serde_json::to_string(&origin).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<Origin>(&json).unwrap(), origin);
        }
    }

    #[test]
    fn a_stored_config_reads_back_with_the_same_origins() {
        let (_d, ws) = make_ws(&[
            ("Dockerfile", "FROM scratch\n"),
            ("dockwarm.toml", "[ahead]\nenabled = false\n"),
        ]);
        let env = BTreeMap::from([("DOCKWARM_COMPOSE".to_string(), "builtin".to_string())]);
        let c = resolve_env(&ws, &Env::from_vars(env.clone()), false).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["ahead"]["enabled"]["from"],
            "dockwarm.toml [ahead] enabled"
        );
        let back: Config = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            back.ahead.enabled.from,
            Origin::Toml("[ahead] enabled".into())
        );
        assert_eq!(back.images[0].from, Origin::RootDockerfile);
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
    }
}
