//! dockwarm's own reading of a compose project, for machines without compose v2: the same
//! files, merges, variables and profiles as compose (compose-go), as far as builds go.
//!
//! It also records what it read ([`Trace`]): compose v2's cached answer is keyed by it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::yaml::{self, Mapping, Value};
use super::{
    dotenv, interpolate::interpolate, ComposeError, Model, Origin, Reader, FILE_NAMES,
    OVERRIDE_NAMES,
};

/// What reading the project looked at: every file (read, or probed and missing) and every
/// variable looked up. Equal traces mean compose would read the same project.
#[derive(Debug, Default)]
pub struct Trace {
    files: BTreeMap<PathBuf, Option<String>>,
    vars: RefCell<BTreeMap<String, Option<String>>>,
}

impl Trace {
    fn read(&mut self, path: &Path) -> std::io::Result<String> {
        let result = std::fs::read_to_string(path);
        let digest = result
            .as_ref()
            .ok()
            .map(|t| hex::encode(Sha256::digest(t.as_bytes())));
        self.files.insert(path.to_path_buf(), digest);
        result
    }

    fn probe(&mut self, path: &Path) -> bool {
        if path.is_file() {
            let _ = self.read(path);
            true
        } else {
            self.files.insert(path.to_path_buf(), None);
            false
        }
    }

    /// Every path read or looked for.
    pub fn all_files(&self) -> Vec<PathBuf> {
        self.files.keys().cloned().collect()
    }

    /// Every variable looked up, with its value.
    pub fn vars(&self) -> BTreeMap<String, Option<String>> {
        self.vars.borrow().clone()
    }

    /// The files that existed and were read: the model's inputs when compose answered but
    /// the own reader could not.
    pub fn existing_files(&self) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(_, d)| d.is_some())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The cache key: the directory, every file read with its content's digest, every
    /// variable looked up and every `COMPOSE_*` variable.
    pub fn key(&self, root: &Path, env: &BTreeMap<String, String>) -> String {
        let mut h = Sha256::new();
        h.update(b"dockwarm-compose-1\0");
        h.update(root.as_os_str().as_encoded_bytes());
        for (p, d) in &self.files {
            h.update(b"\0f");
            h.update(p.as_os_str().as_encoded_bytes());
            h.update(d.as_deref().unwrap_or("-"));
        }
        for (k, v) in self.vars.borrow().iter() {
            h.update(format!("\0v{k}={v:?}"));
        }
        for (k, v) in env.iter().filter(|(k, _)| k.starts_with("COMPOSE_")) {
            h.update(format!("\0e{k}={v}"));
        }
        hex::encode(h.finalize())
    }
}

/// Variables for interpolation, recording each lookup in the trace.
struct Env<'t> {
    vars: BTreeMap<String, String>,
    trace: &'t RefCell<BTreeMap<String, Option<String>>>,
}

impl Env<'_> {
    fn get(&self, k: &str) -> Option<String> {
        let v = self.vars.get(k).cloned();
        self.trace.borrow_mut().insert(k.to_string(), v.clone());
        v
    }
}

/// Reads a `.env`-style file: `Ok(None)` when it does not exist.
fn env_file(
    path: &Path,
    env: &BTreeMap<String, String>,
    trace: &mut Trace,
) -> Result<Option<BTreeMap<String, String>>, ComposeError> {
    if !trace.probe(path) {
        return Ok(None);
    }
    let text = trace.read(path).map_err(|e| unreadable(path, e))?;
    dotenv::parse(&text, &|k| env.get(k).cloned())
        .map(Some)
        .map_err(|message| ComposeError::Invalid {
            path: path.display().to_string(),
            message,
        })
}

