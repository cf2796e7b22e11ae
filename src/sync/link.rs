//! Linking a LINE user to a HubSpot contact, and what linehub learns when it looks a user up.
//!
//! Pipelines link users in bulk (every friend, or the LINE ids a list already holds) and check
//! who still follows; the applier enriches contacts with the profile. The rules they share live
//! here: what a LINE user id looks like, which properties a profile fills, what a follow
//! observation does to the friend state, and the properties written when a user is linked.
//! Callers read LINE and HubSpot and hand the answers in; nothing here does I/O.

use std::collections::BTreeMap;

use super::properties::{Field, NO, YES};
use super::rules::{FriendState, day_of};

/// The parts of a LINE profile that become contact properties. Callers map LINE's answer into
/// it, so the domain does not depend on the LINE client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineProfile<'a> {
    /// The user's display name.
    pub name: &'a str,
    /// The profile picture URL, when the user has one.
    pub picture: Option<&'a str>,
}

/// True for a LINE user id: `U` and 32 lower-case hex digits.
pub fn is_line_user_id(s: &str) -> bool {
    s.len() == 33 && s.starts_with('U') && s[1..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `LINE User Name _N` and, when the user has a picture, `LINE User Picture _N` (without one,
/// the picture property is left as it is).
pub fn profile_properties(serial: i64, profile: LineProfile<'_>) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    props.insert(Field::UserName.name(serial), profile.name.to_string());
    if let Some(url) = profile.picture {
        props.insert(Field::UserPicture.name(serial), url.to_string());
    }
    props
}

/// Records a profile just read in the friend's state.
pub fn remember_profile(state: &mut FriendState, profile: LineProfile<'_>) {
    state.profile_fetched = true;
    state.name = Some(profile.name.to_string());
    state.picture = profile.picture.map(str::to_string);
}

/// Everything linehub knows of `user` on account serial `serial`, as contact properties: the
/// user id, name and picture, follow state and sync date. A contact created (or created again,
/// after it was deleted in HubSpot) starts from these, so it is never only half a LINE contact.
pub fn contact_properties(serial: i64, user: &str, state: &FriendState) -> BTreeMap<String, String> {
    let mut props = BTreeMap::new();
    props.insert(Field::UserId.name(serial), user.to_string());
    if let Some(following) = state.following {
        props.insert(Field::Follow.name(serial), follow_value(following).to_string());
    }
    if let Some(day) = &state.synced_on {
        props.insert(Field::IdSyncDate.name(serial), day.clone());
    }
    if let Some(name) = &state.name {
        props.extend(profile_properties(serial, LineProfile { name, picture: state.picture.as_deref() }));
    }
    props
}

/// The value of `LINE Follow _N` for a user who does (`Yes`) or does not (`No`) follow.
pub fn follow_value(following: bool) -> &'static str {
    if following { YES } else { NO }
}

/// The friend state after linehub observed at `observed_at` (the moment it asked LINE) that the
/// user does (or does not) follow. The newer of the observation and the follow change already
/// applied wins: an observation made before an applied follow, unfollow or message is out of
/// date and changes nothing (a tie goes to the observation).
pub fn observe_follow(state: &FriendState, following: bool, observed_at: i64) -> FriendState {
    if !observation_applies(state, observed_at) {
        return state.clone();
    }
    let mut next = state.clone();
    next.following = Some(following);
    next.follow_ts = Some(observed_at);
    next
}

/// Whether a follow observation made at `observed_at` is at least as new as the follow change
/// `state` records.
pub fn observation_applies(state: &FriendState, observed_at: i64) -> bool {
    state.follow_ts.is_none_or(|t| observed_at >= t)
}

/// The properties that link a friend to a contact (`LINE User ID/Name/Picture/Follow/ID Sync
/// Date _N`), and the friend's state after linking, with the friend seen following at `now`
/// (when linehub asked LINE). The sync date is kept when linehub or HubSpot
/// (`existing_sync_date`) already has one; `Follow` is left out when a newer follow change was
/// applied since `now`.
pub fn link_properties(
    serial: i64,
    user: &str,
    profile: Option<LineProfile<'_>>,
    state: &FriendState,
    existing_sync_date: Option<&str>,
    now: i64,
) -> (BTreeMap<String, String>, FriendState) {
    observed_link_properties(serial, user, profile, Some(true), state, existing_sync_date, now)
}

/// [`link_properties`] for a friendship observed at `now` as `following` (`None`: LINE did not
/// say, so `Follow` is left as it is).
pub fn observed_link_properties(
    serial: i64,
    user: &str,
    profile: Option<LineProfile<'_>>,
    following: Option<bool>,
    state: &FriendState,
    existing_sync_date: Option<&str>,
    now: i64,
) -> (BTreeMap<String, String>, FriendState) {
    let mut props = BTreeMap::new();
    let mut next = state.clone();
    props.insert(Field::UserId.name(serial), user.to_string());
    if let Some(following) = following {
        next = observe_follow(state, following, now);
        if observation_applies(state, now) {
            props.insert(Field::Follow.name(serial), follow_value(following).to_string());
        }
    }
    if let Some(p) = profile {
        props.extend(profile_properties(serial, p));
        remember_profile(&mut next, p);
    }
    match (state.synced_on.as_deref(), existing_sync_date) {
        (Some(day), _) | (None, Some(day)) => next.synced_on = Some(day.to_string()),
        (None, None) => {
            let day = day_of(now);
            props.insert(Field::IdSyncDate.name(serial), day.clone());
            next.synced_on = Some(day);
        }
    }
    (props, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_is_made_from_everything_known_of_the_friend() {
        let mut state =
            FriendState { following: Some(false), synced_on: Some("2024-05-06".into()), ..Default::default() };
        let props = contact_properties(3, "U1", &state);
        let pairs: Vec<_> = props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("line_follow_3", "No"), ("line_id_sync_date_3", "2024-05-06"), ("line_user_id_3", "U1")]);
        remember_profile(&mut state, LineProfile { name: "Sato", picture: Some("https://p/1") });
        let props = contact_properties(3, "U1", &state);
        assert_eq!(props["line_user_name_3"], "Sato");
        assert_eq!(props["line_user_picture_3"], "https://p/1");
        assert!(state.profile_fetched);
    }

    #[test]
    fn line_user_ids_are_u_and_32_lower_case_hex_digits() {
        assert!(is_line_user_id(&format!("U{}", "0a".repeat(16))));
        assert!(!is_line_user_id(&format!("U{}", "0A".repeat(16))));
        assert!(!is_line_user_id("U123"));
        assert!(!is_line_user_id(&format!("C{}", "0".repeat(32))));
    }

    #[test]
    fn linking_keeps_an_existing_sync_date_and_marks_the_friend_following() {
        let profile = LineProfile { name: "Sato", picture: None };
        let (props, state) = link_properties(2, "U1", Some(profile), &FriendState::default(), Some("2024-01-02"), 5);
        assert!(!props.contains_key("line_id_sync_date_2"));
        assert_eq!(props["line_user_name_2"], "Sato");
        assert_eq!(props["line_follow_2"], "Yes");
        assert_eq!(state.synced_on.as_deref(), Some("2024-01-02"));
        assert_eq!(state.following, Some(true));
        let (props, _) = link_properties(2, "U1", None, &FriendState::default(), None, 0);
        assert_eq!(props["line_id_sync_date_2"], "1970-01-01");
    }

    #[test]
    fn linking_with_a_profile_marks_it_read_and_without_one_leaves_name_and_picture_alone() {
        let profile = LineProfile { name: "Sato", picture: Some("https://p/1") };
        let (props, state) = link_properties(1, "U1", Some(profile), &FriendState::default(), None, 0);
        assert_eq!(props["line_user_picture_1"], "https://p/1");
        assert!(state.profile_fetched);
        let (props, state) = link_properties(1, "U1", None, &FriendState::default(), None, 0);
        assert!(!props.contains_key("line_user_name_1") && !props.contains_key("line_user_picture_1"));
        assert!(!state.profile_fetched);
    }

    #[test]
    fn a_profile_fills_name_and_picture_of_its_account_only() {
        let props = profile_properties(3, LineProfile { name: "佐藤", picture: Some("https://p/1") });
        let pairs: Vec<_> = props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("line_user_name_3", "佐藤"), ("line_user_picture_3", "https://p/1")]);
        let props = profile_properties(3, LineProfile { name: "佐藤", picture: None });
        assert!(!props.contains_key("line_user_picture_3"), "no picture: the property is left as it is");
    }

    #[test]
    fn a_follow_observation_older_than_an_applied_event_changes_nothing() {
        let seen = FriendState { follow_ts: Some(100), following: Some(true), ..FriendState::default() };
        let older = observe_follow(&seen, false, 50);
        assert_eq!(older, seen, "an observation made before the applied event is out of date");
        let later = observe_follow(&seen, false, 200);
        assert_eq!((later.following, later.follow_ts), (Some(false), Some(200)));
        let same = observe_follow(&seen, false, 100);
        assert_eq!((same.following, same.follow_ts), (Some(false), Some(100)), "a tie goes to the observation");
        let first = observe_follow(&FriendState::default(), true, 7);
        assert_eq!((first.following, first.follow_ts), (Some(true), Some(7)));
        assert_eq!((follow_value(true), follow_value(false)), ("Yes", "No"));
    }

    #[test]
    fn linking_with_an_observation_older_than_an_applied_unfollow_leaves_follow_alone() {
        let blocked = FriendState { follow_ts: Some(300), following: Some(false), ..FriendState::default() };
        let (props, state) = link_properties(1, "U1", None, &blocked, Some("2024-01-02"), 200);
        assert!(!props.contains_key("line_follow_1"), "{props:?}");
        assert_eq!((state.following, state.follow_ts), (Some(false), Some(300)));
        let (props, state) = link_properties(1, "U1", None, &blocked, Some("2024-01-02"), 400);
        assert_eq!(props.get("line_follow_1").map(String::as_str), Some("Yes"));
        assert_eq!((state.following, state.follow_ts), (Some(true), Some(400)));
    }
}
