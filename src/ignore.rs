//! `.dockerignore` handling that agrees with BuildKit, path for path.
//!
//! dockwarm sends its own build context, so any disagreement with Docker here means the
//! prebuilt `COPY` layers hash different files than the user's `docker build` does and the
//! cache never hits. The behaviour is therefore ported from the code Docker actually runs
//! rather than from the documentation:
//!
//! * reading the file: `moby/buildkit` `frontend/dockerfile/dockerignore` (now
//!   `moby/patternmatcher/ignorefile`) `ReadAll`;
//! * compiling and matching patterns: `moby/patternmatcher` `New`, `Pattern.compile` and
//!   `MatchesUsingParentResults`;
//! * walking the context: `tonistiigi/fsutil` `filterFS.Walk`, which BuildKit uses to send the
//!   context, including its rule for when an excluded directory must still be entered.
//!
//! BuildKit does not special-case `Dockerfile` or `.dockerignore` (the classic builder always
//! sent them); the Dockerfile travels separately, so excluding it only hides it from `COPY`.
//! We mimic BuildKit.

use std::path::{Path, PathBuf};

use regex::Regex;
use thiserror::Error;

/// Errors from reading or compiling ignore rules.
#[derive(Debug, Error)]
pub enum IgnoreError {
    /// The ignore file exists but could not be read.
    #[error("cannot read ignore file {path}: {source}; check that it is a readable text file")]
    Read {
        /// The ignore file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A pattern Docker would refuse too (it fails the build with the same pattern).
    #[error("{}invalid .dockerignore pattern {pattern:?}: {reason}; fix or remove that line", place(.file, *.line))]
    BadPattern {
        /// The ignore file, when the rules came from one.
        file: Option<PathBuf>,
        /// The 1-based line of the pattern.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// What Docker would say is wrong with it.
        reason: String,
    },
}

/// `path:line:1: ` (the pattern starts its line), or `line N: ` without a file.
fn place(file: &Option<PathBuf>, line: usize) -> String {
    match file {
        Some(f) => format!("{}:{line}:1: ", f.display()),
        None => format!("line {line}: "),
    }
}

/// How a compiled pattern is tested; mirrors patternmatcher's `matchType`, because the
/// prefix and suffix shortcuts are not equivalent to the regex (e.g. `**foo` matches `xfoo`).
#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// `dir/**`: plain string prefix (without the `**`).
    Prefix(String),
    /// `**/foo` or `**foo`: plain string suffix (without the `**`).
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned pattern, without the leading `!`.
    text: String,
    /// `!` pattern: a match re-includes the path.
    exception: bool,
    kind: Kind,
    /// The same pattern as an always-regex match, as patternmatcher compiled it before it
    /// grew the prefix/suffix shortcuts (so `**foo` does not match `xfoo` there).
    legacy: Regex,
    /// Number of '/'-separated parts: the depth at which [`Dialect::Legacy`] re-tests a
    /// parent directory.
    depth: usize,
}

impl Pattern {
    fn legacy_matches(&self, path: &str) -> bool {
        self.legacy.is_match(path)
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

/// Per-pattern "did this pattern match the parent directory" results, carried down a walk.
///
/// BuildKit evaluates a path using its parent's per-pattern results rather than re-testing
/// every ancestor, and the two are *not* equivalent when exceptions sit between excludes
/// (see the `parent_results_differ_from_ancestor_scan` test), so we carry them too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchState {
    parent_matched: Vec<bool>,
}

/// Which generation of BuildKit's context walker to agree with.
///
/// The engine decides, not the CLI: against Docker Engine 20.10 (BuildKit 0.8, checked on
/// a real engine by `tests/context_engine.rs`) the context follows the old fsutil walker,
/// and against newer engines the rewritten one. They differ only when `!` exceptions meet
/// excluded directories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// fsutil `filterFS` (BuildKit 0.10+, Docker Engine 23+): per-pattern parent results,
    /// excluded directories entered whenever a glob exception could match below them and
    /// sent only as parents of re-included paths.
    #[default]
    Current,
    /// fsutil `Walk` with `PatternMatcher.Matches` (Docker Engine 20.10 and older): a
    /// parent is only re-tested at the pattern's own depth, an excluded directory is entered
    /// (and sent, even if nothing below it is kept) only when an exception's text starts
    /// with it, so glob exceptions cannot reach inside excluded directories.
    Legacy,
}

