//! The owner-task rule: a message gives the contact owner one task to answer it, never two.
//!
//! - A contact without an owner gets no task (there is no one to remind).
//! - While the task linehub gave last is open, further messages add none.
//! - A task that was asked for but whose answer never came (a timeout, a crash) may exist in
//!   HubSpot: it is looked for and adopted before a new one is made.
//! - Once the owner completes it (or it is deleted), the next message makes a new one.
//!
//! linehub's tasks are titled [`TASK_SUBJECT`] followed by the account, which is also how it
//! recognises its own among a contact's tasks.

/// How owner tasks linehub creates are titled; also how it recognises its own.
pub const TASK_SUBJECT: &str = "Reply on LINE";

/// HubSpot's task status for a finished task.
const COMPLETED: &str = "COMPLETED";

/// What linehub knows about the last task it gave a contact's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastTask {
    /// None was ever asked for, or it is gone from HubSpot.
    None,
    /// Asked for; the answer never came, so HubSpot may have made it.
    Asked,
    /// It exists and is not completed.
    Open,
    /// It exists and the owner completed it.
    Completed,
}

impl LastTask {
    /// From a known task's `hs_task_status` (`None`: HubSpot no longer has the task).
    pub fn from_status(status: Option<&str>) -> LastTask {
        match status {
            None => LastTask::None,
            Some(s) if s == COMPLETED => LastTask::Completed,
            Some(_) => LastTask::Open,
        }
    }
}

/// What to do about one asked-for owner task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskDecision {
    /// The contact has no owner: no task, not an error.
    NoOwner,
    /// The last task is still open: nothing to add.
    AlreadyOpen,
    /// Look among the contact's tasks for the one asked for earlier; decide again with what
    /// was found.
    LookForAsked,
    /// Make a task for the owner.
    Create,
}

/// Decides whether a contact's owner gets a new task.
pub fn owner_task(has_owner: bool, last: LastTask) -> TaskDecision {
    match (has_owner, last) {
        (false, _) => TaskDecision::NoOwner,
        (true, LastTask::Open) => TaskDecision::AlreadyOpen,
        (true, LastTask::Asked) => TaskDecision::LookForAsked,
        (true, LastTask::None | LastTask::Completed) => TaskDecision::Create,
    }
}

/// The subject of the task for a message to `account`.
pub fn task_subject(account: &str) -> String {
    format!("{TASK_SUBJECT} ({account})")
}

/// Whether a task with this subject and status is an open task linehub made.
pub fn is_open_linehub_task(subject: Option<&str>, status: Option<&str>) -> bool {
    subject.is_some_and(|s| s.starts_with(TASK_SUBJECT)) && LastTask::from_status(status) == LastTask::Open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_without_an_owner_never_gets_a_task() {
        for last in [LastTask::None, LastTask::Asked, LastTask::Open, LastTask::Completed] {
            assert_eq!(owner_task(false, last), TaskDecision::NoOwner);
        }
    }

    #[test]
    fn one_open_task_at_a_time() {
        assert_eq!(owner_task(true, LastTask::None), TaskDecision::Create);
        assert_eq!(owner_task(true, LastTask::from_status(Some("NOT_STARTED"))), TaskDecision::AlreadyOpen);
        assert_eq!(owner_task(true, LastTask::from_status(Some("COMPLETED"))), TaskDecision::Create);
        assert_eq!(owner_task(true, LastTask::from_status(None)), TaskDecision::Create, "a deleted task is replaced");
    }

    #[test]
    fn a_task_asked_for_without_an_answer_is_looked_for_first() {
        assert_eq!(owner_task(true, LastTask::Asked), TaskDecision::LookForAsked);
    }

    #[test]
    fn linehub_recognises_its_own_open_tasks() {
        let subject = task_subject("tokyo");
        assert_eq!(subject, "Reply on LINE (tokyo)");
        assert!(is_open_linehub_task(Some(&subject), Some("IN_PROGRESS")));
        assert!(!is_open_linehub_task(Some(&subject), Some("COMPLETED")));
        assert!(!is_open_linehub_task(Some("Call back"), Some("NOT_STARTED")));
        assert!(!is_open_linehub_task(None, Some("NOT_STARTED")));
    }
}
