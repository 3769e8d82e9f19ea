//! The one integration-test binary: every test module links against dockwarm once.
//!
//! Tests run real processes (git, docker, compose, dockwarm itself) in temp directories; see
//! `common` for the project builder and the engine helpers.

mod common;

mod ahead_engine;
mod bad_input;
mod compose_corpus;
mod compose_engine;
mod context_engine;
mod daemon_engine;
mod disk_engine;
mod doctor;
mod faults;
mod field_engine;
mod field_setup_engine;
mod hooks_git;
mod hot_paths;
mod prebuild_engine;
mod prune_engine;
mod team_registry_engine;
mod volumes_engine;
mod workspaces_engine;
