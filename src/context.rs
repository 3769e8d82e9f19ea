//! The build context as BuildKit sees it, and the files that COPY/ADD sources bring in.
//!
//! dockwarm sends its own tar of the context, and a prebuilt `COPY` layer is only reused by
//! the user's `docker build` when BuildKit computes the same content checksum for the
//! copied files. What goes into that checksum decides what the tar must keep:
//!
//! * BuildKit hashes each file with `cache/contenthash` `NewFromStat` + `WriteV1TarsumHeaders`
//!   (`tarsum.go`): the v1 tarsum header set is name (blank), mode, uid, gid, size, typeflag,
//!   linkname, uname, gname, devmajor, devminor and some xattrs, then the content. `v1` is
//!   `v0` *minus `mtime`*: modification times never reach a cache key. So the tar fixes
//!   mtimes (and the user's own build, with real mtimes, still gets the same key).
//! * uid/gid are hashed, but the user's build sends its context through the session with
//!   buildkit `client/solve.go` `resetUIDAndGID`, which sets both to 0 on every file; our tar
//!   says 0 too. `uname`/`gname` are never filled from a `fsutil.Stat`, so they stay empty.
//! * mode (permission bits incl. setuid/setgid/sticky), size, type, symlink target (byte
//!   for byte) and content are hashed: the tar keeps them from the file system.
//! * directories are hashed as well (their header and the names below them), so their
//!   modes are kept and excluded directories that hold a re-included file appear, as fsutil
//!   sends them.
//!
//! Not reproduced: extended attributes (hashed by BuildKit for `user.*` and
//! `security.capability`, absent from this tar) and hard links (sent as separate regular
//! files; their hash is the same as on disk, where each name is hashed as a regular file).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::ignore::{go_clean, go_match_regex, Dialect, IgnoreRules, MatchState};

/// Modification time written for every entry: 1980-01-01T00:00:00Z.
///
/// Any constant keeps the tar deterministic and cache keys ignore mtimes; not 0, because
/// ZIP-based tools that may run in the dependency stage (Python wheels, jars) reject
/// timestamps before 1980.
pub const FIXED_MTIME: u64 = 315_532_800;

/// Errors while reading the context or writing its tar.
#[derive(Debug, Error)]
pub enum ContextError {
    /// A file or directory of the context could not be read or listed.
    #[error("cannot read {path} in the build context: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A path in the context is not UTF-8: a tar name and a BuildKit pattern cannot hold it.
    #[error("{path} is not valid UTF-8; rename it or add it to .dockerignore")]
    NonUtf8Path {
        /// The path, as the OS gave it.
        path: PathBuf,
    },
    /// A file gave fewer bytes than its size while it was copied into the tar (it was being
    /// rewritten), so the archive would be corrupt; a retry once the files settle fixes it.
    #[error("{path} changed while it was being archived; retry once the files are stable")]
    FileChanged {
        /// The file that changed.
        path: PathBuf,
    },
    /// A generated file dockwarm adds to the tar (the cut Dockerfile) has a name that could
    /// escape the context; a bug in dockwarm, not the user's setup.
    #[error("generated file path {path:?} {reason}")]
    BadExtraPath {
        /// The name as given.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A COPY/ADD source without a wildcard matches nothing in the context, as BuildKit would fail
    /// the build; the message names the ignore file that may be excluding it.
    #[error(
        "failed to compute cache key: \"/{src}\" not found: COPY/ADD source {src:?} is \
         not in the build context{}; check the path or the ignore rules",
        ignore_hint(.ignore_file)
    )]
    SourceNotFound {
        /// The source as written in the Dockerfile (after build args).
        src: String,
        /// The `.dockerignore` in force, if any, as the likely reason.
        ignore_file: Option<PathBuf>,
    },
    /// A COPY/ADD source is not a pattern Go's `filepath.Match` accepts, so BuildKit would
    /// reject it.
    #[error("COPY/ADD source {src:?} is not a valid pattern: {reason}")]
    BadSource {
        /// The source as written.
        src: String,
        /// What the pattern parser said.
        reason: String,
    },
    /// Writing the tar itself failed (the engine's end of the upload closed, a full disk).
    #[error("cannot write the context tar: {0}")]
    Write(#[source] io::Error),
}

fn ignore_hint(file: &Option<PathBuf>) -> String {
    match file {
        Some(f) => format!(" (missing, or excluded by {})", f.display()),
        None => String::new(),
    }
}