impl Dialect {
    /// The dialect of an engine from its `docker version` server version (e.g. `20.10.24`,
    /// `20.10.24+dfsg1`, `28.2.2`); unknown versions get [`Dialect::Current`].
    pub fn for_engine_version(version: &str) -> Self {
        let major = version
            .trim()
            .trim_start_matches('v')
            .split(['.', '-', '+'])
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        match major {
            Some(m) if m <= 20 => Dialect::Legacy,
            _ => Dialect::Current,
        }
    }
}

/// `<dockerfile>.dockerignore`: the ignore file BuildKit prefers to the context's.
pub fn dockerfile_ignore_path(dockerfile: &Path) -> PathBuf {
    let mut specific = dockerfile.as_os_str().to_os_string();
    specific.push(".dockerignore");
    PathBuf::from(specific)
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    dialect: Dialect,
    patterns: Vec<Pattern>,
    has_exceptions: bool,
    /// fsutil's `onlyPrefixExcludeExceptions`: every exception is a plain path (modulo a
    /// trailing `/*` or `/**`), so an excluded directory only needs entering when an
    /// exception lies below it.
    only_prefix_exceptions: bool,
    source: Option<PathBuf>,
}

impl IgnoreRules {
    /// Parses the text of an ignore file.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        Self::from_lines(read_all_numbered(text))
    }

    /// Picks the ignore file BuildKit would use: `<dockerfile>.dockerignore` next to the
    /// Dockerfile when it exists, else `<context>/.dockerignore`, else no rules.
    ///
    /// A relative `dockerfile` is taken relative to `context_dir`, as compose and
    /// `dockwarm.toml` write it.
    pub fn load(context_dir: &Path, dockerfile: &Path) -> Result<Self, IgnoreError> {
        let dockerfile = if dockerfile.is_absolute() {
            dockerfile.to_path_buf()
        } else {
            context_dir.join(dockerfile)
        };
        let candidates = [
            dockerfile_ignore_path(&dockerfile),
            context_dir.join(".dockerignore"),
        ];
        for path in candidates {
            if !path.is_file() {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| IgnoreError::Read {
                path: path.clone(),
                source,
            })?;
            // Go reads the file as bytes; invalid UTF-8 only matters inside the bad line.
            let text = String::from_utf8_lossy(&bytes);
            let mut rules = Self::from_lines(read_all_numbered(&text)).map_err(|e| match e {
                IgnoreError::BadPattern {
                    line,
                    pattern,
                    reason,
                    ..
                } => IgnoreError::BadPattern {
                    file: Some(path.clone()),
                    line,
                    pattern,
                    reason,
                },
                other => other,
            })?;
            rules.source = Some(path);
            return Ok(rules);
        }
        Ok(Self::default())
    }

    /// The file the rules were read from; `None` for parsed text or when no file exists.
    pub fn source_file(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// True when there are no patterns at all (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether BuildKit leaves `rel_path` itself out of the context.
    ///
    /// `is_dir` does not change the answer: patterns are `Clean`ed, so `dir/` also matches a
    /// file named `dir`, exactly as in Docker. An excluded directory can still appear in the
    /// context as the parent of a re-included path; see [`IgnoreRules::must_enter_excluded_dir`].
    pub fn is_excluded(&self, rel_path: &str, is_dir: bool) -> bool {
        let _ = is_dir;
        let path = normalize_rel(rel_path);
        if path.is_empty() || self.patterns.is_empty() {
            return false;
        }
        if self.dialect == Dialect::Legacy {
            return self.legacy_matches(&path);
        }
        let state = ancestors(&path).fold(MatchState::default(), |state, dir| {
            self.match_with_parent(dir, &state).1
        });
        self.match_with_parent(&path, &state).0
    }

    /// patternmatcher's `MatchesUsingParentResults`: whether `path` is excluded given its
    /// parent directory's results, and the results to hand to its children.
    ///
    /// Under [`Dialect::Legacy`] the parent results are not used (that walker had none).
    pub fn match_with_parent(&self, path: &str, parent: &MatchState) -> (bool, MatchState) {
        if self.dialect == Dialect::Legacy {
            return (self.legacy_matches(path), MatchState::default());
        }
        let have_parent = parent.parent_matched.len() == self.patterns.len();
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = have_parent && parent.parent_matched[i];
            if !hit {
                // An include can't change an already-excluded path, nor an exception an
                // included one, so BuildKit skips them (and records no match).
                if pattern.exception != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && !have_parent {
                    hit = ancestors(path).any(|a| pattern.matches(a));
                }
            }
            info[i] = hit;
            if hit {
                matched = !pattern.exception;
            }
        }
        (
            matched,
            MatchState {
                parent_matched: info,
            },
        )
    }

    /// fsutil's rule for an excluded directory: it is still walked (so that `!` exceptions
    /// can re-include things below it) unless every exception is a plain path that cannot
    /// lie under it. Walking it changes nothing else: its entries are matched normally.
    pub fn must_enter_excluded_dir(&self, rel_dir: &str) -> bool {
        if !self.has_exceptions {
            return false;
        }
        if !self.only_prefix_exceptions && self.dialect == Dialect::Current {
            return true;
        }
        let dir_slash = format!("{}/", normalize_rel(rel_dir));
        self.patterns.iter().filter(|p| p.exception).any(|p| {
            let text = match self.dialect {
                Dialect::Current => without_trailing_glob(&p.text),
                Dialect::Legacy => &p.text,
            };
            format!("{text}/").starts_with(&dir_slash)
        })
    }

    /// The same rules read the way another engine generation reads them.
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    /// The engine generation these rules are read for; the context walk asks it, since the old
    /// walker sends an excluded directory it enters even when nothing below it is kept.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// patternmatcher's old `Matches`: evaluation skipped as in the current one, but a
    /// parent is only tested at the pattern's own depth.
    fn legacy_matches(&self, path: &str) -> bool {
        let parent_dirs: Vec<&str> = ancestors(path).collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exception != matched {
                continue;
            }
            let mut hit = pattern.legacy_matches(path);
            if !hit && pattern.depth <= parent_dirs.len() {
                hit = pattern.legacy_matches(parent_dirs[pattern.depth - 1]);
            }
            if hit {
                matched = !pattern.exception;
            }
        }
        matched
    }

    fn from_lines(lines: Vec<(usize, String)>) -> Result<Self, IgnoreError> {
        let mut rules = Self::default();
        for (number, line) in lines {
            // patternmatcher.New trims and cleans again after ReadAll did.
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = go_clean(trimmed);
            let bad = |reason: &str| IgnoreError::BadPattern {
                file: None,
                line: number,
                pattern: line.clone(),
                reason: reason.to_string(),
            };
            let (exception, text) = match cleaned.strip_prefix('!') {
                Some("") => return Err(bad("a lone \"!\" excludes nothing")),
                Some(rest) => (true, rest.to_string()),
                None => (false, cleaned),
            };
            if let Err(reason) = validate_go_match(&text) {
                return Err(bad(&reason));
            }
            let (kind, legacy) = compile(&text).map_err(|reason| bad(&reason))?;
            rules.has_exceptions |= exception;
            rules.patterns.push(Pattern {
                depth: text.split('/').count(),
                text,
                exception,
                kind,
                legacy,
            });
        }
        rules.only_prefix_exceptions = !rules.patterns.iter().any(|p| {
            p.exception && without_trailing_glob(&p.text).contains(['*', '[', ']', '?', '^', '\\'])
        });
        Ok(rules)
    }
}

