//! The hooks against real git: real repositories in temporary directories, a fake `dockwarm`
//! on PATH that logs how the shim called it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dockwarm::hooks::{
    self, ConfigScope, HookState, HooksError, HooksLayout, HooksSource, InstallAction, Manager,
};

const FAKE_DOCKWARM: &str = r#"#!/bin/sh
# Logs one record per call: args (\037-separated), $PWD and stdin, then prints like the real
# one (one line on stderr; stdout is dropped by the shim) and fails (the shim ignores that).
input=$(cat; echo .)
input=${input%.}
{
    for a in "$@"; do printf '%s\037' "$a"; done
    printf '\036%s\036' "$PWD"
    printf '%s' "$input" | tr '\n' '|'
    printf '\n'
} >>"$DOCKWARM_FAKE_LOG"
echo "dockwarm: first line" >&2
echo "on stdout, dropped"
exit 1
"#;

const HOOK_NAMES: [&str; 3] = ["post-checkout", "post-merge", "post-rewrite"];

struct Sandbox {
    tmp: tempfile::TempDir,
    home: PathBuf,
    bin: PathBuf,
    fake: PathBuf,
    log: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
struct Call {
    args: Vec<String>,
    pwd: String,
    stdin: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox::with_bin_dir("bin")
    }