/// What [`write_tar`] put into the archive.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContextStats {
    /// Regular files archived, generated ones included; the bollard backend's build log
    /// reports it with the content size.
    pub files: u64,
    /// Directories archived.
    pub dirs: u64,
    /// Symlinks archived as links, not followed.
    pub symlinks: u64,
    /// Bytes of file content (headers and padding not counted).
    pub content_bytes: u64,
    /// Sockets, FIFOs and device nodes, which are left out.
    pub skipped_special: Vec<String>,
}

#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32 },
    File { abs: PathBuf, mode: u32 },
    Symlink { target: PathBuf, mode: u32 },
    Extra { index: usize },
}

/// Context entries keyed by path components, so iteration is the walk order (a directory,
/// then its subtree, names compared bytewise), which is deterministic and parent-first.
type Tree = BTreeMap<Vec<String>, Node>;

/// The context walk, written by hand rather than with `walkdir` (on the design card) because
/// each directory hands its children state that walkdir's `filter_entry` cannot carry without a
/// side table keyed by path: the `.dockerignore` matcher's parent state (BuildKit matches a path
/// against its parent's result) and, under a wildcard COPY source, the pattern components still
/// to match. An excluded directory is kept only when something below it is (the `pending` stack
/// needs to know when a directory's subtree ends, which walkdir reports only in contents-first
/// order, breaking the parent-first order the tar needs). And the walk records every directory it
/// read, which the hook's change check stats. Each step is a `read_dir`, a sort and an `lstat`,
/// as walkdir's would be.
struct Walk<'a> {
    root: &'a Path,
    rules: &'a IgnoreRules,
    tree: Tree,
    /// Excluded directories on the current path, added only if something below is kept.
    pending: Vec<(Vec<String>, Node)>,
    skipped_special: Vec<String>,
    /// Every directory whose entries were read, relative to the root ('/'-joined, "" for the
    /// root): what a change detector must stat to notice a new or removed input.
    read_dirs: Vec<String>,
}

/// Which entries of a directory a walk keeps and descends into.
#[derive(Clone, Copy)]
enum Scope<'r> {
    /// Everything below.
    All,
    /// A COPY source's wildcard components still to match, one per directory level (Go's
    /// `filepath.Match` never matches a `/` with `*` or `?`, so a pattern of n components
    /// only matches paths of n components): entries matching the first are kept (a matched
    /// directory whole) when it is the last, descended into otherwise.
    Glob(&'r [regex::Regex]),
}

