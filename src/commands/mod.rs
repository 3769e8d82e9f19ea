//! The CLI's commands: each turns the library's answers into what the user reads.

pub mod archive;
pub mod config;
pub mod daemon;
pub mod doctor;
pub mod fingerprint;
pub mod hook;
pub mod hooks;
pub mod init;
pub mod logs;
pub mod prebuild;
pub mod prune;
pub mod status;
pub mod team_registry;
pub mod volumes;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether [`paint`] colours: set once by [`set_color`], off until then.
static COLOR: AtomicBool = AtomicBool::new(false);

/// Decides once, at the edge, whether to colour output: only on a terminal, never with
/// `NO_COLOR` in `env`. A process-wide setting rather than a parameter: every command prints
/// through [`paint`], and nothing but presentation depends on it.
pub fn set_color(env: &crate::env::Env) {
    COLOR.store(
        !env.no_color() && std::io::stdout().is_terminal(),
        Ordering::Relaxed,
    );
}

/// `text` in a colour (an ANSI SGR code) when colour is on ([`set_color`]).
pub fn paint(text: &str, code: &str) -> String {
    if COLOR.load(Ordering::Relaxed) {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A tokio runtime for one command. Current-thread: commands are sequential, and it starts in
/// microseconds, which the hot paths (hooks, already-built prebuilds) need.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Connects to the engine and finishes the cleanups earlier archives (and workspaces deleted
/// without one) owed it.
pub async fn connect(
    state: &crate::state::State,
) -> Result<crate::engine::Engine, crate::engine::EngineError> {
    let engine = crate::engine::Engine::connect(state.env()).await?;
    // So that hooks, which never ask the engine, resolve inputs as its builds will.
    crate::plan::remember_dialect(state, engine.ignore_dialect());
    // A workspace deleted without `archive` is noticed by whichever dockwarm runs next.
    crate::cleanup::forget_vanished(state);
    let removed = crate::pending::flush(state, &engine).await;
    if removed > 0 {
        eprintln!("dockwarm: removed {removed} image tag(s) left by earlier archives");
    }
    Ok(engine)
}

/// Prints `value` as pretty JSON on stdout: every `--json` answer goes through here, so
/// scripts see one format.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// 2 for usage and configuration errors (the user must edit something), 1 for failures.
/// Each error in the chain answers for itself ([`crate::error`] explains why it is not a list
/// of types here): one usage error anywhere in it, behind any context, makes it 2.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(crate::error::is_usage) {
        2
    } else {
        1
    }
}

/// The error and its causes on one line, without repeating a cause its parent already quotes.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out.replace('\n', " ")
}
