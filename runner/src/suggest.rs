//! "Did you mean ...?" for names a person typed: a setting, a flag value, a profile.

/// The candidate nearest to `typed`, when it is near enough to be what was meant: at most
/// a third of its length (at least 1, at most 3 edits) away, case and `-`/`_` aside.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_lowercase().replace('_', "-");
    let t = norm(typed);
    let limit = (t.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&t, &norm(c)), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested_and_far_ones_are_not() {
        let keys = ["queue-capacity", "max-queued-bytes", "routing"];
        assert_eq!(closest("queue_capacty", keys), Some("queue-capacity"));
        assert_eq!(closest("ROUTING", keys), Some("routing"));
        assert_eq!(closest("routng", keys), Some("routing"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("x", keys), None);
    }
}
