//! Typed CSV files: a [`Table`] is a serde row type whose field names are its columns.
//! [`TableWriter`] always writes the header (also for a file with no rows) and appends to a
//! file that already has the same header; [`TableReader`] checks the header against the
//! type first, so a missing column is an error naming the file and the column, and a bad
//! value names the file, the line and the column.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// A row type of one CSV file.
pub trait Table: Serialize + DeserializeOwned {
    /// The columns, in order: exactly the serde field names (the `table!` macro makes
    /// them from the fields, and a test per type checks them against serde's header).
    const COLUMNS: &'static [&'static str];
    /// Columns added after files of this type were first written: a file from before may
    /// lack them, and their fields (`#[serde(default)]`) then read as their default.
    const ADDED: &'static [&'static str] = &[];
}

/// Defines a [`Table`]: a struct whose field names are its columns.
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
        $(added = [$($added:literal),*];)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::table::Table for $name {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),*];
            $(const ADDED: &'static [&'static str] = &[$($added),*];)?
        }
    };
}
pub(crate) use table;

/// A run-folder file that cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A column the row type needs is not in the header.
    #[error("{}: missing column {column:?}", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
    },
    /// An empty file, or one cut before the end of its header line.
    #[error("{}: no header line (the file is empty or was cut short)", path.display())]
    NoHeader {
        /// The file.
        path: PathBuf,
    },
    /// A file to append to has another header.
    #[error("{}: has the columns {found:?}, expected {expected:?}; move it away or use another folder", path.display())]
    OtherColumns {
        /// The file.
        path: PathBuf,
        /// Its header.
        found: String,
        /// The header of the row type.
        expected: String,
    },
    /// A row that does not fit the row type.
    #[error("{}:{line}: {}{message}", path.display(), column.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line (the header is line 1).
        line: u64,
        /// The column, when the CSV reader knows it.
        column: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A JSON file that could not be written or read.
    #[error("{}: {error}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The error.
        error: serde_json::Error,
    },
}

impl Error {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        move |error| Error::Io {
            path: path.to_owned(),
            error,
        }
    }

    fn csv(path: &Path, header: &[String]) -> impl Fn(csv::Error) -> Error {
        let path = path.to_owned();
        let header = header.to_vec();
        move |e| {
            let line = e.position().map_or(0, csv::Position::line);
            let (column, message) = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => (
                    err.field().and_then(|i| header.get(i as usize).cloned()),
                    err.kind().to_string(),
                ),
                csv::ErrorKind::Io(io) => (None, io.to_string()),
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => (
                    None,
                    format!("{len} fields where the header has {expected_len}"),
                ),
                other => (None, format!("{other:?}")),
            };
            Error::Row {
                path: path.clone(),
                line,
                column,
                message,
            }
        }
    }
}

/// The header line of `T`.
pub fn header<T: Table>() -> String {
    T::COLUMNS.join(",")
}

/// Writes rows of `T` to a CSV file.
#[derive(Debug)]
pub struct TableWriter<T: Table> {
    path: PathBuf,
    out: csv::Writer<File>,
    rows: PhantomData<T>,
}

impl<T: Table> TableWriter<T> {
    /// Creates (or truncates) `path` and writes the header through to the file, so the
    /// file is a valid table from the start, even if no row ever comes.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(Error::io(path))?;
        let mut w = Self::over(path, file);
        w.header()?;
        w.flush()?;
        Ok(w)
    }

    /// Opens `path` to add rows: creates it with the header when it is missing or empty,
    /// refuses it when its header differs, and cuts off a partial last line (left by a
    /// writer that was killed mid-row; such a row was never acknowledged to anyone).
    /// Returns the writer and how many bytes were cut.
    pub fn append(path: &Path) -> Result<(Self, u64), Error> {
        let io = Error::io(path);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(&io)?;
        let len = file.metadata().map_err(&io)?.len();
        if len == 0 {
            let mut w = Self::over(path, file);
            w.header()?;
            w.flush()?;
            return Ok((w, 0));
        }
        let expected = header::<T>();
        let mut head = vec![0u8; expected.len() + 1];
        let n = file.read(&mut head).map_err(&io)?;
        let found = String::from_utf8_lossy(&head[..n]);
        let found = found.split('\n').next().unwrap_or_default();
        if found != expected {
            return Err(Error::OtherColumns {
                path: path.to_owned(),
                found: found.to_owned(),
                expected,
            });
        }
        let keep = whole_lines_len(&mut file, len).map_err(&io)?;
        if keep < len {
            file.set_len(keep).map_err(&io)?;
        }
        Ok((Self::over(path, file), len - keep))
    }

    fn over(path: &Path, file: File) -> Self {
        let out = csv::WriterBuilder::new()
            .has_headers(false)
            .buffer_capacity(1 << 16)
            .from_writer(file);
        Self {
            path: path.to_owned(),
            out,
            rows: PhantomData,
        }
    }

    fn header(&mut self) -> Result<(), Error> {
        self.out
            .write_record(T::COLUMNS)
            .map_err(Error::csv(&self.path, &[]))
    }

    /// Writes one row (buffered).
    pub fn write(&mut self, row: &T) -> Result<(), Error> {
        self.out.serialize(row).map_err(Error::csv(&self.path, &[]))
    }

    /// Hands what is buffered to the OS.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(Error::io(&self.path))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The length of `file` up to and including its last newline.
