//! The daemon's build queue: what to build, for which workspaces, in which order.
//!
//! Pure bookkeeping, no I/O, so that its rules are unit-tested on their own:
//! - one job per dependency build (project, image, inputs digest): workspaces that share inputs
//!   join the same job, and the dependency stage is built once for all of them;
//! - a newer change in a workspace takes it out of any *queued* job of the same image with an
//!   older digest (a job left with no workspace is dropped), since building what is no longer on
//!   disk only delays what is;
//! - a *running* job is never touched: it finishes, and a newer digest queues behind it;
//! - at most `concurrency` jobs run at once;
//! - a job for a commit fetched but not checked out (prebuilt *ahead*, see `crate::ahead`)
//!   waits while any job of a workspace waits: work for a checked-out workspace goes first. A
//!   newer commit of the same ref supersedes a queued one, and a workspace asking for the same
//!   inputs joins the job and lifts it to its own priority.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::protocol::JobView;

/// What one job builds: equal keys mean equal dependency inputs, so one build serves every
/// workspace (and fetched commit) that asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The project name, the prefix of the shared dependency image's tag.
    pub project: String,
    /// The image's name in the project.
    pub image: String,
    /// The engine-free inputs digest (see `fingerprint::inputs_digest`).
    pub digest: String,
}

/// One dependency build, queued or running, and who waits for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The build it stands for; at most one queued job per key.
    pub key: Key,
    /// In the order they asked; the first one's build makes the dependency stage, the others
    /// find it built and only build their own workspace image.
    pub workspaces: Vec<PathBuf>,
    /// Set when the job builds a fetched commit: its dependency stage is built from the
    /// commit's objects, unless a workspace joins and builds it from its checkout.
    pub ahead: Option<AheadTarget>,
    /// When it was first queued, in milliseconds since the Unix epoch (for `status`).
    pub queued_at_ms: u64,
    /// When it started; None while queued, and again when the engine was down and it went back.
    pub started_at_ms: Option<u64>,
}

/// A commit to prebuild ahead of any checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AheadTarget {
    /// A registered checkout of the repository: where the build child runs and whose engine
    /// it uses.
    pub anchor: PathBuf,
    /// The repository's main worktree, which names it.
    pub repo: PathBuf,
    /// The watched ref that moved: `refs/remotes/origin/main`; a newer commit of the same ref
    /// replaces this one while it waits.
    pub refname: String,
    /// The full commit id the child `dockwarm prebuild --rev` builds.
    pub commit: String,
    /// Its whole image too, not only the dependency stage (`prebuild --rev --full`).
    pub full: bool,
}

impl Job {
    /// Only a commit fetched ahead wants it: it waits for every workspace's job.
    pub fn is_ahead_only(&self) -> bool {
        self.workspaces.is_empty() && self.ahead.is_some()
    }

    fn wanted(&self) -> bool {
        !self.workspaces.is_empty() || self.ahead.is_some()
    }
}

impl Job {
    /// The job as `status` shows it (`JOB` in `docs/daemon-protocol.md`), not yet finished.
    pub fn view(&self) -> JobView {
        JobView {
            project: self.key.project.clone(),
            image: self.key.image.clone(),
            digest: self.key.digest.clone(),
            workspaces: self.workspaces.clone(),
            queued_at_ms: self.queued_at_ms,
            started_at_ms: self.started_at_ms,
            ahead: self
                .ahead
                .as_ref()
                .map(|a| format!("{}@{}", a.refname, &a.commit[..12.min(a.commit.len())])),
            ..Default::default()
        }
    }
}

/// What [`Queue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A new job.
    Queued,
    /// The workspace joined a queued job with the same key.
    Joined,
    /// Nothing to do: this workspace is already in a queued or running job with the same key.
    Already,
}

/// The daemon's jobs, waiting and running; see the module docs for its rules.
#[derive(Debug)]
pub struct Queue {
    queued: VecDeque<Job>,
    running: Vec<Job>,
    concurrency: usize,
}

