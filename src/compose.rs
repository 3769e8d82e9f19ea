//! Just enough of a compose file to derive dockwarm's configuration: each service's `build:`,
//! the top-level `name:` and volumes, and compose's own project-name rules.
//!
//! Compose v1 and v2 agree on everything read here except the image names they give built
//! services (`<project>_<service>` and `<project>-<service>`), which [`image_names`] covers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// The file names compose looks for, in its order of preference.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{path}:{line}:{column}: {message}; fix the YAML syntax")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComposeFile {
    pub path: PathBuf,
    /// Top-level `name:` (interpolated), if any.
    pub name: Option<String>,
    pub services: Vec<Service>,
    pub volumes: Vec<Volume>,
    /// Every variable the file's text refers to (`$NAME`, `${NAME...}`): the part of the
    /// environment that can change what it says.
    pub variables: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub build: Option<Build>,
    /// `image:`, which names the built image instead of `<project>-<service>`.
    pub image: Option<String>,
    /// Named volumes the service mounts (top-level volume keys).
    pub volumes: Vec<String>,
}

/// A service's `build:`, with paths relative to the compose file's directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Build {
    pub context: String,
    pub dockerfile: String,
    pub target: Option<String>,
    pub args: BTreeMap<String, String>,
    /// `build.network` (e.g. `host`): the network of RUN steps, part of their cache keys.
    pub network: Option<String>,
}

/// A top-level volume: `external` ones must exist before `up`, and `name:` fixes the engine
/// name; without it compose prefixes the key with the project name, per workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub key: String,
    pub name: Option<String>,
    pub external: bool,
}

/// The compose file of a directory, if it has one.
pub fn find(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Compose's variables: the process environment over the project directory's `.env` file.
///
/// Read as `OsString`s: a variable whose name or value is not UTF-8 (`JUNK=$'caf\xe9'`, a
/// non-UTF-8 `$PWD`) is left out rather than panicking, as `std::env::vars` would. A compose
/// file cannot name such a variable, and one it names reads as unset, as in a shell without it.
pub fn environment(dir: &Path) -> BTreeMap<String, String> {
    let mut vars = std::fs::read_to_string(dir.join(".env"))
        .map(|text| parse_dotenv(&text))
        .unwrap_or_default();
    vars.extend(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    );
    vars
}

fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            vars.insert(key.trim().to_string(), value.to_string());
        }
    }
    vars
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

/// The names compose gives the image of a built service that has no `image:`: v2 and v1.
pub fn image_names(project: &str, service: &str) -> [String; 2] {
    [
        format!("{project}-{service}"),
        format!("{project}_{service}"),
    ]
}

/// Reads and interpolates a compose file.
pub fn load(path: &Path, vars: &BTreeMap<String, String>) -> Result<ComposeFile, ComposeError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ComposeError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let mut file = parse(&text, path, vars)?;
    file.variables = referenced_variables(&text);
    Ok(file)
}

/// The names of the variables a compose file's text refers to. A superset is harmless (it
/// only widens what counts as a change), so comments and `$$` escapes are not told apart.
pub fn referenced_variables(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        if bytes.get(i) == Some(&b'{') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i > start && !bytes[start].is_ascii_digit() {
            names.insert(text[start..i].to_string());
        }
    }
    names
}

