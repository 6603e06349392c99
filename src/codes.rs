//! `meshplan explain-code CODE`: each diagnostic code's entry of docs/diagnostics.md, built into
//! the binary, for people who installed meshplan and have no copy of the repository.

/// docs/diagnostics.md as it was when this binary was built.
const DIAGNOSTICS: &str = include_str!("../docs/diagnostics.md");

/// Every code that has an entry, in the document's order.
pub fn codes() -> impl Iterator<Item = &'static str> {
    DIAGNOSTICS
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .filter(|heading| heading.starts_with("meshplan::"))
}

/// `code` with the `meshplan::` prefix every code has.
pub fn full(code: &str) -> String {
    let code = code.trim();
    if code.starts_with("meshplan::") {
        code.to_owned()
    } else {
        format!("meshplan::{code}")
    }
}

/// The entry of `code` (with or without the `meshplan::` prefix): its heading and text up to
/// the next entry or section; `None` when no entry has that code.
pub fn entry(code: &str) -> Option<&'static str> {
    let heading = format!("### {}\n", full(code));
    let start = DIAGNOSTICS.find(&heading)?;
    let rest = &DIAGNOSTICS[start + heading.len()..];
    let end = ["\n### ", "\n## "]
        .iter()
        .filter_map(|next| rest.find(next))
        .min()
        .unwrap_or(rest.len());
    Some(&DIAGNOSTICS[start..start + heading.len() + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_ends_where_the_next_begins() {
        let text = entry("overlap::pod_cidr").unwrap_or_default();
        assert!(
            text.starts_with("### meshplan::overlap::pod_cidr\n"),
            "{text}"
        );
        assert!(
            !text.contains("### meshplan::overlap::service_cidr"),
            "{text}"
        );
        assert_eq!(entry("meshplan::overlap::pod_cidr"), Some(text));
        assert_eq!(entry("meshplan::overlap::nothing"), None);
        assert!(codes().count() > 100);
    }
}