impl Queue {
    /// An empty queue that runs at most `concurrency` jobs at once (at least one).
    pub fn new(concurrency: usize) -> Queue {
        Queue {
            queued: VecDeque::new(),
            running: Vec::new(),
            concurrency: concurrency.max(1),
        }
    }

    /// How many jobs may run at once, for `status`.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Asks for `key` to be built for `workspace`.
    pub fn push(&mut self, key: Key, workspace: &Path, now_ms: u64) -> Pushed {
        let in_job = |j: &Job| j.key == key && j.workspaces.iter().any(|w| w == workspace);
        if self.running.iter().any(in_job) || self.queued.iter().any(in_job) {
            return Pushed::Already;
        }
        // Supersede: this workspace's queued builds of the same image with another digest.
        for job in self.queued.iter_mut() {
            if job.key.project == key.project
                && job.key.image == key.image
                && job.key.digest != key.digest
            {
                job.workspaces.retain(|w| w != workspace);
            }
        }
        self.queued.retain(Job::wanted);
        if let Some(job) = self.queued.iter_mut().find(|j| j.key == key) {
            job.workspaces.push(workspace.to_path_buf());
            return Pushed::Joined;
        }
        self.queued.push_back(Job {
            key,
            workspaces: vec![workspace.to_path_buf()],
            ahead: None,
            queued_at_ms: now_ms,
            started_at_ms: None,
        });
        Pushed::Queued
    }

    /// Asks for `key` to be built for a fetched commit, at low priority. Nothing is queued when
    /// a job with the same key is queued or running (it builds the same dependency stage); a
    /// queued job for an older commit of the same ref gives way.
    pub fn push_ahead(&mut self, key: Key, target: AheadTarget, now_ms: u64) -> Pushed {
        let same_ref = |a: &AheadTarget| a.repo == target.repo && a.refname == target.refname;
        if self
            .running
            .iter()
            .chain(&self.queued)
            .any(|j| j.key == key)
        {
            return Pushed::Already;
        }
        for job in self.queued.iter_mut() {
            if job.key.project == key.project
                && job.key.image == key.image
                && job.ahead.as_ref().is_some_and(same_ref)
            {
                job.ahead = None;
            }
        }
        self.queued.retain(Job::wanted);
        self.queued.push_back(Job {
            key,
            workspaces: Vec::new(),
            ahead: Some(target),
            queued_at_ms: now_ms,
            started_at_ms: None,
        });
        Pushed::Queued
    }

    /// The next job to start, if a slot is free; it counts as running until [`Queue::finish`].
    pub fn start_next(&mut self, now_ms: u64) -> Option<Job> {
        if self.running.len() >= self.concurrency {
            return None;
        }
        // A workspace's job first; a job wanted only ahead of a checkout when none waits.
        let i = self
            .queued
            .iter()
            .position(|j| !j.is_ahead_only())
            .or_else(|| (!self.queued.is_empty()).then_some(0))?;
        let mut job = self.queued.remove(i)?;
        job.started_at_ms = Some(now_ms);
        self.running.push(job.clone());
        Some(job)
    }

    /// A running job ended; returns it.
    pub fn finish(&mut self, key: &Key) -> Option<Job> {
        let i = self.running.iter().position(|j| &j.key == key)?;
        Some(self.running.remove(i))
    }

    /// Puts a job that could not run (the engine went away) back at the front, merging with a
    /// queued job of the same key.
    pub fn requeue_front(&mut self, mut job: Job) {
        job.started_at_ms = None;
        if let Some(queued) = self.queued.iter_mut().find(|j| j.key == job.key) {
            for w in job.workspaces {
                if !queued.workspaces.contains(&w) {
                    queued.workspaces.push(w);
                }
            }
            if queued.ahead.is_none() {
                queued.ahead = job.ahead;
            }
            return;
        }
        self.queued.push_front(job);
    }

