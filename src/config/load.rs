//! Reading a config file: YAML with positions ([`crate::yaml`]), then the checks.
//!
//! Parse errors come back with the dotted path of the field the parser was in and its line and
//! column; validation errors (see [`super::validate`]) use the spans kept in the raw types.

use std::path::Path;

use super::raw::RawConfig;
use super::{Config, validate};
use crate::yaml::{ConfigError, ConfigErrors, parse_yaml};

/// Reads, parses and validates a config file, reporting every problem found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::one(ConfigError::whole_file(path, format!("cannot read the config file: {e}"))))?;
    load_str(path, &text)
}

/// Parses and validates config text as if it were read from `path` (relative paths inside the
/// config resolve against `path`'s directory).
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = parse_yaml(path, text)?;
    validate::validate(raw, path, &|name| std::env::var(name).ok())
}