    fn with_bin_dir(bin_name: &str) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let bin = tmp.path().join(bin_name);
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("dockwarm");
        fs::write(&fake, FAKE_DOCKWARM).unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let log = tmp.path().join("dockwarm.log");
        Sandbox {
            tmp,
            home,
            bin,
            fake,
            log,
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn path_env(&self, with_fake: bool) -> String {
        // Without any directory holding a real `dockwarm` (an installed one would stand in for
        // the fake, or for "dockwarm is missing").
        let system = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let system = system
            .split(':')
            .filter(|dir| !Path::new(dir).join("dockwarm").exists())
            .collect::<Vec<_>>()
            .join(":");
        if with_fake {
            format!("{}:{system}", self.bin.display())
        } else {
            system
        }
    }

    fn command(&self, program: &str, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("DOCKWARM_FAKE_LOG", &self.log)
            .env("PATH", self.path_env(true))
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env_remove("DOCKWARM_HOOK_RUNNING")
            .stdin(Stdio::null());
        cmd
    }

    fn git_output(&self, dir: &Path, args: &[&str]) -> Output {
        self.command("git", dir).args(args).output().unwrap()
    }

    fn git(&self, dir: &Path, args: &[&str]) -> Output {
        let out = self.git_output(dir, args);
        assert!(
            out.status.success(),
            "git {args:?} in {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn rev(&self, dir: &Path, rev: &str) -> String {
        let out = self.git(dir, &["rev-parse", rev]);
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A repository with one commit on `main`.
    fn repo(&self, name: &str) -> PathBuf {
        let dir = self.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        self.git(&dir, &["init", "-q", "-b", "main"]);
        fs::write(dir.join("README"), "hello\n").unwrap();
        self.git(&dir, &["add", "README"]);
        self.git(&dir, &["commit", "-q", "-m", "first"]);
        dir
    }

    fn commit(&self, dir: &Path, file: &str, msg: &str) {
        fs::write(dir.join(file), format!("{msg}\n")).unwrap();
        self.git(dir, &["add", file]);
        self.git(dir, &["commit", "-q", "-m", msg]);
    }

    fn calls(&self) -> Vec<Call> {
        let Ok(text) = fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| {
                let mut parts = line.split('\u{1e}');
                let args = parts
                    .next()
                    .unwrap_or_default()
                    .split('\u{1f}')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let pwd = parts.next().unwrap_or_default().to_string();
                let stdin = parts.next().unwrap_or_default().to_string();
                Call { args, pwd, stdin }
            })
            .collect()
    }

    fn take_calls(&self) -> Vec<Call> {
        let calls = self.calls();
        let _ = fs::remove_file(&self.log);
        calls
    }

    fn install(&self, worktree: &Path) -> hooks::InstallReport {
        hooks::install(worktree, &self.fake, true).unwrap()
    }
}

fn args_of(calls: &[Call]) -> Vec<Vec<String>> {
    calls.iter().map(|c| c.args.clone()).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every file in a directory with its bytes and mode, to compare before and after.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_file() {
            out.insert(
                entry.file_name().to_string_lossy().into_owned(),
                (
                    fs::read(entry.path()).unwrap(),
                    meta.permissions().mode() & 0o7777,
                ),
            );
        }
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn canon(p: &Path) -> String {
    fs::canonicalize(p).unwrap().to_string_lossy().into_owned()
}

#[test]
fn hooks_fire_on_checkout_switch_merge_amend_and_worktree_add() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let report = sb.install(&repo);
    assert!(report
        .hooks
        .iter()
        .all(|(_, a)| *a == InstallAction::Created));
    let loc = hooks::hooks_dir(&repo).unwrap();
    assert_eq!(canon(&loc.dir), canon(&repo.join(".git/hooks")));
    assert!(matches!(loc.source, HooksSource::CommonDir { .. }));
    assert!(hooks::status(&repo, true).unwrap().installed());

    let main = sb.rev(&repo, "HEAD");
    let out = sb.git(&repo, &["checkout", "-b", "feature"]);
    let calls = sb.take_calls();
    assert_eq!(
        args_of(&calls),
        vec![strs(&["hook", "post-checkout", &main, &main, "1"])]
    );
    assert_eq!(calls[0].pwd, canon(&repo));
    // dockwarm's line reaches the user; its stdout does not.
    let err = stderr(&out);
    assert!(err.contains("dockwarm: first line"), "{err}");
    assert!(!err.contains("on stdout"), "{err}");

    sb.commit(&repo, "a.txt", "on feature");
    let feature = sb.rev(&repo, "HEAD");
    sb.take_calls();
    sb.git(&repo, &["checkout", "main"]);
    sb.git(&repo, &["switch", "feature"]);
    sb.git(&repo, &["switch", "main"]);
    assert_eq!(
        args_of(&sb.take_calls()),
        vec![
            strs(&["hook", "post-checkout", &feature, &main, "1"]),
            strs(&["hook", "post-checkout", &main, &feature, "1"]),
            strs(&["hook", "post-checkout", &feature, &main, "1"]),
        ]
    );

    // A non-fast-forward merge.
    sb.commit(&repo, "b.txt", "on main");
    sb.take_calls();
    sb.git(&repo, &["merge", "--no-ff", "-q", "-m", "merge", "feature"]);
    assert_eq!(
        args_of(&sb.take_calls()),
        vec![strs(&["hook", "post-merge", "0"])]
    );

    // post-rewrite gets the rewritten commits on stdin.
    let before = sb.rev(&repo, "HEAD");
    sb.git(&repo, &["commit", "-q", "--amend", "-m", "merge, amended"]);
    let after = sb.rev(&repo, "HEAD");
    let calls = sb.take_calls();
    assert_eq!(
        args_of(&calls),
        vec![strs(&["hook", "post-rewrite", "amend"])]
    );
    assert_eq!(calls[0].stdin, format!("{before} {after}|"));

    let wt = sb.path().join("wt");
    sb.git(
        &repo,
        &["worktree", "add", "-q", wt.to_str().unwrap(), "-b", "wt"],
    );
    let calls = sb.take_calls();
    let zero = "0".repeat(after.len());
    assert_eq!(
        args_of(&calls),
        vec![strs(&["hook", "post-checkout", &zero, &after, "1"])]
    );
    assert_eq!(calls[0].pwd, canon(&wt));
}

#[test]
fn pull_rebase_from_a_second_clone_runs_post_rewrite() {
    let sb = Sandbox::new();
    let origin = sb.repo("origin");
    let clone = sb.path().join("clone");
    sb.git(
        sb.path(),
        &["clone", "-q", origin.to_str().unwrap(), "clone"],
    );
    sb.install(&clone);
    sb.commit(&origin, "upstream.txt", "upstream");
    sb.commit(&clone, "local.txt", "local");
    let local = sb.rev(&clone, "HEAD");
    sb.take_calls();
    sb.git(&clone, &["pull", "-q", "--rebase", "origin", "main"]);
    let rebased = sb.rev(&clone, "HEAD");
    let calls = sb.take_calls();
    let rewrite: Vec<&Call> = calls
        .iter()
        .filter(|c| c.args.get(1).map(String::as_str) == Some("post-rewrite"))
        .collect();
    assert_eq!(rewrite.len(), 1, "{calls:?}");
    assert_eq!(rewrite[0].args, strs(&["hook", "post-rewrite", "rebase"]));
    assert_eq!(rewrite[0].stdin, format!("{local} {rebased}|"));
    assert!(
        calls
            .iter()
            .any(|c| c.args.get(1).map(String::as_str) == Some("post-checkout")),
        "{calls:?}"
    );
}

const OLD_HOOK: &str = r#"#!/bin/sh
input=$(cat; echo .)
input=${input%.}
printf '%s %s|%s|\n' "${0##*/}" "$*" "$input" >>"$OLD_HOOK_LOG"
exit 3
"#;

#[test]
fn a_previous_hook_keeps_running_and_uninstall_restores_it() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let hooks_dir = repo.join(".git/hooks");
    for (name, mode) in HOOK_NAMES.iter().zip([0o755, 0o750, 0o700]) {
        let path = hooks_dir.join(name);
        fs::write(&path, format!("{OLD_HOOK}# {name}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    let before = snapshot(&hooks_dir);
    // What git makes of the failing hook without dockwarm.
    let baseline = sb
        .command("git", &repo)
        .env("OLD_HOOK_LOG", sb.path().join("baseline.log"))
        .args(["checkout", "-q", "-b", "baseline"])
        .status()
        .unwrap()
        .code();
    assert_ne!(baseline, Some(0));
    sb.command("git", &repo)
        .env("OLD_HOOK_LOG", sb.path().join("baseline.log"))
        .args(["checkout", "-q", "main"])
        .status()
        .unwrap();

    let report = sb.install(&repo);
    for (name, action) in &report.hooks {
        if *name == hooks::REFS_HOOK {
            // There was none: ours alone (its chaining is tested on its own below).
            assert_eq!(*action, InstallAction::Created);
            continue;
        }
        assert_eq!(
            *action,
            InstallAction::Chained {
                orig: hooks::hooks_dir(&repo)
                    .unwrap()
                    .dir
                    .join(format!("{name}.dockwarm-orig"))
            }
        );
    }
    let installed = snapshot(&hooks_dir);
    for name in HOOK_NAMES {
        assert_eq!(
            installed[&format!("{name}.dockwarm-orig")],
            before[name],
            "moved aside with bytes and mode"
        );
    }
    // Twice changes nothing and never chains the shim into itself.
    let again = sb.install(&repo);
    assert!(again
        .hooks
        .iter()
        .all(|(_, a)| *a == InstallAction::Unchanged));
    assert_eq!(snapshot(&hooks_dir), installed);
    let st = hooks::status(&repo, true).unwrap();
    for h in st.hooks.iter().filter(|h| h.name != hooks::REFS_HOOK) {
        assert!(
            matches!(&h.state, HookState::Ours { chains: Some(p) } if p.ends_with(format!("{}.dockwarm-orig", h.name))),
            "{:?}",
            h.state
        );
    }

    let old_log = sb.path().join("old.log");
    // git checkout/switch fail when post-checkout fails; post-merge's and post-rewrite's
    // status is ignored. Either way git must see the previous hook's status, not dockwarm's.
    let run = |args: &[&str], code: Option<i32>| {
        let out = sb
            .command("git", &repo)
            .env("OLD_HOOK_LOG", &old_log)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), code, "{args:?}: {}", stderr(&out));
    };
    let main = sb.rev(&repo, "HEAD");
    run(&["checkout", "-q", "-b", "feature"], baseline);
    sb.commit(&repo, "f.txt", "feature");
    run(&["checkout", "-q", "main"], baseline);
    sb.commit(&repo, "m.txt", "main");
    run(
        &["merge", "-q", "--no-ff", "-m", "merge", "feature"],
        Some(0),
    );
    let merged = sb.rev(&repo, "HEAD");
    run(&["commit", "-q", "--amend", "-m", "amended"], Some(0));
    let amended = sb.rev(&repo, "HEAD");

    let old = fs::read_to_string(&old_log).unwrap();
    let lines: Vec<&str> = old.lines().collect();
    assert_eq!(
        lines[0],
        format!("post-checkout.dockwarm-orig {main} {main} 1||")
    );
    assert!(lines.contains(&"post-merge.dockwarm-orig 0||"), "{old}");
    let rewrite = format!("post-rewrite.dockwarm-orig amend|{merged} {amended}\n|");
    assert!(old.contains(&rewrite), "{old}");
    let calls = sb.take_calls();
    let rewrite_call = calls
        .iter()
        .find(|c| c.args.get(1).map(String::as_str) == Some("post-rewrite"))
        .unwrap();
    assert_eq!(rewrite_call.stdin, format!("{merged} {amended}|"));
    assert!(calls
        .iter()
        .any(|c| c.args == strs(&["hook", "post-merge", "0"])));

    // The shim exits with the previous hook's status (git ignores it for post-* hooks).
    let status = sb
        .command("sh", &repo)
        .env("OLD_HOOK_LOG", &old_log)
        .arg(hooks_dir.join("post-checkout"))
        .args([&main, &main, "1"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let status = sb
        .command("sh", &repo)
        .env("OLD_HOOK_LOG", &old_log)
        .arg(hooks_dir.join("post-rewrite"))
        .arg("amend")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"a b\n")?;
            child.wait()
        })
        .unwrap();
    assert_eq!(status.code(), Some(3));

    let report = hooks::uninstall(&repo).unwrap();
    assert_eq!(report.changed.len(), 4);
    assert_eq!(snapshot(&hooks_dir), before);
}

/// A reference-transaction hook that logs its state and stdin, and lets every transaction
/// through (exit 0: a failing one in state `prepared` would abort every ref update).
const OLD_REFS_HOOK: &str = r#"#!/bin/sh
input=$(cat; echo .)
input=${input%.}
printf '%s %s|%s|\n' "${0##*/}" "$*" "$input" | tr '\n' ' ' >>"$OLD_HOOK_LOG"
echo >>"$OLD_HOOK_LOG"
exit 0
"#;

/// reference-transaction fires on every ref update: commits, branches and tags never start
/// dockwarm (the shim filters in the shell), a fetch that moves `refs/remotes/` does, once,
/// with git's lines; the previous hook sees every state with its stdin, and uninstall puts
/// it back byte for byte.
#[test]
fn reference_transaction_starts_dockwarm_only_for_fetched_remote_refs() {
    let sb = Sandbox::new();
    let origin = sb.repo("origin");
    sb.git(sb.path(), &["clone", "-q", "origin", "clone"]);
    let clone = sb.path().join("clone");
    let hooks_dir = clone.join(".git/hooks");
    let old = hooks_dir.join(hooks::REFS_HOOK);
    fs::write(&old, OLD_REFS_HOOK).unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o751)).unwrap();
    let before = snapshot(&hooks_dir);
    let report = sb.install(&clone);
    assert!(report
        .hooks
        .iter()
        .any(|(n, a)| *n == hooks::REFS_HOOK && matches!(a, InstallAction::Chained { .. })));
    let old_log = sb.path().join("old.log");
    let git = |dir: &Path, args: &[&str]| {
        let out = sb
            .command("git", dir)
            .env("OLD_HOOK_LOG", &old_log)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    sb.take_calls();

    // Local work: commits, a branch, a tag, a switch.
    fs::write(
        clone.join("a.txt"),
        "a
",
    )
    .unwrap();
    git(&clone, &["add", "a.txt"]);
    git(&clone, &["commit", "-q", "-m", "local"]);
    git(&clone, &["branch", "topic"]);
    git(&clone, &["tag", "v1"]);
    git(&clone, &["checkout", "-q", "topic"]);
    let refs_calls = |calls: &[Call]| -> Vec<Call> {
        calls
            .iter()
            .filter(|c| c.args.get(1).map(String::as_str) == Some(hooks::REFS_HOOK))
            .cloned()
            .collect()
    };
    let calls = sb.take_calls();
    assert!(refs_calls(&calls).is_empty(), "{calls:?}");
    let seen = fs::read_to_string(&old_log).unwrap();
    assert!(
        seen.contains("reference-transaction.dockwarm-orig prepared|"),
        "{seen}"
    );
    assert!(seen.contains("refs/heads/topic"), "{seen}");
    assert!(seen.contains("refs/tags/v1"), "{seen}");

    // A teammate pushes; the fetch moves refs/remotes/origin/main.
    sb.commit(&origin, "b.txt", "teammate");
    let new = sb.rev(&origin, "HEAD");
    git(&clone, &["fetch", "-q", "origin"]);
    let calls = refs_calls(&sb.take_calls());
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].args,
        strs(&["hook", hooks::REFS_HOOK, "committed"])
    );
    assert!(
        calls[0]
            .stdin
            .contains(&format!(" {new} refs/remotes/origin/main|")),
        "{calls:?}"
    );
    let seen = fs::read_to_string(&old_log).unwrap();
    assert!(
        seen.contains("committed|") && seen.contains(&format!("{new} refs/remotes/origin/main")),
        "{seen}"
    );

    // The daemon's list of watched refs: a fetch that moves only other remote refs starts
    // nothing; one that moves a listed ref does.
    assert!(hooks::write_watched_refs(&clone, &strs(&["refs/remotes/origin/main"])).unwrap());
    assert!(!hooks::write_watched_refs(&clone, &strs(&["refs/remotes/origin/main"])).unwrap());
    sb.git(&origin, &["branch", "side"]);
    git(&clone, &["fetch", "-q", "origin"]);
    assert!(refs_calls(&sb.take_calls()).is_empty());
    sb.commit(&origin, "c.txt", "teammate again");
    git(&clone, &["fetch", "-q", "origin"]);
    assert_eq!(refs_calls(&sb.take_calls()).len(), 1);
    // `git fetch --atomic` of many refs: one transaction, past the 64 lines read with `read`.
    let run_shim = |last: &str| {
        let mut lines = String::new();
        for i in 0..70 {
            let name = if i == 69 {
                last.to_string()
            } else {
                format!("refs/remotes/origin/b{i}")
            };
            lines.push_str(&format!("{new} {new} {name}\n"));
        }
        let mut child = sb
            .command("sh", &clone)
            .env("OLD_HOOK_LOG", &old_log)
            .arg(hooks_dir.join(hooks::REFS_HOOK))
            .arg("committed")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        refs_calls(&sb.take_calls())
    };
    assert!(run_shim("refs/remotes/origin/mainline").is_empty());
    let calls = run_shim("refs/remotes/origin/main");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].stdin.matches('|').count(), 70, "{calls:?}");

    hooks::uninstall(&clone).unwrap();
    assert_eq!(snapshot(&hooks_dir), before);
}

