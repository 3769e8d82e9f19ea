//! Conductor's settings: the repository's `conductor.json` or `.conductor/settings.toml`, with
//! dockwarm's two lines merged into the setup and archive scripts already there.
//!
//! `init --print-conductor` used to print a template, which pasted over a repository's own
//! setup (installing packages, copying `.env`) would have lost it. What it prints now is the
//! file as it is with `dockwarm init` added after the setup script (which may make files the
//! compose model reads, such as `.env`) and `dockwarm archive` before the archive script (so it
//! runs while the workspace is still there, whatever the script does), each only when the
//! script does not run it already.

use std::path::{Path, PathBuf};

/// `conductor.json`, relative to the repository root.
pub const JSON_FILE: &str = "conductor.json";
/// `.conductor/settings.toml`, relative to the repository root.
pub const TOML_FILE: &str = ".conductor/settings.toml";

const SETUP: &str = "dockwarm init";
const ARCHIVE: &str = "dockwarm archive";

/// Why a Conductor settings file could not be merged: `init --print-conductor` then fails
/// rather than print a file that would lose the user's settings.
#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The settings file.
        path: String,
        /// Why the OS refused it.
        source: std::io::Error,
    },
    /// The file is not valid JSON or TOML, or its `scripts` (or a script in it) is not the
    /// table of strings Conductor reads.
    #[error("{path}: {message}; fix the file, then run `dockwarm init --print-conductor` again")]
    Invalid {
        /// The settings file.
        path: String,
        /// What the parser or the merge found wrong.
        message: String,
    },
}

impl crate::error::Classify for ConductorError {
    /// A settings file to fix; one that cannot be read is not a matter of editing it.
    fn is_usage(&self) -> bool {
        matches!(self, ConductorError::Invalid { .. })
    }
}

/// Which settings file, and its text with dockwarm's lines merged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The settings file (under the repository root), named above its text when printed.
    pub path: PathBuf,
    /// The merged file's text.
    pub text: String,
    /// Whether the file already ran both commands (nothing to change).
    pub unchanged: bool,
}

/// The settings files present under `root`, each merged. Empty when there is none.
pub fn merged(root: &Path) -> Result<Vec<Merged>, ConductorError> {
    let mut out = Vec::new();
    for (name, merge) in [
        (
            JSON_FILE,
            merge_json as fn(&str) -> Result<(String, bool), String>,
        ),
        (TOML_FILE, merge_toml),
    ] {
        let path = root.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ConductorError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let (text, unchanged) = merge(&text).map_err(|message| ConductorError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        out.push(Merged {
            path,
            text,
            unchanged,
        });
    }
    Ok(out)
}

/// `conductor.json` with the two lines merged (keys come out sorted).
pub fn merge_json(text: &str) -> Result<(String, bool), String> {
    let mut doc: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let root = doc
        .as_object_mut()
        .ok_or("the top level is not an object")?;
    let scripts = root
        .entry("scripts")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or("`scripts` is not an object")?;
    let mut unchanged = true;
    for (key, line, after) in [("setup", SETUP, true), ("archive", ARCHIVE, false)] {
        let current = match scripts.get(key) {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(format!("`scripts.{key}` is not a string")),
        };
        if let Some(new) = with_line(current, line, after) {
            scripts.insert(key.to_string(), serde_json::Value::String(new));
            unchanged = false;
        }
    }
    let mut out = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    out.push('\n');
    Ok((out, unchanged))
}

/// `.conductor/settings.toml` with the two lines merged (comments are not kept).
pub fn merge_toml(text: &str) -> Result<(String, bool), String> {
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let scripts = doc
        .entry("scripts")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or("`scripts` is not a table")?;
    let mut unchanged = true;
    for (key, line, after) in [("setup", SETUP, true), ("archive", ARCHIVE, false)] {
        let current = match scripts.get(key) {
            None => None,
            Some(toml::Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(format!("`scripts.{key}` is not a string")),
        };
        if let Some(new) = with_line(current, line, after) {
            scripts.insert(key.to_string(), toml::Value::String(new));
            unchanged = false;
        }
    }
    toml::to_string(&doc)
        .map(|t| (t, unchanged))
        .map_err(|e| e.to_string())
}

/// The script with `line` added (after it, or before it), or None when it runs it already.
fn with_line(script: Option<&str>, line: &str, after: bool) -> Option<String> {
    let script = script.map(str::trim).filter(|s| !s.is_empty());
    match script {
        None => Some(line.to_string()),
        Some(s) if runs(s, line) => None,
        Some(s) if after => Some(format!("{s}\n{line}")),
        Some(s) => Some(format!("{line}\n{s}")),
    }
}

/// Whether a shell script runs `dockwarm SUBCOMMAND` (any path to dockwarm, any arguments).
fn runs(script: &str, line: &str) -> bool {
    let Some((_, sub)) = line.split_once(' ') else {
        return false;
    };
    let words: Vec<&str> = script
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')'))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|w| {
        let program = w[0].trim_matches(|c| c == '"' || c == '\'');
        (program == "dockwarm" || program.ends_with("/dockwarm")) && w[1] == sub
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn their_scripts_stay_and_ours_are_added_once() {
        let (out, unchanged) =
            merge_json(r#"{"scripts": {"setup": "npm ci", "run": "npm start"}, "other": 1}"#)
                .unwrap();
        assert!(!unchanged);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["scripts"]["setup"], "npm ci\ndockwarm init");
        assert_eq!(v["scripts"]["archive"], "dockwarm archive");
        assert_eq!(v["scripts"]["run"], "npm start");
        assert_eq!(v["other"], 1);
        let (again, unchanged) = merge_json(&out).unwrap();
        assert!(unchanged);
        assert_eq!(again, out);
    }

    #[test]
    fn a_script_that_runs_dockwarm_already_is_left_alone() {
        assert!(runs("cp ../.env . && ~/bin/dockwarm init --x", SETUP));
        assert!(runs("set -e\n\"dockwarm\" archive", ARCHIVE));
        assert!(!runs("echo dockwarm-init", SETUP));
        assert!(!runs("dockwarm initialize", SETUP));
        let (out, _) =
            merge_toml("[scripts]\nsetup = \"make\"\narchive = \"make clean\"\n[run]\nx = 1\n")
                .unwrap();
        let t: toml::Table = out.parse().unwrap();
        assert_eq!(t["scripts"]["setup"].as_str(), Some("make\ndockwarm init"));
        assert_eq!(
            t["scripts"]["archive"].as_str(),
            Some("dockwarm archive\nmake clean")
        );
        assert_eq!(t["run"]["x"].as_integer(), Some(1));
    }
}
