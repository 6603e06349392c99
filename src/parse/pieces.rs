//! A large plan parsed in pieces, on every core (issue 28).
//!
//! The `toml` crate lexes the whole document into one token list before it builds anything (78
//! MB for a 5.7 MB plan of 1,000 clusters), and parses on one core. A plan is mostly
//! `[[cluster]]` tables, each independent of the others, so the text is cut at the start of each
//! `[[cluster]]` header (a cluster's piece runs on through its `[cluster.*]` and
//! `[[cluster.*]]` sub-tables) and at the next header of another table. Each piece is parsed
//! alone by the `toml` crate and its spans are moved by the piece's offset (so every span is the
//! one a parse of the whole text gives); a cluster's piece is deserialized into its
//! `raw::Cluster` right there, and the other pieces' tables are joined into the rest of the
//! document, deserialized without clusters, which the pieces' clusters then fill in.
//!
//! This is only a fast path: whenever a piece does not parse or deserialize, or the pieces
//! could not simply be joined (a table other than `cluster` in two pieces, a `cluster` key
//! outside the clusters' pieces), the caller parses the whole text as before, which gives the
//! same result or the same error. A cut inside a multi-line string or array leaves the piece
//! before it unterminated, so it cannot parse. `tests/parse_pieces.rs` compares both parses,
//! spans included, on every plan and fixture.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::raw;

/// Fewer clusters than this are parsed in one piece: cutting costs more than it saves.
const MIN_CLUSTERS: usize = 64;

/// What a piece of the text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One `[[cluster]]` with its sub-tables.
    Cluster,
    /// Anything else: the root keys and other tables.
    Other,
}

/// The plan, when its pieces parse and join; `None` sends the caller to the whole-text parse.
pub fn parse(text: &str) -> Option<raw::Plan> {
    parse_from(text, MIN_CLUSTERS)
}

/// [`parse`] of a plan with at least `min_clusters` `[[cluster]]` headers (tests cut small
/// plans too).
pub fn parse_from(text: &str, min_clusters: usize) -> Option<raw::Plan> {
    let pieces = cut(text, min_clusters)?;
    // Each cluster's piece becomes its `raw::Cluster` on the thread that parsed it, so only a
    // few pieces' TOML trees exist at once (a whole plan's tree is ~60 MB at 1,000 clusters).
    let parsed = crate::parallel::map_on_all_cores(&pieces, |(kind, range)| {
        let piece = text.get(range.clone())?;
        let table = shift_table(DeTable::parse(piece).ok()?.into_inner(), range.start);
        match kind {
            Kind::Cluster => {
                let document = Spanned::new(range.clone(), table);
                let one: OneCluster =
                    serde::Deserialize::deserialize(toml::de::Deserializer::from(document)).ok()?;
                let [cluster] = <[_; 1]>::try_from(one.cluster).ok()?;
                Some(Piece::Cluster(Box::new(cluster)))
            }
            Kind::Other => Some(Piece::Other(table)),
        }
    });
    let mut root: DeTable<'_> = DeTable::new();
    let mut clusters = Vec::new();
    for piece in parsed {
        match piece? {
            Piece::Cluster(cluster) => clusters.push(*cluster),
            Piece::Other(table) => {
                for (key, value) in table {
                    if key.get_ref() == "cluster" || root.contains_key(key.get_ref().as_ref()) {
                        return None;
                    }
                    root.insert(key, value);
                }
            }
        }
    }
    // `cluster` is left out of the rest (it defaults to none) and filled in from the pieces.
    let document = Spanned::new(0..text.len(), root);
    let mut plan: raw::Plan =
        serde::Deserialize::deserialize(toml::de::Deserializer::from(document)).ok()?;
    plan.cluster = clusters;
    Some(plan)
}

/// A cluster's piece: `[[cluster]]` and its sub-tables, and nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OneCluster {
    cluster: Vec<Spanned<raw::Cluster>>,
}

