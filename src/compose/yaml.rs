//! The YAML of compose files: an ordered tree read with `saphyr-parser` (pure Rust,
//! maintained), with what the compose reader needs and nothing else: anchors and aliases,
//! merge keys (`<<: *a`, `<<: [*a, *b]`), local tags kept (compose's `!reset`, `!override`),
//! and errors at a line and column.
//!
//! Plain scalars are resolved as compose's YAML library (go-yaml v3) resolves them, so that a
//! value reads as compose reads it: `1.0` is the number `1`, `010` is octal, `1_000` is
//! `1000`, `yes` stays text, `2024-01-02` is a date (one with a time of day stays text).

use std::fmt;
use std::hash::{Hash, Hasher};

use indexmap::{Equivalent, IndexMap};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

/// How deep collections may nest (aliases included): deeper trees are refused, not recursed.
const MAX_DEPTH: usize = 128;
/// How many nodes aliases may copy in one file: a "billion laughs" file is refused.
const MAX_ALIAS_NODES: usize = 100_000;

/// A YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null`, or nothing.
    Null,
    /// `true` / `false` (not `yes`/`no`: those are text, as in compose).
    Bool(bool),
    /// A plain scalar that reads as a number.
    Number(Number),
    /// Text: quoted, or plain that is nothing else.
    String(String),
    /// A list.
    Sequence(Vec<Value>),
    /// A mapping, in the file's order.
    Mapping(Mapping),
    /// A node with a local tag (`!reset null`); core tags (`!!str`) are applied instead.
    Tagged(Box<Tagged>),
}

/// A node and its local tag, written with its `!` (`!reset`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged {
    /// The tag as written, `!` included.
    pub tag: String,
    /// The node under it.
    pub value: Value,
}

/// A number as go-yaml reads it; shown as compose shows it (Go's `%v`).
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// An integer that fits an `i64` (decimal, `0x`, `0o`, `0b`, or `0`-led octal).
    Int(i64),
    /// A larger integer that fits a `u64`.
    UInt(u64),
    /// Anything else that reads as a number.
    Float(f64),
}

/// A mapping in the file's order. Equality ignores the order, as compose's does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping(IndexMap<Value, Value>);

/// A YAML error at a place in the file (line and column from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
    /// What is wrong there, without the place.
    pub message: String,
}

impl Error {
    fn at(span: &Span, message: impl Into<String>) -> Self {
        Error {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: message.into(),
        }
    }
}

impl From<ScanError> for Error {
    fn from(e: ScanError) -> Self {
        Error {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        }
    }
}

/// What may look up a mapping's entry: a `str` (a string key), or any node.
pub trait Key: Hash + Equivalent<Value> {}

impl<K: ?Sized + Hash + Equivalent<Value>> Key for K {}

impl Equivalent<Value> for str {
    fn equivalent(&self, key: &Value) -> bool {
        matches!(key, Value::String(s) if s == self)
    }
}

// Keys are hashed so that a `str` finds its string key; floats by value (`-0.0` is `0.0`, a
// NaN is a NaN), as equality goes.
impl Hash for Value {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            Value::String(s) => s.as_str().hash(h),
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(Number::Int(i)) => (2u8, i).hash(h),
            Value::Number(Number::UInt(u)) => (3u8, u).hash(h),
            Value::Number(Number::Float(f)) => {
                let f = if *f == 0.0 { 0.0 } else { *f };
                let bits = if f.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    f.to_bits()
                };
                (4u8, bits).hash(h)
            }
            Value::Sequence(s) => (5u8, s).hash(h),
            // Order-free, as equality is.
            Value::Mapping(m) => (6u8, m.len()).hash(h),
            Value::Tagged(t) => (7u8, &t.tag, &t.value).hash(h),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::UInt(a), Number::UInt(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            _ => false,
        }
    }
}

