//! What a build prints while it runs: a spinner with the current step on a terminal, plain
//! lines otherwise, and always the whole log in the state directory.
//!
//! Both build backends speak BuildKit's plain progress format (`#5 [deps 2/3] RUN ...`,
//! `#5 CACHED`, `#5 ERROR: ...`), so one reader finds the failing step for either.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

/// How many log lines a failure report shows.
const TAIL: usize = 25;

/// One build's output: the whole log to a file, a spinner or plain lines to the terminal, and
/// what a failure report needs (the failing step, the last lines).
pub struct BuildLog {
    file: Option<File>,
    bar: Option<ProgressBar>,
    prefix: String,
    quiet: bool,
    tail: VecDeque<String>,
    steps: HashMap<String, String>,
    failed_step: Option<String>,
    cached_steps: usize,
    run_steps: usize,
}

impl BuildLog {
    /// `quiet` drops the terminal output (the log file still gets everything).
    pub fn new(log_path: Option<&Path>, prefix: &str, quiet: bool) -> BuildLog {
        let file = log_path.and_then(|p| crate::state::create_private(p).ok());
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_prefix(prefix.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        BuildLog {
            file,
            bar,
            prefix: prefix.to_string(),
            quiet,
            tail: VecDeque::with_capacity(TAIL),
            steps: HashMap::new(),
            failed_step: None,
            cached_steps: 0,
            run_steps: 0,
        }
    }

    /// One line of build output.
    pub fn line(&mut self, line: &str) {
        let line = line.trim_end();
        if let Some(f) = self.file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        self.observe(line);
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => {
                if let Some((_, rest)) = step_line(line) {
                    if rest.starts_with('[') {
                        bar.set_message(rest.to_string());
                    }
                }
            }
            None => eprintln!("{} | {line}", self.prefix),
        }
    }

    fn observe(&mut self, line: &str) {
        let Some((id, rest)) = step_line(line) else {
            return;
        };
        if rest.starts_with('[') && !self.steps.contains_key(id) {
            self.steps.insert(id.to_string(), rest.to_string());
            if rest.contains("] RUN ") {
                self.run_steps += 1;
            }
        } else if rest == "CACHED" && self.steps.get(id).is_some_and(|s| s.starts_with('[')) {
            self.cached_steps += 1;
        } else if rest.starts_with("ERROR") && self.failed_step.is_none() {
            self.failed_step = Some(
                self.steps
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| format!("step #{id}")),
            );
        }
    }

    /// The step that failed, if a step failed.
    pub fn failed_step(&self) -> Option<String> {
        self.failed_step.clone()
    }

    /// The last lines of the build's output (at most 25): what a failure report quotes, so the
    /// user sees the error without opening the log.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    /// Clears the spinner, so the lines printed after the build are not drawn over.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `#12 rest` → ("12", "rest").
fn step_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?;
    let (id, rest) = rest.split_once(' ')?;
    id.chars().all(|c| c.is_ascii_digit()).then_some((id, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_failing_step_in_plain_output() {
        let mut log = BuildLog::new(None, "app", true);
        for l in [
            "#1 [internal] load build definition from Dockerfile",
            "#5 [deps 2/3] COPY uv.lock ./",
            "#5 CACHED",
            "#6 [deps 3/3] RUN false",
            "#6 ERROR: process \"/bin/sh -c false\" did not complete successfully: exit code: 1",
            "ERROR: failed to solve: process \"/bin/sh -c false\" did not complete successfully",
        ] {
            log.line(l);
        }
        assert_eq!(log.failed_step().as_deref(), Some("[deps 3/3] RUN false"));
        assert_eq!(log.tail().len(), 6);
    }
}