/// A piece, parsed.
enum Piece<'i> {
    /// One cluster (boxed: a `raw::Cluster` is over a kilobyte).
    Cluster(Box<Spanned<raw::Cluster>>),
    /// The tables of the rest, to join.
    Other(DeTable<'i>),
}

/// The pieces: `None` when the plan is small or has no `[[cluster]]` header to cut at.
fn cut(text: &str, min_clusters: usize) -> Option<Vec<(Kind, Range<usize>)>> {
    let mut pieces: Vec<(Kind, Range<usize>)> = Vec::new();
    let mut start = 0;
    let mut kind = Kind::Other;
    let mut clusters = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let at = offset;
        offset += line.len();
        let Some(header) = header_key(line) else {
            continue;
        };
        let next = match header {
            Header::NewCluster => Kind::Cluster,
            Header::ClusterPart => kind,
            Header::Other => Kind::Other,
        };
        if header == Header::NewCluster {
            clusters += 1;
        }
        // A new piece at every `[[cluster]]`, and where a cluster's piece meets another table.
        if (header == Header::NewCluster || next != kind) && at > start {
            pieces.push((kind, start..at));
            start = at;
        }
        kind = next;
    }
    if start < text.len() || pieces.is_empty() {
        pieces.push((kind, start..text.len()));
    }
    (clusters >= min_clusters.max(1)).then_some(pieces)
}

/// What a header line opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// `[[cluster]]`.
    NewCluster,
    /// `[cluster.x]`, `[[cluster.x]]`, `[cluster]`: part of the cluster before it.
    ClusterPart,
    /// Any other header, or one this scan does not read (quoted keys).
    Other,
}

/// The header a line starts, if it starts with `[`. Not every such line is a header (it may be
/// inside a multi-line string or array); see the module's comment for why that is safe.
fn header_key(line: &str) -> Option<Header> {
    let rest = line.trim_start_matches([' ', '\t']).strip_prefix('[')?;
    let (array, rest) = match rest.strip_prefix('[') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let key_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    if &rest[..key_len] != "cluster" {
        return Some(Header::Other);
    }
    let after = rest[key_len..].trim_start_matches([' ', '\t']);
    if after.starts_with('.') {
        return Some(Header::ClusterPart);
    }
    if array && after.starts_with("]]") {
        return Some(Header::NewCluster);
    }
    Some(Header::ClusterPart)
}

fn shift(range: Range<usize>, by: usize) -> Range<usize> {
    range.start + by..range.end + by
}

fn shift_table(table: DeTable<'_>, by: usize) -> DeTable<'_> {
    let mut out = DeTable::new();
    for (key, value) in table {
        let key = Spanned::new(shift(key.span(), by), key.into_inner());
        out.insert(key, shift_value(value, by));
    }
    out
}

fn shift_value(value: Spanned<DeValue<'_>>, by: usize) -> Spanned<DeValue<'_>> {
    let span = shift(value.span(), by);
    let value = match value.into_inner() {
        DeValue::Array(mut items) => {
            // In place: the array keeps whether it was written as `[[...]]`.
            for item in items.iter_mut() {
                let taken = std::mem::replace(item, Spanned::new(0..0, DeValue::Boolean(false)));
                *item = shift_value(taken, by);
            }
            DeValue::Array(items)
        }
        DeValue::Table(table) => DeValue::Table(shift_table(table, by)),
        other => other,
    };
    Spanned::new(span, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_as_the_cut_needs() {
        assert_eq!(header_key("[[cluster]]\n"), Some(Header::NewCluster));
        assert_eq!(
            header_key("  [[ cluster ]] # c\n"),
            Some(Header::NewCluster)
        );
        assert_eq!(header_key("[cluster.lb]\n"), Some(Header::ClusterPart));
        assert_eq!(header_key("[[cluster.node]]\n"), Some(Header::ClusterPart));
        assert_eq!(header_key("[[clusters]]\n"), Some(Header::Other));
        assert_eq!(header_key("[\"cluster\"]\n"), Some(Header::Other));
        assert_eq!(header_key("[mesh]\n"), Some(Header::Other));
        assert_eq!(header_key("id = 1\n"), None);
    }
}