/// `ancestors("a/b/c")` yields `a`, `a/b`: the parent directories patternmatcher re-tests
/// when it has no parent results.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Relative, '/'-separated, no `./` prefix, no leading or trailing '/'.
pub(crate) fn normalize_rel(p: &str) -> String {
    let cleaned = go_clean(p.trim_start_matches('/'));
    if cleaned == "." {
        String::new()
    } else {
        cleaned.trim_start_matches('/').to_string()
    }
}

fn without_trailing_glob(p: &str) -> &str {
    let p = p.strip_suffix("/**").unwrap_or(p);
    p.strip_suffix("/*").unwrap_or(p)
}

/// BuildKit's `ReadAll`: BOM stripped, `#` comments only when `#` is the very first
/// character (an indented `#` is a pattern), whitespace trimmed, `!` kept apart while the
/// rest is `Clean`ed and loses a leading `/`.
#[cfg(test)]
fn read_all(text: &str) -> Vec<String> {
    read_all_numbered(text)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// The patterns BuildKit's `ReadAll` reads, with their 1-based line numbers for errors that point.
fn read_all_numbered(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with('#') {
            continue;
        }
        let mut pattern = raw.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = pattern.to_string();
        if !p.is_empty() {
            p = go_clean(&p);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        out.push((index + 1, if invert { format!("!{p}") } else { p }));
    }
    out
}

/// Go's `filepath.Clean` on a Unix path (lexical: `.`/`..`/duplicate slashes).
pub(crate) fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|c| *c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// A `[...]` class parsed with Go `filepath.Match` rules (`getEsc`): returns the regex
/// class and the rest of the pattern after `]`.
fn parse_class(after_bracket: &str) -> Result<(String, &str), String> {
    let mut rest = after_bracket;
    let mut out = String::from("[");
    if let Some(r) = rest.strip_prefix('^') {
        out.push('^');
        rest = r;
    }
    let mut n = 0;
    loop {
        if n > 0 {
            if let Some(r) = rest.strip_prefix(']') {
                out.push(']');
                return Ok((out, r));
            }
        }
        let (lo, r) = get_esc(rest)?;
        rest = r;
        out.push_str(&class_char(lo));
        if let Some(r) = rest.strip_prefix('-') {
            let (hi, r) = get_esc(r)?;
            rest = r;
            out.push('-');
            out.push_str(&class_char(hi));
        }
        n += 1;
    }
}

fn get_esc(chunk: &str) -> Result<(char, &str), String> {
    let unterminated = || "unterminated or malformed character class".to_string();
    let mut chars = chunk.chars();
    let c = match chars.next() {
        None | Some('-') | Some(']') => return Err(unterminated()),
        Some(c) => c,
    };
    let c = if c == '\\' {
        chars.next().ok_or_else(unterminated)?
    } else {
        c
    };
    let rest = chars.as_str();
    if rest.is_empty() {
        return Err(unterminated());
    }
    Ok((c, rest))
}

/// One literal character inside a Rust regex class (escaping what Rust treats as class
/// syntax but Go does not, such as `[`, `&&`, `~~`).
fn class_char(c: char) -> String {
    if c.is_ascii_punctuation() {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// Go `filepath.Match(pattern, ".")` error check, which is all patternmatcher validates.
fn validate_go_match(pattern: &str) -> Result<(), String> {
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '\\' => {
                let Some(n) = rest.chars().next() else {
                    return Err("trailing backslash".to_string());
                };
                rest = &rest[n.len_utf8()..];
            }
            '[' => rest = parse_class(rest)?.1,
            _ => {}
        }
    }
    Ok(())
}

/// patternmatcher's `Pattern.compile`: decide exact/prefix/suffix/regex and build the regex.
///
/// One deliberate difference: inside `[...]` a `*` or `?` is a literal class member (Go
/// `filepath.Match` semantics); patternmatcher rewrites them there too, producing a regex
/// nobody could intend.
fn compile(pattern: &str) -> Result<(Kind, Regex), String> {
    #[derive(PartialEq)]
    enum T {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut ty = T::Exact;
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        let first = i == 0;
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                    ty = if ty == T::Exact { T::Prefix } else { T::Regex };
                } else {
                    re.push_str("(.*/)?");
                    ty = T::Regex;
                }
                if first {
                    ty = T::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                ty = T::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                ty = T::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    re.push('\\');
                    re.push(n);
                    ty = T::Regex;
                }
                None => re.push_str("\\\\"),
            },
            '[' => {
                let rest: String = chars[i..].iter().collect();
                let (class, after) = parse_class(&rest)?;
                i = chars.len() - after.chars().count();
                re.push_str(&class);
                ty = T::Regex;
            }
            ']' => {
                re.push_str("\\]");
                ty = T::Regex;
            }
            c => re.push(c),
        }
    }
    re.push('$');
    let regex = Regex::new(&re).map_err(|e| format!("not a valid pattern ({e})"))?;
    let kind = match ty {
        T::Exact => Kind::Exact,
        T::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        T::Suffix => Kind::Suffix(pattern[2..].to_string()),
        T::Regex => Kind::Regex(regex.clone()),
    };
    Ok((kind, regex))
}