pub fn parse(
    text: &str,
    path: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<ComposeFile, ComposeError> {
    let shown = path.display().to_string();
    let invalid = |message: String| ComposeError::Invalid {
        path: shown.clone(),
        message,
    };
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        ComposeError::Syntax {
            path: shown.clone(),
            line,
            column,
            message: e
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or("")
                .to_string(),
        }
    })?;
    let interp = |s: &str| interpolate(s, vars).map_err(&invalid);
    let top = match &doc {
        Value::Mapping(m) => m,
        Value::Null => return Err(invalid("the file is empty; expected `services:`".into())),
        _ => {
            return Err(invalid(
                "expected a mapping with `services:` at the top".into(),
            ))
        }
    };
    let name = match top.get("name") {
        Some(Value::String(s)) => Some(interp(s)?),
        Some(_) => return Err(invalid("`name` must be a string".into())),
        None => None,
    };
    let mut services = Vec::new();
    if let Some(map) = top.get("services") {
        let map = map
            .as_mapping()
            .ok_or_else(|| invalid("`services` must be a mapping of service names".into()))?;
        for (key, value) in map {
            let sname =
                scalar(key).ok_or_else(|| invalid("a service name must be a string".into()))?;
            let build = match value.get("build") {
                None | Some(Value::Null) => None,
                Some(b) => Some(parse_build(b, &sname, &interp, vars).map_err(invalid)?),
            };
            let image = match value.get("image") {
                Some(v) => scalar(v).map(|s| interp(&s)).transpose()?,
                None => None,
            };
            services.push(Service {
                name: sname,
                build,
                image,
                volumes: service_volumes(value),
            });
        }
    }
    let mut volumes = Vec::new();
    if let Some(Value::Mapping(map)) = top.get("volumes") {
        for (key, value) in map {
            let Some(key) = scalar(key) else { continue };
            let name = match value.get("name") {
                Some(v) => scalar(v).map(|s| interp(&s)).transpose()?,
                None => None,
            };
            let external = match value.get("external") {
                Some(Value::Bool(b)) => *b,
                Some(Value::Mapping(m)) => m.contains_key("name"),
                _ => false,
            };
            volumes.push(Volume {
                key,
                name,
                external,
            });
        }
    }
    Ok(ComposeFile {
        variables: BTreeSet::new(),
        path: path.to_path_buf(),
        name,
        services,
        volumes,
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_build(
    b: &Value,
    service: &str,
    interp: &dyn Fn(&str) -> Result<String, ComposeError>,
    vars: &BTreeMap<String, String>,
) -> Result<Build, String> {
    let err = |e: ComposeError| e.to_string();
    let field = |name: &str| -> Result<Option<String>, String> {
        match b.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match scalar(v) {
                Some(s) => interp(&s).map(Some).map_err(err),
                None => Err(format!("services.{service}.build.{name} must be a string")),
            },
        }
    };
    match b {
        Value::String(context) => Ok(Build {
            context: interp(context).map_err(err)?,
            dockerfile: "Dockerfile".into(),
            target: None,
            args: BTreeMap::new(),
            network: None,
        }),
        Value::Mapping(_) => {
            let mut args = BTreeMap::new();
            match b.get("args") {
                None | Some(Value::Null) => {}
                Some(Value::Mapping(m)) => {
                    for (k, v) in m {
                        let k = scalar(k).unwrap_or_default();
                        let v = match v {
                            Value::Null => vars.get(&k).cloned(),
                            v => scalar(v).map(|s| interp(&s)).transpose().map_err(err)?,
                        };
                        if let Some(v) = v {
                            args.insert(k, v);
                        }
                    }
                }
                Some(Value::Sequence(items)) => {
                    for item in items {
                        let s = scalar(item).unwrap_or_default();
                        let s = interp(&s).map_err(err)?;
                        match s.split_once('=') {
                            Some((k, v)) => {
                                args.insert(k.to_string(), v.to_string());
                            }
                            None => {
                                if let Some(v) = vars.get(&s) {
                                    args.insert(s.clone(), v.clone());
                                }
                            }
                        }
                    }
                }
                Some(_) => {
                    return Err(format!(
                        "services.{service}.build.args must be a mapping or a list"
                    ))
                }
            }
            Ok(Build {
                context: field("context")?.unwrap_or_else(|| ".".into()),
                dockerfile: field("dockerfile")?.unwrap_or_else(|| "Dockerfile".into()),
                target: field("target")?,
                network: field("network")?,
                args,
            })
        }
        _ => Err(format!(
            "services.{service}.build must be a path or a mapping"
        )),
    }
}

/// Named volumes in a service's `volumes:`, short (`name:/path`) or long (`type: volume`) form.
fn service_volumes(service: &Value) -> Vec<String> {
    let Some(Value::Sequence(items)) = service.get("volumes") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => {
                let source = s.split(':').next().unwrap_or("");
                let is_path = source.starts_with(['/', '.', '~', '$']) || !s.contains(':');
                (!is_path).then(|| source.to_string())
            }
            Value::Mapping(_) => {
                let is_volume = item.get("type").and_then(Value::as_str) == Some("volume");
                let source = item.get("source").and_then(Value::as_str);
                source.filter(|_| is_volume).map(str::to_string)
            }
            _ => None,
        })
        .collect()
}