    /// A workspace went away: it leaves every queued job.
    pub fn forget_workspace(&mut self, workspace: &Path) {
        for job in self.queued.iter_mut() {
            job.workspaces.retain(|w| w != workspace);
        }
        self.queued.retain(Job::wanted);
    }

    /// Whether `workspace` waits for or is in a build of `image`; "queued" or "building".
    pub fn state_of(&self, workspace: &Path, project: &str, image: &str) -> Option<&'static str> {
        let has = |j: &Job| {
            j.key.project == project
                && j.key.image == image
                && j.workspaces.iter().any(|w| w == workspace)
        };
        if self.running.iter().any(has) {
            Some("building")
        } else if self.queued.iter().any(has) {
            Some("queued")
        } else {
            None
        }
    }

    /// The jobs started and not yet finished, oldest first.
    pub fn running(&self) -> &[Job] {
        &self.running
    }

    /// The jobs waiting, in queue order (ahead-only jobs start after every workspace's job).
    pub fn queued(&self) -> impl Iterator<Item = &Job> {
        self.queued.iter()
    }

    /// Nothing queued or running: with no workspace left, the daemon may exit once idle.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(image: &str, digest: &str) -> Key {
        Key {
            project: "p".into(),
            image: image.into(),
            digest: digest.into(),
        }
    }

    #[test]
    fn workspaces_with_the_same_inputs_share_one_job() {
        let mut q = Queue::new(1);
        for i in 0..5 {
            let ws = PathBuf::from(format!("/w/{i}"));
            let pushed = q.push(key("app", "d1"), &ws, 0);
            assert_eq!(
                pushed,
                if i == 0 {
                    Pushed::Queued
                } else {
                    Pushed::Joined
                }
            );
        }
        assert_eq!(
            q.push(key("app", "d1"), Path::new("/w/3"), 0),
            Pushed::Already
        );
        let job = q.start_next(1).unwrap();
        assert_eq!(job.workspaces.len(), 5);
        assert!(q.start_next(1).is_none());
    }

    #[test]
    fn a_newer_change_supersedes_a_queued_build_but_not_a_running_one() {
        let mut q = Queue::new(1);
        let a = Path::new("/w/a");
        let b = Path::new("/w/b");
        q.push(key("app", "d1"), a, 0);
        let running = q.start_next(1).unwrap();
        q.push(key("app", "d2"), a, 2);
        q.push(key("app", "d2"), b, 2);
        q.push(key("app", "d3"), a, 3);
        // d1 runs on; d2 keeps only b; d3 holds a.
        assert_eq!(q.running().len(), 1);
        let queued: Vec<_> = q.queued().map(|j| j.view()).collect();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].digest, "d2");
        assert_eq!(queued[0].workspaces, vec![b.to_path_buf()]);
        assert_eq!(queued[1].digest, "d3");
        // b moves on too: d2 is dropped as empty.
        q.push(key("app", "d3"), b, 4);
        let queued: Vec<_> = q.queued().map(|j| j.key.digest.clone()).collect();
        assert_eq!(queued, vec!["d3"]);
        // Another image of the same workspace is not superseded.
        q.push(key("worker", "d9"), a, 5);
        assert_eq!(q.queued().count(), 2);
        assert_eq!(q.finish(&running.key).unwrap().key.digest, "d1");
        assert_eq!(q.start_next(6).unwrap().key.digest, "d3");
    }

    #[test]
    fn the_same_digest_queues_behind_a_running_job_for_a_new_workspace() {
        let mut q = Queue::new(1);
        q.push(key("app", "d1"), Path::new("/w/a"), 0);
        q.start_next(0).unwrap();
        assert_eq!(
            q.push(key("app", "d1"), Path::new("/w/a"), 1),
            Pushed::Already
        );
        assert_eq!(
            q.push(key("app", "d1"), Path::new("/w/b"), 1),
            Pushed::Queued
        );
        assert_eq!(q.state_of(Path::new("/w/a"), "p", "app"), Some("building"));
        assert_eq!(q.state_of(Path::new("/w/b"), "p", "app"), Some("queued"));
    }

    fn target(refname: &str, commit: &str) -> AheadTarget {
        AheadTarget {
            anchor: "/w/a".into(),
            repo: "/repo".into(),
            refname: refname.into(),
            commit: commit.into(),
            full: false,
        }
    }

    #[test]
    fn work_for_a_workspace_goes_before_work_ahead() {
        let mut q = Queue::new(1);
        let main = "refs/remotes/origin/main";
        assert_eq!(
            q.push_ahead(key("app", "a1"), target(main, "c1"), 0),
            Pushed::Queued
        );
        q.push(key("app", "d1"), Path::new("/w/a"), 1);
        q.push(key("worker", "d2"), Path::new("/w/b"), 2);
        let order: Vec<String> = std::iter::from_fn(|| {
            let job = q.start_next(3)?;
            q.finish(&job.key);
            Some(job.key.digest)
        })
        .collect();
        assert_eq!(order, vec!["d1", "d2", "a1"]);
    }

    #[test]
    fn a_newer_commit_of_a_ref_supersedes_the_queued_one() {
        let mut q = Queue::new(1);
        let main = "refs/remotes/origin/main";
        q.push_ahead(key("app", "a1"), target(main, "c1"), 0);
        q.push_ahead(key("app", "x1"), target("refs/remotes/origin/dev", "c9"), 0);
        q.push_ahead(key("app", "a2"), target(main, "c2"), 1);
        let queued: Vec<String> = q.queued().map(|j| j.key.digest.clone()).collect();
        assert_eq!(queued, vec!["x1", "a2"]);
        // Running: left alone; the newer commit queues behind it.
        let running = q.start_next(2).unwrap();
        assert_eq!(running.key.digest, "x1");
        assert_eq!(
            q.push_ahead(key("app", "x1"), target("refs/remotes/origin/dev", "c9"), 3),
            Pushed::Already
        );
        // The same inputs already queued for a workspace: nothing more to build.
        q.push(key("app", "d5"), Path::new("/w/a"), 4);
        assert_eq!(
            q.push_ahead(key("app", "d5"), target(main, "c3"), 5),
            Pushed::Already
        );
        assert_eq!(q.queued().count(), 2);
    }

    #[test]
    fn a_workspace_joining_an_ahead_job_lifts_it() {
        let mut q = Queue::new(1);
        q.push(key("worker", "w1"), Path::new("/w/b"), 0);
        q.push_ahead(
            key("app", "a1"),
            target("refs/remotes/origin/main", "c1"),
            0,
        );
        assert_eq!(
            q.push(key("app", "a1"), Path::new("/w/a"), 1),
            Pushed::Joined
        );
        q.forget_workspace(Path::new("/w/b"));
        let job = q.start_next(2).unwrap();
        assert_eq!(job.key.digest, "a1");
        assert_eq!(job.workspaces, vec![PathBuf::from("/w/a")]);
        assert!(job.ahead.is_some() && !job.is_ahead_only());
        // Its workspace leaving keeps the commit's job.
        let mut q = Queue::new(1);
        q.push_ahead(
            key("app", "a1"),
            target("refs/remotes/origin/main", "c1"),
            0,
        );
        q.push(key("app", "a1"), Path::new("/w/a"), 1);
        q.forget_workspace(Path::new("/w/a"));
        assert!(q.queued().next().is_some_and(Job::is_ahead_only));
    }

    #[test]
    fn concurrency_bounds_running_jobs_and_requeue_goes_first() {
        let mut q = Queue::new(2);
        for d in ["d1", "d2", "d3"] {
            q.push(key(d, d), Path::new("/w/a"), 0);
        }
        let first = q.start_next(0).unwrap();
        q.start_next(0).unwrap();
        assert!(q.start_next(0).is_none());
        let job = q.finish(&first.key).unwrap();
        q.requeue_front(job);
        assert_eq!(q.start_next(0).unwrap().key.digest, "d1");
        q.forget_workspace(Path::new("/w/a"));
        assert_eq!(q.queued().count(), 0);
    }
}
