//! The pipeline file: what the YAML says ([`RawPipeline`]) and what was checked ([`Pipeline`]).
//!
//! ```yaml
//! name: nightly-import            # optional; default: the file name without .yaml
//! description: Friends of the Tokyo store into HubSpot
//! schedule:                       # optional; without it the pipeline runs only on demand
//!   cron: "0 3 * * *"             # 5 fields (6 with seconds first)
//!   time_zone: Asia/Tokyo         # IANA name
//! accounts: [tokyo-store]         # ids from config.yaml
//! steps:                          # in order; each step is `kind: { its with: block }`
//!   - import_friends: { page_size: 1000 }
//! ```
//!
//! Every file in the directory is parsed and checked, and every problem is reported with file,
//! line, column and field. A pipeline that names an account missing from `config.yaml`, or two
//! files with one name, fail the whole load, so a reload changes nothing until both agree.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::TimeZone;
use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::checks::Checks;
use super::steps::StepSpec;
use crate::config::reload::ReloadOutcome;
use crate::yaml::{ConfigError, ConfigErrors, parse_yaml};

/// One pipeline file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Its name; default: the file name without extension.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// What it is for, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// When it runs by itself.
    #[serde(default)]
    pub schedule: Option<RawSchedule>,
    /// Account ids it applies to, each from `config.yaml`.
    pub accounts: Vec<Spanned<String>>,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
}

/// `schedule:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: Spanned<String>,
    /// IANA time zone the expression is read in, e.g. `Asia/Tokyo`.
    pub time_zone: Spanned<String>,
}

/// When a pipeline runs: a cron expression read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written.
    pub cron: String,
    /// The time zone it is read in.
    pub time_zone: chrono_tz::Tz,
    parsed: croner::Cron,
}

impl Schedule {
    /// Parses `cron` in `time_zone`; `Err` says which of the two is wrong and why.
    pub fn new(cron: &str, time_zone: &str) -> Result<Schedule, (bool, String)> {
        let parsed =
            croner::Cron::from_str(cron).map_err(|e| (true, format!("`{cron}` is not a cron expression: {e}")))?;
        let time_zone = chrono_tz::Tz::from_str(time_zone).map_err(|_| {
            (false, format!("`{time_zone}` is not an IANA time zone (e.g. Asia/Tokyo, Asia/Taipei, Asia/Bangkok)"))
        })?;
        Ok(Schedule { cron: cron.to_string(), time_zone, parsed })
    }

    /// The first run strictly after `after_ms` (ms since the epoch), if any.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let now = self.time_zone.timestamp_millis_opt(after_ms).single()?;
        self.parsed.find_next_occurrence(&now, false).ok().map(|t| t.timestamp_millis())
    }

    /// The schedule in words, e.g. "At 03:00 (Asia/Tokyo)".
    pub fn describe(&self) -> String {
        format!("{} ({})", self.parsed.describe(), self.time_zone.name())
    }
}

/// A checked pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Unique name: `linehub pipeline run NAME`.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The file it was read from.
    pub source: PathBuf,
    /// When it runs by itself; `None`: on demand only.
    pub schedule: Option<Schedule>,
    /// Account ids, in file order.
    pub accounts: Vec<String>,
    /// Steps, in order.
    pub steps: Vec<StepSpec>,
    /// Digest of accounts and steps: an interrupted run resumes only under the same definition.
    pub fingerprint: String,
}

/// An account a pipeline may name, seen by its id alone. The pipeline model checks names against
/// `config.yaml`'s accounts through this, so it does not depend on the config module (which
/// loads pipelines, and implements this for its accounts).
pub trait AccountId {
    /// The id pipelines name the account by.
    fn account_id(&self) -> &str;
}

impl AccountId for String {
    fn account_id(&self) -> &str {
        self
    }
}

impl AccountId for &str {
    fn account_id(&self) -> &str {
        self
    }
}

impl AccountId for crate::config::Account {
    fn account_id(&self) -> &str {
        &self.id
    }
}