#[test]
fn uninstall_removes_ours_where_there_was_none() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let hooks_dir = repo.join(".git/hooks");
    let before = snapshot(&hooks_dir);
    sb.install(&repo);
    assert_ne!(snapshot(&hooks_dir), before);
    hooks::uninstall(&repo).unwrap();
    assert_eq!(snapshot(&hooks_dir), before);
    assert!(hooks::status(&repo, true)
        .unwrap()
        .hooks
        .iter()
        .all(|h| h.state == HookState::Missing));
    // Nothing left to undo.
    assert!(hooks::uninstall(&repo).unwrap().changed.is_empty());
}

#[test]
fn dockwarm_gone_from_path_never_fails_git() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    sb.install(&repo);

    // Off PATH, but still at the path recorded at install time.
    let out = sb
        .command("git", &repo)
        .env("PATH", sb.path_env(false))
        .args(["checkout", "-q", "-b", "one"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(sb.take_calls().len(), 1);

    // Gone altogether.
    fs::remove_file(&sb.fake).unwrap();
    let out = sb
        .command("git", &repo)
        .env("PATH", sb.path_env(false))
        .args(["checkout", "-q", "-b", "two"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.lines().count() <= 1, "{err}");
    eprintln!("with dockwarm gone, git said: {err}");
    assert!(sb.calls().is_empty());
}

#[test]
fn read_only_hooks_dir_is_an_error_naming_it_and_loses_nothing() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let hooks_dir = repo.join(".git/hooks");
    let hook = hooks_dir.join("post-checkout");
    fs::write(&hook, OLD_HOOK).unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    let before = snapshot(&hooks_dir);
    fs::set_permissions(&hooks_dir, fs::Permissions::from_mode(0o555)).unwrap();

    let err = hooks::install(&repo, &sb.fake, true).unwrap_err();
    fs::set_permissions(&hooks_dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(err, HooksError::ReadOnly { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&hooks::hooks_dir(&repo).unwrap().dir.display().to_string()),
        "{msg}"
    );
    assert_eq!(snapshot(&hooks_dir), before);
}

#[test]
fn paths_and_branch_names_with_spaces_quotes_and_non_ascii() {
    let sb = Sandbox::with_bin_dir("bin dir 'ü' \"x\"");
    let parent = sb.path().join("wörk tree \"q\"");
    fs::create_dir_all(&parent).unwrap();
    let repo = sb.repo("wörk tree \"q\"/repo 'it's'");
    sb.install(&repo);
    let main = sb.rev(&repo, "HEAD");
    let branch = "wörk-\"q\"-'x'";
    sb.git(&repo, &["checkout", "-q", "-b", branch]);
    sb.git(&repo, &["checkout", "-q", "main"]);
    let calls = sb.take_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].pwd, canon(&repo));

    // Through the recorded path, which has quotes and spaces in it.
    let out = sb
        .command("git", &repo)
        .env("PATH", sb.path_env(false))
        .args(["checkout", "-q", branch])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        args_of(&sb.take_calls()),
        vec![strs(&["hook", "post-checkout", &main, &main, "1"])]
    );

    let wt = parent.join("linked wörk 'tree'");
    sb.git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            wt.to_str().unwrap(),
            "-b",
            "linked-ä",
        ],
    );
    let calls = sb.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].pwd, canon(&wt));
}

