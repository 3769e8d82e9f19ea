//! The process environment, read once at the edge and passed in.
//!
//! `main.rs` takes an [`Env`] with [`Env::from_process`] and hands it to the commands, which
//! hand it to the library's entry points ([`crate::state::State::open`] keeps it, so anything
//! given the state directory has it too). The library does not ask the process (two reads
//! of `HOME` left say why where they are): a test sets a knob with [`Env::from_vars`] instead of
//! `std::env::set_var`, which races with every other test of the process, and what a command
//! reads is all named here, with why.
//!
//! Cheap on purpose: `dockwarm hook` runs on every checkout, so the snapshot reads only the
//! variables dockwarm knows by name ([`KNOWN`]). The whole environment, which compose
//! interpolation needs, is copied on first use, once per process.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

/// The variables read by name. A name outside the list is still answered by [`Env::get`], from
/// the whole environment.
pub const KNOWN: &[&str] = &[
    "HOME",
    "XDG_STATE_HOME",
    "XDG_CONFIG_HOME",
    "DOCKWARM_STATE_DIR",
    "DOCKWARM_CONFIG",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_BUILDKIT",
    "DOCKWARM_DAEMON",
    "DOCKWARM_DAEMON_IDLE_EXIT",
    "DOCKWARM_DAEMON_RESCAN_MS",
    "DOCKWARM_DAEMON_JOBS",
    "DOCKWARM_PRUNE_EVERY_S",
    "DOCKWARM_HOOK_TIMEOUT",
    "DOCKWARM_MAX_INPUT_BYTES",
    "DOCKWARM_HASH_TIMEOUT_SECS",
    "DOCKWARM_TRACE_PLANS",
    "CONDUCTOR_WORKSPACE_NAME",
    "CONDUCTOR_DEFAULT_BRANCH",
    "NO_COLOR",
    // Read through compose's view, and checked by every cached plan: known so that checking
    // a plan does not copy the whole environment.
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
    "DOCKWARM_BACKEND",
    "DOCKWARM_COMPOSE",
    "DOCKWARM_REGISTRY",
];

/// A snapshot of the environment dockwarm runs in; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Env {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The value of each of [`KNOWN`], in its order.
    known: Vec<Option<OsString>>,
    /// Every variable; from the process on first use, or given whole by [`Env::from_vars`].
    all: OnceLock<BTreeMap<OsString, OsString>>,
}

impl Default for Env {
    /// An empty environment: every knob at its default (what [`crate::state::State::at`]
    /// carries, for tests that name their state directory).
    fn default() -> Env {
        Env::from_vars(std::iter::empty::<(OsString, OsString)>())
    }
}

impl Env {
    /// This process's environment: the known variables now, the rest when first asked.
    pub fn from_process() -> Env {
        Env {
            inner: Arc::new(Inner {
                known: KNOWN.iter().map(std::env::var_os).collect(),
                all: OnceLock::new(),
            }),
        }
    }

