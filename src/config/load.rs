//! Reading a config file: YAML with positions, then the checks, then its pipelines.
//!
//! The YAML parser is kept behind this one module so that a change of parser touches one file.
//! Parse errors come back with the dotted path of the field the parser was in and its line and
//! column; validation errors (see [`super::validate`]) use the spans kept in the raw types.

use std::path::Path;

use super::error::{ConfigError, ConfigErrors};
use super::raw::RawConfig;
use super::{Config, validate};

/// Reads, parses and validates a config file, reporting every problem found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::one(ConfigError::whole_file(path, format!("cannot read the config file: {e}"))))?;
    load_str(path, &text)
}

/// Parses and validates config text as if it were read from `path` (relative paths inside the
/// config resolve against `path`'s directory), then loads and checks its pipelines.
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = parse_yaml(path, text)?;
    let mut config = validate::validate(raw, path, &|name| std::env::var(name).ok())?;
    config.pipelines = crate::pipelines::load_dir(&config.pipelines_dir, &config.accounts)?;
    Ok(config)
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