/// A regex equivalent to Go `filepath.Match(pattern, path)` (used for COPY source globs):
/// `*` and `?` stay within one path element, `[...]` classes, `\` escapes.
pub(crate) fn go_match_regex(pattern: &str) -> Result<Regex, String> {
    validate_go_match(pattern)?;
    let mut re = String::from("^");
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                let (class, after) = parse_class(rest)?;
                re.push_str(&class);
                rest = after;
            }
            '\\' => {
                if let Some(n) = rest.chars().next() {
                    rest = &rest[n.len_utf8()..];
                    re.push_str(&regex::escape(&n.to_string()));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &[&str], path: &str) -> bool {
        let rules = IgnoreRules::parse(&patterns.join("\n")).expect("patterns parse");
        rules.is_excluded(path, false)
    }

    /// Single-pattern cases ported (as data) from moby/patternmatcher's `TestMatches`,
    /// evaluated the way BuildKit's walk does (parent results carried down).
    #[test]
    fn patternmatcher_single_pattern_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**/", "file", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            // From Go's filepath.Match table, as patternmatcher re-runs it.
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "ab/c", true), // via the parent "ab"
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("ab[c]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a?b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("*x", "xxx", true),
            // Set-operation and nesting syntax of Rust classes stays literal, as in Go.
            ("[[a]", "[", true),
            ("[&&b]", "&", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(
                excluded(&[pattern], path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    #[test]
    fn multi_pattern_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            // patternmatcher multiPatternTests
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (
                &["**", "!util/docker/web", "util/docker/web/foo"],
                "util/docker/web/foo",
                true,
            ),
            (
                &["**", "!dist/*.whl"],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            // the brief's cases
            (&["**/*.pyc"], "a/b/c.pyc", true),
            (&["**/*.pyc"], "c.pyc", true),
            (&["**/*.pyc"], "c.py", false),
            (&["*.txt", "!keep.txt"], "keep.txt", false),
            (&["*.txt", "!keep.txt"], "drop.txt", true),
            (&["*.txt", "!keep.txt"], "sub/drop.txt", false), // `*` stays in the root
            (&["!keep.txt", "*.txt"], "keep.txt", true),      // last match wins
            (&["node_modules"], "node_modules", true),
            (&["node_modules"], "node_modules/x/index.js", true),
            (&["node_modules"], "web/node_modules/x.js", false),
            (&["**/node_modules"], "web/node_modules/x.js", true),
            (&["/abs"], "abs", true),
            (&["/abs"], "abs/file", true),
            (&["/abs"], "x/abs", false),
            (&["dir/"], "dir/file", true),
            (&["dir/"], "dir", true),
            (&["a/**/z"], "a/z", true),
            (&["a/**/z"], "a/b/c/z", true),
            (&["a/**/z"], "a/b/c/z/inner", true),
            (&["a/**/z"], "b/z", false),
            (&["[a-c].md"], "b.md", true),
            (&["[a-c].md"], "d.md", false),
            (&["\\#notcomment"], "#notcomment", true),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["docs", "!docs/README.md"], "docs/other.md", true),
            (&["docs/", "!docs/README.md"], "docs/README.md", false),
            (&["docs/*", "!docs/README.md"], "docs/README.md", false),
            (&["build", "!build/keep/**"], "build/keep/a/b", false),
            (&["build", "!build/keep/**"], "build/drop", true),
            (&["*.go", "!fileutils.go"], "fileutils.go", false),
            (&["!fileutils.go", "*.go"], "fileutils.go", true),
            (&["../x"], "x", false), // cleaning keeps the `..`, so it never matches
            (&["./x/../y"], "y", true),
        ];
        for (patterns, path, want) in cases {
            assert_eq!(
                excluded(patterns, path),
                *want,
                "patterns {patterns:?} path {path:?}"
            );
        }
    }

    /// BuildKit carries each pattern's parent result; re-testing ancestors would exclude
    /// `a/b` here (the final `a` matches its parent) but BuildKit includes it.
    #[test]
    fn parent_results_differ_from_ancestor_scan() {
        assert!(!excluded(&["a", "!a/b", "a"], "a/b"));
        assert!(excluded(&["a", "!a/b", "a"], "a"));
    }

    #[test]
    fn legacy_dialect_matches_old_patternmatcher() {
        let legacy = |patterns: &[&str], path: &str| {
            IgnoreRules::parse(&patterns.join("\n"))
                .expect("parse")
                .with_dialect(Dialect::Legacy)
                .is_excluded(path, false)
        };
        assert!(legacy(&["node_modules"], "node_modules/a/b"));
        assert!(legacy(&["**/*.pyc"], "a/b.pyc"));
        assert!(!legacy(&["**foo"], "xfoo")); // always-regex: `(.*/)?foo`
        assert!(excluded(&["**foo"], "xfoo")); // current suffix shortcut
                                               // Parents are only re-tested at the pattern's depth: `a/*` sees `a/b`, never `a/b/c`'s
                                               // deeper parents, so `a/b/c/d` is excluded through `a/b`.
        assert!(legacy(&["a/*"], "a/b/c/d"));
        assert!(!legacy(
            &["vendor", "!vendor/**/keep.me"],
            "vendor/p/keep.me"
        ));
        assert!(legacy(&["a", "!a/b", "a"], "a/b"));
    }

    #[test]
    fn read_all_matches_buildkit() {
        let text = "\u{feff}test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n  # not a comment\n! /inverted/abs/path\r\n";
        assert_eq!(
            read_all(text),
            vec![
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "# not a comment",
                "!inverted/abs/path"
            ]
        );
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_pattern() {
        for p in [
            "!", "! ", "[", "a[", "[^bc", "[]a]", "[-]", "[x-]", "[a-b-c]", "\\", "x\\y",
        ] {
            let err = IgnoreRules::parse(&format!("ok\n{p}\n")).expect_err(p);
            let msg = err.to_string();
            assert!(msg.contains(&format!("{:?}", p.trim())), "{msg}");
        }
    }

    #[test]
    fn excluded_dir_is_entered_only_when_an_exception_can_be_below() {
        let r = IgnoreRules::parse("build\n!build/keep\n").expect("parse");
        assert!(r.must_enter_excluded_dir("build"));
        assert!(!r.must_enter_excluded_dir("other"));
        let r = IgnoreRules::parse("build\n").expect("parse");
        assert!(!r.must_enter_excluded_dir("build"));
        let r = IgnoreRules::parse("build\n!**/keep\n").expect("parse");
        assert!(r.must_enter_excluded_dir("build"));
        assert!(r.must_enter_excluded_dir("other"));
    }

    #[test]
    fn load_prefers_the_dockerfile_specific_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = dir.path();
        assert!(IgnoreRules::load(ctx, Path::new("Dockerfile"))
            .expect("load")
            .source_file()
            .is_none());
        std::fs::write(ctx.join(".dockerignore"), "a\n").expect("write");
        let r = IgnoreRules::load(ctx, Path::new("Dockerfile")).expect("load");
        assert_eq!(r.source_file(), Some(ctx.join(".dockerignore").as_path()));
        assert!(r.is_excluded("a", false));
        std::fs::create_dir(ctx.join("docker")).expect("mkdir");
        std::fs::write(ctx.join("docker/app.Dockerfile.dockerignore"), "b\n").expect("write");
        let r = IgnoreRules::load(ctx, Path::new("docker/app.Dockerfile")).expect("load");
        assert!(r.is_excluded("b", false) && !r.is_excluded("a", false));
        std::fs::write(ctx.join(".dockerignore"), "ok\n[\n").expect("write");
        let err = IgnoreRules::load(ctx, Path::new("Dockerfile")).expect_err("bad");
        assert!(err.to_string().contains(".dockerignore"), "{err}");
    }

    #[test]
    fn go_clean_cases() {
        for (i, o) in [
            ("", "."),
            ("a//b/./c/", "a/b/c"),
            ("/../a", "/a"),
            ("../a/..", ".."),
            ("a/b/../../..", ".."),
            ("/", "/"),
        ] {
            assert_eq!(go_clean(i), o, "{i}");
        }
    }

    #[test]
    fn copy_glob_matches_like_filepath_match() {
        let re = go_match_regex("src/*.py").expect("glob");
        assert!(re.is_match("src/a.py") && !re.is_match("src/x/a.py"));
        let re = go_match_regex("req[s].tx?").expect("glob");
        assert!(re.is_match("reqs.txt"));
        let re = go_match_regex("a\\*").expect("glob");
        assert!(re.is_match("a*") && !re.is_match("ab"));
        assert!(go_match_regex("[").is_err());
    }
}
