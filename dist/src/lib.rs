//! Man pages and shell completions for every binary of the workspace, written from the same
//! clap definitions that parse their command lines, so they cannot drift from `--help`.
//!
//! # Layout of what [`write()`] makes
//!
//! ```text
//! OUT/man/man1/NAME.1             one page per binary (roff), and NAME-SUB.1 per subcommand
//! OUT/completions/bash/NAME       bash-completion (/usr/share/bash-completion/completions/)
//! OUT/completions/zsh/_NAME       zsh (/usr/share/zsh/vendor-completions/)
//! OUT/completions/fish/NAME.fish  fish (/usr/share/fish/vendor_completions.d/)
//! ```
//!
//! The Debian package (`deploy/debian/`) installs the distributor's; README "Install" says
//! where each goes for an installation by hand.

use clap_complete::Shell;
use clap_mangen::roff::{Roff, bold, roman};
use std::fs;
use std::path::{Path, PathBuf};

/// A binary of the workspace: its name and its clap command.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// The executable's name (also the man page's and the completions').
    pub name: &'static str,
    /// Its command line, as the binary itself parses it.
    pub command: fn() -> clap::Command,
    /// What the man page adds under FILES, as (path, what it is).
    pub files: &'static [(&'static str, &'static str)],
}

/// Every binary the workspace ships.
pub const BINARIES: [Binary; 5] = [
    Binary {
        name: "distributor",
        command: command::<distributor::cli::Cli>,
        files: &[
            (
                "/etc/log-distributor/distributor.toml",
                "the configuration the systemd unit passes with --config (Debian package)",
            ),
            (
                "/etc/log-distributor/tls/",
                "certificates and keys, root:log-distributor, keys 0640",
            ),
            (
                "/var/lib/log-distributor/journal/",
                "the journal (--data-dir in that configuration)",
            ),
            (
                "/usr/lib/systemd/system/log-distributor.service",
                "the systemd unit",
            ),
        ],
    },
    Binary {
        name: "loadgen",
        command: command::<loadgen::Config>,
        files: &[],
    },
    Binary {
        name: "analyzer-sink",
        command: command::<analyzer_sink::Config>,
        files: &[],
    },
    Binary {
        name: "report",
        command: command::<report::cli::Cli>,
        files: &[],
    },
    Binary {
        name: "harness",
        command: command::<harness::cli::Cli>,
        files: &[],
    },
];

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

fn command<T: clap::CommandFactory>() -> clap::Command {
    T::command()
}

/// What can go wrong writing the files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--only` named no binary of the workspace.
    #[error("no binary named {name:?} (the workspace's: {})", names().join(", "))]
    Unknown {
        /// The name given.
        name: String,
    },
}

fn names() -> Vec<&'static str> {
    BINARIES.iter().map(|b| b.name).collect()
}

/// The binaries named (all when `only` is empty), in the workspace's order.
pub fn select(only: &[String]) -> Result<Vec<Binary>, Error> {
    if let Some(name) = only.iter().find(|n| !names().contains(&n.as_str())) {
        return Err(Error::Unknown { name: name.clone() });
    }
    Ok(BINARIES
        .into_iter()
        .filter(|b| only.is_empty() || only.iter().any(|n| n == b.name))
        .collect())
}

/// Writes the man pages and completions of `binaries` under `out` (layout above); returns
/// the files written.
pub fn write(out: &Path, binaries: &[Binary]) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for binary in binaries {
        written.extend(write_man(out, binary)?);
        written.extend(write_completions(out, binary)?);
    }
    Ok(written)
}

/// The page of a binary and one per (visible) subcommand.
fn write_man(out: &Path, binary: &Binary) -> Result<Vec<PathBuf>, Error> {
    let dir = out.join("man").join("man1");
    create_dir(&dir)?;
    let mut cmd = (binary.command)()
        .name(binary.name)
        .disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    for sub in &subcommands {
        let name = format!("{}-{}", binary.name, sub.get_name());
        let path = dir.join(format!("{name}.1"));
        let bytes = page(sub.clone(), &name, binary.name, &[], &[]).map_err(write_err(&path))?;
        pages.push(put(&path, &bytes)?);
    }
    let sub_pages: Vec<String> = subcommands
        .iter()
        .map(|s| format!("{}-{}", binary.name, s.get_name()))
        .collect();
    let path = dir.join(format!("{}.1", binary.name));
    let bytes =
        page(cmd, binary.name, binary.name, &sub_pages, binary.files).map_err(write_err(&path))?;
    pages.push(put(&path, &bytes)?);
    Ok(pages)
}

/// One man page: clap_mangen's sections, then FILES and SEE ALSO.
fn page(
    cmd: clap::Command,
    title: &str,
    binary: &str,
    sub_pages: &[String],
    files: &[(&str, &str)],
) -> std::io::Result<Vec<u8>> {
    let version = cmd.get_version().unwrap_or(runner::VERSION).to_owned();
    let man = clap_mangen::Man::new(cmd)
        .title(title.to_uppercase())
        .source(format!("log-distributor {version}"))
        .manual("log-distributor");
    let mut bytes = Vec::new();
    man.render(&mut bytes)?;
    let mut roff = Roff::new();
    if !files.is_empty() {
        roff.control("SH", ["FILES"]);
        for (path, what) in files {
            roff.control("TP", [] as [&str; 0]);
            roff.text([bold(*path)]);
            roff.text([roman(*what)]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = sub_pages.to_vec();
    if title != binary {
        see.push(binary.to_owned());
    }
    see.extend(
        names()
            .into_iter()
            .filter(|n| *n != binary)
            .map(str::to_owned),
    );
    let mut line = Vec::new();
    for (i, name) in see.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name.clone()));
        line.push(roman("(1)"));
    }
    roff.text(line);
    roff.to_writer(&mut bytes)?;
    Ok(bytes)
}

fn write_completions(out: &Path, binary: &Binary) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for shell in SHELLS {
        let dir = out.join("completions").join(shell.to_string());
        create_dir(&dir)?;
        let file = match shell {
            Shell::Zsh => format!("_{}", binary.name),
            Shell::Fish => format!("{}.fish", binary.name),
            _ => binary.name.to_owned(),
        };
        let mut cmd = (binary.command)().name(binary.name);
        let mut bytes = Vec::new();
        clap_complete::generate(shell, &mut cmd, binary.name, &mut bytes);
        files.push(put(&dir.join(file), &bytes)?);
    }
    Ok(files)
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(write_err(dir))
}

fn put(path: &Path, bytes: &[u8]) -> Result<PathBuf, Error> {
    fs::write(path, bytes).map_err(write_err(path))?;
    Ok(path.to_owned())
}
