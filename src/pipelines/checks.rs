//! Checking a step's `with:` block beyond what serde can: ranges, formats, LINE's limits.
//!
//! Each step's [`crate::pipelines::steps::Step::check`] gets a [`Checks`] that knows the file
//! and the step's place in it (`steps[1].import_friends`), so every problem it records names
//! file, line, column and field, like the config's own checks.

use std::path::Path;

use serde_saphyr::Spanned;

use crate::yaml::ConfigError;

/// Collects the problems of one step's `with:` block, located in its file.
pub struct Checks<'a> {
    file: &'a Path,
    prefix: String,
    errors: Vec<ConfigError>,
}

impl<'a> Checks<'a> {
    /// Checks for the step whose fields are under `prefix` (e.g. `steps[1].import_friends`).
    pub fn new(file: &'a Path, prefix: String) -> Checks<'a> {
        Checks { file, prefix, errors: Vec::new() }
    }

    /// Records that `field` (relative to the step, located by `at`) is wrong.
    pub fn error<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        let field = format!("{}.{field}", self.prefix);
        self.errors.push(ConfigError::at_span(self.file, at, field, message));
    }

    /// Checks that an optional number lies in `min..=max`.
    pub fn range<T: PartialOrd + Copy + std::fmt::Display>(
        &mut self,
        v: Option<&Spanned<T>>,
        field: &str,
        min: T,
        max: T,
    ) {
        if let Some(v) = v
            && (v.value < min || v.value > max)
        {
            self.error(v, field, format!("must be between {min} and {max}, not {}", v.value));
        }
    }

    /// Checks a HubSpot list id (digits only, as in the list's URL).
    pub fn list_id(&mut self, v: &Spanned<String>, field: &str) {
        if v.value.is_empty() || !v.value.bytes().all(|b| b.is_ascii_digit()) {
            self.error(v, field, format!("`{}` is not a HubSpot list id (the number in the list's URL)", v.value));
        }
    }

    /// The problems found.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}