#[test]
fn relative_core_hooks_path_is_used() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    sb.git(&repo, &["config", "core.hooksPath", "my hooks"]);
    let loc = hooks::hooks_dir(&repo).unwrap();
    assert_eq!(canon(loc.dir.parent().unwrap()), canon(&repo));
    assert!(loc.dir.ends_with("my hooks"));
    assert!(matches!(
        &loc.source,
        HooksSource::HooksPath { value, scope: ConfigScope::Local } if value == "my hooks"
    ));
    assert_eq!(loc.layout, HooksLayout::Plain);
    sb.install(&repo);
    assert!(repo.join("my hooks/post-checkout").is_file());
    assert!(!repo.join(".git/hooks/post-checkout").exists());
    sb.git(&repo, &["checkout", "-q", "-b", "x"]);
    assert_eq!(sb.take_calls().len(), 1);
    hooks::uninstall(&repo).unwrap();
    assert!(!repo.join("my hooks/post-checkout").exists());
}

#[test]
fn per_worktree_hooks_path_overrides_for_that_worktree_only() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    let wt = sb.path().join("wt");
    sb.git(
        &repo,
        &["worktree", "add", "-q", wt.to_str().unwrap(), "-b", "wt"],
    );
    sb.git(&repo, &["config", "extensions.worktreeConfig", "true"]);
    sb.git(&wt, &["config", "--worktree", "core.hooksPath", "wt-hooks"]);

    let main_loc = hooks::hooks_dir(&repo).unwrap();
    assert!(matches!(main_loc.source, HooksSource::CommonDir { .. }));
    let wt_loc = hooks::hooks_dir(&wt).unwrap();
    assert!(matches!(
        wt_loc.source,
        HooksSource::HooksPath {
            scope: ConfigScope::Worktree,
            ..
        }
    ));
    assert_eq!(canon(wt_loc.dir.parent().unwrap()), canon(&wt));

    sb.install(&wt);
    sb.git(&wt, &["checkout", "-q", "-b", "wt2"]);
    let calls = sb.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].pwd, canon(&wt));
    sb.git(&repo, &["checkout", "-q", "-b", "main2"]);
    assert!(sb.take_calls().is_empty());
}

