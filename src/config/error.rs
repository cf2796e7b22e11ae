//! Configuration errors that point at the place to fix.
//!
//! Every problem found in a config file carries the file, the line and column, the dotted field
//! path (`accounts[1].channel_secret`) and a sentence saying what is wrong. Loading collects all of
//! them at once, so a user fixes a file in one pass instead of one error per run.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem is about the file as a whole.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// Dotted field path, e.g. `accounts[0].channel_secret`; empty for the whole file.
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl ConfigError {
    /// A problem with a known position.
    pub fn at(file: &Path, line: u64, column: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { file: file.to_path_buf(), line, column, field: field.into(), message: message.into() }
    }

    /// A problem with the file as a whole (cannot be read, is empty, …).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError::at(file, 0, 0, "", message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one load; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error.
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
