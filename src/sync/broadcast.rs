//! What a broadcast leaves on the contacts it reached.
//!
//! When a `broadcast_to_list` chunk is accepted by LINE, each recipient's contact records which
//! pipeline reached it and on which day, so lists and workflows can follow up on a campaign.

use std::collections::BTreeMap;

use super::properties::Field;
use super::rules::day_of;

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
    fn a_broadcast_records_the_pipeline_and_the_day_it_was_sent() {
        let props = last_broadcast_properties(4, "spring-sale", 1_700_000_000_000);
        let pairs: Vec<_> = props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("line_last_broadcast_4", "spring-sale"), ("line_last_broadcast_date_4", "2023-11-14")]);
    }
}
