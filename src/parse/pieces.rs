//! A large plan parsed in pieces, on every core (issue 28).
//!
//! The `toml` crate lexes the whole document into one token list before it builds anything (78
//! MB for a 5.7 MB plan of 1,000 clusters), and parses on one core. A plan is mostly
//! `[[cluster]]` tables, each independent of the others, so the text is cut at the start of each
//! `[[cluster]]` header (a cluster's piece runs on through its `[cluster.*]` and
//! `[[cluster.*]]` sub-tables) and at the next header of another table. Each piece is parsed
//! alone by the `toml` crate, its spans are moved by the piece's offset (so every span is the
//! one a parse of the whole text gives), and the pieces' tables are joined into the document's.
//!
//! This is only a fast path: whenever a piece does not parse, or the pieces could not simply
//! be joined (a table other than `cluster` in two pieces, a `cluster` key outside the
//! clusters' pieces), or the joined document does not deserialize, the caller parses the
//! whole text as before, which gives the same result or the same error. A cut inside a
//! multi-line string or array leaves the piece before it unterminated, so it cannot parse.

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
    let parsed = crate::parallel::map_on_all_cores(&pieces, |(kind, range)| {
        let piece = text.get(range.clone())?;
        let table = DeTable::parse(piece).ok()?.into_inner();
        Some((*kind, shift_table(table, range.start)))
    });
    let mut root: DeTable<'_> = DeTable::new();
    let mut clusters: Option<Spanned<DeValue<'_>>> = None;
    for piece in parsed {
        let (kind, mut table) = piece?;
        match kind {
            Kind::Cluster => {
                // Exactly `cluster = [ { ... } ]`, from its `[[cluster]]` header.
                if table.len() != 1 {
                    return None;
                }
                let mut value = table.remove("cluster")?;
                let DeValue::Array(items) = value.get_mut() else {
                    return None;
                };
                if items.len() != 1 {
                    return None;
                }
                match clusters.as_mut().map(Spanned::get_mut) {
                    None => clusters = Some(value),
                    Some(DeValue::Array(all)) => {
                        let DeValue::Array(items) = value.into_inner() else {
                            return None;
                        };
                        for item in items {
                            all.push(item);
                        }
                    }
                    Some(_) => return None,
                }
            }
            Kind::Other => {
                for (key, value) in table {
                    if key.get_ref() == "cluster" || root.contains_key(key.get_ref().as_ref()) {
                        return None;
                    }
                    root.insert(key, value);
                }
            }
        }
    }
    let clusters = clusters?;
    // The key's span: where a whole-text parse puts it, the first `[[cluster]]` header's key.
    let key_span = first_cluster_key(text, &pieces)?;
    root.insert(
        Spanned::new(key_span, std::borrow::Cow::Borrowed("cluster")),
        clusters,
    );
    let document = Spanned::new(0..text.len(), root);
    serde::Deserialize::deserialize(toml::de::Deserializer::from(document)).ok()
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

/// The span of the key in the first `[[cluster]]` header.
fn first_cluster_key(text: &str, pieces: &[(Kind, Range<usize>)]) -> Option<Range<usize>> {
    let (_, range) = pieces.iter().find(|(kind, _)| *kind == Kind::Cluster)?;
    let piece = text.get(range.clone())?;
    let at = piece.find("cluster")?;
    Some(range.start + at..range.start + at + "cluster".len())
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