#[test]
fn hooks_installed_from_main_fire_in_linked_worktrees() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    sb.install(&repo);
    let wt = sb.path().join("linked");
    sb.git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            wt.to_str().unwrap(),
            "-b",
            "linked",
        ],
    );
    assert!(hooks::status(&wt, true).unwrap().installed());
    assert_eq!(
        canon(&hooks::hooks_dir(&wt).unwrap().dir),
        canon(&repo.join(".git/hooks"))
    );
    sb.git(&wt, &["checkout", "-q", "-b", "linked2"]);
    sb.commit(&wt, "l.txt", "linked");
    sb.commit(&repo, "m.txt", "main");
    sb.git(&wt, &["merge", "-q", "--no-ff", "-m", "m", "main"]);
    sb.git(&wt, &["commit", "-q", "--amend", "-m", "amended"]);
    let calls = sb.take_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    for c in &calls {
        assert_eq!(c.pwd, canon(&wt), "{c:?}");
    }
    // Installing from the linked worktree is the same install.
    let report = sb.install(&wt);
    assert!(report
        .hooks
        .iter()
        .all(|(_, a)| *a == InstallAction::Unchanged));
}

/// husky v9's runner, `.husky/_/h`, as `husky` writes it.
const HUSKY_H: &str = r#"#!/usr/bin/env sh
[ "$HUSKY" = "2" ] && set -x
n=$(basename "$0")
s=$(dirname "$(dirname "$0")")/$n

