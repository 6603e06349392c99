//! "Did you mean" suggestions for misspelt keys, names and values.

/// The candidate closest to `given`, if any is close enough to be a likely typo.
pub fn nearest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn picks_the_closest_likely_typo() {
        assert_eq!(
            nearest("eastwst", ["istiod", "eastwest", "ingress"]),
            Some("eastwest")
        );
        assert_eq!(
            nearest("network-c3", ["network-c1", "mesh"]),
            Some("network-c1")
        );
    }

    #[test]
    fn offers_nothing_for_unrelated_words() {
        assert_eq!(nearest("zzz", ["istiod", "eastwest"]), None);
    }
}
