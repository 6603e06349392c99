//! The plan's TOML read by a parser of our own, for the TOML plans are written in (issue 28).
//!
//! The `toml` crate lexes the whole document into a token list, builds a tree of `BTreeMap`s
//! with a `Cow` per key, and deserializes that tree; at 1,000 clusters that is twice the CPU of
//! `kubectl kustomize` on one cluster's directory. This module reads the text once, byte by
//! byte, into one arena of nodes that borrow their strings from the text (a string is copied
//! only when it has an escape), and deserializes `raw::Plan` straight from the arena, every
//! span the one the `toml` crate gives: a `[table]`'s or `[[table]]`'s is its header's, an
//! implicit table's its key's, a value's the value as written (quotes and brackets included).
//!
//! It is only a fast path, and a strict one: it reads bare and quoted single keys, `[a.b]` and
//! `[[a.b]]` headers, basic strings (with the escapes `\b \t \n \f \r \" \\ \uXXXX
//! \UXXXXXXXX`), literal strings, decimal integers, booleans, arrays and one-line inline tables,
//! comments and CRLF line ends. Anything else (dotted keys in a key/value line, multi-line
//! strings, floats, dates, other integer forms, a table named twice or extended where TOML's
//! rules are subtle, a key given twice, any syntax error) and anything `raw::Plan` does not
//! deserialize from, and it gives `None`: the caller then parses with the `toml` crate, which
//! gives the same plan or the error with its span, code and help. `tests/parse_fast.rs`
//! compares both parses, spans included.

use std::fmt;

use serde::de::{self, IntoDeserializer as _, value::BorrowedStrDeserializer};

use crate::raw;

/// A table with more keys than this is left to the `toml` crate (keys are looked up one by one;
/// a plan's tables have a few dozen at most).
const MAX_KEYS: usize = 256;

/// The plan, when this parser reads the text and `raw::Plan` deserializes from it.
pub fn parse(text: &str) -> Option<raw::Plan> {
    let doc = Doc::parse(text)?;
    serde::Deserialize::deserialize(De {
        doc: &doc,
        id: ROOT,
    })
    .ok()
}

/// The root table's index in the arena.
const ROOT: u32 = 0;

/// No node: the end of a list.
const NONE: u32 = u32::MAX;

/// A value, its span (`start..end` in bytes of the text), and its place in its table or array:
/// 32 bytes, with no allocation of its own (a table's entries and an array's items are a list
/// through `next`).
struct Node {
    start: u32,
    end: u32,
    /// The next entry of the same table, or item of the same array.
    next: u32,
    /// An entry's key: `key_start..key_end` in the text (keys with escapes are declined).
    key_start: u32,
    key_end: u32,
    /// `Str`: the content's `start..end` in the text; `Owned`: its index in `Doc::owned`;
    /// `Int`: the low and high halves; `Bool`: 0 or 1; arrays and tables: the first and last
    /// entry or item (`NONE` when empty).
    a: u32,
    b: u32,
    tag: Tag,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Str,
    /// A string with an escape, decoded.
    Owned,
    Int,
    Bool,
    Array,
    /// Made by `[[...]]` headers (only those may be extended by another).
    ArrayOfTables,
    Table(TableKind),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TableKind {
    /// The root, or a table of its own header (`[a]`, or an entry of `[[a]]`).
    Header,
    /// Made on the way to a header's table (`a` of `[a.b]`).
    Implicit,
    /// `{ ... }`: closed.
    Inline,
}

/// A key as written: its text, where its content is and where it is with its quotes.
#[derive(Clone, Copy)]
struct Key<'a> {
    text: &'a str,
    content: (usize, usize),
    span: (usize, usize),
}

/// The arena, and the reader that fills it.
struct Doc<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    owned: Vec<String>,
    /// The previous header's parent keys and the table they name.
    last_parents: Option<(Vec<&'a str>, u32)>,
    /// How many arrays and inline tables the reader is inside.
    nesting: u32,
}

/// Arrays and inline tables nested deeper than this are left to the `toml` crate (it has a
/// limit of its own): the reader and the deserializer recurse once per level, and a plan of
/// 64 MiB of `[` must not overflow the stack.
const MAX_NESTING: u32 = 32;

/// Headers with more keys than this (`[a.b.c.d.e.f.g.h.i]`) are left to the `toml` crate.
const MAX_DEPTH: usize = 8;