[ ! -f "$s" ] && exit 0

if [ -f "$HOME/.huskyrc" ]; then
	echo "husky - '~/.huskyrc' is DEPRECATED, please move your code to ~/.config/husky/init.sh"
fi
i="${XDG_CONFIG_HOME:-$HOME/.config}/husky/init.sh"
[ -f "$i" ] && . "$i"

[ "${HUSKY-}" = "0" ] && exit 0

export PATH="node_modules/.bin:$PATH"
sh -e "$s" "$@"
c=$?

[ $c != 0 ] && echo "husky - $n script failed (code $c)"
[ $c = 127 ] && echo "husky - command not found in PATH=$PATH"
exit $c
"#;

/// What `husky` (v9) does on every install: regenerate `.husky/_`.
fn husky_install(sb: &Sandbox, repo: &Path) {
    let dir = repo.join(".husky/_");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(".gitignore"), "*").unwrap();
    fs::write(dir.join("h"), HUSKY_H).unwrap();
    for hook in ["pre-commit", "post-checkout", "post-merge", "post-rewrite"] {
        let path = dir.join(hook);
        fs::write(&path, "#!/usr/bin/env sh\n. \"$(dirname \"$0\")/h\"").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    sb.git(repo, &["config", "core.hooksPath", ".husky/_"]);
}