/// Pipeline names appear on the command line and in logs.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Checks one parsed file against the accounts of `config.yaml`.
pub fn check<A: AccountId>(raw: RawPipeline, file: &Path, accounts: &[A]) -> Result<Pipeline, ConfigErrors> {
    let mut errors = Vec::new();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let name = match &raw.name {
        Some(n) => {
            if !valid_name(&n.value) {
                errors.push(ConfigError::at_span(
                    file,
                    n,
                    "name",
                    format!("`{}` must be 1-64 of a-z, 0-9, `-`, `_`", n.value),
                ));
            }
            n.value.clone()
        }
        None => {
            if !valid_name(&stem) {
                errors.push(ConfigError::whole_file(
                    file,
                    format!("the file name `{stem}` is not a valid pipeline name; rename the file or set `name:`"),
                ));
            }
            stem
        }
    };
    let schedule = raw.schedule.as_ref().and_then(|s| match Schedule::new(&s.cron.value, &s.time_zone.value) {
        Ok(schedule) => Some(schedule),
        Err((true, message)) => {
            errors.push(ConfigError::at_span(file, &s.cron, "schedule.cron", message));
            None
        }
        Err((false, message)) => {
            errors.push(ConfigError::at_span(file, &s.time_zone, "schedule.time_zone", message));
            None
        }
    });
    if raw.accounts.is_empty() {
        errors.push(ConfigError::whole_file(file, "accounts: name at least one account id from config.yaml"));
    }
    for (i, a) in raw.accounts.iter().enumerate() {
        let field = format!("accounts[{i}]");
        if !accounts.iter().any(|acc| acc.account_id() == a.value) {
            let known: Vec<&str> = accounts.iter().map(AccountId::account_id).collect();
            errors.push(ConfigError::at_span(
                file,
                a,
                &field,
                format!("no account `{}` in config.yaml (accounts: {})", a.value, known.join(", ")),
            ));
        } else if raw.accounts[..i].iter().any(|b| b.value == a.value) {
            errors.push(ConfigError::at_span(file, a, &field, format!("`{}` is listed twice", a.value)));
        }
    }
    if raw.steps.is_empty() {
        errors.push(ConfigError::whole_file(file, "steps: a pipeline needs at least one step"));
    }
    for (i, step) in raw.steps.iter().enumerate() {
        let mut checks = Checks::new(file, format!("steps[{i}].{}", step.kind()));
        step.check(&mut checks);
        errors.extend(checks.into_errors());
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let accounts: Vec<String> = raw.accounts.into_iter().map(|a| a.value).collect();
    // An empty digest would let every pipeline resume every other's run: refuse instead.
    let definition = serde_json::to_vec(&(&accounts, &raw.steps)).map_err(|e| {
        ConfigErrors::one(ConfigError::whole_file(file, format!("cannot fingerprint the pipeline's steps: {e}")))
    })?;
    let digest = Sha256::digest(definition);
    let fingerprint = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Pipeline {
        name,
        description: raw.description,
        source: file.to_path_buf(),
        schedule,
        accounts,
        steps: raw.steps,
        fingerprint,
    })
}

/// Parses and checks one pipeline file.
pub fn load_file<A: AccountId>(file: &Path, accounts: &[A]) -> Result<Pipeline, ConfigErrors> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigErrors::one(ConfigError::whole_file(file, format!("cannot read the pipeline file: {e}"))))?;
    load_str(file, &text, accounts)
}

/// Parses and checks pipeline text as if it were read from `file`.
pub fn load_str<A: AccountId>(file: &Path, text: &str, accounts: &[A]) -> Result<Pipeline, ConfigErrors> {
    check(parse_yaml(file, text)?, file, accounts)
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (in name order), checked against `accounts`.
/// A missing directory means no pipelines; any problem in any file fails the whole load.
pub fn load_dir<A: AccountId>(dir: &Path, accounts: &[A]) -> Result<Vec<Pipeline>, ConfigErrors> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigErrors::one(ConfigError::whole_file(
                dir,
                format!("cannot read the pipelines directory: {e}"),
            )));
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut errors = Vec::new();
    let mut pipelines: Vec<Pipeline> = Vec::new();
    for file in files {
        match load_file(&file, accounts) {
            Ok(p) => {
                if let Some(first) = pipelines.iter().find(|q| q.name == p.name) {
                    errors.push(ConfigError::whole_file(
                        &file,
                        format!("pipeline name `{}` is already used by {}", p.name, first.source.display()),
                    ));
                } else {
                    pipelines.push(p);
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() { Ok(pipelines) } else { Err(ConfigErrors(errors)) }
}

/// Adds to `outcome` the pipelines added, removed and changed (definition or schedule) from
/// `old` to `new`.
pub fn compare(old: &[Pipeline], new: &[Pipeline], outcome: &mut ReloadOutcome) {
    let schedule = |p: &Pipeline| p.schedule.as_ref().map(|s| format!("{} {}", s.cron, s.time_zone.name()));
    for p in new {
        match old.iter().find(|q| q.name == p.name) {
            None => outcome.pipelines_added.push(p.name.clone()),
            Some(q) if q.fingerprint != p.fingerprint || schedule(q) != schedule(p) => {
                outcome.pipelines_changed.push(p.name.clone())
            }
            Some(_) => {}
        }
    }
    outcome.pipelines_removed =
        old.iter().filter(|q| !new.iter().any(|p| p.name == q.name)).map(|q| q.name.clone()).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weekday_morning_schedule_runs_at_local_nine_in_each_time_zone() {
        // 2025-11-24 is a Monday; 00:00Z.
        let monday = 1_763_942_400_000;
        for (tz, utc_hour) in [("Asia/Tokyo", 0), ("Asia/Taipei", 1), ("Asia/Bangkok", 2)] {
            let s = Schedule::new("0 9 * * MON-FRI", tz).unwrap();
            let next = s.next_after(monday - 1).unwrap();
            assert_eq!(next, monday + utc_hour * 3_600_000, "{tz}");
        }
    }

    #[test]
    fn bad_expressions_and_zones_say_which_is_wrong() {
        assert!(matches!(Schedule::new("61 9 * * *", "Asia/Tokyo"), Err((true, _))));
        assert!(matches!(Schedule::new("0 9 * * *", "Asia/Osaka"), Err((false, m)) if m.contains("IANA")));
    }
}
