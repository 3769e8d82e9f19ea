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