#[test]
fn husky_coexistence_survives_husky_regenerating_its_dir() {
    let sb = Sandbox::new();
    let repo = sb.repo("repo");
    husky_install(&sb, &repo);
    // The user's own post-checkout, without a final newline, and no post-merge/post-rewrite.
    let user_hook = repo.join(".husky/post-checkout");
    let user_text = b"echo \"user $1 $3\" >> user.log".to_vec();
    fs::write(&user_hook, &user_text).unwrap();
    let runner_before = snapshot(&repo.join(".husky/_"));
    let user_before = snapshot(&repo.join(".husky"));

    let loc = hooks::hooks_dir(&repo).unwrap();
    assert!(matches!(&loc.layout, HooksLayout::Husky { user_dir } if user_dir.ends_with(".husky")));
    let report = sb.install(&repo);
    assert!(report
        .hooks
        .iter()
        .all(|(_, a)| matches!(a, InstallAction::HuskyBlock { .. })));
    assert_eq!(snapshot(&repo.join(".husky/_")), runner_before);
    assert!(sb
        .install(&repo)
        .hooks
        .iter()
        .all(|(_, a)| *a == InstallAction::Unchanged));
    let st = hooks::status(&repo, true).unwrap();
    assert!(st.installed());
    assert!(st.hooks.iter().all(|h| matches!(
        h.state,
        HookState::HuskyBlock {
            runner_present: true,
            ..
        }
    )));

    let main = sb.rev(&repo, "HEAD");
    let out = sb.git(&repo, &["checkout", "-q", "-b", "feature"]);
    assert!(!stderr(&out).contains("husky -"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(repo.join("user.log")).unwrap(),
        format!("user {main} 1\n")
    );
    assert_eq!(
        args_of(&sb.take_calls()),
        vec![strs(&["hook", "post-checkout", &main, &main, "1"])]
    );
    sb.commit(&repo, "f.txt", "on feature");

    // husky's next install regenerates .husky/_ (wiping anything written there): still fine.
    fs::remove_dir_all(repo.join(".husky/_")).unwrap();
    husky_install(&sb, &repo);
    sb.git(&repo, &["checkout", "-q", "main"]);
    assert_eq!(sb.take_calls().len(), 1);
    sb.commit(&repo, "x.txt", "x");
    sb.git(&repo, &["merge", "-q", "--no-ff", "-m", "m", "feature"]);
    assert_eq!(
        args_of(&sb.take_calls()),
        vec![strs(&["hook", "post-merge", "0"])]
    );

    hooks::uninstall(&repo).unwrap();
    assert_eq!(snapshot(&repo.join(".husky")), user_before);
    assert_eq!(fs::read(&user_hook).unwrap(), user_text);
}

/// pre-commit and lefthook from PyPI in a fresh venv, or `None` (with the reason printed).
fn python_hook_managers(sb: &Sandbox) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKWARM_TEST_PY_HOOKS_BIN") {
        return Some(PathBuf::from(dir));
    }
    let venv = sb.path().join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: python3 -m venv failed: {made:?}");
        return None;
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "pre-commit",
            "lefthook",
        ])
        .output();
    match pip {
        Ok(o) if o.status.success() => Some(venv.join("bin")),
        other => {
            eprintln!("SKIP: pip could not install pre-commit and lefthook: {other:?}");
            None
        }
    }
}

const PRE_COMMIT_CONFIG: &str = r#"repos:
- repo: local
  hooks:
  - id: mark
    name: mark
    entry: sh -c 'echo "pre-commit $*" >> pre-commit.log' --
    language: system
    always_run: true
    pass_filenames: false
    stages: [post-checkout]
"#;

