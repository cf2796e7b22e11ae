//! Reading linehub's YAML files with positions, and the errors that point at the place to fix.
//!
//! Every problem found in `config.yaml` or a pipeline file carries the file, the line and column,
//! the dotted field path (`accounts[1].channel_secret`) and a sentence saying what is wrong.
//! Loading collects all of them at once, so a user fixes a file in one pass instead of one error
//! per run. The YAML parser is kept behind this one module so that a change of parser touches one
//! file. It depends on nothing else in linehub: both [`crate::config`] and the pipeline model
//! ([`crate::pipelines::spec`]) build on it without depending on each other through it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

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

    /// A problem at the position the YAML parser kept for `at` (a [`Spanned`] value).
    pub fn at_span<T>(file: &Path, at: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) -> Self {
        let loc = at.referenced;
        ConfigError::at(file, loc.line(), loc.column(), field, message)
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

/// Deserializes YAML text into `T`, turning a failure into a located [`ConfigError`].
pub fn parse_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors::one(ConfigError::whole_file(path, "the file is empty")));
    }
    let mut field = String::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            field = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        // `Spanned` fields add a `.value` segment of their own; the user never wrote it.
        let field = field.strip_suffix(".value").unwrap_or(&field);
        let field = if field == "." || field == "?" { String::new() } else { field.to_string() };
        ConfigErrors::one(ConfigError::at(path, line, column, field, first_line(&e.to_string())))
    })
}

/// The parser's message without its source snippet or its own position prefix (we print ours).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // Drop a leading "line N column M: ".
    match line.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, rest)) if position.contains(" column ") => rest.to_string(),
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Doc {
        name: Spanned<String>,
    }

    #[test]
    fn an_error_at_a_span_names_the_line_column_and_field_of_the_value() {
        let file = Path::new("p.yaml");
        let doc: Doc = parse_yaml(file, "# a comment\nname:  bob\n").unwrap_or_else(|e| panic!("{e}"));
        let e = ConfigError::at_span(file, &doc.name, "name", "is wrong");
        assert_eq!(e.to_string(), "p.yaml:2:8: name: is wrong");
    }
}