    /// An environment of exactly these variables, standing for the process's (tests, and a
    /// process that runs for another's environment).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Env
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let all: BTreeMap<OsString, OsString> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let known = KNOWN
            .iter()
            .map(|name| all.get(OsStr::new(name)).cloned())
            .collect();
        Env {
            inner: Arc::new(Inner {
                known,
                all: OnceLock::from(all),
            }),
        }
    }

    fn all(&self) -> &BTreeMap<OsString, OsString> {
        self.inner.all.get_or_init(|| std::env::vars_os().collect())
    }

    /// A variable's value as set (empty included), whatever its name.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        match KNOWN.iter().position(|k| *k == name) {
            Some(i) => self.inner.known[i].as_deref(),
            None => self.all().get(OsStr::new(name)).map(OsString::as_os_str),
        }
    }

    /// A variable's value when it is UTF-8 (as `std::env::var` reads it): None when unset
    /// or not text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(OsStr::to_str)
    }

    /// A variable set to something (an empty value counts as unset, as shells treat `X=`).
    pub fn non_empty(&self, name: &str) -> Option<&OsStr> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A non-empty variable, as a path.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.non_empty(name).map(PathBuf::from)
    }

    /// A number, spaces around it allowed; None when unset or not a number (the default
    /// applies, as for every numeric knob).
    pub fn number<T: FromStr>(&self, name: &str) -> Option<T> {
        self.text(name).and_then(|v| v.trim().parse().ok())
    }

    /// The whole environment as compose interpolates it: a variable whose name or value is
    /// not UTF-8 (`JUNK=$'caf\xe9'`, a non-UTF-8 `$PWD`) is left out. A compose file cannot
    /// name such a variable, and one it names reads as unset, as in a shell without it.
    pub fn compose_vars(&self) -> BTreeMap<String, String> {
        self.all()
            .iter()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v.to_str()?.to_owned())))
            .collect()
    }

    /// `HOME` as set: where `~` leads (in compose paths, `core.hooksPath`) and what the state,
    /// config and docker directories default under.
    pub fn home(&self) -> Option<&Path> {
        self.get("HOME").map(Path::new)
    }

    /// `DOCKER_CONFIG`: docker's client configuration directory (`config.json`, contexts,
    /// credentials) when not `~/.docker`; dockwarm must find the engine and credentials the
    /// docker CLI would.
    pub fn docker_config(&self) -> Option<PathBuf> {
        self.path("DOCKER_CONFIG")
    }

    /// `DOCKWARM_DAEMON=0` (or `off`): the user turned the daemon off; hooks and `init` start
    /// a background prebuild per change instead.
    pub fn daemon_disabled(&self) -> bool {
        matches!(self.text("DOCKWARM_DAEMON"), Some("0" | "off"))
    }

    /// `DOCKWARM_HOOK_TIMEOUT` (seconds, fractions allowed): how long a git hook may run
    /// before it gives up, since git waits for it. None: unset or not a positive number.
    pub fn hook_timeout(&self) -> Option<f64> {
        self.text("DOCKWARM_HOOK_TIMEOUT")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
    }

    /// `CONDUCTOR_WORKSPACE_NAME`: the name Conductor gave the workspace it runs us in, shown
    /// instead of the directory's.
    pub fn conductor_workspace_name(&self) -> Option<&str> {
        self.text("CONDUCTOR_WORKSPACE_NAME")
            .filter(|n| !n.is_empty())
    }

    /// `CONDUCTOR_DEFAULT_BRANCH`: the branch Conductor's workspaces start from, which
    /// building ahead watches as the repository's default branch.
    pub fn conductor_default_branch(&self) -> Option<&str> {
        self.text("CONDUCTOR_DEFAULT_BRANCH")
            .filter(|b| !b.is_empty())
    }

    /// `COMPOSE_FILE`: compose's own list of files (`:` or `;` separated), which planning a
    /// commit must read as compose would.
    pub fn compose_file(&self) -> Option<&str> {
        self.text("COMPOSE_FILE")
    }

    /// `NO_COLOR` set to anything: no colour in output (<https://no-color.org>).
    pub fn no_color(&self) -> bool {
        self.non_empty("NO_COLOR").is_some()
    }

    /// `DOCKER_BUILDKIT=0`: the user's own builds use the legacy builder, which never reuses
    /// dockwarm's BuildKit cache (`doctor` warns).
    pub fn docker_buildkit_off(&self) -> bool {
        self.text("DOCKER_BUILDKIT") == Some("0")
    }

    /// `DOCKWARM_TRACE_PLANS=FILE`: append a line per computed plan there (pid and
    /// workspace), to see which process computes plans and how often.
    pub fn trace_plans(&self) -> Option<&OsStr> {
        self.get("DOCKWARM_TRACE_PLANS")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_other_names_read_from_the_given_map() {
        let env = Env::from_vars([
            ("HOME", "/h"),
            ("DOCKWARM_DAEMON", "off"),
            ("DOCKWARM_DAEMON_JOBS", " 3 "),
            ("POSTGRES_VERSION", "16"),
            ("NO_COLOR", ""),
        ]);
        assert_eq!(env.home(), Some(Path::new("/h")));
        assert!(env.daemon_disabled());
        assert_eq!(env.number::<u64>("DOCKWARM_DAEMON_JOBS"), Some(3));
        assert_eq!(env.text("POSTGRES_VERSION"), Some("16"));
        assert!(!env.no_color());
        assert_eq!(env.get("DOCKER_HOST"), None);
        assert_eq!(env.compose_vars().len(), 5);
    }

    #[test]
    fn empty_is_every_default() {
        let env = Env::default();
        assert!(!env.daemon_disabled());
        assert_eq!(env.hook_timeout(), None);
        assert!(env.compose_vars().is_empty());
    }

    #[test]
    fn hook_timeout_must_be_a_positive_number() {
        let t = |v: &str| Env::from_vars([("DOCKWARM_HOOK_TIMEOUT", v)]).hook_timeout();
        assert_eq!(t("0.5"), Some(0.5));
        assert_eq!(t("0"), None);
        assert_eq!(t("inf"), None);
        assert_eq!(t("soon"), None);
    }
}