#[test]
fn pre_commit_and_lefthook_coexist() {
    let sb = Sandbox::new();
    let Some(py_bin) = python_hook_managers(&sb) else {
        return;
    };
    let tool = |repo: &Path, program: &str, args: &[&str]| {
        let out = sb
            .command(&py_bin.join(program).to_string_lossy(), repo)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
    };
    let pre_commit_ran = |repo: &Path| {
        let log = repo.join("pre-commit.log");
        let ran = log.exists();
        let _ = fs::remove_file(log);
        ran
    };

    // pre-commit after dockwarm: ours becomes post-checkout.legacy and keeps running.
    let repo = sb.repo("after");
    fs::write(repo.join(".pre-commit-config.yaml"), PRE_COMMIT_CONFIG).unwrap();
    let hooks_dir = repo.join(".git/hooks");
    let before = snapshot(&hooks_dir);
    sb.install(&repo);
    tool(
        &repo,
        "pre-commit",
        &["install", "--hook-type", "post-checkout"],
    );
    let st = hooks::status(&repo, true).unwrap();
    assert!(
        matches!(&st.hooks[0].state, HookState::OursVia { manager: Manager::PreCommit, shim, .. } if shim.ends_with("post-checkout.legacy")),
        "{:?}",
        st.hooks[0].state
    );
    assert!(st.installed());
    let via = sb.install(&repo);
    assert!(matches!(via.hooks[0].1, InstallAction::Via { .. }));
    sb.git(&repo, &["checkout", "-q", "-b", "x"]);
    assert!(pre_commit_ran(&repo));
    assert_eq!(sb.take_calls().len(), 1);
    hooks::uninstall(&repo).unwrap();
    tool(
        &repo,
        "pre-commit",
        &["uninstall", "--hook-type", "post-checkout"],
    );
    assert_eq!(snapshot(&hooks_dir), before);

    // pre-commit before dockwarm: its hook is chained.
    let repo = sb.repo("before");
    fs::write(repo.join(".pre-commit-config.yaml"), PRE_COMMIT_CONFIG).unwrap();
    let hooks_dir = repo.join(".git/hooks");
    let clean = snapshot(&hooks_dir);
    tool(
        &repo,
        "pre-commit",
        &["install", "--hook-type", "post-checkout"],
    );
    let with_pre_commit = snapshot(&hooks_dir);
    let report = sb.install(&repo);
    assert!(matches!(report.hooks[0].1, InstallAction::Chained { .. }));
    sb.git(&repo, &["checkout", "-q", "-b", "x"]);
    assert!(pre_commit_ran(&repo));
    assert_eq!(sb.take_calls().len(), 1);
    hooks::uninstall(&repo).unwrap();
    assert_eq!(snapshot(&hooks_dir), with_pre_commit);
    tool(
        &repo,
        "pre-commit",
        &["uninstall", "--hook-type", "post-checkout"],
    );
    assert_eq!(snapshot(&hooks_dir), clean);

    // lefthook after dockwarm: it keeps ours as post-checkout.old and never runs it.
    let repo = sb.repo("lefthook");
    fs::write(
        repo.join("lefthook.yml"),
        "post-checkout:\n  commands:\n    mark:\n      run: echo lefthook >> lefthook.log\n",
    )
    .unwrap();
    let hooks_dir = repo.join(".git/hooks");
    let clean = snapshot(&hooks_dir);
    sb.install(&repo);
    tool(&repo, "lefthook", &["install"]);
    let st = hooks::status(&repo, true).unwrap();
    assert!(
        matches!(&st.hooks[0].state, HookState::Foreign { manager: Some(Manager::Lefthook), stranded: Some(p) } if p.ends_with("post-checkout.old")),
        "{:?}",
        st.hooks[0].state
    );
    assert!(!st.installed());
    // Re-installing chains lefthook's hook.
    sb.install(&repo);
    assert!(hooks::status(&repo, true).unwrap().installed());
    sb.git(&repo, &["checkout", "-q", "-b", "x"]);
    assert!(repo.join("lefthook.log").exists());
    assert_eq!(sb.take_calls().len(), 1);
    hooks::uninstall(&repo).unwrap();
    tool(&repo, "lefthook", &["uninstall"]);
    assert_eq!(snapshot(&hooks_dir), clean);
}

/// git runs reference-transaction for every ref update (eight times for one `git checkout`), so
/// dockwarm installs it only with `[ahead] hook = true`; turned off again, our shim goes and the
/// hook it chained comes back byte for byte. Off, a checkout starts no shell for it.
#[test]
fn the_refs_hook_is_installed_only_when_asked_and_taken_out_again() {
    let sb = Sandbox::new();
    let repo = sb.repo("r");
    let hooks_dir = repo.join(".git/hooks");
    let old = hooks_dir.join(hooks::REFS_HOOK);
    fs::write(&old, OLD_REFS_HOOK).unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o751)).unwrap();
    let before = snapshot(&hooks_dir);

    let off = hooks::install(&repo, &sb.fake, false).unwrap();
    assert!(
        !off.hooks.iter().any(|(n, _)| *n == hooks::REFS_HOOK),
        "{off:?}"
    );
    assert_eq!(fs::read(&old).unwrap(), OLD_REFS_HOOK.as_bytes());
    let st = hooks::status(&repo, false).unwrap();
    assert!(st.installed(), "{st:?}");
    assert!(!st.hooks.iter().any(|h| h.name == hooks::REFS_HOOK));

    let on = hooks::install(&repo, &sb.fake, true).unwrap();
    assert!(on
        .hooks
        .iter()
        .any(|(n, a)| *n == hooks::REFS_HOOK && matches!(a, InstallAction::Chained { .. })));
    assert!(hooks::status(&repo, true).unwrap().installed());

    hooks::install(&repo, &sb.fake, false).unwrap();
    let after = snapshot(&hooks_dir);
    let refs_files = |s: &BTreeMap<String, (Vec<u8>, u32)>| {
        s.iter()
            .filter(|(k, _)| k.starts_with(hooks::REFS_HOOK))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(refs_files(&after), refs_files(&before));
}
