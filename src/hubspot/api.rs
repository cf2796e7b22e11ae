//! HubSpot API paths and constants, in one place.
//!
//! linehub uses the v3 CRM paths and v4 for workflow action callbacks. HubSpot stops supporting v1–v3 paths in
//! September 2027 in favour of dated paths (`/crm/objects/2026-03/contacts`); moving is a change
//! to this file alone.

/// Contacts.
pub const CONTACTS: &str = "/crm/v3/objects/contacts";
/// Tasks.
pub const TASKS: &str = "/crm/v3/objects/tasks";
/// Contact property definitions.
pub const CONTACT_PROPERTIES: &str = "/crm/v3/properties/contacts";
/// Contact property groups.
pub const CONTACT_PROPERTY_GROUPS: &str = "/crm/v3/properties/contacts/groups";
/// Lists (v3 ILS ids).
pub const LISTS: &str = "/crm/v3/lists";
/// Notes (LINE sends are logged on the timeline as notes).
pub const NOTES: &str = "/crm/v3/objects/notes";
/// Completing workflow action executions that answered BLOCK: `{ACTION_CALLBACKS}/complete`.
pub const ACTION_CALLBACKS: &str = "/automation/v4/actions/callbacks";

/// Association type id: task → contact (HubSpot-defined).
pub const TASK_TO_CONTACT: u32 = 204;
/// Association type id: note → contact (HubSpot-defined).
pub const NOTE_TO_CONTACT: u32 = 202;

/// Longest text linehub puts in a task or note body, in characters (HubSpot's limit is 65,536;
/// the margin leaves room for the markup around it).
pub const MAX_BODY_CHARS: usize = 60_000;
/// Most inputs one batch call accepts.
pub const BATCH_LIMIT: usize = 100;
/// Most members one list memberships page returns.
pub const LIST_PAGE_LIMIT: u32 = 250;