fn whole_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 1 << 16];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(pos) = chunk[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(start + pos as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads rows of `T` from a CSV file, one at a time.
pub struct TableReader<T: Table> {
    path: PathBuf,
    header: Vec<String>,
    inner: csv::DeserializeRecordsIntoIter<std::io::Take<BufReader<File>>, T>,
    /// Bytes of a partial last line that were left out.
    pub partial_tail: u64,
}

impl<T: Table> std::fmt::Debug for TableReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl<T: Table> TableReader<T> {
    /// Opens `path` and checks its header. A partial last line (a writer killed mid-row)
    /// is left out and its length kept in `partial_tail`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let io = Error::io(path);
        let mut file = File::open(path).map_err(&io)?;
        let len = file.metadata().map_err(&io)?.len();
        let keep = whole_lines_len(&mut file, len).map_err(&io)?;
        file.seek(SeekFrom::Start(0)).map_err(&io)?;
        let input = BufReader::with_capacity(1 << 16, file).take(keep);
        let mut reader = csv::ReaderBuilder::new().from_reader(input);
        let header: Vec<String> = reader
            .headers()
            .map_err(Error::csv(path, &[]))?
            .iter()
            .map(str::to_owned)
            .collect();
        if keep == 0 {
            return Err(Error::NoHeader {
                path: path.to_owned(),
            });
        }
        if let Some(column) = T::COLUMNS
            .iter()
            .find(|c| !header.iter().any(|h| h == *c) && !T::ADDED.contains(c))
        {
            return Err(Error::MissingColumn {
                path: path.to_owned(),
                column,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            header,
            inner: reader.into_deserialize(),
            partial_tail: len - keep,
        })
    }

    /// Every row, or the first error.
    pub fn read_all(self) -> Result<Vec<T>, Error> {
        self.collect()
    }
}

impl<T: Table> Iterator for TableReader<T> {
    type Item = Result<T, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = &self.path;
        let header = &self.header;
        self.inner
            .next()
            .map(|r| r.map_err(Error::csv(path, header)))
    }
}

/// Rows of `T` as the bytes of a whole CSV file (header included), for renderers that
/// return values rather than write files.
pub fn encode<T: Table>(rows: &[T]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(T::COLUMNS)?;
    for row in rows {
        w.serialize(row)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Every row of a CSV file of `T`.
pub fn read_all<T: Table>(path: &Path) -> Result<Vec<T>, Error> {
    TableReader::open(path)?.read_all()
}

/// Writes `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|error| Error::Json {
        path: path.to_owned(),
        error,
    })?;
    text.push(b'\n');
    let mut f = File::create(path).map_err(Error::io(path))?;
    f.write_all(&text).map_err(Error::io(path))
}

/// Reads a JSON file of `T`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&text).map_err(|error| Error::Json {
        path: path.to_owned(),
        error,
    })
}

/// `bool` as `0` / `1`, the spelling of flag columns.
pub mod flag {
    use serde::{Deserialize, Deserializer, Serializer};

    /// `false` as 0, `true` as 1.
    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*v))
    }

    /// 0 or 1; anything else is an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(serde::de::Error::custom(format!("{n} is neither 0 nor 1"))),
        }
    }
}
