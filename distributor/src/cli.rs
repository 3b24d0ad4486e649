//! The command line: every setting of [`Config`] as a flag, over an optional `--config`
//! file; and the README's table of flags, rendered from the same definitions.

use crate::config::{Config, ConfigError};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _, Parser};
use std::path::PathBuf;

/// High-throughput log distributor: routes LOG frames from emitters to weighted analyzers
/// with 256 strict priority levels (wire protocol: PROTOCOL.md).
///
/// Settings come from the flags, then `--config FILE.toml` (same names), then defaults.
/// Logging: RUST_LOG (default info), to stderr. Exit codes: 0 after a clean stop, 1 when it
/// cannot run (a port in use, a journal locked by another distributor), 2 for bad usage
/// or settings, 74 when the journal's fdatasync failed.
#[derive(Debug, Parser)]
#[command(name = "distributor", version = runner::VERSION)]
pub struct Cli {
    /// A TOML file with any of these settings (keys as the flags, with `-` or `_`); flags
    /// given on the command line win over it.
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Pin an analyzer's weight; wins over its HELLO (repeatable; in a file, a `[weights]`
    /// table of id = weight).
    #[arg(long = "weight", value_name = "ID=W", value_parser = crate::config::parse_weight)]
    pub weights: Vec<(String, f64)>,
    /// The settings.
    #[command(flatten)]
    pub settings: Config,
}

impl Cli {
    /// Parses a command line (the program name first) into the flags and the matches that
    /// say which were given.
    pub fn parse_from_args<I, T>(args: I) -> Result<(Self, ArgMatches), clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let cli = Self::from_arg_matches(&matches)?;
        Ok((cli, matches))
    }

    /// The settings: the file's (or the defaults) with every flag given on the command
    /// line on top, checked.
    pub fn into_config(self, matches: &ArgMatches) -> Result<Config, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => overlay(Config::from_file(path)?, &self.settings, matches)?,
            None => self.settings,
        };
        cfg.weights.extend(self.weights);
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `file` with the settings given on the command line (`matches` says which) taken from
/// `flags`.
fn overlay(file: Config, flags: &Config, matches: &ArgMatches) -> Result<Config, ConfigError> {
    let table = |c: &Config| {
        toml::Table::try_from(c).map_err(|e| ConfigError::Invalid {
            field: "config",
            reason: e.to_string(),
        })
    };
    let (mut out, given) = (table(&file)?, table(flags)?);
    for id in matches.ids() {
        if matches.value_source(id.as_str()) != Some(ValueSource::CommandLine) {
            continue;
        }
        let key = id.as_str().replace('_', "-");
        let Some(value) = given.get(&key) else {
            continue;
        };
        out.insert(key, value.clone());
    }
    out.try_into().map_err(|error| ConfigError::Parse {
        path: PathBuf::new(),
        error,
    })
}

/// The README's table of flags: one row per flag, its values and default, and its help
/// text (the doc comment of its setting).
pub fn flags_table() -> String {
    let cmd = Cli::command();
    let mut out = String::from("| flag | default | meaning |\n|---|---|---|\n");
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_owned())
            .collect();
        let shown = if values.is_empty() {
            arg.get_value_names()
                .map(|n| n.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        } else {
            values.join("\\|")
        };
        let flag = if shown.is_empty() {
            format!("`--{long}`")
        } else {
            format!("`--{long} {shown}`")
        };
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "| {flag} | {default} | {} |\n",
            help.replace('|', "\\|")
        ));
    }
    out
}

/// Binds, runs until SIGTERM or SIGINT (or the harness going away), drains.
pub async fn main(config: Config) -> Result<(), crate::RunError> {
    // Before anything says the distributor is ready.
    let stop = runner::stop_signal();
    let listeners = crate::Listeners::bind(&config).await?;
    crate::run(config, listeners, stop).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- distributor flags: generated from --help by `BLESS=1 cargo test -p distributor flags_table` -->\n";
    const END: &str = "<!-- end of distributor flags -->\n";

    #[test]
    fn the_readme_flags_table_is_the_help() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let start = readme
            .find(BEGIN)
            .expect("the README has the flags table's markers")
            + BEGIN.len();
        let end = start + readme[start..].find(END).expect("the table's end marker");
        let table = flags_table();
        if std::env::var_os("BLESS").is_some() {
            let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        let differs = readme[start..end]
            .lines()
            .zip(table.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("README: {a}\n --help: {b}"));
        assert!(
            readme[start..end] == table,
            "the README's distributor flags differ from --help (run `BLESS=1 cargo test --release -p distributor flags_table`):\n{}",
            differs.unwrap_or_else(|| "a row more or less".to_owned())
        );
    }

    #[test]
    fn flags_win_over_the_file_and_weights_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.toml");
        std::fs::write(
            &file,
            "queue-capacity = 7\nrouting = \"smooth\"\nhang_timeout = 2.5\n[weights]\na = 1.0\n",
        )
        .unwrap();
        let (cli, m) = Cli::parse_from_args([
            "distributor",
            "--config",
            file.to_str().unwrap(),
            "--queue-capacity",
            "9",
            "--weight",
            "b=2",
        ])
        .unwrap();
        let cfg = cli.into_config(&m).unwrap();
        assert_eq!(cfg.queue_capacity, 9, "the flag wins");
        assert_eq!(
            cfg.routing,
            runfolder::Routing::Smooth,
            "the file over the default"
        );
        assert_eq!(cfg.hang_timeout, std::time::Duration::from_millis(2500));
        let ids: Vec<&str> = cfg.weights.keys().map(String::as_str).collect();
        assert_eq!(ids, ["a", "b"]);
        // Without a file, the defaults are the declared ones.
        let (cli, m) = Cli::parse_from_args(["distributor"]).unwrap();
        assert_eq!(cli.into_config(&m).unwrap(), Config::default());
    }

    #[test]
    fn an_unknown_key_is_named_once_with_the_nearest_one() {
        let err = Config::from_toml("queue_capacty = 3\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "unknown setting `queue_capacty` (did you mean `queue-capacity`?)"
        );
        let err = Config::from_toml("colour = 3\n").unwrap_err().to_string();
        assert!(err.ends_with("unknown setting `colour`"), "{err}");
    }
}
