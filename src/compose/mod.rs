//! The compose model dockwarm prebuilds for: each active service's `build:`, its image name,
//! the project name and the volumes — read the way `docker compose` reads it.
//!
//! Where compose v2 answers, compose itself decides: `docker compose config --format json`,
//! run in the workspace with the user's environment. Its answer is cached in the state
//! directory under a key made of everything compose read (every file it read or looked for,
//! with its content, and every variable it looked up), so that the git hooks, which may not
//! start a process, find it. Without compose v2 (v1 users, or no compose at all), dockwarm's
//! own reader gives the same answers: override files, `COMPOSE_FILE`, merge keys, `include`,
//! `extends`, profiles and compose's `.env` rules.
//!
//! `DOCKWARM_COMPOSE=builtin` forces the own reader, `DOCKWARM_COMPOSE=v2` requires compose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::State;

mod dotenv;
mod interpolate;
mod reader;

pub use reader::clean;
mod v2;
mod yaml;

pub use interpolate::interpolate;

/// The file names compose looks for, in its order of preference.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The override file names compose merges over the file it found, in its order of preference.
pub const OVERRIDE_NAMES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// Why the compose model could not be had: each names the file (or compose's own words) so
/// the user knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A compose file that is not YAML (or uses it wrongly: a repeated key, a bad `<<`).
    #[error("{path}:{line}:{column}: {source}; fix the YAML syntax")]
    Syntax {
        /// The compose file that does not parse.
        path: String,
        /// The line of the error, from 1, so an editor can jump to it.
        line: usize,
        /// The column of the error, from 1.
        column: usize,
        /// What the parser found wrong there.
        source: yaml::Error,
    },
    /// YAML that compose would refuse all the same: a wrong type, a missing `extends` service,
    /// an env file that does not parse, a variable that `${VAR:?}` requires.
    #[error("{path}: {message}")]
    Invalid {
        /// The file that holds the mistake.
        path: String,
        /// What is wrong, in compose's terms (`services.web must be a mapping`).
        message: String,
    },
    /// A compose or env file that exists (or is named) but cannot be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file that could not be read.
        path: String,
        /// Why the OS refused it.
        source: std::io::Error,
    },
    /// Compose itself refused the project: its own words.
    #[error("{0} (docker compose config); fix the compose file")]
    Rejected(String),
    /// `DOCKWARM_COMPOSE=v2` asked for compose itself, and it is missing or too old to answer
    /// (the reason): the own reader is not used in its place.
    #[error("DOCKWARM_COMPOSE=v2 but `docker compose` (v2) does not answer: {0}")]
    NoComposeV2(String),
}

impl crate::error::Classify for ComposeError {
    /// Always: a compose file to fix (or make readable), or a setting (`DOCKWARM_COMPOSE`)
    /// to change, before there is a model to read.
    fn is_usage(&self) -> bool {
        true
    }
}

/// Who answered the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reader {
    /// `docker compose config --format json`, run now.
    ComposeV2,
    /// compose v2's answer, from the state directory's cache.
    ComposeV2Cached,
    /// dockwarm's own reader.
    Builtin,
}

impl Reader {
    /// How `dockwarm config` and `doctor` name the reader, so the user knows whose answer
    /// they see.
    pub fn describe(self) -> &'static str {
        match self {
            Reader::ComposeV2 => "docker compose config",
            Reader::ComposeV2Cached => "docker compose config (cached)",
            Reader::Builtin => "dockwarm's compose reader",
        }
    }
}

/// The parts of a compose project dockwarm needs, with what they were read from: the inputs
/// to watch and the origin of each value, for `dockwarm config`.
#[derive(Debug, Clone, Serialize)]
pub struct Model {
    /// The project name compose uses.
    pub name: String,
    /// Where the project name came from.
    pub name_from: String,
    /// The compose files, in compose's merge order.
    pub files: Vec<PathBuf>,
    /// Every file the model depends on that exists: compose files, included and extended
    /// files, env files.
    pub inputs: Vec<PathBuf>,
    /// The active services (profiles applied), by name.
    pub services: Vec<Service>,
    /// The top-level volumes: the external ones are the caches shared between workspaces.
    pub volumes: Vec<Volume>,
    /// Who answered: compose (now or cached) or the own reader.
    pub reader: Reader,
    /// Every path read or looked for (a compose file that appears changes the answer).
    pub read_files: Vec<PathBuf>,
    /// Every variable looked up, with the value it had.
    pub read_env: BTreeMap<String, Option<String>>,
    /// `services.web.build.target` → `compose.override.yaml`: what set each value.
    #[serde(skip)]
    origins: BTreeMap<String, Origin>,
}