fn unreadable(path: &Path, source: std::io::Error) -> ComposeError {
    ComposeError::Unreadable {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> ComposeError {
    ComposeError::Invalid {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads the project in `root` as compose would, given the process environment `env`.
pub fn load(
    root: &Path,
    env: &BTreeMap<String, String>,
    trace: &mut Trace,
) -> Result<Option<Model>, ComposeError> {
    let dotenv_path = root.join(".env");
    let from_file = env_file(&dotenv_path, env, trace)?.unwrap_or_default();
    let mut vars = from_file.clone();
    vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    // The process environment overrides `.env`: its values are part of what was read.
    for k in from_file.keys() {
        trace
            .vars
            .borrow_mut()
            .insert(k.clone(), vars.get(k).cloned());
    }

    let files: Vec<PathBuf> = match vars.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        Some(list) => {
            let sep = vars
                .get("COMPOSE_PATH_SEPARATOR")
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| ":".into());
            list.split(sep.as_str())
                .filter(|s| !s.is_empty())
                .map(|f| clean(&root.join(f)))
                .collect()
        }
        None => {
            let base = FILE_NAMES
                .iter()
                .map(|n| root.join(n))
                .find(|p| trace.probe(p));
            match base {
                None => return Ok(None),
                Some(base) => {
                    let over = OVERRIDE_NAMES
                        .iter()
                        .map(|n| root.join(n))
                        .find(|p| trace.probe(p));
                    std::iter::once(base).chain(over).collect()
                }
            }
        }
    };
    let project_dir = files[0].parent().unwrap_or(root).to_path_buf();
    let trace_vars = std::mem::take(&mut trace.vars);
    let result = (|| {
        let env = Env {
            vars: vars.clone(),
            trace: &trace_vars,
        };
        let mut loader = Loader {
            trace,
            root: root.to_path_buf(),
            depth: 0,
        };
        let project = loader.project(&files, &project_dir, &env)?;
        finish(
            project,
            &files,
            &project_dir,
            &env,
            &from_file,
            root,
            loader.trace,
        )
    })();
    trace.vars = trace_vars;
    result.map(Some)
}

/// A project's merged services and volumes, before profiles and defaults.
#[derive(Default)]
struct Project {
    services: Mapping,
    volumes: Mapping,
    name: Option<(String, String)>,
    origins: BTreeMap<String, Origin>,
}

struct Loader<'t> {
    trace: &'t mut Trace,
    root: PathBuf,
    depth: usize,
}

impl Loader<'_> {
    fn label(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Parses and interpolates one file: its documents, which compose merges in order as if
    /// they were files of their own.
    fn documents(&mut self, path: &Path, env: &Env) -> Result<Vec<Mapping>, ComposeError> {
        let text = self.trace.read(path).map_err(|e| unreadable(path, e))?;
        // Anchors, merge keys and tags are the YAML module's; a bad one is a syntax error.
        let docs = yaml::parse(&text).map_err(|source| ComposeError::Syntax {
            path: path.display().to_string(),
            line: source.line,
            column: source.column,
            source,
        })?;
        docs.into_iter()
            .map(|mut doc| {
                interpolate_all(&mut doc, env, "").map_err(|m| invalid(path, m))?;
                match doc {
                    Value::Mapping(m) => Ok(m),
                    Value::Null => Ok(Mapping::new()),
                    _ => Err(invalid(
                        path,
                        "expected a mapping with `services:` at the top",
                    )),
                }
            })
            .collect()
    }

    /// Loads `files` merged in order, with relative paths against `dir`, and their includes.
    fn project(
        &mut self,
        files: &[PathBuf],
        dir: &Path,
        env: &Env,
    ) -> Result<Project, ComposeError> {
        self.depth += 1;
        if self.depth > 20 {
            return Err(invalid(
                &files[0],
                "`include`/`extends` nest too deep (a cycle?)",
            ));
        }
        let mut project = Project::default();
        for file in files {
            for mut doc in self.documents(file, env)? {
                let label = self.label(file);
                let mut services = match doc.remove("services") {
                    Some(Value::Mapping(m)) => m,
                    None | Some(Value::Null) => Mapping::new(),
                    Some(_) => {
                        return Err(invalid(
                            file,
                            "`services` must be a mapping of service names",
                        ))
                    }
                };
                let mut origins = std::mem::take(&mut project.origins);
                // extends: within this file, or from another one.
                let names: Vec<Value> = services.keys().cloned().collect();
                let originals = services.clone();
                for key in names {
                    let name = key_str(&key, file)?;
                    let svc = services.get(&key).cloned().unwrap_or(Value::Null);
                    let svc = self.service(
                        &name,
                        &name,
                        svc,
                        &originals,
                        file,
                        dir,
                        env,
                        &mut origins,
                        &label,
                        0,
                    )?;
                    services.insert(key, svc);
                }
                // include: other projects' services and volumes, which may not collide.
                if let Some(inc) = doc.remove("include") {
                    for included in self.includes(&inc, file, dir, env)? {
                        for (k, v) in included.services {
                            if services.contains_key(&k) && services.get(&k) != Some(&v) {
                                return Err(invalid(
                                    file,
                                    format!(
                                        "services.{} conflicts with imported resource",
                                        key_str(&k, file)?
                                    ),
                                ));
                            }
                            services.insert_absent(k, v);
                        }
                        for (k, v) in included.volumes {
                            project.volumes.insert_absent(k, v);
                        }
                        for (k, v) in included.origins {
                            origins.entry(k).or_insert(v);
                        }
                    }
                }
                for (k, v) in services {
                    match project.services.get_mut(&k) {
                        Some(base) => merge(base, v),
                        None => {
                            project.services.insert(k, v);
                        }
                    }
                }
                if let Some(Value::Mapping(vols)) = doc.remove("volumes") {
                    for (k, v) in vols {
                        let v = if v.is_null() {
                            Value::Mapping(Mapping::new())
                        } else {
                            v
                        };
                        match project.volumes.get_mut(&k) {
                            Some(base) => merge(base, v),
                            None => {
                                project.volumes.insert(k, v);
                            }
                        }
                    }
                }
                if let Some(name) = doc.get("name") {
                    let name =
                        scalar(name).ok_or_else(|| invalid(file, "`name` must be a string"))?;
                    project.name = Some((name, format!("{label} name")));
                }
                project.origins = origins;
            }
        }
        // Defaults, now that every file has spoken.
        for (k, svc) in project.services.iter_mut() {
            let at = format!("services.{}.build", scalar(k).unwrap_or_default());
            if let Some(Value::Mapping(build)) = svc.get_mut("build") {
                if build.contains_key("dockerfile") && build.contains_key("dockerfile_inline") {
                    return Err(invalid(
                        &files[0],
                        format!("{at}: dockerfile and dockerfile_inline are mutually exclusive; keep one (an override can drop the other with `!reset null`)"),
                    ));
                }
                if !build.contains_key("context") {
                    build.insert("context".into(), dir.display().to_string().into());
                    project
                        .origins
                        .insert(format!("{at}.context"), Origin::Default);
                }
                if !build.contains_key("dockerfile") && !build.contains_key("dockerfile_inline") {
                    build.insert("dockerfile".into(), "Dockerfile".into());
                    project
                        .origins
                        .insert(format!("{at}.dockerfile"), Origin::Default);
                }
            }
        }
        self.depth -= 1;
        Ok(project)
    }

    /// One service of `file`: normalised (paths against `dir`), its `extends` resolved.
    #[allow(clippy::too_many_arguments)]
    fn service(
        &mut self,
        top: &str,
        name: &str,
        svc: Value,
        siblings: &Mapping,
        file: &Path,
        dir: &Path,
        env: &Env,
        origins: &mut BTreeMap<String, Origin>,
        label: &str,
        depth: usize,
    ) -> Result<Value, ComposeError> {
        let mut svc = match svc {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            _ => return Err(invalid(file, format!("services.{name} must be a mapping"))),
        };
        let extends = svc.remove("extends");
        let mut svc = Value::Mapping(svc);
        normalize_service(&mut svc, name, file, dir, env)?;
        let Some(ext) = extends else {
            walk_origins(&format!("services.{top}"), &svc, label, origins);
            return Ok(svc);
        };
        if depth > 20 {
            return Err(invalid(
                file,
                format!("services.{name}.extends: circular reference"),
            ));
        }
        let (base_name, other) = match &ext {
            Value::String(s) => (s.clone(), None),
            Value::Mapping(m) => (
                m.get("service").and_then(scalar).ok_or_else(|| {
                    invalid(file, format!("services.{name}.extends.service is required"))
                })?,
                m.get("file").and_then(scalar),
            ),
            _ => {
                return Err(invalid(
                    file,
                    format!("services.{name}.extends must be a string or a mapping"),
                ))
            }
        };
        let base = match other {
            None => {
                let raw = siblings.get(base_name.as_str()).cloned().ok_or_else(|| {
                    invalid(file, format!("services.{name}.extends: cannot extend service {base_name:?}: service not found"))
                })?;
                self.service(
                    top,
                    &base_name,
                    raw,
                    siblings,
                    file,
                    dir,
                    env,
                    origins,
                    label,
                    depth + 1,
                )?
            }
            Some(f) => {
                let path = clean(&dir.join(&f));
                let mut theirs = Mapping::new();
                for mut doc in self.documents(&path, env)? {
                    if let Some(Value::Mapping(m)) = doc.remove("services") {
                        for (k, v) in m {
                            match theirs.get_mut(&k) {
                                Some(base) => merge(base, v),
                                None => {
                                    theirs.insert(k, v);
                                }
                            }
                        }
                    }
                }
                let raw = theirs.get(base_name.as_str()).cloned().ok_or_else(|| {
                    invalid(file, format!("services.{name}.extends: cannot extend service {base_name:?} of {f}: service not found"))
                })?;
                let their_dir = path.parent().unwrap_or(dir).to_path_buf();
                let their_label = self.label(&path);
                let mut base = self.service(
                    top,
                    &base_name,
                    raw,
                    &theirs,
                    &path,
                    &their_dir,
                    env,
                    origins,
                    &their_label,
                    depth + 1,
                )?;
                if let Some(Value::Mapping(build)) = base.get_mut("build") {
                    if !build.contains_key("context") {
                        build.insert("context".into(), their_dir.display().to_string().into());
                    }
                }
                base
            }
        };
        walk_origins(&format!("services.{top}"), &svc, label, origins);
        let mut merged = base;
        merge(&mut merged, svc);
        Ok(merged)
    }

    fn includes(
        &mut self,
        inc: &Value,
        file: &Path,
        dir: &Path,
        env: &Env,
    ) -> Result<Vec<Project>, ComposeError> {
        let Value::Sequence(items) = inc else {
            return Err(invalid(file, "`include` must be a list"));
        };
        let mut out = Vec::new();
        for item in items {
            let (paths, project_dir, env_files) = match item {
                Value::String(s) => (vec![s.clone()], None, None),
                Value::Mapping(m) => {
                    let list = |v: Option<&Value>| -> Option<Vec<String>> {
                        match v? {
                            Value::Sequence(s) => Some(s.iter().filter_map(scalar).collect()),
                            other => scalar(other).map(|s| vec![s]),
                        }
                    };
                    (
                        list(m.get("path"))
                            .ok_or_else(|| invalid(file, "include: `path` is required"))?,
                        m.get("project_directory").and_then(scalar),
                        list(m.get("env_file")),
                    )
                }
                _ => {
                    return Err(invalid(
                        file,
                        "include: each entry must be a path or a mapping",
                    ))
                }
            };
            let paths: Vec<PathBuf> = paths.iter().map(|p| clean(&dir.join(p))).collect();
            let Some(first) = paths.first() else { continue };
            let pdir = match &project_dir {
                Some(d) if Path::new(d).is_absolute() => clean(Path::new(d)),
                // What compose 2.26 (compose-go 2.0) does with a relative project_directory:
                // the directory *containing* it, relative to the including project (Go's
                // `filepath.Dir` of the text as written). The corpus checks it against
                // the installed compose.
                Some(d) => {
                    let parent = d.rfind('/').map_or(".", |i| &d[..i]);
                    clean(&dir.join(if parent.is_empty() { "/" } else { parent }))
                }
                None => first.parent().unwrap_or(dir).to_path_buf(),
            };
            // The included project's variables: its env files (else its own `.env`),
            // under the including project's.
            let mut vars = BTreeMap::new();
            let candidates: Vec<PathBuf> = match &env_files {
                Some(list) => list.iter().map(|f| clean(&dir.join(f))).collect(),
                None => vec![pdir.join(".env")],
            };
            for path in candidates {
                match env_file(&path, &env.vars, self.trace)? {
                    Some(v) => vars.extend(v),
                    None if env_files.is_some() => {
                        return Err(invalid(&path, "env file not found (named by `include`)"))
                    }
                    None => {}
                }
            }
            vars.extend(env.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            let inner = Env {
                vars,
                trace: env.trace,
            };
            out.push(self.project(&paths, &pdir, &inner)?);
        }
        Ok(out)
    }
}

/// A service name: text, as compose requires (`010:` is the number 8 to YAML; quote it).
fn key_str(k: &Value, file: &Path) -> Result<String, ComposeError> {
    match k {
        Value::String(s) => Ok(s.clone()),
        other => Err(invalid(
            file,
            format!(
                "services: the service name {} is not a string; quote it",
                scalar(other).unwrap_or_else(|| "(a collection)".into())
            ),
        )),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar(&t.value),
        _ => None,
    }
}

/// Compose's profile, project-name and volume-name rules, and the model.
fn finish(
    project: Project,
    files: &[PathBuf],
    dir: &Path,
    env: &Env,
    from_file: &BTreeMap<String, String>,
    root: &Path,
    trace: &mut Trace,
) -> Result<Model, ComposeError> {
    let first = &files[0];
    let (name, name_from) = match env.get("COMPOSE_PROJECT_NAME").filter(|s| !s.is_empty()) {
        Some(n) => {
            if !super::is_valid_project_name(&n) {
                return Err(invalid(
                    if from_file.get("COMPOSE_PROJECT_NAME") == Some(&n) {
                        root.join(".env")
                    } else {
                        PathBuf::from("COMPOSE_PROJECT_NAME")
                    }
                    .as_path(),
                    format!("invalid project name {n:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"),
                ));
            }
            let from = if from_file.get("COMPOSE_PROJECT_NAME") == Some(&n) {
                "COMPOSE_PROJECT_NAME in .env"
            } else {
                "COMPOSE_PROJECT_NAME"
            };
            (n, from.to_string())
        }
        None => match &project.name {
            Some((n, from)) if !super::normalize_project_name(n).is_empty() => {
                (super::normalize_project_name(n), from.clone())
            }
            _ => (
                super::normalize_project_name(
                    &dir.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                "the project directory's name".to_string(),
            ),
        },
    };
    let active: BTreeSet<String> = env
        .get("COMPOSE_PROFILES")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut services = serde_json::Map::new();
    for (k, v) in &project.services {
        let Some(k) = scalar(k) else { continue };
        let profiles: Vec<String> = match v.get("profiles") {
            Some(Value::Sequence(p)) => p.iter().filter_map(scalar).collect(),
            _ => Vec::new(),
        };
        let on = profiles.is_empty()
            || active.contains("*")
            || profiles.iter().any(|p| active.contains(p));
        if on {
            services.insert(k, to_json(v));
        }
    }
    // Compose keeps the top-level volumes the active services mount.
    let used: BTreeSet<String> = services
        .values()
        .filter_map(|s| s.get("volumes")?.as_array())
        .flatten()
        .filter(|v| v.get("type").and_then(|t| t.as_str()) == Some("volume"))
        .filter_map(|v| Some(v.get("source")?.as_str()?.to_string()))
        .collect();
    let mut volumes = serde_json::Map::new();
    for (k, v) in &project.volumes {
        let Some(k) = scalar(k).filter(|k| used.contains(k)) else {
            continue;
        };
        let external = match v.get("external") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Mapping(_)) => true,
            _ => false,
        };
        let vname = v.get("name").and_then(scalar).unwrap_or_else(|| {
            if external {
                k.clone()
            } else {
                format!("{name}_{k}")
            }
        });
        volumes.insert(k, serde_json::json!({"name": vname, "external": external}));
    }
    let json = serde_json::json!({"name": name, "services": services, "volumes": volumes});
    let mut model =
        super::from_json(&json, false, Reader::Builtin).map_err(|m| invalid(first, m))?;
    model.name_from = name_from;
    model.files = files.to_vec();
    model.inputs = trace.existing_files();
    model.read_files = trace.all_files();
    model.read_env = env.trace.borrow().clone();
    model.origins = project.origins;
    Ok(model)
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        // As compose writes a number it shows as text (`1.0` is `1`), for the fields read as text.
        Value::Number(n) => n.to_string().into(),
        Value::String(s) => s.clone().into(),
        Value::Sequence(s) => s.iter().map(to_json).collect(),
        Value::Mapping(m) => m
            .iter()
            .filter_map(|(k, v)| Some((scalar(k)?, to_json(v))))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Tagged(t) => to_json(&t.value),
    }
}