/// A placeholder in a header's list of keys.
const NO_KEY: Key<'static> = Key {
    text: "",
    content: (0, 0),
    span: (0, 0),
};

/// Whether a byte may follow a scalar written without quotes (`1`, `true`).
fn ends_bare_value(byte: Option<&u8>) -> bool {
    matches!(
        byte,
        None | Some(b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}' | b'#')
    )
}

fn is_bare_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// A control character TOML does not allow in strings and comments (tab is allowed).
fn is_control(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

impl<'a> Doc<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        // Every position fits a u32, and NONE is no node's index.
        if u32::try_from(text.len()).ok()? == NONE {
            return None;
        }
        let mut doc = Doc {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            // About one value per 16 bytes of a plan.
            nodes: Vec::with_capacity(text.len() / 16 + 1),
            owned: Vec::new(),
            last_parents: None,
            nesting: 0,
        };
        doc.push(0, 0, Tag::Table(TableKind::Header), NONE, NONE);
        let mut current = ROOT;
        loop {
            doc.skip_ws();
            match doc.peek() {
                None => break,
                Some(b'#' | b'\r' | b'\n') => {}
                Some(b'[') => current = doc.header()?,
                Some(_) => {
                    let (key, value) = doc.keyval()?;
                    doc.insert(current, key, value)?;
                }
            }
            doc.skip_ws();
            if doc.peek() == Some(b'#') {
                doc.comment()?;
            }
            if !doc.newline() && doc.peek().is_some() {
                return None;
            }
        }
        Some(doc)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn push(&mut self, start: usize, end: usize, tag: Tag, a: u32, b: u32) -> u32 {
        // Positions fit: the text's length was checked against u32, and there are fewer nodes
        // than bytes.
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            start: start as u32,
            end: end as u32,
            next: NONE,
            key_start: 0,
            key_end: 0,
            a,
            b,
            tag,
        });
        id
    }

    fn key_of(&self, node: &Node) -> &'a str {
        self.text
            .get(node.key_start as usize..node.key_end as usize)
            .unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// A line end (`\n` or `\r\n`), consumed; false (nothing consumed) for anything else.
    fn newline(&mut self) -> bool {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
                true
            }
            Some(b'\r') if self.bytes.get(self.pos + 1) == Some(&b'\n') => {
                self.pos += 2;
                true
            }
            _ => false,
        }
    }

    /// `# ...` up to the line end (not consumed).
    fn comment(&mut self) -> Option<()> {
        self.pos += 1;
        while let Some(byte) = self.peek() {
            if byte == b'\n' || (byte == b'\r' && self.bytes.get(self.pos + 1) == Some(&b'\n')) {
                break;
            }
            if is_control(byte) {
                return None;
            }
            self.pos += 1;
        }
        Some(())
    }

    /// Whitespace, comments and line ends between the values of an array.
    fn skip_ws_comments_newlines(&mut self) -> Option<()> {
        loop {
            self.skip_ws();
            if self.peek() == Some(b'#') {
                self.comment()?;
            } else if !self.newline() {
                return Some(());
            }
        }
    }

    /// One key: bare, or quoted without escapes. A dotted key is left to the caller.
    fn key(&mut self) -> Option<Key<'a>> {
        let start = self.pos;
        let content = match self.peek()? {
            quote @ (b'"' | b'\'') => {
                self.pos += 1;
                loop {
                    let byte = self.peek()?;
                    if byte == quote {
                        break;
                    }
                    if byte == b'\\' || is_control(byte) {
                        return None;
                    }
                    self.pos += 1;
                }
                self.pos += 1;
                (start + 1, self.pos - 1)
            }
            byte if is_bare_key_byte(byte) => {
                while self.peek().is_some_and(is_bare_key_byte) {
                    self.pos += 1;
                }
                (start, self.pos)
            }
            _ => return None,
        };
        Some(Key {
            text: self.text.get(content.0..content.1)?,
            content,
            span: (start, self.pos),
        })
    }

    /// `key = value`, with no dot in the key.
    fn keyval(&mut self) -> Option<(Key<'a>, u32)> {
        let key = self.key()?;
        self.skip_ws();
        if self.peek()? != b'=' {
            return None;
        }
        self.pos += 1;
        self.skip_ws();
        let value = self.value()?;
        Some((key, value))
    }

    /// Adds `child` to `table` under `key`: `None` if the key is there already (or the table
    /// has too many keys to look them up one by one).
    fn insert(&mut self, table: u32, key: Key<'a>, child: u32) -> Option<()> {
        for (count, at) in self.entries(table).enumerate() {
            if count + 1 >= MAX_KEYS || self.key_is(&self.nodes[at as usize], key.text) {
                return None;
            }
        }
        let node = &mut self.nodes[child as usize];
        node.key_start = key.content.0 as u32;
        node.key_end = key.content.1 as u32;
        self.append(table, child);
        Some(())
    }

    /// Adds `child` at the end of the table's or array's list.
    fn append(&mut self, list: u32, child: u32) {
        let last = self.nodes[list as usize].b;
        if last == NONE {
            self.nodes[list as usize].a = child;
        } else {
            self.nodes[last as usize].next = child;
        }
        self.nodes[list as usize].b = child;
    }

    /// Whether an entry's key is `key` (lengths first: most keys of a table differ in length).
    fn key_is(&self, node: &Node, key: &str) -> bool {
        (node.key_end - node.key_start) as usize == key.len() && self.key_of(node) == key
    }

    fn lookup(&self, table: u32, key: &str) -> Option<u32> {
        self.entries(table)
            .find(|&at| self.key_is(&self.nodes[at as usize], key))
    }

    /// A table's entries or an array's items, in order.
    fn entries(&self, list: u32) -> impl Iterator<Item = u32> + '_ {
        self.from(self.nodes[list as usize].a)
    }

    /// `first` and the entries after it in its list.
    fn from(&self, first: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors((first != NONE).then_some(first), |&at| {
            let next = self.nodes[at as usize].next;
            (next != NONE).then_some(next)
        })
    }

    /// `[a.b]` or `[[a.b]]`: the table the lines below it fill.
    fn header(&mut self) -> Option<u32> {
        let start = self.pos;
        let array = self.bytes.get(start + 1) == Some(&b'[');
        self.pos += if array { 2 } else { 1 };
        let mut keys = [NO_KEY; MAX_DEPTH];
        let mut depth = 0;
        loop {
            self.skip_ws();
            // Deeper headers are left to the `toml` crate.
            *keys.get_mut(depth)? = self.key()?;
            depth += 1;
            self.skip_ws();
            match self.peek()? {
                b'.' => self.pos += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.pos += 1;
        if array {
            if self.peek()? != b']' {
                return None;
            }
            self.pos += 1;
        }
        let end = self.pos;
        let (last, parents) = keys.get(..depth)?.split_last()?;
        // The table the header is in: the previous header's, when it had the same parents (a
        // run of `[[cluster.node]]`), since only that header's own table was written since.
        let same_parents = self.last_parents.as_ref().is_some_and(|(path, _)| {
            path.len() == parents.len() && path.iter().zip(parents).all(|(a, b)| *a == b.text)
        });
        let table = match &self.last_parents {
            Some((_, table)) if same_parents => *table,
            _ => {
                let table = self.resolve(parents)?;
                self.last_parents = Some((parents.iter().map(|k| k.text).collect(), table));
                table
            }
        };
        self.header_table(array, start, end, table, last)
    }

    /// The table a header's parent keys name, made implicitly where missing.
    fn resolve(&mut self, parents: &[Key<'a>]) -> Option<u32> {
        let mut table = ROOT;
        for key in parents {
            table = match self.lookup(table, key.text) {
                None => {
                    // An implicit table's span is its key's, quotes included.
                    let id = self.push(
                        key.span.0,
                        key.span.1,
                        Tag::Table(TableKind::Implicit),
                        NONE,
                        NONE,
                    );
                    self.insert(table, *key, id)?;
                    id
                }
                Some(id) => match self.nodes[id as usize].tag {
                    Tag::Table(TableKind::Header | TableKind::Implicit) => id,
                    Tag::ArrayOfTables => self.nodes[id as usize].b,
                    _ => return None,
                },
            };
        }
        Some(table)
    }

    /// The header's own table, `last` in `table`: a new table, or a new entry of an array of
    /// tables.
    fn header_table(
        &mut self,
        array: bool,
        start: usize,
        end: usize,
        table: u32,
        last: &Key<'a>,
    ) -> Option<u32> {
        let new = self.push(start, end, Tag::Table(TableKind::Header), NONE, NONE);
        match (array, self.lookup(table, last.text)) {
            (false, None) => self.insert(table, *last, new)?,
            (true, None) => {
                let list = self.push(start, end, Tag::ArrayOfTables, new, new);
                self.insert(table, *last, list)?;
            }
            (true, Some(list)) if self.nodes[list as usize].tag == Tag::ArrayOfTables => {
                self.append(list, new);
            }
            // Defining a table met before (even an implicit one, which TOML allows) is left to
            // the `toml` crate, and so is `[[a]]` after `a = [...]`.
            _ => return None,
        }
        Some(new)
    }

    fn value(&mut self) -> Option<u32> {
        let start = self.pos;
        if self.nesting > MAX_NESTING {
            return None;
        }
        let rest = self.bytes.get(start..)?;
        match *rest.first()? {
            b'"' if !rest.starts_with(b"\"\"\"") => self.basic_string(),
            b'\'' if !rest.starts_with(b"'''") => {
                self.pos += 1;
                loop {
                    let byte = self.peek()?;
                    if byte == b'\'' {
                        break;
                    }
                    if is_control(byte) {
                        return None;
                    }
                    self.pos += 1;
                }
                self.pos += 1;
                Some(self.push(
                    start,
                    self.pos,
                    Tag::Str,
                    start as u32 + 1,
                    self.pos as u32 - 1,
                ))
            }
            b'[' | b'{' => {
                self.nesting += 1;
                let value = if rest[0] == b'[' {
                    self.array()
                } else {
                    self.inline_table()
                };
                self.nesting -= 1;
                value
            }
            b't' | b'f' => {
                let (word, value) = if rest.starts_with(b"true") {
                    ("true", 1)
                } else if rest.starts_with(b"false") {
                    ("false", 0)
                } else {
                    return None;
                };
                self.pos += word.len();
                ends_bare_value(self.bytes.get(self.pos))
                    .then(|| self.push(start, self.pos, Tag::Bool, value, 0))
            }
            b'-' | b'0'..=b'9' => {
                if rest[0] == b'-' {
                    self.pos += 1;
                }
                let digits = self.pos;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
                let count = self.pos - digits;
                // No leading zeros, no `_`, `.`, exponent, date or other base.
                if count == 0
                    || (count > 1 && self.bytes[digits] == b'0')
                    || !ends_bare_value(self.bytes.get(self.pos))
                {
                    return None;
                }
                let number: i64 = self.text.get(start..self.pos)?.parse().ok()?;
                let bits = number as u64;
                Some(self.push(start, self.pos, Tag::Int, bits as u32, (bits >> 32) as u32))
            }
            _ => None,
        }
    }

    /// `"..."`: borrowed from the text unless it has an escape.
    fn basic_string(&mut self) -> Option<u32> {
        let start = self.pos;
        self.pos += 1;
        let mut owned: Option<String> = None;
        let mut run = self.pos;
        loop {
            let byte = self.peek()?;
            match byte {
                b'"' => break,
                b'\\' => {
                    let out = owned.get_or_insert_with(String::new);
                    out.push_str(self.text.get(run..self.pos)?);
                    let escaped = *self.bytes.get(self.pos + 1)?;
                    self.pos += 2;
                    let ch = match escaped {
                        b'b' => '\u{8}',
                        b't' => '\t',
                        b'n' => '\n',
                        b'f' => '\u{c}',
                        b'r' => '\r',
                        b'"' => '"',
                        b'\\' => '\\',
                        b'u' | b'U' => {
                            let len = if escaped == b'u' { 4 } else { 8 };
                            let hex = self.text.get(self.pos..self.pos + len)?;
                            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return None;
                            }
                            self.pos += len;
                            char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
                        }
                        // `\e`, `\xHH` (TOML 1.1) and anything else: the `toml` crate decides.
                        _ => return None,
                    };
                    out.push(ch);
                    run = self.pos;
                }
                _ if is_control(byte) => return None,
                _ => self.pos += 1,
            }
        }
        let end = self.pos;
        self.pos += 1;
        Some(match owned {
            Some(mut out) => {
                out.push_str(self.text.get(run..end)?);
                let index = u32::try_from(self.owned.len()).ok()?;
                self.owned.push(out);
                self.push(start, self.pos, Tag::Owned, index, 0)
            }
            None => self.push(start, self.pos, Tag::Str, run as u32, end as u32),
        })
    }

    fn array(&mut self) -> Option<u32> {
        let start = self.pos;
        self.pos += 1;
        let array = self.push(start, start, Tag::Array, NONE, NONE);
        loop {
            self.skip_ws_comments_newlines()?;
            if self.peek()? == b']' {
                break;
            }
            let item = self.value()?;
            self.append(array, item);
            self.skip_ws_comments_newlines()?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.pos += 1;
        self.nodes[array as usize].end = self.pos as u32;
        Some(array)
    }

    /// `{ a = 1, b = 2 }` on one line, without a trailing comma.
    fn inline_table(&mut self) -> Option<u32> {
        let start = self.pos;
        self.pos += 1;
        let table = self.push(start, start, Tag::Table(TableKind::Inline), NONE, NONE);
        self.skip_ws();
        if self.peek()? != b'}' {
            loop {
                self.skip_ws();
                let (key, value) = self.keyval()?;
                self.insert(table, key, value)?;
                self.skip_ws();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.pos += 1;
        self.nodes[table as usize].end = self.pos as u32;
        Some(table)
    }
}

/// Why the arena did not deserialize; never shown (the `toml` crate's parse then reports).
#[derive(Debug)]
struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("declined")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Declined
    }
}

/// One node of the arena as a serde `Deserializer`, the way the `toml` crate's
/// `ValueDeserializer` reads its value (strings as enum variants, `Some` for a present key,
/// `Spanned` by `serde_spanned`'s protocol).
#[derive(Clone, Copy)]
struct De<'p, 'a> {
    doc: &'p Doc<'a>,
    id: u32,
}

impl<'a> De<'_, 'a> {
    fn node(&self) -> &Node {
        &self.doc.nodes[self.id as usize]
    }

    /// A `Str` node's text.
    fn text(&self, node: &Node) -> Result<&'a str, Declined> {
        self.doc
            .text
            .get(node.a as usize..node.b as usize)
            .ok_or(Declined)
    }

    fn owned(&self, node: &Node) -> Result<&str, Declined> {
        self.doc
            .owned
            .get(node.a as usize)
            .map(String::as_str)
            .ok_or(Declined)
    }
}