/// Where the compose model says a value came from, kept typed so that code can ask (did
/// compose default it? which file set it?) and only what prints it formats it: as
/// [`Display`](std::fmt::Display) shows it, `compose.override.yaml services.web.build.target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A compose file set the key (the last to set a value; the first to write a mapping).
    File {
        /// The file, relative to the project directory when it lies inside it.
        file: PathBuf,
        /// The key, dotted from the top: `services.web.build.target`.
        key: String,
    },
    /// compose's own default (a build's context `.`, its `Dockerfile`): "default".
    Default,
    /// The reader answered without saying which file set the key: compose v2, where the own
    /// reader (which knows the files) does not agree with it.
    Reader {
        /// Who answered.
        reader: Reader,
        /// The key, dotted from the top.
        key: String,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File { file, key } => write!(f, "{} {key}", file.display()),
            Origin::Default => f.write_str("default"),
            Origin::Reader { reader, key } => write!(f, "{} {key}", reader.describe()),
        }
    }
}

/// One active service, as far as prebuilding and volumes care.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// The key under `services:`: what `[[image]] services` lists, and what compose names the
    /// built image after.
    pub name: String,
    /// Its `build:`; `None` for a service that only runs a pulled image.
    pub build: Option<Build>,
    /// `image:`, which names the built image instead of `<project>-<service>`.
    pub image: Option<String>,
    /// Named volumes the service mounts (top-level volume keys).
    pub volumes: Vec<String>,
}

/// A service's `build:`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Build {
    /// `build.context` (`.` when unset), local ones made absolute as compose resolves them.
    pub context: Context,
    /// `build.dockerfile` or `build.dockerfile_inline`.
    pub dockerfile: Dockerfile,
    /// `build.target`: the stage compose builds (`None` when unset or empty: the last).
    pub target: Option<String>,
    /// `build.args` that have a value, interpolated: part of the dependency build's cache key.
    pub args: BTreeMap<String, String>,
    /// `build.network` (e.g. `host`): the network of RUN steps, part of their cache keys.
    pub network: Option<String>,
    /// Named contexts (`COPY --from=name`, `FROM name`).
    pub additional_contexts: BTreeMap<String, Context>,
}

/// A build context: a local directory (absolute), or anything else compose hands to the
/// builder as is (a git or HTTP URL, `docker-image://`, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// A directory on this machine, absolute: fingerprinted and given to the build.
    Local(PathBuf),
    /// A URL or git address: nothing local to fingerprint, so compose builds it itself.
    Remote(String),
}

/// Where a service's Dockerfile comes from: a file, or text inline in the compose file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dockerfile {
    /// Relative to the context (or absolute), as compose gives it.
    Path(String),
    /// `dockerfile_inline`: the Dockerfile's text.
    Inline(String),
}

/// A top-level volume: `external` ones must exist before `up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// The key under the top-level `volumes:`, which services' mounts name.
    pub key: String,
    /// The engine name the file fixes (`name:`, or an external volume's key); `None` when
    /// compose derives it from the project (`<project>_<key>`, one per workspace).
    pub name: Option<String>,
    /// `external: true`: compose does not create it and refuses `up` until it exists; without
    /// `[volumes]`, these are the shared volumes dockwarm creates.
    pub external: bool,
    /// Where the active services mount it (`/root/.cache/uv`): a cache path mounted from a
    /// volume compose names per workspace is a cache no longer shared.
    #[serde(default)]
    pub targets: Vec<String>,
}

impl Volume {
    /// The engine's name of the volume in project `project`.
    pub fn engine_name(&self, project: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{project}_{}", self.key))
    }
}

impl Model {
    /// Where the value at `key` (`services.web.build.target`) came from, for `dockwarm
    /// config`: the file that set it, compose's default, or the reader when it cannot say.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| Origin::Reader {
                reader: self.reader,
                key: key.to_string(),
            })
    }

    /// The active service called `name`, if there is one (inactive profiles are left out).
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

