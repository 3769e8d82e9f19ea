//! dockwarm: keeps Docker builds warm across the git worktrees of one developer.
//!
//! A library of small modules, one concept each; `main.rs` only parses and dispatches.

pub mod compose;
pub mod config;
pub mod engine;
pub mod state;
pub mod workspace;
