//! The event rules: given what linehub knows about a friend and one new activity, what changes.
//!
//! - `follow` and `message` mark the user a friend (`Follow = Yes`), fill the user id, and set the
//!   sync date the first time; the contact is created if it does not exist.
//! - `unfollow` sets `Follow = No`; nothing is deleted and no contact is created for it.
//! - `message` sets `Unanswered = Yes` and `Last Response`, and asks for an owner task.
//! - Activities are compared by timestamp per property family: an activity older than what was
//!   already applied changes nothing there, so a late redelivery never overwrites newer state.

use std::collections::BTreeMap;

use super::activity::{Activity, ActivityKind};
use super::properties::{Field, NO, YES};

/// What linehub remembers about one user of one account, to order and deduplicate changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FriendState {
    /// Timestamp of the newest follow, unfollow or message applied to `Follow`.
    pub follow_ts: Option<i64>,
    /// Timestamp of the newest message applied to `Last Response`.
    pub response_ts: Option<i64>,
    /// The sync date, once set (`YYYY-MM-DD`).
    pub synced_on: Option<String>,
    /// Whether the LINE profile has been read for this user.
    pub profile_fetched: bool,
    /// Whether the user follows the account, as of `follow_ts` (`None`: never seen).
    pub following: Option<bool>,
    /// The display name from the last profile read, kept so a contact deleted in HubSpot can
    /// be recreated whole.
    pub name: Option<String>,
    /// The picture URL from the last profile read (`None` also when the user has none).
    pub picture: Option<String>,
}

/// What one activity leads to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The friend state after the activity.
    pub state: FriendState,
    /// Contact properties to write (internal name → value).
    pub properties: BTreeMap<String, String>,
    /// Create the contact if it does not exist.
    pub create: bool,
    /// Read the LINE profile and add name and picture.
    pub fetch_profile: bool,
    /// The message the contact owner should be reminded to answer.
    pub owner_task: Option<String>,
}

/// Applies `activity` of account serial `serial` to `state`.
pub fn decide(serial: i64, state: &FriendState, activity: &Activity) -> Decision {
    let mut d = Decision { state: state.clone(), ..Decision::default() };
    let newer = |seen: Option<i64>| seen.is_none_or(|t| activity.ts > t);
    let mut set = |field: Field, value: &str| {
        d.properties.insert(field.name(serial), value.to_string());
    };
    match &activity.kind {
        ActivityKind::Followed { .. } | ActivityKind::Messaged { .. } => {
            set(Field::UserId, &activity.user_id);
            if newer(state.follow_ts) {
                set(Field::Follow, YES);
                d.state.follow_ts = Some(activity.ts);
                d.state.following = Some(true);
            }
            if state.synced_on.is_none() {
                let day = day_of(activity.ts);
                set(Field::IdSyncDate, &day);
                d.state.synced_on = Some(day);
            }
            if let ActivityKind::Messaged { summary } = &activity.kind
                && newer(state.response_ts)
            {
                set(Field::Unanswered, YES);
                set(Field::LastResponse, summary);
                d.state.response_ts = Some(activity.ts);
                d.owner_task = Some(summary.clone());
            }
            d.create = true;
            // A new follow refreshes name and picture; a message reads them once.
            d.fetch_profile = matches!(activity.kind, ActivityKind::Followed { .. }) || !state.profile_fetched;
            d.state.profile_fetched |= d.fetch_profile;
        }
        ActivityKind::Unfollowed => {
            if newer(state.follow_ts) {
                set(Field::Follow, NO);
                d.state.follow_ts = Some(activity.ts);
                d.state.following = Some(false);
            }
        }
    }
    d
}

/// The UTC calendar day of a LINE timestamp, as HubSpot `date` properties take it.
pub fn day_of(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms).unwrap_or_default().date_naive().format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(ts: i64, kind: ActivityKind) -> Activity {
        Activity { user_id: "U1".into(), ts, kind }
    }
    fn msg(ts: i64, text: &str) -> Activity {
        act(ts, ActivityKind::Messaged { summary: text.into() })
    }
    fn props(d: &Decision) -> Vec<(&str, &str)> {
        d.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn a_first_follow_creates_a_friend_with_sync_date_and_profile() {
        let d =
            decide(1, &FriendState::default(), &act(1_700_000_000_000, ActivityKind::Followed { unblocked: false }));
        assert_eq!(
            props(&d),
            [("line_follow_1", "Yes"), ("line_id_sync_date_1", "2023-11-14"), ("line_user_id_1", "U1")]
        );
        assert!(d.create && d.fetch_profile && d.owner_task.is_none());
        assert_eq!(d.state.synced_on.as_deref(), Some("2023-11-14"));
    }

    #[test]
    fn the_sync_date_is_set_only_the_first_time() {
        let first = decide(1, &FriendState::default(), &act(1, ActivityKind::Followed { unblocked: false }));
        let again = decide(1, &first.state, &act(90_000_000_000, ActivityKind::Followed { unblocked: true }));
        assert!(!again.properties.contains_key("line_id_sync_date_1"));
    }

    #[test]
    fn unfollow_sets_follow_no_and_creates_nothing() {
        let d = decide(3, &FriendState::default(), &act(5, ActivityKind::Unfollowed));
        assert_eq!(props(&d), [("line_follow_3", "No")]);
        assert!(!d.create && !d.fetch_profile);
    }

    #[test]
    fn a_message_marks_unanswered_and_asks_for_one_task() {
        let d = decide(1, &FriendState::default(), &msg(10, "予約したいです"));
        assert_eq!(d.properties["line_unanswered_1"], "Yes");
        assert_eq!(d.properties["line_last_response_1"], "予約したいです");
        assert_eq!(d.properties["line_follow_1"], "Yes");
        assert_eq!(d.owner_task.as_deref(), Some("予約したいです"));
        assert!(d.create && d.fetch_profile);
        // The profile is read once for messages.
        let next = decide(1, &d.state, &msg(11, "again"));
        assert!(!next.fetch_profile);
    }

    #[test]
    fn a_late_older_event_never_overwrites_newer_state() {
        let s = decide(1, &FriendState::default(), &act(100, ActivityKind::Unfollowed)).state;
        let late_follow = decide(1, &s, &act(50, ActivityKind::Followed { unblocked: false }));
        assert!(!late_follow.properties.contains_key("line_follow_1"), "older follow must not undo a newer unfollow");
        let s = decide(1, &FriendState::default(), &msg(200, "new")).state;
        let late_msg = decide(1, &s, &msg(150, "old"));
        assert!(!late_msg.properties.contains_key("line_last_response_1"));
        assert!(late_msg.owner_task.is_none());
        let late_unfollow = decide(1, &s, &act(150, ActivityKind::Unfollowed));
        assert!(late_unfollow.properties.is_empty());
    }

    #[test]
    fn each_account_writes_only_its_own_properties() {
        let d = decide(2, &FriendState::default(), &msg(1, "hi"));
        assert!(d.properties.keys().all(|k| k.ends_with("_2")), "{:?}", d.properties);
    }
}
