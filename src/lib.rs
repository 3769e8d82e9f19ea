//! dockwarm: keeps Docker builds warm across the git worktrees of one developer.
//!
//! A library of small modules, one concept each; `main.rs` only parses and dispatches.
#![warn(missing_docs)]

pub mod ahead;
pub mod background;
pub mod build;
pub mod changes;
pub mod cleanup;
pub mod commands;
pub mod compose;
pub mod conductor;
pub mod config;
pub mod context;
pub mod daemon;
pub mod disk;
pub mod dockerfile;
pub mod doctor;
pub mod engine;
pub mod env;
pub mod error;
pub mod fingerprint;
pub mod hooks;
pub mod ignore;
pub mod pending;
pub mod plan;
pub mod prebuild;
pub mod progress;
pub mod prune;
pub mod registry;
pub mod remote;
pub mod state;
pub mod status;
pub mod tags;
pub mod volumes;
pub mod workspace;

/// Helpers for the unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;
    use std::process::Command;

    /// `git ARGS` in `dir` with a fixed identity and no system config; fails the test unless
    /// git succeeds.
    #[track_caller]
    pub(crate) fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
}
