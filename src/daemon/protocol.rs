//! The daemon's socket protocol: one JSON object per line, each request answered by one line.
//!
//! Line-delimited JSON rather than anything framed or binary so that a hook written in shell
//! could speak it (`echo '{"op":"status"}' | socat - UNIX:…/daemon.sock`) and so that a
//! mismatch between an old client and a newer daemon is a readable error, not a hang. Unknown
//! fields are ignored and unknown ops answered with `{"ok":false,...}`, so either side can grow.
//!
//! Requests:
//! - `{"op":"ping"}` → `{"ok":true,"pid":N,"version":"…"}`
//! - `{"op":"register","path":"/abs/workspace"}` → `{"ok":true}`: re-read the registry now
//!   (the workspace is new or its record changed) and watch it.
//! - `{"op":"changed","path":"/abs/workspace","images":["app"]}` → `{"ok":true}`: the hooks saw
//!   a change; recompute now (no debounce: git has finished writing). `images` empty or absent
//!   means every image of the workspace.
//! - `{"op":"refs_moved","path":"/abs/checkout","refs":["refs/remotes/origin/main"]}` →
//!   `{"ok":true}`: a fetch moved these remote-tracking refs in the repository of that checkout
//!   (the `reference-transaction` hook); the daemon looks at the refs it prebuilds ahead.
//! - `{"op":"status"}` → `{"ok":true,"status":{…}}` (see [`DaemonStatus`]).
//! - `{"op":"stop"}` → `{"ok":true}`, then the daemon exits; a running build goes on to its end
//!   in its own process.
//!
//! Errors: `{"ok":false,"error":"…"}`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One request line; its `op` field names the variant in snake_case (`"refs_moved"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `{"op":"ping"}`: is a daemon there; answered with its `pid` and `version`.
    Ping,
    /// `{"op":"register"}`: the registry changed for this workspace (new, or `init` again); the
    /// daemon re-reads it, watches the workspace and queues what is owed.
    Register {
        /// The workspace's absolute root, as recorded in the registry; an unknown one is
        /// answered with `"… is not registered"`.
        path: PathBuf,
    },
    /// `{"op":"changed"}`: a hook saw a change; the daemon recomputes these images at once,
    /// without the debounce, since git has finished writing.
    Changed {
        /// The registered workspace's absolute root.
        path: PathBuf,
        /// The images to recompute; empty or absent means every image of the workspace.
        #[serde(default)]
        images: Vec<String>,
    },
    /// `{"op":"refs_moved"}`: the `reference-transaction` hook saw a fetch move remote-tracking
    /// refs; the daemon looks again at every ref it prebuilds ahead.
    RefsMoved {
        /// The checkout the hook ran in, which names the repository; it need not be registered.
        path: PathBuf,
        /// The refs the transaction moved (`refs/remotes/origin/main`); only logged, since the
        /// daemon checks all the refs it watches.
        #[serde(default)]
        refs: Vec<String>,
    },
    /// `{"op":"status"}`: answered with a [`DaemonStatus`] in `status`.
    Status,
    /// `{"op":"stop"}`: answered, then the daemon exits; running builds finish in their own
    /// processes.
    Stop,
}

/// One answer line. Flattened so that `{"ok":true}` stays the whole answer for most requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// Whether the daemon did what was asked; when false, `error` says why.
    pub ok: bool,
    /// One line for the user when `ok` is false: an unknown `op`, a malformed line, an
    /// unregistered workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The daemon's process id; answers `ping`, so a client that started a daemon can say which
    /// one answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The dockwarm version the daemon runs; answers `ping`. After an upgrade it may be older
    /// than the client's until the daemon restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The daemon's queue, watches and engine; answers `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DaemonStatus>,
}

impl Response {
    /// `{"ok":true}`, the whole answer to every request but `ping` and `status`.
    pub fn ok() -> Response {
        Response {
            ok: true,
            ..Default::default()
        }
    }