/// Records, for every leaf under `prefix`, the file (`label`) that set it.
fn walk_origins(prefix: &str, v: &Value, label: &str, out: &mut BTreeMap<String, Origin>) {
    let origin = || Origin::File {
        file: PathBuf::from(label),
        key: prefix.to_string(),
    };
    // A mapping belongs to the file that first wrote it; a value to the last.
    if v.is_mapping() {
        out.entry(prefix.to_string()).or_insert_with(origin);
    } else {
        out.insert(prefix.to_string(), origin());
    }
    // Through `!override`: what it sets is this file's.
    if let Value::Mapping(m) = v.untag() {
        for (k, v) in m {
            if let Some(k) = scalar(k) {
                walk_origins(&format!("{prefix}.{k}"), v, label, out);
            }
        }
    }
}

fn interpolate_all(v: &mut Value, env: &Env, at: &str) -> Result<(), String> {
    match v {
        Value::String(s) => {
            *s = interpolate(s, &|k| env.get(k)).map_err(|m| format!("{at}: {m}"))?;
        }
        Value::Mapping(m) => {
            for (k, child) in m.iter_mut() {
                let key = scalar(k).unwrap_or_default();
                let here = if at.is_empty() {
                    key
                } else {
                    format!("{at}.{key}")
                };
                // Extension fields are not interpolated until something merges them in.
                if at.is_empty() && here.starts_with("x-") {
                    continue;
                }
                interpolate_all(child, env, &here)?;
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter_mut().enumerate() {
                interpolate_all(child, env, &format!("{at}[{i}]"))?;
            }
        }
        Value::Tagged(t) => interpolate_all(&mut t.value, env, at)?,
        _ => {}
    }
    Ok(())
}

/// Compose's merge of one file's service over another's: mappings deep, `!reset` removes,
/// `!override` replaces, volumes by target, other lists appended without repeats.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                if let Value::Tagged(t) = &v {
                    let tag = t.tag.as_str();
                    if tag == "!reset" {
                        b.remove(&k);
                        continue;
                    }
                    if tag == "!override" {
                        b.insert(k, t.value.clone());
                        continue;
                    }
                }
                let is_volumes = k.as_str() == Some("volumes");
                match b.get_mut(&k) {
                    Some(Value::Sequence(bs)) if is_volumes => {
                        if let Value::Sequence(os) = v {
                            for item in os {
                                let target = item.get("target").cloned();
                                match bs.iter_mut().find(|x| {
                                    target.is_some() && x.get("target").cloned() == target
                                }) {
                                    Some(x) => *x = item,
                                    None => bs.push(item),
                                }
                            }
                        }
                    }
                    Some(Value::Sequence(bs)) => {
                        if let Value::Sequence(os) = v {
                            for item in os {
                                if !bs.contains(&item) {
                                    bs.push(item);
                                }
                            }
                        } else {
                            b.insert(k, v);
                        }
                    }
                    Some(existing @ Value::Mapping(_)) if v.is_mapping() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// One service in compose's canonical shape: `build` a mapping with absolute local paths,
/// `args` and `additional_contexts` mappings, volumes in long form.
fn normalize_service(
    svc: &mut Value,
    name: &str,
    file: &Path,
    dir: &Path,
    env: &Env,
) -> Result<(), ComposeError> {
    let Value::Mapping(m) = svc else {
        return Ok(());
    };
    let here = |f: &str| format!("services.{name}.{f}");
    if let Some(build) = m.get_mut("build") {
        if let Some(s) = build.as_str() {
            let mut b = Mapping::new();
            b.insert("context".into(), s.into());
            *build = Value::Mapping(b);
        }
        let Value::Mapping(b) = build else {
            return Err(invalid(
                file,
                format!("{} must be a path or a mapping", here("build")),
            ));
        };
        if let Some(ctx) = b.get("context").and_then(scalar) {
            b.insert("context".into(), local_or_remote(&ctx, dir).into());
        }
        for field in ["dockerfile", "dockerfile_inline", "target", "network"] {
            // `!reset` / `!override` stay for the merge to apply.
            if let Some(v) = b.get(field).filter(|v| !matches!(v, Value::Tagged(_))) {
                match scalar(v) {
                    Some(s) => {
                        b.insert(field.into(), s.into());
                    }
                    None if v.is_null() => {
                        b.remove(field);
                    }
                    None => {
                        return Err(invalid(
                            file,
                            format!("{} must be a string", here(&format!("build.{field}"))),
                        ))
                    }
                }
            }
        }
        if let Some(args) = b.get_mut("args").map(untag).cloned() {
            let mut out = Mapping::new();
            let mut put = |k: String, v: Option<String>| {
                match v.or_else(|| env.get(&k)) {
                    Some(v) => out.insert(k.into(), v.into()),
                    None => out.remove(k.as_str()),
                };
            };
            match args {
                Value::Mapping(a) => {
                    for (k, v) in a {
                        put(scalar(&k).unwrap_or_default(), scalar(&v));
                    }
                }
                Value::Sequence(items) => {
                    for item in items {
                        let s = scalar(&item).unwrap_or_default();
                        match s.split_once('=') {
                            Some((k, v)) => put(k.to_string(), Some(v.to_string())),
                            None => put(s, None),
                        }
                    }
                }
                Value::Null => {}
                _ => {
                    return Err(invalid(
                        file,
                        format!("{} must be a mapping or a list", here("build.args")),
                    ))
                }
            }
            if let Some(slot) = b.get_mut("args") {
                *untag(slot) = Value::Mapping(out);
            }
        }
        if let Some(extra) = b.get_mut("additional_contexts").map(untag).cloned() {
            let mut out = Mapping::new();
            let pairs: Vec<(String, String)> = match extra {
                Value::Mapping(a) => a
                    .iter()
                    .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
                    .collect(),
                Value::Sequence(items) => items
                    .iter()
                    .filter_map(|i| {
                        scalar(i)?
                            .split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for (k, v) in pairs {
                out.insert(k.into(), local_or_remote(&v, dir).into());
            }
            if let Some(slot) = b.get_mut("additional_contexts") {
                *untag(slot) = Value::Mapping(out);
            }
        }
    }
    if let Some(image) = m.get("image") {
        if let Some(s) = scalar(image) {
            m.insert("image".into(), s.into());
        }
    }
    if let Some(Value::Sequence(vols)) = m.get_mut("volumes") {
        for v in vols.iter_mut() {
            if let Some(s) = v.as_str() {
                *v = short_volume(s, dir);
            }
        }
    }
    Ok(())
}

/// The value under a `!reset` / `!override` tag, or the value itself.
fn untag(v: &mut Value) -> &mut Value {
    match v {
        Value::Tagged(t) => &mut t.value,
        v => v,
    }
}

/// `source:target[:mode]` in compose's long form.
fn short_volume(s: &str, dir: &Path) -> Value {
    let parts: Vec<&str> = s.split(':').collect();
    let mut m = Mapping::new();
    let (source, target) = match parts.as_slice() {
        [target] => (None, target.to_string()),
        [source, target, ..] => (Some(source.to_string()), target.to_string()),
        [] => (None, String::new()),
    };
    match source {
        Some(src) if src.starts_with(['.', '/', '~']) => {
            m.insert("type".into(), "bind".into());
            m.insert("source".into(), local_or_remote(&src, dir).into());
        }
        Some(src) => {
            m.insert("type".into(), "volume".into());
            m.insert("source".into(), src.into());
        }
        None => {
            m.insert("type".into(), "volume".into());
        }
    }
    m.insert("target".into(), target.into());
    Value::Mapping(m)
}

fn local_or_remote(s: &str, dir: &Path) -> String {
    if super::is_remote(s) {
        return s.to_string();
    }
    let expanded = match s.strip_prefix("~/") {
        // The process's HOME, as compose expands `~` with its own (not the interpolation
        // variables); not from `env::Env`, which the reader is not handed (left for the
        // compose reader's rework).
        Some(rest) => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(rest))
            .unwrap_or_else(|| dir.join(s)),
        None => dir.join(s),
    };
    clean(&expanded).display().to_string()
}

/// Lexical normalisation of a path (`/a/./b/../c` → `/a/c`), as compose does.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Build, Dockerfile};

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    fn read(dir: &Path) -> Result<Model, ComposeError> {
        load(dir, &BTreeMap::new(), &mut Trace::default()).map(|m| m.expect("a compose file"))
    }

    fn build<'m>(model: &'m Model, service: &str) -> &'m Build {
        model.service(service).unwrap().build.as_ref().unwrap()
    }

    #[test]
    fn a_yaml_error_names_file_line_and_column_once() {
        let dir = project(&[
            ("compose.yaml", "services:\n  app:\n    build: .\n"),
            ("compose.override.yaml", "services:\n  app:\n    build: [\n"),
        ]);
        let e = read(dir.path()).unwrap_err();
        let path = dir.path().join("compose.override.yaml");
        assert_eq!(
            e.to_string(),
            format!(
                "{}:4:1: while parsing a node, did not find expected node content; fix the YAML syntax",
                path.display()
            )
        );
        // The parse error is the source, and its words are not said twice.
        let source = std::error::Error::source(&e).unwrap();
        assert!(source.is::<yaml::Error>());
        assert!(e.to_string().contains(&source.to_string()));

        let dir = project(&[(
            "compose.yaml",
            "services:\n  app:\n    build: .\n    image: a\n    build: b\n",
        )]);
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("compose.yaml:5:5: mapping key \"build\" already defined at line 3; fix the YAML syntax"),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_file_keeps_the_io_error() {
        let dir = project(&[]);
        let env = BTreeMap::from([("COMPOSE_FILE".to_string(), "gone.yaml".to_string())]);
        let e = load(dir.path(), &env, &mut Trace::default()).unwrap_err();
        let source = std::error::Error::source(&e).unwrap();
        let io = source.downcast_ref::<std::io::Error>().unwrap();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("cannot read "), "{e}");
    }

    #[test]
    fn merge_keys_and_reset_override_tags_across_files() {
        let dir = project(&[
            (
                "compose.yaml",
                "x-ctx: &ctx\n  context: ./svc\n  args: &args\n    A: \"1\"\n    B: \"2\"\n\
                 x-tgt: &tgt\n  target: runtime\n  dockerfile: Containerfile\n\
                 services:\n  one:\n    build:\n      <<: [*ctx, *tgt]\n\
                 \x20 two:\n    build:\n      <<: [*tgt, *ctx]\n      target: debug\n      args:\n        <<: *args\n        B: \"3\"\n",
            ),
            (
                "compose.override.yaml",
                "services:\n  one:\n    build:\n      target: !reset null\n      args: !override\n        C: \"3\"\n\
                 \x20 two:\n    build:\n      dockerfile: !override Dockerfile.two\n",
            ),
        ]);
        let model = read(dir.path()).unwrap();
        let svc = dir.path().join("svc");
        let one = build(&model, "one");
        assert_eq!(one.context, crate::compose::Context::Local(svc.clone()));
        assert_eq!(one.target, None);
        assert_eq!(one.dockerfile, Dockerfile::Path("Containerfile".into()));
        assert_eq!(
            one.args,
            BTreeMap::from([("C".to_string(), "3".to_string())])
        );
        let two = build(&model, "two");
        assert_eq!(two.context, crate::compose::Context::Local(svc));
        assert_eq!(two.target.as_deref(), Some("debug"));
        assert_eq!(two.dockerfile, Dockerfile::Path("Dockerfile.two".into()));
        assert_eq!(
            two.args,
            BTreeMap::from([
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "3".to_string())
            ])
        );
        let origin = model.origin("services.one.build.args.C");
        assert_eq!(
            origin,
            Origin::File {
                file: PathBuf::from("compose.override.yaml"),
                key: "services.one.build.args.C".to_string(),
            }
        );
        assert_eq!(
            origin.to_string(),
            "compose.override.yaml services.one.build.args.C"
        );
    }

    #[test]
    fn documents_of_one_file_merge_like_files() {
        let dir = project(&[(
            "compose.yaml",
            "name: first\nservices:\n  app:\n    build:\n      context: .\n      target: a\n\
             ---\nname: second\nservices:\n  app:\n    build:\n      target: b\n",
        )]);
        let model = read(dir.path()).unwrap();
        assert_eq!(model.name, "second");
        assert_eq!(build(&model, "app").target.as_deref(), Some("b"));
    }

    #[test]
    fn numbers_read_as_compose_shows_them() {
        let dir = project(&[(
            "compose.yaml",
            "services:\n  app:\n    build:\n      context: .\n      args:\n        V: 1.0\n        O: 010\n        U: 1_000\n        Y: yes\n        Q: \"1.0\"\n",
        )]);
        let model = read(dir.path()).unwrap();
        let args = &build(&model, "app").args;
        let numeric = project(&[("compose.yaml", "services:\n  010:\n    build: .\n")]);
        let e = read(numeric.path()).unwrap_err().to_string();
        assert!(
            e.ends_with("services: the service name 8 is not a string; quote it"),
            "{e}"
        );
        let got: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("O", "8"),
                ("Q", "1.0"),
                ("U", "1000"),
                ("V", "1"),
                ("Y", "yes")
            ]
        );
    }
}
