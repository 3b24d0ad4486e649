//! The access file (`--access FILE.toml`): what each identity may do.
//!
//! ```toml
//! [roles]
//! analyzers = ["a*", "audit"] # identities that may connect as analyzers
//! emitters = ["app-*", "low-*"] # identities that may connect as emitters (absent: all)
//!
//! [emitters."low-*"]          # an exact identity, or a prefix ending in `*` ("*": all)
//! priorities = "128-255"      # a frame outside is dropped, counted as `forbidden`
//!
//! [analyzers.max_weights]     # the highest weight an identity may claim in its HELLO
//! "a*" = 10
//! "audit" = 100
//! ```
//!
//! Roles: without `roles.analyzers` every identity may be an analyzer, except when the
//! distributor requires client certificates (`--tls-client-ca`): then an access file
//! that names no analyzers lets none connect (default deny, said at start), so that an
//! emitter's certificate cannot take traffic as an analyzer. `[analyzers] allow = [...]`
//! is the older spelling of `roles.analyzers`. An emitter outside `roles.emitters` is
//! refused: with an EMITTER HELLO by a REJECT, else by closing its connection.
//!
//! The first emitter rule (and the first `max_weights` pattern) that matches, in file
//! order, wins; an emitter no rule matches may send every priority; an analyzer no
//! `max_weights` pattern matches is held to `--max-weight` alone. An identity is the client certificate's (first DNS
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Access {
    /// Emitter rules in file order.
    emitters: Vec<(Pattern, RangeInclusive<u8>)>,
    /// Identities that may be analyzers; `None`: every one.
    analyzers: Option<Vec<Pattern>>,
    /// Identities that may be emitters; `None`: every one.
    emitter_role: Option<Vec<Pattern>>,
    /// The highest weight by identity pattern, in file order.
    max_weights: Vec<(Pattern, f64)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    roles: RoleRules,
    /// Rules by identity pattern, in file order (the toml table keeps it).
    #[serde(default)]
    emitters: toml::Table,
    #[serde(default)]
    analyzers: AnalyzerRules,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleRules {
    /// Identity patterns allowed to connect as analyzers.
    analyzers: Option<Vec<String>>,
    /// Identity patterns allowed to connect as emitters.
    emitters: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyzerRules {
    /// The older spelling of `roles.analyzers`.
    allow: Option<Vec<String>>,
    /// The highest weight by identity pattern.
    #[serde(default)]
    max_weights: toml::Table,
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
        let patterns = |list: Option<Vec<String>>, rule: &str| match list {
            None => Ok(None),
            Some(list) => list
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
                .map_err(|e| rule_err(rule.into(), e)),
        };
        let analyzers = match (file.roles.analyzers, file.analyzers.allow) {
            (Some(_), Some(_)) => {
                return Err(rule_err(
                    "analyzers.allow".into(),
                    "roles.analyzers says the same; keep one of them".into(),
                ));
            }
            (Some(list), None) => patterns(Some(list), "roles.analyzers")?,
            (None, list) => patterns(list, "analyzers.allow")?,
        };
        let emitter_role = patterns(file.roles.emitters, "roles.emitters")?;
        let mut max_weights = Vec::with_capacity(file.analyzers.max_weights.len());
        for (name, value) in file.analyzers.max_weights {
            let rule = format!("analyzers.max_weights.{name:?}");
            let pattern = Pattern::parse(&name).map_err(|e| rule_err(rule.clone(), e))?;
            let max = match value {
                toml::Value::Integer(n) => n as f64,
                toml::Value::Float(x) => x,
                other => {
                    return Err(rule_err(
                        rule,
                        format!("expected a number, found {}", other.type_str()),
                    ));
                }
            };
            if !(max.is_finite() && max > 0.0) {
                return Err(rule_err(
                    rule,
                    format!("{max} is not a weight (finite, > 0)"),
                ));
            }
            max_weights.push((pattern, max));
        }
        Ok(Self {
            emitters,
            analyzers,
            emitter_role,
            max_weights,
        })
    }

    /// The rules for a distributor that requires client certificates: without
    /// `roles.analyzers`, no identity may be an analyzer (returns whether that applied).
    pub fn deny_unlisted_analyzers(&mut self) -> bool {
        if self.analyzers.is_some() {
            return false;
        }
        self.analyzers = Some(Vec::new());
        true
    }

    /// Whether `identity` may connect as an emitter.
    pub fn emitter_allowed(&self, identity: &str) -> bool {
        self.emitter_role
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|p| p.matches(identity)))
    }

    /// The highest weight `identity` may claim, if the file sets one.
    pub fn max_weight(&self, identity: &str) -> Option<f64> {
        self.max_weights
            .iter()
            .find(|(p, _)| p.matches(identity))
            .map(|(_, w)| *w)
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

    /// How many rules there are, for the log: emitter rules, analyzer patterns (`None`:
    /// everyone), emitter role patterns (`None`: everyone), weight limits.
    pub fn rules(&self) -> (usize, Option<usize>, Option<usize>, usize) {
        (
            self.emitters.len(),
            self.analyzers.as_ref().map(Vec::len),
            self.emitter_role.as_ref().map(Vec::len),
            self.max_weights.len(),
        )
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
    fn roles_and_weights_bind_identities() {
        let mut a = parse(
            r#"
            [roles]
            analyzers = ["sink-*"]
            emitters = ["app-*", "low-1"]
            [analyzers.max_weights]
            "sink-big" = 100
            "sink-*" = 2.5
            "#,
        )
        .unwrap();
        assert!(a.analyzer_allowed("sink-1") && !a.analyzer_allowed("app-1"));
        assert!(a.emitter_allowed("app-7") && a.emitter_allowed("low-1"));
        assert!(!a.emitter_allowed("sink-1") && !a.emitter_allowed(""));
        assert_eq!(a.max_weight("sink-big"), Some(100.0));
        assert_eq!(a.max_weight("sink-1"), Some(2.5));
        assert_eq!(a.max_weight("other"), None);
        assert!(!a.deny_unlisted_analyzers(), "the file names analyzers");
        // No analyzers named: everyone, unless client certificates are required.
        let mut open = parse("[roles]\nemitters = [\"*\"]\n").unwrap();
        assert!(open.analyzer_allowed("app-1") && open.emitter_allowed(""));
        assert!(open.deny_unlisted_analyzers());
        assert!(!open.analyzer_allowed("app-1") && !open.analyzer_allowed("a1"));
    }

    #[test]
    fn the_example_access_file_says_what_it_means() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/access.toml");
        let a = Access::load(&path).unwrap();
        assert!(a.analyzer_allowed("analyzer-1") && !a.analyzer_allowed("app-1"));
        assert!(a.emitter_allowed("app-1") && !a.emitter_allowed("analyzer-1"));
        assert_eq!(a.max_weight("analyzer-archive"), Some(20.0));
        assert_eq!(a.max_weight("analyzer-1"), Some(10.0));
        assert_eq!(a.priorities("batch-7"), 128..=255);
        assert_eq!(a.priorities("app-1"), 0..=255);
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
            ("[roles]\nemitters = [\"a*b\"]", "roles.emitters"),
            (
                "[roles]\nanalyzers = [\"a\"]\n[analyzers]\nallow = [\"a\"]",
                "keep one of them",
            ),
            (
                "[analyzers.max_weights]\na = \"high\"",
                "analyzers.max_weights.\"a\": expected a number, found string",
            ),
            ("[analyzers.max_weights]\na = 0", "0 is not a weight"),
            ("[roles]\nanalyser = []", "unknown field `analyser`"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains("access.toml"), "{e}");
        }
    }
}
