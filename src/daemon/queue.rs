//! The daemon's build queue: what to build, for which workspaces, in which order.
//!
//! Pure bookkeeping, no I/O, so that its rules are unit-tested on their own:
//! - one job per dependency build (project, image, inputs digest): workspaces that share inputs
//!   join the same job, and the dependency stage is built once for all of them;
//! - a newer change in a workspace takes it out of any *queued* job of the same image with an
//!   older digest (a job left with no workspace is dropped), since building what is no longer on
//!   disk only delays what is;
//! - a *running* job is never touched: it finishes, and a newer digest queues behind it;
//! - at most `concurrency` jobs run at once.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::protocol::JobView;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub project: String,
    pub image: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub key: Key,
    /// In the order they asked; the first one's build makes the dependency stage, the others
    /// find it built and only build their own workspace image.
    pub workspaces: Vec<PathBuf>,
    pub queued_at_ms: u64,
    pub started_at_ms: Option<u64>,
}

impl Job {
    pub fn view(&self) -> JobView {
        JobView {
            project: self.key.project.clone(),
            image: self.key.image.clone(),
            digest: self.key.digest.clone(),
            workspaces: self.workspaces.clone(),
            queued_at_ms: self.queued_at_ms,
            started_at_ms: self.started_at_ms,
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

#[derive(Debug)]
pub struct Queue {
    queued: VecDeque<Job>,
    running: Vec<Job>,
    concurrency: usize,
}

impl Queue {
    pub fn new(concurrency: usize) -> Queue {
        Queue {
            queued: VecDeque::new(),
            running: Vec::new(),
            concurrency: concurrency.max(1),
        }
    }

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
        self.queued.retain(|j| !j.workspaces.is_empty());
        if let Some(job) = self.queued.iter_mut().find(|j| j.key == key) {
            job.workspaces.push(workspace.to_path_buf());
            return Pushed::Joined;
        }
        self.queued.push_back(Job {
            key,
            workspaces: vec![workspace.to_path_buf()],
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
        let mut job = self.queued.pop_front()?;
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
            return;
        }
        self.queued.push_front(job);
    }

    /// A workspace went away: it leaves every queued job.
    pub fn forget_workspace(&mut self, workspace: &Path) {
        for job in self.queued.iter_mut() {
            job.workspaces.retain(|w| w != workspace);
        }
        self.queued.retain(|j| !j.workspaces.is_empty());
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

    pub fn running(&self) -> &[Job] {
        &self.running
    }

    pub fn queued(&self) -> impl Iterator<Item = &Job> {
        self.queued.iter()
    }

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