/// Compose interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`, and `$$` for a dollar.
pub fn interpolate(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = matching_brace(r).ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            out.push_str(&expand(&r[..end], vars)?);
            rest = &r[end + 1..];
        } else {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(vars.get(&rest[..len]).map(String::as_str).unwrap_or(""));
            }
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn expand(expr: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let name_len = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_len);
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let pick = |word: &str| interpolate(word, vars);
    match op {
        "" => Ok(value.cloned().unwrap_or_default()),
        _ if op.starts_with(":-") => {
            if set_nonempty {
                Ok(value.cloned().unwrap_or_default())
            } else {
                pick(&op[2..])
            }
        }
        _ if op.starts_with('-') => match value {
            Some(v) => Ok(v.clone()),
            None => pick(&op[1..]),
        },
        _ if op.starts_with(":+") => {
            if set_nonempty {
                pick(&op[2..])
            } else {
                Ok(String::new())
            }
        }
        _ if op.starts_with('+') => {
            if value.is_some() {
                pick(&op[1..])
            } else {
                Ok(String::new())
            }
        }
        _ if op.starts_with(":?") => {
            if set_nonempty {
                Ok(value.cloned().unwrap_or_default())
            } else {
                Err(format!("required variable {name} is missing: {}", &op[2..]))
            }
        }
        _ if op.starts_with('?') => match value {
            Some(v) => Ok(v.clone()),
            None => Err(format!("required variable {name} is missing: {}", &op[1..])),
        },
        _ => Err(format!("invalid interpolation `${{{expr}}}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn builds_in_string_and_mapping_form() {
        let text = r#"
name: ${NAME:-demo}
services:
  web:
    build: ./web
  api:
    build:
      context: .
      dockerfile: docker/Dockerfile
      target: runtime
      args:
        PY: "3.12"
        FROM_ENV:
    volumes:
      - uv_cache:/cache/uv
      - ./src:/app/src
      - type: volume
        source: pip_cache
        target: /root/.cache/pip
  db:
    image: postgres
volumes:
  uv_cache:
    external: true
    name: demo_uv
  pip_cache: {}
"#;
        let f = parse(text, Path::new("compose.yaml"), &vars(&[("FROM_ENV", "x")])).unwrap();
        assert_eq!(f.name.as_deref(), Some("demo"));
        assert_eq!(f.services.len(), 3);
        let web = f.services[0].build.as_ref().unwrap();
        assert_eq!(
            (web.context.as_str(), web.dockerfile.as_str()),
            ("./web", "Dockerfile")
        );
        let api = f.services[1].build.as_ref().unwrap();
        assert_eq!(api.target.as_deref(), Some("runtime"));
        assert_eq!(api.args, vars(&[("PY", "3.12"), ("FROM_ENV", "x")]));
        assert_eq!(f.services[1].volumes, vec!["uv_cache", "pip_cache"]);
        assert!(f.services[2].build.is_none());
        assert_eq!(f.volumes[0].name.as_deref(), Some("demo_uv"));
        assert!(f.volumes[0].external);
        assert!(!f.volumes[1].external);
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse(
            "services:\n  web:\n    build: [\n",
            Path::new("c.yml"),
            &vars(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.yml:"), "{err}");
        let parts: Vec<&str> = err.splitn(4, ':').collect();
        assert!(
            parts[1].parse::<usize>().is_ok() && parts[2].parse::<usize>().is_ok(),
            "{err}"
        );
    }

    #[test]
    fn args_in_list_form_and_bad_build() {
        let text = "services:\n  a:\n    build:\n      context: .\n      args: [\"A=1\", B]\n";
        let f = parse(text, Path::new("c.yml"), &vars(&[("B", "2")])).unwrap();
        assert_eq!(
            f.services[0].build.as_ref().unwrap().args,
            vars(&[("A", "1"), ("B", "2")])
        );
        let err = parse(
            "services:\n  a:\n    build: 3\n",
            Path::new("c.yml"),
            &vars(&[]),
        );
        assert!(err.is_ok() || err.unwrap_err().to_string().contains("build"));
        let err = parse(
            "services:\n  a:\n    build: [1]\n",
            Path::new("c.yml"),
            &vars(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("services.a.build must be"), "{err}");
    }

    #[test]
    fn interpolation_follows_compose() {
        let v = vars(&[("SET", "v"), ("EMPTY", "")]);
        assert_eq!(interpolate("a$SET-${SET}", &v).unwrap(), "av-v");
        assert_eq!(
            interpolate("${EMPTY:-d} ${EMPTY-d} ${NOPE-d}", &v).unwrap(),
            "d  d"
        );
        assert_eq!(interpolate("${SET:+alt}${NOPE:+alt}", &v).unwrap(), "alt");
        assert_eq!(interpolate("$$SET", &v).unwrap(), "$SET");
        assert_eq!(interpolate("${NOPE:-${SET}}", &v).unwrap(), "v");
        assert!(interpolate("${NOPE:?need it}", &v)
            .unwrap_err()
            .contains("need it"));
    }

    #[test]
    fn project_names_are_normalised_like_compose() {
        assert_eq!(normalize_project_name("My Repo.v2"), "myrepov2");
        assert_eq!(normalize_project_name("_-tokyo_1"), "tokyo_1");
        assert_eq!(normalize_project_name("wörk tree"), "wrktree");
        assert_eq!(
            image_names("p", "web"),
            ["p-web".to_string(), "p_web".to_string()]
        );
    }

    #[test]
    fn dotenv_values() {
        let v = parse_dotenv("# c\nexport A=1\nB=\"two words\"\nC='x'\n\nbad\n");
        assert_eq!(v, vars(&[("A", "1"), ("B", "two words"), ("C", "x")]));
    }
}