impl Walk<'_> {
    fn keep(&mut self, key: Vec<String>, node: Node) {
        for (k, n) in self.pending.drain(..) {
            self.tree.entry(k).or_insert(n);
        }
        self.tree.insert(key, node);
    }

    fn dir(&mut self, rel: &[String], state: &MatchState) -> Result<(), ContextError> {
        self.dir_in(rel, state, Scope::All)
    }

    fn dir_in(
        &mut self,
        rel: &[String],
        state: &MatchState,
        scope: Scope<'_>,
    ) -> Result<(), ContextError> {
        let abs = rel.iter().fold(self.root.to_path_buf(), |p, c| p.join(c));
        self.read_dirs.push(rel.join("/"));
        let io_err = |source| ContextError::Io {
            path: abs.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&abs).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(ContextError::NonUtf8Path { path: entry.path() });
            };
            names.push(name.to_string());
        }
        names.sort();
        for name in names {
            // Below a wildcard: the entry's own scope, or skip it when it cannot match.
            let child_scope = match scope {
                Scope::All => Scope::All,
                Scope::Glob(parts) => match parts.split_first() {
                    Some((first, rest)) if first.is_match(&name) => {
                        if rest.is_empty() {
                            Scope::All
                        } else {
                            Scope::Glob(rest)
                        }
                    }
                    _ => continue,
                },
            };
            let path = abs.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(|source| ContextError::Io {
                path: path.clone(),
                source,
            })?;
            let mut key = rel.to_vec();
            key.push(name);
            let rel_str = key.join("/");
            let (excluded, child_state) = self.rules.match_with_parent(&rel_str, state);
            let mode = permission_bits(&meta);
            let ft = meta.file_type();
            if ft.is_dir() {
                let node = Node::Dir { mode };
                let pending_len = self.pending.len();
                if excluded {
                    if !self.rules.must_enter_excluded_dir(&rel_str) {
                        continue;
                    }
                    if self.rules.dialect() == Dialect::Legacy {
                        // The old walker sends an entered directory straight away.
                        self.keep(key.clone(), node);
                    } else {
                        self.pending.push((key.clone(), node));
                    }
                } else {
                    self.keep(key.clone(), node);
                }
                self.dir_in(&key, &child_state, child_scope)?;
                self.pending.truncate(pending_len);
            } else if excluded || matches!(child_scope, Scope::Glob(_)) {
                // Excluded, or a file where the pattern needs a directory.
                continue;
            } else if ft.is_file() {
                self.keep(key, Node::File { abs: path, mode });
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(|source| ContextError::Io {
                    path: path.clone(),
                    source,
                })?;
                self.keep(key, Node::Symlink { target, mode });
            } else {
                self.skipped_special.push(rel_str);
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn permission_bits(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permission_bits(meta: &fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

impl<'a> Walk<'a> {
    fn new(root: &'a Path, rules: &'a IgnoreRules) -> Walk<'a> {
        Walk {
            root,
            rules,
            tree: Tree::new(),
            pending: Vec::new(),
            skipped_special: Vec::new(),
            read_dirs: Vec::new(),
        }
    }

    /// Walks only what lies under `prefix` (path components of a directory or file), then
    /// `scope` below it. The ancestors are matched against the ignore rules one by one, as
    /// the whole walk would on its way down, without reading any other directory: the same
    /// entries come out as from a walk of the whole context, for a fraction of the work.
    fn under(&mut self, prefix: &[String], scope: Scope<'_>) -> Result<(), ContextError> {
        let mut state = MatchState::default();
        for depth in 0..prefix.len() {
            let key = prefix[..=depth].to_vec();
            let abs = key.iter().fold(self.root.to_path_buf(), |p, c| p.join(c));
            let meta = match fs::symlink_metadata(&abs) {
                Ok(m) => m,
                // Not there: the caller reports a missing plain source.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(source) => return Err(ContextError::Io { path: abs, source }),
            };
            let rel_str = key.join("/");
            let (excluded, child_state) = self.rules.match_with_parent(&rel_str, &state);
            let last = depth + 1 == prefix.len();
            let ft = meta.file_type();
            if ft.is_dir() {
                let node = Node::Dir {
                    mode: permission_bits(&meta),
                };
                if excluded {
                    if !self.rules.must_enter_excluded_dir(&rel_str) {
                        return Ok(());
                    }
                    if self.rules.dialect() == Dialect::Legacy {
                        self.keep(key.clone(), node);
                    } else {
                        self.pending.push((key.clone(), node));
                    }
                } else {
                    self.keep(key.clone(), node);
                }
                state = child_state;
                if last {
                    return self.dir_in(&key, &state, scope);
                }
            } else {
                // A file (or symlink) where a directory is needed, or an excluded one.
                if !last || excluded || matches!(scope, Scope::Glob(_)) {
                    return Ok(());
                }
                let mode = permission_bits(&meta);
                if ft.is_file() {
                    self.keep(key, Node::File { abs, mode });
                } else if ft.is_symlink() {
                    let target = fs::read_link(&abs).map_err(|source| ContextError::Io {
                        path: abs.clone(),
                        source,
                    })?;
                    self.keep(key, Node::Symlink { target, mode });
                } else {
                    self.skipped_special.push(rel_str);
                }
                return Ok(());
            }
        }
        self.dir_in(&[], &state, scope)
    }
}

/// The context after the ignore rules, as fsutil would send it.
fn collect(context_dir: &Path, rules: &IgnoreRules) -> Result<(Tree, Vec<String>), ContextError> {
    let mut walk = Walk::new(context_dir, rules);
    walk.dir(&[], &MatchState::default())?;
    Ok((walk.tree, walk.skipped_special))
}

fn split_extra_path(path: &str) -> Result<Vec<String>, ContextError> {
    let bad = |reason: &str| ContextError::BadExtraPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if path.starts_with('/') {
        return Err(bad("must be relative to the context"));
    }
    let parts: Vec<String> = path.split('/').map(str::to_string).collect();
    if parts.iter().any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(bad(
            "must be a plain relative path (no empty, '.' or '..' parts)",
        ));
    }
    Ok(parts)
}

/// Deterministic tar of the build context: entries in walk order, ignored paths left out,
/// uid/gid 0, no user/group names, mtime [`FIXED_MTIME`], permission bits and symlinks
/// kept, directories included. `extra` adds or replaces files (mode 0644) at relative paths,
/// regardless of the ignore rules, creating missing parent directories with mode 0755.
pub fn write_tar<W: Write>(
    context_dir: &Path,
    rules: &IgnoreRules,
    extra: &[(String, Vec<u8>)],
    out: W,
) -> Result<ContextStats, ContextError> {
    let (mut tree, skipped_special) = collect(context_dir, rules)?;
    add_extra(&mut tree, extra)?;
    let mut stats = ContextStats {
        skipped_special,
        ..ContextStats::default()
    };
    let mut builder = tar::Builder::new(out);
    for (key, node) in &tree {
        append_node(&mut builder, &key.join("/"), node, extra, &mut stats)?;
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(ContextError::Write)?;
    Ok(stats)
}

/// Puts the generated files (`extra`) into the walked `tree`, whatever the ignore rules say:
/// a generated file replaces the context's own, and its missing parent directories are
/// made (mode 0755). A path that needs a file to be a directory, or names a directory, is an
/// error: the build would not see what the caller meant.
fn add_extra(tree: &mut Tree, extra: &[(String, Vec<u8>)]) -> Result<(), ContextError> {
    for (index, (path, _)) in extra.iter().enumerate() {
        let key = split_extra_path(path)?;
        for depth in 1..key.len() {
            let parent = key[..depth].to_vec();
            match tree.get(&parent) {
                None => {
                    tree.insert(parent, Node::Dir { mode: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(ContextError::BadExtraPath {
                        path: path.clone(),
                        reason: format!("needs {} to be a directory", parent.join("/")),
                    })
                }
            }
        }
        if let Some(Node::Dir { .. }) = tree.get(&key) {
            return Err(ContextError::BadExtraPath {
                path: path.clone(),
                reason: "is a directory in the context".to_string(),
            });
        }
        tree.insert(key, Node::Extra { index });
    }
    Ok(())
}

/// The header of one entry, with nothing of the machine or the moment in it (uid/gid 0, no
/// names, mtime [`FIXED_MTIME`]): the same context gives the same bytes in every worktree,
/// which is what keeps the builder's cache keys equal.
fn entry_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(FIXED_MTIME);
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header
}

/// Appends `node` at `name` (its path in the context), counting it in `stats`.
fn append_node<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    node: &Node,
    extra: &[(String, Vec<u8>)],
    stats: &mut ContextStats,
) -> Result<(), ContextError> {
    match node {
        Node::Dir { mode } => {
            let mut header = entry_header(tar::EntryType::Directory, *mode, 0);
            builder
                .append_data(&mut header, name, io::empty())
                .map_err(ContextError::Write)?;
            stats.dirs += 1;
        }
        Node::File { abs, mode } => {
            let size = append_file(builder, name, abs, *mode)?;
            stats.files += 1;
            stats.content_bytes += size;
        }
        Node::Extra { index } => {
            let data = &extra[*index].1;
            let mut header = entry_header(tar::EntryType::Regular, 0o644, data.len() as u64);
            builder
                .append_data(&mut header, name, data.as_slice())
                .map_err(ContextError::Write)?;
            stats.files += 1;
            stats.content_bytes += data.len() as u64;
        }
        Node::Symlink { target, mode } => {
            let mut header = entry_header(tar::EntryType::Symlink, *mode, 0);
            set_link_target(builder, &mut header, target)?;
            builder
                .append_data(&mut header, name, io::empty())
                .map_err(ContextError::Write)?;
            stats.symlinks += 1;
        }
    }
    Ok(())
}

/// Appends the context file `abs` at `name` and returns its size. The size goes into the
/// header before the content is read, so a file that changes meanwhile is an error
/// ([`ContextError::FileChanged`]) rather than an archive that lies about it.
fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    abs: &Path,
    mode: u32,
) -> Result<u64, ContextError> {
    let io_err = |source| ContextError::Io {
        path: abs.to_path_buf(),
        source,
    };
    let file = File::open(abs).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let mut header = entry_header(tar::EntryType::Regular, mode, size);
    let mut reader = CountingReader {
        inner: file.take(size),
        count: 0,
    };
    builder
        .append_data(&mut header, name, &mut reader)
        .map_err(ContextError::Write)?;
    if reader.count != size {
        return Err(ContextError::FileChanged {
            path: abs.to_path_buf(),
        });
    }
    Ok(size)
}

/// Writes the symlink target byte for byte: the tar crate's own setter re-joins path
/// components (dropping `./` and trailing `/`), which would change the hashed linkname.
fn set_link_target<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    target: &Path,
) -> Result<(), ContextError> {
    let bytes = link_bytes(target)?;
    let field = &mut header.as_old_mut().linkname;
    if bytes.len() <= field.len() {
        field.fill(0);
        field[..bytes.len()].copy_from_slice(&bytes);
        return Ok(());
    }
    // GNU long link name entry, as GNU tar and Go's reader expect.
    let mut long = tar::Header::new_gnu();
    long.as_gnu_mut()
        .map(|g| {
            g.name[..13].copy_from_slice(b"././@LongLink");
        })
        .ok_or_else(|| ContextError::Write(io::Error::other("not a GNU header")))?;
    long.set_mode(0o644);
    long.set_uid(0);
    long.set_gid(0);
    long.set_mtime(0);
    long.set_size(bytes.len() as u64 + 1);
    long.set_entry_type(tar::EntryType::GNULongLink);
    long.set_cksum();
    let mut data = bytes.clone();
    data.push(0);
    builder
        .append(&long, data.as_slice())
        .map_err(ContextError::Write)?;
    let field = &mut header.as_old_mut().linkname;
    let n = field.len();
    field.copy_from_slice(&bytes[..n]);
    Ok(())
}

#[cfg(unix)]
fn link_bytes(target: &Path) -> Result<Vec<u8>, ContextError> {
    use std::os::unix::ffi::OsStrExt;
    Ok(target.as_os_str().as_bytes().to_vec())
}

#[cfg(not(unix))]
fn link_bytes(target: &Path) -> Result<Vec<u8>, ContextError> {
    target
        .to_str()
        .map(|s| s.replace('\\', "/").into_bytes())
        .ok_or_else(|| ContextError::NonUtf8Path {
            path: target.to_path_buf(),
        })
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Whether a COPY source is a pattern: BuildKit treats unescaped `*`, `?` and `[` as
/// wildcards.
fn has_wildcard(source: &str) -> bool {
    let mut escaped = false;
    for c in source.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Expands COPY/ADD sources (files, directories, globs with `*`, `?`, `[...]`, as written in
/// the Dockerfile) against the context after the ignore rules, into the sorted list of
/// files and symlinks (relative, '/'-separated) they bring in.
///
/// Sources are taken relative to the context root whatever their leading `/` or `..`, as
/// BuildKit does. A plain path that is missing (or ignored) is an error naming it, as in
/// `docker build`; a wildcard that matches nothing brings in nothing, also as in BuildKit.
pub fn expand_sources(
    context_dir: &Path,
    rules: &IgnoreRules,
    sources: &[String],
) -> Result<Vec<String>, ContextError> {
    resolve_sources(context_dir, rules, sources).map(|s| s.files)
}

/// What [`resolve_sources`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The files and symlinks the sources bring in: relative, '/'-separated, sorted.
    pub files: Vec<String>,
    /// The directories whose entries were read (relative, "" for the context root), sorted:
    /// a file appearing in or vanishing from one of them can change `files`.
    pub dirs_read: Vec<String>,
}

/// [`expand_sources`], reading only what each source's literal prefix allows: `COPY
/// requirements.txt .` looks at one file, `COPY requirements/ ./` walks one directory, and a
/// wildcard walks only the directories its components can match. The result equals a
/// match against a walk of the whole context (which big repositories, with their
/// `node_modules` and generated trees, cannot afford on every checkout).
pub fn resolve_sources(
    context_dir: &Path,
    rules: &IgnoreRules,
    sources: &[String],
) -> Result<Sources, ContextError> {
    let mut tree = Tree::new();
    let mut dirs_read = BTreeSet::new();
    for source in sources {
        let cleaned = go_clean(&format!("/{source}"));
        let rel = cleaned.trim_start_matches('/');
        let parts: Vec<String> = if rel.is_empty() {
            Vec::new()
        } else {
            rel.split('/').map(str::to_string).collect()
        };
        let wild = parts.iter().position(|p| has_wildcard(p));
        let mut walk = Walk::new(context_dir, rules);
        match wild {
            None => walk.under(&parts, Scope::All)?,
            Some(i) => {
                // A negated class or a range may match '/' (as in Go), and a class split at
                // a '/' does not parse alone: those walk the whole literal prefix.
                let per_component = parts[i..]
                    .iter()
                    .all(|p| !p.contains('[') || !(p.contains("[^") || p.contains('-')));
                let components = parts[i..]
                    .iter()
                    .map(|p| go_match_regex(p))
                    .collect::<Result<Vec<_>, _>>();
                match components {
                    Ok(components) if per_component => {
                        walk.under(&parts[..i], Scope::Glob(&components))?
                    }
                    _ => walk.under(&parts[..i], Scope::All)?,
                }
            }
        }
        dirs_read.extend(walk.read_dirs);
        for (k, node) in walk.tree {
            tree.entry(k).or_insert(node);
        }
    }
    Ok(Sources {
        files: match_sources(&tree, rules, sources)?,
        dirs_read: dirs_read.into_iter().collect(),
    })
}

/// The files of `tree` that `sources` bring in, as COPY does.
fn match_sources(
    tree: &Tree,
    rules: &IgnoreRules,
    sources: &[String],
) -> Result<Vec<String>, ContextError> {
    let mut files = BTreeSet::new();
    for source in sources {
        let cleaned = go_clean(&format!("/{source}"));
        let rel = cleaned.trim_start_matches('/');
        let matched: Vec<Vec<String>> = if rel.is_empty() {
            vec![Vec::new()]
        } else if has_wildcard(rel) {
            let re = go_match_regex(rel).map_err(|reason| ContextError::BadSource {
                src: source.clone(),
                reason,
            })?;
            tree.keys()
                .filter(|k| re.is_match(&k.join("/")))
                .cloned()
                .collect()
        } else {
            let key: Vec<String> = rel.split('/').map(str::to_string).collect();
            if tree.contains_key(&key) {
                vec![key]
            } else {
                Vec::new()
            }
        };
        // BuildKit copies nothing for a wildcard that matches nothing (the Dockerfile
        // frontend sets AllowEmptyWildcard; checked against the engine), but a plain path
        // must exist.
        if matched.is_empty() && !has_wildcard(rel) {
            return Err(ContextError::SourceNotFound {
                src: source.clone(),
                ignore_file: rules.source_file().map(Path::to_path_buf),
            });
        }
        for key in matched {
            let is_dir = key.is_empty() || matches!(tree.get(&key), Some(Node::Dir { .. }));
            if !is_dir {
                files.insert(key.join("/"));
                continue;
            }
            for (k, node) in tree.range(key.clone()..) {
                if !k.starts_with(&key) {
                    break;
                }
                if !matches!(node, Node::Dir { .. }) {
                    files.insert(k.join("/"));
                }
            }
        }
    }
    Ok(files.into_iter().collect())
}

/// Whether `rel` is a directory in the context (not following a final symlink), so callers
/// can tell `COPY dir` from `COPY file` without walking the whole context.
pub fn is_dir(context_dir: &Path, rel: &str) -> bool {
    let cleaned = go_clean(&format!("/{rel}"));
    let rel = cleaned.trim_start_matches('/');
    let path = if rel.is_empty() {
        context_dir.to_path_buf()
    } else {
        context_dir.join(rel)
    };
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The entries a tar made by [`write_tar`] holds, in order, with a trailing `/` on
/// directories: handy for comparing with what a build sees.
pub fn list_tar<R: Read>(tar: R) -> io::Result<Vec<String>> {
    let mut archive = tar::Archive::new(tar);
    let mut names = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let is_dir = entry.header().entry_type().is_dir();
        names.push(if is_dir && !path.ends_with('/') {
            format!("{path}/")
        } else {
            path
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn make_tree(root: &Path) {
        let w = |p: &str, data: &str| {
            let path = root.join(p);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, data).expect("write");
        };
        w("Dockerfile", "FROM scratch\n");
        w(".dockerignore", "**/*.pyc\nbuild\n!build/keep.txt\n*.log\n");
        w("src/main.py", "print(1)\n");
        w("src/cache.pyc", "junk");
        w("src/pkg/mod.py", "x = 1\n");
        w("build/out.bin", "bin");
        w("build/keep.txt", "keep");
        w("build/deep/x", "x");
        w("app.log", "log");
        w("pyproject.toml", "[project]\n");
        w("requirements.txt", "flask\n");
        w("reqs/dev.txt", "pytest\n");
        fs::set_permissions(root.join("src/main.py"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::create_dir(root.join("empty")).expect("mkdir");
        symlink("../pyproject.toml", root.join("src/link")).expect("symlink");
        symlink("./a//b/", root.join("oddlink")).expect("symlink");
        let long = "t".repeat(150);
        symlink(&long, root.join("longlink")).expect("symlink");
        w(
            &format!("{}/{}", "d".repeat(90), "f".repeat(90)),
            "long path",
        );
    }

    fn rules_for(root: &Path) -> IgnoreRules {
        IgnoreRules::load(root, Path::new("Dockerfile")).expect("rules")
    }

    fn tar_of(root: &Path, extra: &[(String, Vec<u8>)]) -> (Vec<u8>, ContextStats) {
        let mut out = Vec::new();
        let stats = write_tar(root, &rules_for(root), extra, &mut out).expect("tar");
        (out, stats)
    }

    #[test]
    fn tar_holds_what_buildkit_would_send() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_tree(dir.path());
        let (bytes, stats) = tar_of(dir.path(), &[]);
        let names = list_tar(bytes.as_slice()).expect("list");
        let long_dir = format!("{}/", "d".repeat(90));
        let long_file = format!("{}{}", long_dir, "f".repeat(90));
        let mut want = vec![
            ".dockerignore",
            "Dockerfile",
            "build/",
            "build/keep.txt",
            long_dir.as_str(),
            long_file.as_str(),
            "empty/",
            "longlink",
            "oddlink",
            "pyproject.toml",
            "reqs/",
            "reqs/dev.txt",
            "requirements.txt",
            "src/",
            "src/link",
            "src/main.py",
            "src/pkg/",
            "src/pkg/mod.py",
        ];
        want.sort_by_key(|n| {
            n.trim_end_matches('/')
                .split('/')
                .map(str::to_string)
                .collect::<Vec<_>>()
        });
        assert_eq!(names, want);
        assert_eq!((stats.files, stats.symlinks), (9, 3));

        let mut archive = tar::Archive::new(bytes.as_slice());
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let h = entry.header();
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            assert_eq!((h.uid().ok(), h.gid().ok()), (Some(0), Some(0)), "{path}");
            assert_eq!(h.mtime().ok(), Some(FIXED_MTIME), "{path}");
            assert_eq!(h.username().ok().flatten(), Some(""), "{path}");
            match path.as_str() {
                "src/main.py" => assert_eq!(h.mode().ok(), Some(0o755)),
                "oddlink" => assert_eq!(entry.link_name_bytes().as_deref(), Some(&b"./a//b/"[..])),
                "longlink" => assert_eq!(entry.link_name_bytes().map(|b| b.len()), Some(150)),
                "src/link" => assert_eq!(
                    entry.link_name_bytes().as_deref(),
                    Some(&b"../pyproject.toml"[..])
                ),
                _ => {}
            }
        }
    }

    /// The two walker generations part ways on exceptions inside excluded directories; the
    /// Legacy expectations are what Docker Engine 20.10 was seen to copy.
    #[test]
    fn dialects_differ_on_exceptions_in_excluded_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for p in [
            "vendor/p/keep.me",
            "vendor/p/other",
            "vendor/q/other",
            "lib/x/y",
        ] {
            fs::create_dir_all(root.join(p).parent().expect("parent")).expect("mkdir");
            fs::write(root.join(p), "x").expect("write");
        }
        let rules =
            IgnoreRules::parse("vendor\n!vendor/**/keep.me\nlib\n!lib/none\n").expect("rules");
        let names = |rules: &IgnoreRules| {
            let mut out = Vec::new();
            write_tar(root, rules, &[], &mut out).expect("tar");
            list_tar(out.as_slice()).expect("list")
        };
        assert_eq!(
            names(&rules),
            vec!["vendor/", "vendor/p/", "vendor/p/keep.me"]
        );
        assert_eq!(
            names(&rules.with_dialect(Dialect::Legacy)),
            vec!["lib/", "vendor/"]
        );
        assert_eq!(
            Dialect::for_engine_version("20.10.24+dfsg1"),
            Dialect::Legacy
        );
        assert_eq!(Dialect::for_engine_version("28.2.2"), Dialect::Current);
        assert_eq!(Dialect::for_engine_version("weird"), Dialect::Current);
    }

    #[test]
    fn tar_is_byte_identical_across_copies() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        make_tree(a.path());
        make_tree(b.path());
        // Different mtimes on one copy; owners differ when run as root.
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for p in ["pyproject.toml", "src/main.py", "build/keep.txt"] {
            let f = File::options()
                .write(true)
                .open(b.path().join(p))
                .expect("open");
            f.set_modified(old).expect("set mtime");
        }
        #[cfg(unix)]
        if std::os::unix::fs::chown(b.path().join("requirements.txt"), Some(1234), Some(4321))
            .is_err()
        {
            eprintln!("not root: owners left equal");
        }
        let extra = vec![(
            ".dockwarm/Dockerfile.deps".to_string(),
            b"FROM scratch\n".to_vec(),
        )];
        assert_eq!(tar_of(a.path(), &extra).0, tar_of(b.path(), &extra).0);
    }

    #[test]
    fn extra_files_add_and_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_tree(dir.path());
        let extra = vec![
            (
                ".dockwarm/Dockerfile.deps".to_string(),
                b"FROM a\n".to_vec(),
            ),
            ("Dockerfile".to_string(), b"FROM b\n".to_vec()),
        ];
        let (bytes, _) = tar_of(dir.path(), &extra);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let mut s = String::new();
            if entry.header().entry_type().is_file() {
                entry.read_to_string(&mut s).expect("read");
            }
            assert!(seen.insert(path, s).is_none(), "duplicate entry");
        }
        assert_eq!(seen[".dockwarm/Dockerfile.deps"], "FROM a\n");
        assert_eq!(seen["Dockerfile"], "FROM b\n");
        assert!(seen.contains_key(".dockwarm"));
        for bad in ["/abs", "a/../b", "", "src/main.py/x", "src"] {
            let err = write_tar(
                dir.path(),
                &rules_for(dir.path()),
                &[(bad.to_string(), vec![])],
                io::sink(),
            )
            .expect_err(bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn sources_expand_like_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_tree(dir.path());
        let rules = rules_for(dir.path());
        let expand = |s: &[&str]| {
            expand_sources(
                dir.path(),
                &rules,
                &s.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            expand(&["pyproject.toml", "requirements.txt"]).expect("ok"),
            vec!["pyproject.toml", "requirements.txt"]
        );
        assert_eq!(
            expand(&["src/"]).expect("ok"),
            vec!["src/link", "src/main.py", "src/pkg/mod.py"]
        );
        assert_eq!(
            expand(&["/req*.txt", "reqs/*.tx?"]).expect("ok"),
            vec!["reqs/dev.txt", "requirements.txt"]
        );
        assert_eq!(expand(&["build"]).expect("ok"), vec!["build/keep.txt"]);
        assert_eq!(expand(&["[p]y*"]).expect("ok"), vec!["pyproject.toml"]);
        assert!(expand(&["empty"]).expect("ok").is_empty());
        let all = expand(&["."]).expect("ok");
        assert!(
            all.contains(&"src/pkg/mod.py".to_string()) && !all.contains(&"app.log".to_string())
        );
        assert_eq!(
            expand(&["pyproject.toml", "*.nothing"]).expect("ok"),
            vec!["pyproject.toml"]
        );
        for missing in ["app.log", "nope.txt", "src/cache.pyc", "build/out.bin"] {
            let err = expand(&["pyproject.toml", missing]).expect_err(missing);
            let msg = err.to_string();
            assert!(msg.contains("not found") && msg.contains(missing), "{msg}");
        }
        assert!(matches!(
            expand(&["src/[x"]),
            Err(ContextError::BadSource { .. })
        ));
        assert!(is_dir(dir.path(), "src") && !is_dir(dir.path(), "src/main.py"));
    }

    /// Resolving by prefix gives exactly what matching against the whole walk gives, in both
    /// dialects, and reads no directory a source's prefix does not reach.
    #[test]
    fn sources_resolve_by_prefix_like_a_whole_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        make_tree(root);
        for p in [
            "node_modules/a/index.js",
            "vendor/p/keep.me",
            "vendor/p/other",
        ] {
            fs::create_dir_all(root.join(p).parent().expect("parent")).expect("mkdir");
            fs::write(root.join(p), "x").expect("write");
        }
        fs::write(
            root.join(".dockerignore"),
            "**/*.pyc\nbuild\n!build/keep.txt\n*.log\nvendor\n!vendor/*/keep.me\n",
        )
        .expect("write");
        let cases: &[&[&str]] = &[
            &["pyproject.toml", "requirements.txt"],
            &["src/"],
            &["/req*.txt", "reqs/*.tx?"],
            &["build"],
            &["build/keep.txt"],
            &["[p]y*"],
            &["*/*.py"],
            &["vendor"],
            &["vendor/p/keep.me"],
            &["vendor/*/keep.me"],
            &["s?c/pkg"],
            &["."],
            &["src/link"],
            &["*.nothing", "src/pkg/*"],
        ];
        for dialect in [Dialect::Current, Dialect::Legacy] {
            let rules = rules_for(root).with_dialect(dialect);
            let (tree, _) = collect(root, &rules).expect("walk");
            for case in cases {
                let sources: Vec<String> = case.iter().map(|s| s.to_string()).collect();
                let want = match_sources(&tree, &rules, &sources).map_err(|e| e.to_string());
                let got = resolve_sources(root, &rules, &sources).map_err(|e| e.to_string());
                assert_eq!(
                    got.as_ref().map(|g| &g.files),
                    want.as_ref(),
                    "{case:?} {dialect:?}"
                );
                let Ok(got) = got else { continue };
                if !case.contains(&".") && !case.contains(&"*/*.py") {
                    assert!(
                        got.dirs_read.iter().all(|d| !d.starts_with("node_modules")),
                        "{case:?} read {:?}",
                        got.dirs_read
                    );
                }
            }
        }
        let rules = rules_for(root);
        let one = |s: &str| resolve_sources(root, &rules, &[s.to_string()]).expect(s);
        assert!(one("requirements.txt").dirs_read.is_empty());
        assert_eq!(one("src/").dirs_read, vec!["src", "src/pkg"]);
        assert_eq!(one("req*.txt").dirs_read, vec![""]);
        // The root and its 7 directories, none deeper.
        assert_eq!(one("*/*.py").dirs_read.len(), 8);
    }
}
