//! The access file (`--access FILE.toml`): what each identity may do.
//!
//! ```toml
//! [emitters."low-*"]          # an exact identity, or a prefix ending in `*` ("*": all)
//! priorities = "128-255"      # a frame outside is dropped, counted as `forbidden`
//!
//! [analyzers]
//! allow = ["a*", "audit"]     # identities that may connect as analyzers (absent: all)
//! ```
//!
//! The first emitter rule whose pattern matches, in file order, wins; an emitter no rule
//! matches may send every priority. An identity is the client certificate's (first DNS
//! name, else common name) over mutual TLS; without it, the id the peer claims (an EMITTER
//! HELLO's, a HELLO's), or the empty name for a plain emitter, which only `"*"` matches.
//! The file is read at start and again on SIGHUP; a bad file is refused whole, naming the
//! rule and the problem, and the rules in force stay.

use serde::Deserialize;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Why an access file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file could not be read.
    #[error("cannot read access file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML for these rules.
    #[error("access file {}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with where.
        error: toml::de::Error,
    },
    /// A rule that cannot be used.
    #[error("access file {}: {rule}: {reason}", path.display())]
    Rule {
        /// The file.
        path: PathBuf,
        /// Which rule (`emitters."low-*"`, `analyzers.allow`).
        rule: String,
        /// Why.
        reason: String,
    },
}

/// An identity pattern: an exact name, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// This name only.
    Exact(String),
    /// Every name that starts with this (`"*"`: every name).
    Prefix(String),
}

impl Pattern {
    /// Parses `"name"` or `"prefix*"`; a `*` anywhere else is refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (body, prefix) = match s.strip_suffix('*') {
            Some(body) => (body, true),
            None => (s, false),
        };
        if body.contains('*') {
            return Err(format!(
                "pattern {s:?}: `*` may only end a pattern (a prefix)"
            ));
        }
        if !prefix && body.is_empty() {
            return Err("an empty pattern matches nothing; use \"*\" for every identity".into());
        }
        Ok(if prefix {
            Pattern::Prefix(body.to_owned())
        } else {
            Pattern::Exact(body.to_owned())
        })
    }

    /// Whether `identity` matches.
    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Pattern::Exact(name) => name == identity,
            Pattern::Prefix(p) => identity.starts_with(p.as_str()),
        }
    }
}

/// The rules in force.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    /// Emitter rules in file order.
    emitters: Vec<(Pattern, RangeInclusive<u8>)>,
    /// Identities that may be analyzers; `None`: every one.
    analyzers: Option<Vec<Pattern>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Rules by identity pattern, in file order (the toml table keeps it).
    #[serde(default)]
    emitters: toml::Table,
    #[serde(default)]
    analyzers: AnalyzerRules,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyzerRules {
    /// Identity patterns allowed to connect as analyzers.
    allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitterRule {
    /// `"A-B"` or `"N"`.
    priorities: String,
}

pub use runfolder::profile::parse_priorities;

impl Access {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Self, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|error| AccessError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Checks the text of a file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, AccessError> {
        let file: File = toml::from_str(text).map_err(|error| AccessError::Parse {
            path: path.to_owned(),
            error,
        })?;
        let rule_err = |rule: String, reason: String| AccessError::Rule {
            path: path.to_owned(),
            rule,
            reason,
        };
        let mut emitters = Vec::with_capacity(file.emitters.len());
        for (name, value) in file.emitters {
            let rule = format!("emitters.{name:?}");
            let pattern = Pattern::parse(&name).map_err(|e| rule_err(rule.clone(), e))?;
            let r: EmitterRule = value
                .try_into()
                .map_err(|e: toml::de::Error| rule_err(rule.clone(), e.message().to_owned()))?;
            let range = parse_priorities(&r.priorities).map_err(|e| rule_err(rule, e))?;
            emitters.push((pattern, range));
        }
        let analyzers = match file.analyzers.allow {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|p| Pattern::parse(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| rule_err("analyzers.allow".into(), e))?,
            ),
        };
        Ok(Self {
            emitters,
            analyzers,
        })
    }

    /// The priorities `identity` may send: the first matching rule's, else all.
    pub fn priorities(&self, identity: &str) -> RangeInclusive<u8> {
        self.emitters
            .iter()
            .find(|(p, _)| p.matches(identity))
            .map_or(0..=u8::MAX, |(_, r)| r.clone())
    }

    /// Whether `identity` may connect as an analyzer.
    pub fn analyzer_allowed(&self, identity: &str) -> bool {
        self.analyzers
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|p| p.matches(identity)))
    }

    /// How many rules there are, for the log.
    pub fn rules(&self) -> (usize, Option<usize>) {
        (self.emitters.len(), self.analyzers.as_ref().map(Vec::len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Access, AccessError> {
        Access::parse(text, Path::new("access.toml"))
    }

    #[test]
    fn the_first_matching_rule_in_file_order_wins() {
        let a = parse(
            r#"
            [emitters."low-special"]
            priorities = "0-255"
            [emitters."low-*"]
            priorities = "128-255"
            [emitters.single]
            priorities = "7"
            [analyzers]
            allow = ["a*", "audit"]
            "#,
        )
        .unwrap();
        assert_eq!(a.priorities("low-special"), 0..=255);
        assert_eq!(a.priorities("low-1"), 128..=255);
        assert_eq!(a.priorities("single"), 7..=7);
        assert_eq!(a.priorities("other"), 0..=255, "no rule: every priority");
        assert!(a.analyzer_allowed("a1") && a.analyzer_allowed("audit"));
        assert!(!a.analyzer_allowed("b") && !a.analyzer_allowed("the-audit"));
        assert!(Access::default().analyzer_allowed("anyone"));
    }

    #[test]
    fn a_star_rule_matches_the_empty_name_of_a_plain_emitter() {
        let a = parse("[emitters.\"*\"]\npriorities = \"100-200\"\n").unwrap();
        assert_eq!(a.priorities(""), 100..=200);
    }

    #[test]
    fn bad_rules_name_the_rule_and_the_problem() {
        let cases = [
            ("[emitters.\"a*b\"]\npriorities = \"1\"", "emitters.\"a*b\""),
            ("[emitters.x]\npriorities = \"9-3\"", "9 is above 3"),
            (
                "[emitters.x]\npriorities = \"300\"",
                "\"300\" is not a priority",
            ),
            ("[emitters.x]\nprio = \"1\"", "unknown field `prio`"),
            ("[analyzers]\nallow = [\"\"]", "analyzers.allow"),
            ("[analysers]\nallow = []", "unknown field `analysers`"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains("access.toml"), "{e}");
        }
    }
}