static NO_PROCESSES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on this process starts no `docker compose` (the git hooks: their time is git's):
/// compose's cached answer or the own reader answers.
pub fn forbid_processes() {
    NO_PROCESSES.store(true, std::sync::atomic::Ordering::Relaxed);
}

static IN_BACKGROUND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on a missing cached answer is asked of compose on a thread while the own reader
/// answers at once (the daemon: its first look at a workspace must not wait for compose).
pub fn ask_compose_in_background() {
    IN_BACKGROUND.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// How to get the model.
pub struct Options<'a> {
    /// The environment compose would see (the process's, in production:
    /// [`crate::env::Env::compose_vars`]).
    pub env: &'a BTreeMap<String, String>,
    /// May start `docker compose` when its cached answer does not match (false on the hooks'
    /// path: the own reader answers there).
    pub spawn: bool,
    /// Where compose's answers are cached.
    pub state: Option<&'a State>,
}

/// The compose model of the project in `root`, or `None` when it has no compose file.
pub fn load(root: &Path, opts: &Options) -> Result<Option<Model>, ComposeError> {
    let mode = opts.env.get("DOCKWARM_COMPOSE").map(String::as_str);
    let mut trace = reader::Trace::default();
    let builtin = reader::load(root, opts.env, &mut trace);
    if mode == Some("builtin") {
        return builtin;
    }
    if matches!(builtin, Ok(None)) {
        return Ok(None);
    }
    let key = trace.key(root, opts.env);
    let from_v2 = |json: &Value, reader: Reader| -> Result<Model, ComposeError> {
        let mut model = from_json(json, true, reader)
            .map_err(|m| ComposeError::Rejected(format!("unexpected output: {m}")))?;
        // The own reader knows which file set each value; trust it where it agrees.
        if let Ok(Some(own)) = &builtin {
            model.inputs = own.inputs.clone();
            model.files = own.files.clone();
            if own.services == model.services && own.name == model.name {
                model.origins = own.origins.clone();
                model.name_from = own.name_from.clone();
            }
        } else {
            model.inputs = trace.existing_files();
        }
        model.read_files = trace.all_files();
        model.read_env = trace.vars();
        Ok(model)
    };
    if let Some(json) = opts.state.and_then(|s| v2::cached(s, &key)) {
        if let Ok(model) = from_v2(&json, Reader::ComposeV2Cached) {
            return Ok(Some(model));
        }
    }
    if !opts.spawn || NO_PROCESSES.load(std::sync::atomic::Ordering::Relaxed) {
        return builtin;
    }
    if IN_BACKGROUND.load(std::sync::atomic::Ordering::Relaxed) && matches!(builtin, Ok(Some(_))) {
        if let Some(state) = opts.state.cloned() {
            let (root, env) = (root.to_path_buf(), opts.env.clone());
            std::thread::spawn(move || {
                if let Ok(text) = v2::config(&root, &env) {
                    if serde_json::from_str::<Value>(&text).is_ok() {
                        v2::store(&state, &key, &text);
                    }
                }
            });
            return builtin;
        }
    }
    match v2::config(root, opts.env) {
        Ok(text) => {
            let json: Value = serde_json::from_str(&text)
                .map_err(|e| ComposeError::Rejected(format!("unexpected output: {e}")))?;
            let model = from_v2(&json, Reader::ComposeV2)?;
            if let Some(state) = opts.state {
                v2::store(state, &key, &text);
            }
            Ok(Some(model))
        }
        Err(v2::V2Error::Rejected(message)) => Err(rejected(message, &builtin)),
        Err(v2::V2Error::Absent(why)) if mode == Some("v2") => Err(ComposeError::NoComposeV2(why)),
        Err(v2::V2Error::Absent(_)) => builtin,
    }
}

/// Compose's refusal in its own words, with the file named when compose leaves it out
/// (its YAML errors say only `yaml: line 3: ...`; the own reader knows which file it was).
fn rejected(message: String, builtin: &Result<Option<Model>, ComposeError>) -> ComposeError {
    let message = message
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match builtin {
        // compose's YAML errors give the line of the enclosing block (`line 1` for a bad
        // key on line 4): the own reader's position is the one to edit.
        Err(ComposeError::Syntax {
            path, line, column, ..
        }) if !message.contains(path.as_str()) => {
            ComposeError::Rejected(format!("{path}:{line}:{column}: {message}"))
        }
        _ => ComposeError::Rejected(message),
    }
}

/// Reads compose's canonical JSON (`docker compose config --format json`, whose literal `$`
/// are written `$$` when `escaped`).
pub fn from_json(json: &Value, escaped: bool, reader: Reader) -> Result<Model, String> {
    let text = |v: &Value| -> Option<String> {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        Some(if escaped { s.replace("$$", "$") } else { s })
    };
    let name = json.get("name").and_then(text).ok_or("no project name")?;
    let mut services = Vec::new();
    // (volume key, target) of every service's named-volume mount.
    let mut mounts: Vec<(String, String)> = Vec::new();
    if let Some(map) = json.get("services").and_then(Value::as_object) {
        for (sname, svc) in map {
            let build = match svc.get("build") {
                Some(b @ Value::Object(_)) => {
                    let field = |k: &str| b.get(k).and_then(text);
                    let context = context(&field("context").unwrap_or_else(|| ".".into()));
                    let dockerfile = match field("dockerfile_inline") {
                        Some(inline) => Dockerfile::Inline(inline),
                        None => Dockerfile::Path(
                            field("dockerfile").unwrap_or_else(|| "Dockerfile".into()),
                        ),
                    };
                    let map_of = |k: &str| -> BTreeMap<String, String> {
                        b.get(k)
                            .and_then(Value::as_object)
                            .map(|m| {
                                m.iter()
                                    .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    Some(Build {
                        context,
                        dockerfile,
                        target: field("target").filter(|t| !t.is_empty()),
                        args: map_of("args"),
                        network: field("network").filter(|t| !t.is_empty()),
                        additional_contexts: map_of("additional_contexts")
                            .into_iter()
                            .map(|(k, v)| (k, context_of(&v)))
                            .collect(),
                    })
                }
                _ => None,
            };
            let named: Vec<&Value> = svc
                .get("volumes")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|v| v.get("type").and_then(Value::as_str) == Some("volume"))
                        .collect()
                })
                .unwrap_or_default();
            let volumes: Vec<String> = named
                .iter()
                .filter_map(|v| v.get("source").and_then(text))
                .filter(|s| !s.is_empty())
                .collect();
            for v in &named {
                if let (Some(source), Some(target)) = (
                    v.get("source").and_then(text).filter(|s| !s.is_empty()),
                    v.get("target").and_then(text),
                ) {
                    mounts.push((source, target));
                }
            }
            services.push(Service {
                name: sname.clone(),
                build,
                image: svc.get("image").and_then(text),
                volumes,
            });
        }
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let volumes = json
        .get("volumes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(key, v)| {
                    let external = match v.get("external") {
                        Some(Value::Bool(b)) => *b,
                        Some(Value::Object(_)) => true,
                        _ => false,
                    };
                    // compose writes the derived name out; only a fixed one is kept.
                    let derived = format!("{name}_{key}");
                    let vname = v
                        .get("name")
                        .and_then(text)
                        .filter(|n| external || *n != derived);
                    let mut targets: Vec<String> = mounts
                        .iter()
                        .filter(|(source, _)| source == key)
                        .map(|(_, target)| target.clone())
                        .collect();
                    targets.sort();
                    targets.dedup();
                    Volume {
                        key: key.clone(),
                        name: vname,
                        external,
                        targets,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Model {
        name,
        name_from: reader.describe().to_string() + " name",
        files: Vec::new(),
        inputs: Vec::new(),
        read_files: Vec::new(),
        read_env: BTreeMap::new(),
        services,
        volumes,
        reader,
        origins: BTreeMap::new(),
    })
}

fn context(s: &str) -> Context {
    context_of(s)
}

/// Compose and buildx treat a context as remote when it is a URL or a git address.
pub fn is_remote(s: &str) -> bool {
    s.contains("://")
        || s.starts_with("git@")
        || s.starts_with("github.com/")
        || s.starts_with("target:")
        || s.starts_with("service:")
}

fn context_of(s: &str) -> Context {
    if is_remote(s) {
        Context::Remote(s.to_string())
    } else {
        Context::Local(PathBuf::from(s))
    }
}

/// Compose's project-name normalisation: lower case, only `[a-z0-9_-]`, not starting with `_`/`-`.
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// Whether compose accepts `name` as given (`COMPOSE_PROJECT_NAME` must be; `name:` is
/// normalised instead).
pub fn is_valid_project_name(name: &str) -> bool {
    !name.is_empty() && normalize_project_name(name) == name
}

/// The names compose gives the image of a built service that has no `image:`: v2 and v1.
pub fn image_names(project: &str, service: &str) -> [String; 2] {
    [
        format!("{project}-{service}"),
        format!("{project}_{service}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_normalised_like_compose() {
        assert_eq!(normalize_project_name("My Repo.v2"), "myrepov2");
        assert_eq!(normalize_project_name("_-tokyo_1"), "tokyo_1");
        assert_eq!(normalize_project_name("wörk tree"), "wrktree");
        assert!(!is_valid_project_name("My App"));
        assert!(is_valid_project_name("my-app_1"));
        assert_eq!(
            image_names("p", "web"),
            ["p-web".to_string(), "p_web".to_string()]
        );
    }

    #[test]
    fn compose_json_is_read_with_its_dollar_escapes() {
        let json = serde_json::json!({
            "name": "p",
            "services": {
                "web": {"build": {"context": "/w", "dockerfile": "Dockerfile", "args": {"A": "a$$b"},
                        "additional_contexts": {"x": "/w/x", "r": "https://e.com/r.git"}},
                        "volumes": [{"type": "volume", "source": "uv", "target": "/c"}]},
                "db": {"image": "postgres"}
            },
            "volumes": {"uv": {"name": "uv", "external": true}}
        });
        let m = from_json(&json, true, Reader::ComposeV2).unwrap();
        assert_eq!(m.services[0].name, "db");
        let b = m.services[1].build.as_ref().unwrap();
        assert_eq!(b.args["A"], "a$b");
        assert_eq!(
            b.additional_contexts["r"],
            Context::Remote("https://e.com/r.git".into())
        );
        assert_eq!(m.services[1].volumes, vec!["uv"]);
        assert!(m.volumes[0].external);
        assert_eq!(m.volumes[0].targets, vec!["/c"]);
    }
}