impl<'de> de::IntoDeserializer<'de, Declined> for De<'_, 'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for De<'_, 'de> {
    type Error = Declined;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        let node = self.node();
        match node.tag {
            Tag::Str => visitor.visit_borrowed_str(self.text(node)?),
            Tag::Owned => visitor.visit_str(self.owned(node)?),
            Tag::Int => visitor.visit_i64((u64::from(node.b) << 32 | u64::from(node.a)) as i64),
            Tag::Bool => visitor.visit_bool(node.a != 0),
            Tag::Array | Tag::ArrayOfTables => visitor.visit_seq(Seq {
                doc: self.doc,
                next: node.a,
            }),
            Tag::Table(_) => visitor.visit_map(Map {
                doc: self.doc,
                next: node.a,
                value: NONE,
            }),
        }
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Declined> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        if serde_spanned::de::is_spanned(name) {
            let node = self.node();
            let span = node.start as usize..node.end as usize;
            return visitor.visit_map(serde_spanned::de::SpannedDeserializer::new(self, span));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Declined> {
        let node = self.node();
        match node.tag {
            Tag::Str => visitor.visit_enum(self.text(node)?.into_deserializer()),
            Tag::Owned => visitor.visit_enum(self.owned(node)?.into_deserializer()),
            // A variant written as a table is left to the `toml` crate.
            _ => Err(Declined),
        }
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier
    }
}

/// An array's items, in order.
struct Seq<'p, 'a> {
    doc: &'p Doc<'a>,
    next: u32,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Declined;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Declined> {
        if self.next == NONE {
            return Ok(None);
        }
        let id = self.next;
        self.next = self.doc.nodes[id as usize].next;
        seed.deserialize(De { doc: self.doc, id }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.doc.from(self.next).count())
    }
}

/// A table's entries, in the order written.
struct Map<'p, 'a> {
    doc: &'p Doc<'a>,
    next: u32,
    value: u32,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = Declined;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Declined> {
        if self.next == NONE {
            return Ok(None);
        }
        let node = &self.doc.nodes[self.next as usize];
        self.value = self.next;
        self.next = node.next;
        seed.deserialize(BorrowedStrDeserializer::new(self.doc.key_of(node)))
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Declined> {
        if self.value == NONE {
            return Err(Declined);
        }
        let id = std::mem::replace(&mut self.value, NONE);
        seed.deserialize(De { doc: self.doc, id })
    }
}