impl Eq for Number {}
impl Eq for Value {}

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Mapping(IndexMap::new())
    }

    /// The place of `key` in the file's order.
    fn position<K: Key + ?Sized>(&self, key: &K) -> Option<usize> {
        self.0.get_index_of(key)
    }

    /// The value of `key`.
    pub fn get<K: Key + ?Sized>(&self, key: &K) -> Option<&Value> {
        self.0.get(key)
    }

    /// The value of `key`, to change.
    pub fn get_mut<K: Key + ?Sized>(&mut self, key: &K) -> Option<&mut Value> {
        self.0.get_mut(key)
    }

    /// Whether `key` is set.
    pub fn contains_key<K: Key + ?Sized>(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// Removes an entry, keeping the others' order.
    pub fn remove<K: Key + ?Sized>(&mut self, key: &K) -> Option<Value> {
        self.0.shift_remove(key)
    }

    /// Sets an entry (in place when it exists, else last); returns the value it replaced.
    pub fn insert(&mut self, key: Value, value: Value) -> Option<Value> {
        self.0.insert(key, value)
    }

    /// Sets an entry only when the key is absent.
    pub fn insert_absent(&mut self, key: Value, value: Value) {
        self.0.entry(key).or_insert(value);
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Value> {
        self.0.keys()
    }

    /// The entries, in order.
    pub fn iter(&self) -> indexmap::map::Iter<'_, Value, Value> {
        self.0.iter()
    }

    /// The entries, in order, their values to change.
    pub fn iter_mut(&mut self) -> indexmap::map::IterMut<'_, Value, Value> {
        self.0.iter_mut()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Mapping {
    type Item = (Value, Value);
    type IntoIter = indexmap::map::IntoIter<Value, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Mapping {
    type Item = (&'a Value, &'a Value);
    type IntoIter = indexmap::map::Iter<'a, Value, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Value {
    /// The node under its local tag, if any.
    pub fn untag(&self) -> &Value {
        match self {
            Value::Tagged(t) => t.value.untag(),
            v => v,
        }
    }

    fn untag_mut(&mut self) -> &mut Value {
        match self {
            Value::Tagged(t) => t.value.untag_mut(),
            v => v,
        }
    }

    /// A mapping's entry (through a tag); `None` for anything else.
    pub fn get<K: Key + ?Sized>(&self, key: &K) -> Option<&Value> {
        match self.untag() {
            Value::Mapping(m) => m.get(key),
            _ => None,
        }
    }

    /// A mapping's entry (through a tag), to change.
    pub fn get_mut<K: Key + ?Sized>(&mut self, key: &K) -> Option<&mut Value> {
        match self.untag_mut() {
            Value::Mapping(m) => m.get_mut(key),
            _ => None,
        }
    }

    /// The text of a string node (through a tag).
    pub fn as_str(&self) -> Option<&str> {
        match self.untag() {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the node is null (through a tag).
    pub fn is_null(&self) -> bool {
        matches!(self.untag(), Value::Null)
    }

    /// Whether the node is a mapping (through a tag).
    pub fn is_mapping(&self) -> bool {
        matches!(self.untag(), Value::Mapping(_))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(i) => write!(f, "{i}"),
            Number::UInt(u) => write!(f, "{u}"),
            Number::Float(x) => f.write_str(&go_float(x)),
        }
    }
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(x, 'g', -1, 64)`): the shortest digits,
/// with an exponent of at least two digits below 1e-4 and from 1e6 up.
fn go_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{x}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// Reads the documents of a YAML stream (none for an empty file; `---` starts another).
pub fn parse(text: &str) -> Result<Vec<Value>, Error> {
    let mut builder = Builder::default();
    let mut documents = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event?;
        match event {
            Event::DocumentEnd => documents.push(builder.root.take().unwrap_or(Value::Null)),
            other => builder.event(other, span)?,
        }
    }
    Ok(documents)
}

/// A collection being read. (At most `MAX_DEPTH` live at once: their size does not matter.)
#[allow(clippy::large_enum_variant)]
enum Frame {
    Sequence {
        items: Vec<Value>,
        header: Header,
    },
    Mapping {
        map: Mapping,
        key: Option<(Value, Span)>,
        /// The line of each key of `map`, in its order, to name the first of a repeated one.
        lines: Vec<usize>,
        /// Where `<<` was written, to point at it when it merges something else.
        merge: Option<Span>,
        header: Header,
    },
}

/// A collection's anchor, tag and size so far.
struct Header {
    anchor: usize,
    tag: Option<String>,
    nodes: usize,
    height: usize,
}

/// A finished node with its size (nodes) and depth below it (height).
struct Node {
    value: Value,
    nodes: usize,
    height: usize,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, (Value, usize, usize)>,
    aliased: usize,
    root: Option<Value>,
}

impl Builder {
    fn event(&mut self, event: Event, span: Span) -> Result<(), Error> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref(), &span)?;
                self.finish(
                    Node {
                        value,
                        nodes: 1,
                        height: 0,
                    },
                    anchor,
                    span,
                )
            }
            Event::Alias(id) => {
                let Some(&(_, nodes, height)) = self.anchors.get(&id) else {
                    return Err(Error::at(&span, "an alias of the node that contains it"));
                };
                self.aliased += nodes;
                if self.aliased > MAX_ALIAS_NODES {
                    return Err(Error::at(
                        &span,
                        format!("aliases copy more than {MAX_ALIAS_NODES} nodes"),
                    ));
                }
                if self.stack.len() + height > MAX_DEPTH {
                    return Err(Error::at(
                        &span,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let value = self.anchors[&id].0.clone();
                self.finish(
                    Node {
                        value,
                        nodes,
                        height,
                    },
                    0,
                    span,
                )
            }
            Event::SequenceStart(anchor, tag) => self.open(anchor, tag.as_deref(), true, span),
            Event::MappingStart(anchor, tag) => self.open(anchor, tag.as_deref(), false, span),
            Event::SequenceEnd | Event::MappingEnd => self.close(span),
            _ => Ok(()),
        }
    }

    fn open(
        &mut self,
        anchor: usize,
        tag: Option<&Tag>,
        sequence: bool,
        span: Span,
    ) -> Result<(), Error> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Error::at(
                &span,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let header = Header {
            anchor,
            tag: tag.and_then(local_tag),
            nodes: 1,
            height: 0,
        };
        self.stack.push(if sequence {
            Frame::Sequence {
                items: Vec::new(),
                header,
            }
        } else {
            Frame::Mapping {
                map: Mapping::new(),
                key: None,
                lines: Vec::new(),
                merge: None,
                header,
            }
        });
        Ok(())
    }

    fn close(&mut self, span: Span) -> Result<(), Error> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let (value, header) = match frame {
            Frame::Sequence { items, header } => (Value::Sequence(items), header),
            Frame::Mapping {
                mut map,
                merge,
                header,
                ..
            } => {
                if let Some(at) = merge {
                    merge_keys(&mut map).map_err(|m| Error::at(&at, m))?;
                }
                (Value::Mapping(map), header)
            }
        };
        let value = match header.tag {
            Some(tag) => Value::Tagged(Box::new(Tagged { tag, value })),
            None => value,
        };
        self.finish(
            Node {
                value,
                nodes: header.nodes,
                height: header.height + 1,
            },
            header.anchor,
            span,
        )
    }

    /// Hands a finished node to its collection (or makes it the document).
    fn finish(&mut self, node: Node, anchor: usize, span: Span) -> Result<(), Error> {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (node.value.clone(), node.nodes, node.height));
        }
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node.value);
            return Ok(());
        };
        let header = match frame {
            Frame::Sequence { items, header } => {
                items.push(node.value);
                header
            }
            Frame::Mapping {
                map,
                key,
                lines,
                merge,
                header,
            } => {
                match key.take() {
                    None => {
                        if let Some(i) = map.position(&node.value) {
                            return Err(Error::at(
                                &span,
                                format!(
                                    "mapping key {} already defined at line {}",
                                    show_key(&node.value),
                                    lines[i]
                                ),
                            ));
                        }
                        lines.push(span.start.line());
                        if node.value.as_str() == Some("<<") {
                            *merge = Some(span);
                        }
                        *key = Some((node.value, span));
                    }
                    Some((k, _)) => {
                        map.insert(k, node.value);
                    }
                }
                header
            }
        };
        header.nodes += node.nodes;
        header.height = header.height.max(node.height);
        Ok(())
    }
}

fn show_key(k: &Value) -> String {
    match k.untag() {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => "(a collection)".into(),
    }
}

/// YAML merge keys: the mappings `<<` names fill in what the mapping does not set, the first
/// named first.
fn merge_keys(map: &mut Mapping) -> Result<(), String> {
    let Some(merge) = map.remove("<<") else {
        return Ok(());
    };
    let sources = match merge {
        Value::Mapping(src) => vec![src],
        Value::Sequence(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Mapping(src) => Ok(src),
                _ => Err("`<<` merges mappings only".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("`<<` merges mappings only".into()),
    };
    for src in sources {
        for (k, v) in src {
            map.insert_absent(k, v);
        }
    }
    Ok(())
}

const CORE: &str = "tag:yaml.org,2002:";

/// A tag kept on the node: local ones (`!reset`); core ones (`!!str`, `!!map`) are applied.
fn local_tag(tag: &Tag) -> Option<String> {
    (tag.handle != CORE && !(tag.handle == "!" && tag.suffix.is_empty())).then(|| tag.to_string())
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>, span: &Span) -> Result<Value, Error> {
    let plain = style == ScalarStyle::Plain;
    let Some(tag) = tag else {
        return Ok(if plain {
            resolve(text)
        } else {
            Value::String(text.into())
        });
    };
    if tag.handle == CORE {
        let resolved = resolve(text);
        let fits = match (tag.suffix.as_str(), &resolved) {
            ("null", Value::Null) | ("bool", Value::Bool(_)) => true,
            ("int", Value::Number(Number::Int(_) | Number::UInt(_))) => true,
            ("float", Value::Number(n)) => {
                return Ok(Value::Number(match *n {
                    Number::Int(i) => Number::Float(i as f64),
                    Number::UInt(u) => Number::Float(u as f64),
                    f => f,
                }))
            }
            ("null" | "bool" | "int" | "float", _) => false,
            _ => return Ok(Value::String(text.into())),
        };
        return if fits {
            Ok(resolved)
        } else {
            Err(Error::at(
                span,
                format!("cannot read {text:?} as !!{}", tag.suffix),
            ))
        };
    }
    let value = if plain {
        resolve(text)
    } else {
        Value::String(text.into())
    };
    Ok(match local_tag(tag) {
        Some(tag) => Value::Tagged(Box::new(Tagged { tag, value })),
        None => Value::String(text.into()),
    })
}

/// A plain scalar's value, by go-yaml v3's rules (`resolve` in its resolve.go).
fn resolve(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Number(Number::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Number(Number::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Value::Number(Number::Float(f64::NAN)),
        _ => {}
    }
    let text = || Value::String(s.to_string());
    match s.as_bytes()[0] {
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Number(Number::Float(f)),
            _ => text(),
        },
        b'0'..=b'9' | b'+' | b'-' => {
            if let Some(date) = date(s) {
                return Value::String(date);
            }
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Value::Number(Number::Int(i));
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Value::Number(Number::UInt(u));
            }
            if yaml_style_float(&plain) {
                if let Ok(f) = plain.parse::<f64>() {
                    if f.is_finite() {
                        return Value::Number(Number::Float(f));
                    }
                }
            }
            text()
        }
        _ => text(),
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (no underscores: go-yaml removed them): `0x`, `0o`,
/// `0b`, and a leading `0` for octal.
fn go_parse_uint(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (radix, digits) = match b {
        [] => return None,
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'x') => (16, &s[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'o') => (8, &s[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'b') => (2, &s[2..]),
        [b'0', ..] => (8, &s[1..]),
        _ => (10, s),
    };
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then [`go_parse_uint`].
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let u = go_parse_uint(rest)?;
    if negative {
        0i64.checked_sub_unsigned(u)
    } else {
        i64::try_from(u).ok()
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A plain `YYYY-M-D` as compose shows it (a Go `time.Time`): `2024-01-02 00:00:00 +0000 UTC`.
/// (Dates with a time of day stay text: a difference from compose, which shows them too.)
fn date(s: &str) -> Option<String> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let number = |p: &str, len: std::ops::RangeInclusive<usize>| {
        (len.contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    let (y, m, d) = (number(y, 4..=4)?, number(m, 1..=2)?, number(d, 1..=2)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days)
        .contains(&d)
        .then(|| format!("{y:04}-{m:02}-{d:02} 00:00:00 +0000 UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let mut docs = parse(text).unwrap();
        assert_eq!(docs.len(), 1, "{text}");
        docs.remove(0)
    }

    fn text(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => format!("{s:?}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn plain_scalars_read_as_compose_reads_them() {
        // What `docker compose config` (go-yaml v3) shows for each, checked by hand on 2.26.
        let cases = [
            ("1.10", "1.1"),
            ("1.0", "1"),
            ("0x10", "16"),
            ("1e3", "1000"),
            ("010", "8"),
            ("09", "9"),
            ("0o17", "15"),
            ("+5", "5"),
            (".5", "0.5"),
            ("yes", "\"yes\""),
            ("True", "true"),
            ("~", "null"),
            ("1_000", "1000"),
            ("_12", "\"_12\""),
            ("-0", "0"),
            ("-0.0", "-0"),
            ("1e5", "100000"),
            ("1e6", "1e+06"),
            ("1234567.5", "1.2345675e+06"),
            ("123456.7", "123456.7"),
            ("0.00001", "1e-05"),
            ("0.0001", "0.0001"),
            ("12345678901234567890", "12345678901234567890"),
            ("-9223372036854775809", "-9.223372036854776e+18"),
            ("0x", "\"0x\""),
            ("0b_1", "1"),
            ("0b2", "\"0b2\""),
            ("1e", "\"1e\""),
            ("5.e1", "50"),
            ("08.5", "8.5"),
            ("+0x10", "16"),
            ("-0o7", "-7"),
            ("1e400", "\"1e400\""),
            ("2001-12-14", "\"2001-12-14 00:00:00 +0000 UTC\""),
            ("2001-2-30", "\"2001-2-30\""),
            ("1.2.3", "\"1.2.3\""),
        ];
        for (plain, want) in cases {
            assert_eq!(text(&resolve(plain)), want, "{plain}");
        }
        // Quoted, or `!!str`: text as written.
        let doc = one("a: \"010\"\nb: !!str 1.0\nc: !!int \"7\"\n");
        assert_eq!(doc.get("a"), Some(&Value::from("010")));
        assert_eq!(doc.get("b"), Some(&Value::from("1.0")));
        assert_eq!(doc.get("c"), Some(&Value::Number(Number::Int(7))));
    }

    #[test]
    fn anchors_merge_keys_and_local_tags() {
        let doc = one(
            "x: &a {k: 1, j: 2}\ny: &b {k: 3, l: 4}\none: {<<: [*a, *b], j: 5}\ntwo: {<<: *b}\n\
             r: !reset null\no: !override [1]\n",
        );
        let one = doc.get("one").unwrap();
        assert_eq!(one.get("k"), Some(&Value::Number(Number::Int(1))));
        assert_eq!(one.get("j"), Some(&Value::Number(Number::Int(5))));
        assert_eq!(one.get("l"), Some(&Value::Number(Number::Int(4))));
        assert_eq!(one.get("<<"), None);
        assert_eq!(doc.get("two"), doc.get("y"));
        let Some(Value::Tagged(r)) = doc.get("r") else {
            panic!("{doc:?}")
        };
        assert_eq!((r.tag.as_str(), &r.value), ("!reset", &Value::Null));
        let Some(Value::Tagged(o)) = doc.get("o") else {
            panic!("{doc:?}")
        };
        assert_eq!(o.tag, "!override");
        assert!(doc.get("o").unwrap().get("x").is_none());
        // Keys keep the file's order.
        let Value::Mapping(m) = &doc else { panic!() };
        let keys: Vec<_> = m.keys().filter_map(Value::as_str).collect();
        assert_eq!(keys, ["x", "y", "one", "two", "r", "o"]);
    }

    #[test]
    fn errors_say_line_and_column() {
        let at = |text: &str| {
            let e = parse(text).unwrap_err();
            (e.line, e.column, e.message)
        };
        let place = |text: &str| {
            let (line, column, _) = at(text);
            (line, column)
        };
        assert_eq!(place("services:\n  app:\n    build: [\n"), (4, 1));
        assert_eq!(
            place("services:\n  app:\n    build: .\n   bad: [\n"),
            (4, 4)
        );
        let (line, column, message) = at("a:\n  b: 1\n  b: 2\n");
        assert_eq!((line, column), (3, 3));
        assert_eq!(message, "mapping key \"b\" already defined at line 2");
        assert_eq!(place("a: {<<: 1}\n"), (1, 5));
        assert_eq!(place("a: &x [*x]\n"), (1, 8));
        let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert!(at(&deep).2.contains("nesting"));
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = (b'a' + i) as char;
            let name = (b'b' + i) as char;
            laughs.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        assert!(at(&laughs).2.contains("aliases copy"));
    }

    #[test]
    fn a_stream_is_its_documents() {
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("# nothing\n").unwrap(), []);
        assert_eq!(parse("---\n").unwrap(), [Value::Null]);
        let docs = parse("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(docs[1].get("b").is_some());
    }
}
