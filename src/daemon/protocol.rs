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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ping,
    Register {
        path: PathBuf,
    },
    Changed {
        path: PathBuf,
        #[serde(default)]
        images: Vec<String>,
    },
    RefsMoved {
        path: PathBuf,
        #[serde(default)]
        refs: Vec<String>,
    },
    Status,
    Stop,
}

/// One answer line. Flattened so that `{"ok":true}` stays the whole answer for most requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DaemonStatus>,
}

impl Response {
    pub fn ok() -> Response {
        Response {
            ok: true,
            ..Default::default()
        }
    }

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
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub workspaces: usize,
    pub watched_dirs: usize,
    /// "up", "down" (the queue waits and retries) or "unknown" (not asked yet).
    pub engine: String,
    /// The engine endpoint the daemon last checked (a workspace's, see `registry::Workspace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_endpoint: Option<String>,
    /// Why that check failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_error: Option<String>,
    pub concurrency: usize,
    pub running: Vec<JobView>,
    pub queued: Vec<JobView>,
    /// Latest builds that failed for a digest still current (cleared by the next change).
    pub failed: Vec<Failure>,
    /// The last finished jobs, newest last.
    pub history: Vec<JobView>,
    /// Jobs started since the daemon started.
    pub jobs_started: u64,
    /// Workspaces whose plan is being computed (off the daemon's loop, which keeps
    /// answering meanwhile).
    #[serde(default)]
    pub planning: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub project: String,
    pub image: String,
    /// The engine-free inputs digest (see `fingerprint::inputs_digest`).
    pub digest: String,
    pub workspaces: Vec<PathBuf>,
    /// Milliseconds since the Unix epoch: when the job was queued, started, finished.
    pub queued_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// "ok" or "failed", once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A job for a fetched commit, prebuilt ahead of any checkout: `<ref>@<commit>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub workspace: PathBuf,
    pub image: String,
    pub digest: String,
    pub error: String,
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
