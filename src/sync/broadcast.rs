//! Who a broadcast reaches, and what it leaves on the contacts it reached.
//!
//! A list member receives a broadcast when its contact has a well-formed `LINE User ID _N` for
//! the account and is not known to have blocked it (`LINE Follow _N` = No). When a
//! `broadcast_to_list` chunk is accepted by LINE, each recipient's contact records which
//! pipeline reached it and on which day, so lists and workflows can follow up on a campaign.

use std::collections::BTreeMap;

use super::link::is_line_user_id;
use super::properties::{Field, NO};
use super::rules::day_of;

/// Whether one list member receives a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient<'a> {
    /// Send to this LINE user.
    Send(&'a str),
    /// The contact has no LINE user id for this account.
    NoLineId,
    /// The contact's LINE user id is not one (typed by hand, say).
    Malformed(&'a str),
    /// The user blocked the account.
    NotFollowing,
}

/// Decides from a contact's `LINE User ID _N` and `LINE Follow _N` whether it receives a
/// broadcast.
pub fn recipient<'a>(user_id: Option<&'a str>, follow: Option<&str>) -> Recipient<'a> {
    match user_id {
        None => Recipient::NoLineId,
        Some(u) if !is_line_user_id(u) => Recipient::Malformed(u),
        Some(_) if follow == Some(NO) => Recipient::NotFollowing,
        Some(u) => Recipient::Send(u),
    }
}

/// `LINE Last Broadcast _N` = the pipeline's name and `LINE Last Broadcast Date _N` = the UTC day
/// of `sent_at` (ms since the epoch), for account serial `serial`.
pub fn last_broadcast_properties(serial: i64, pipeline: &str, sent_at: i64) -> BTreeMap<String, String> {
    [
        (Field::LastBroadcast.name(serial), pipeline.to_string()),
        (Field::LastBroadcastDate.name(serial), day_of(sent_at)),
    ]
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ids_of_users_who_did_not_block_receive_a_broadcast() {
        let id = format!("U{}", "ab".repeat(16));
        assert_eq!(recipient(Some(&id), Some("Yes")), Recipient::Send(&id));
        assert_eq!(recipient(Some(&id), None), Recipient::Send(&id), "follow unknown: still sent");
        assert_eq!(recipient(Some(&id), Some("No")), Recipient::NotFollowing);
        assert_eq!(recipient(Some("U123"), Some("Yes")), Recipient::Malformed("U123"));
        assert_eq!(recipient(None, Some("Yes")), Recipient::NoLineId);
    }

    #[test]
    fn a_broadcast_records_the_pipeline_and_the_day_it_was_sent() {
        let props = last_broadcast_properties(4, "spring-sale", 1_700_000_000_000);
        let pairs: Vec<_> = props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("line_last_broadcast_4", "spring-sale"), ("line_last_broadcast_date_4", "2023-11-14")]);
    }
}