    /// `{"ok":false,"error":…}`: the request was not done, and `message` is why.
    pub fn error(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(message.into()),
            ..Default::default()
        }
    }
}

/// What `{"op":"status"}` reports; also the `daemon` part of `dockwarm status --json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's process id, which `dockwarm daemon status` prints.
    pub pid: u32,
    /// When this daemon started, in seconds since the Unix epoch.
    pub started_at: u64,
    /// How many registered workspaces the daemon tracks (watches and keeps prebuilt).
    pub workspaces: usize,
    /// How many directories it watches (non-recursively) for those workspaces' inputs.
    pub watched_dirs: usize,
    /// "up", "down" (the queue waits and retries) or "unknown" (not asked yet).
    pub engine: String,
    /// The engine endpoint the daemon last checked (a workspace's, see `registry::Workspace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_endpoint: Option<String>,
    /// Why that check failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_error: Option<String>,
    /// How many jobs may run at once (`DOCKWARM_DAEMON_JOBS`, default 1).
    pub concurrency: usize,
    /// The jobs building now, at most `concurrency` of them.
    pub running: Vec<JobView>,
    /// The jobs waiting, in queue order; a workspace's job starts before any job that only
    /// prebuilds ahead of checkout.
    pub queued: Vec<JobView>,
    /// Latest builds that failed for a digest still current (cleared by the next change).
    pub failed: Vec<Failure>,
    /// The last 50 finished jobs, newest last.
    pub history: Vec<JobView>,
    /// Jobs started since the daemon started.
    pub jobs_started: u64,
    /// Workspaces whose plan is being computed (off the daemon's loop, which keeps
    /// answering meanwhile).
    #[serde(default)]
    pub planning: Vec<PathBuf>,
}

/// One build job as a client sees it (`JOB` in `docs/daemon-protocol.md`): one image's inputs
/// digest, built once for every workspace listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The project name shared by the repository's workspaces (`dockwarm/<project>-…` tags).
    pub project: String,
    /// The image's name in the project, as `dockwarm prebuild IMAGE` takes it.
    pub image: String,
    /// The engine-free inputs digest (see `fingerprint::inputs_digest`).
    pub digest: String,
    /// The workspaces sharing this build, in the order they asked; the first builds the
    /// dependency stage. Empty for a prebuild ahead of checkout that no workspace joined.
    pub workspaces: Vec<PathBuf>,
    /// Milliseconds since the Unix epoch: when the job was queued, started, finished.
    pub queued_at_ms: u64,
    /// When it started; absent while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it finished; present only in `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// "ok" or "failed", once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why the build failed, when `result` is "failed": per workspace, the child that failed
    /// and where its output is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A job for a fetched commit, prebuilt ahead of any checkout: `<ref>@<commit>`, the commit
    /// shortened to 12 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<String>,
}

/// A build that failed for one workspace and is not retried until its inputs change; an entry
/// of [`DaemonStatus::failed`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The workspace whose build failed.
    pub workspace: PathBuf,
    /// The image that failed to build.
    pub image: String,
    /// The inputs digest that failed; the same digest is not built again for this workspace.
    pub digest: String,
    /// The job's error, naming the workspace whose child `dockwarm prebuild` failed and where
    /// its output is (the daemon log, `dockwarm logs IMAGE`).
    pub error: String,
    /// When it failed, in seconds since the Unix epoch.
    pub at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let r: Request =
            serde_json::from_str(r#"{"op":"changed","path":"/w","images":["app"],"extra":1}"#)
                .unwrap();
        assert_eq!(
            r,
            Request::Changed {
                path: "/w".into(),
                images: vec!["app".into()]
            }
        );
        let r: Request = serde_json::from_str(r#"{"op":"changed","path":"/w"}"#).unwrap();
        assert!(matches!(r, Request::Changed { images, .. } if images.is_empty()));
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Response::ok()).unwrap(),
            r#"{"ok":true}"#
        );
    }
}
