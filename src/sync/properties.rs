//! The HubSpot contact properties each LINE account gets, named by its serial N.
//!
//! Labels are what users see (`LINE User ID _1`); internal names are what the API uses
//! (`line_user_id_1`). Yes/No values are enumerations so that lists and workflows can filter on
//! them; the sync date is a HubSpot `date` (a calendar day, sent as `YYYY-MM-DD`). One property
//! is shared by all accounts: [`LINK_TOKEN`], the contact's token for login links in emails.

/// The property group every linehub property belongs to.
pub const GROUP_NAME: &str = "line";
/// The group's label in HubSpot.
pub const GROUP_LABEL: &str = "LINE";

/// Internal name of the contact property holding the contact's link token (email linkage):
/// one property for every account, since the token names the contact, not an account.
pub const LINK_TOKEN: &str = "linehub_link_token";
/// Its label in HubSpot.
pub const LINK_TOKEN_LABEL: &str = "LINE link token";
/// Its description in HubSpot's property settings.
pub const LINK_TOKEN_DESCRIPTION: &str = "Token of this contact's LINE login link in emails \
     ({public_base_url}/line/{account}/login?link=...). Maintained by linehub.";

/// The value written to Yes/No properties for "yes".
pub const YES: &str = "Yes";
/// The value written to Yes/No properties for "no".
pub const NO: &str = "No";

/// The properties of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `LINE User ID _N`: the user's id for this account's provider.
    UserId,
    /// `LINE User Name _N`: display name from the LINE profile.
    UserName,
    /// `LINE User Picture _N`: profile picture URL.
    UserPicture,
    /// `LINE Follow _N`: Yes while the user is a friend, No once they block.
    Follow,
    /// `LINE ID Sync Date _N`: the day linehub first linked this user.
    IdSyncDate,
    /// `LINE Unanswered _N`: Yes when the user's last message awaits a reply.
    Unanswered,
    /// `LINE Last Response _N`: the user's last message.
    LastResponse,
    /// `LINE Last Broadcast _N`: the pipeline whose broadcast last reached the user.
    LastBroadcast,
    /// `LINE Last Broadcast Date _N`: the day that broadcast was sent.
    LastBroadcastDate,
}

/// How HubSpot should store a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string` / `text`.
    Text,
    /// `string` / `textarea`.
    LongText,
    /// `enumeration` / `select` with Yes and No.
    YesNo,
    /// `date` / `date`.
    Date,
}

impl Field {
    /// All of them, in the order they are created.
    pub const ALL: [Field; 9] = [
        Field::UserId,
        Field::UserName,
        Field::UserPicture,
        Field::Follow,
        Field::IdSyncDate,
        Field::Unanswered,
        Field::LastResponse,
        Field::LastBroadcast,
        Field::LastBroadcastDate,
    ];

    fn stem(self) -> (&'static str, &'static str) {
        match self {
            Field::UserId => ("line_user_id", "LINE User ID"),
            Field::UserName => ("line_user_name", "LINE User Name"),
            Field::UserPicture => ("line_user_picture", "LINE User Picture"),
            Field::Follow => ("line_follow", "LINE Follow"),
            Field::IdSyncDate => ("line_id_sync_date", "LINE ID Sync Date"),
            Field::Unanswered => ("line_unanswered", "LINE Unanswered"),
            Field::LastResponse => ("line_last_response", "LINE Last Response"),
            Field::LastBroadcast => ("line_last_broadcast", "LINE Last Broadcast"),
            Field::LastBroadcastDate => ("line_last_broadcast_date", "LINE Last Broadcast Date"),
        }
    }

    /// The internal name for account serial `n`, e.g. `line_user_id_1`.
    pub fn name(self, n: i64) -> String {
        format!("{}_{n}", self.stem().0)
    }

    /// The label for account serial `n`, e.g. `LINE User ID _1`.
    pub fn label(self, n: i64) -> String {
        format!("{} _{n}", self.stem().1)
    }

    /// How the property is stored.
    pub fn kind(self) -> Kind {
        match self {
            Field::UserId | Field::UserName | Field::UserPicture | Field::LastBroadcast => Kind::Text,
            Field::LastResponse => Kind::LongText,
            Field::Follow | Field::Unanswered => Kind::YesNo,
            Field::IdSyncDate | Field::LastBroadcastDate => Kind::Date,
        }
    }

    /// The description shown in HubSpot's property settings.
    pub fn description(self, account: &str) -> String {
        let what = match self {
            Field::UserId => "LINE user id of this contact",
            Field::UserName => "LINE display name of this contact",
            Field::UserPicture => "LINE profile picture URL of this contact",
            Field::Follow => "Yes while this contact is a friend, No after they block",
            Field::IdSyncDate => "Day the LINE user id was first linked to this contact",
            Field::Unanswered => "Yes when this contact's last LINE message awaits a reply",
            Field::LastResponse => "This contact's last LINE message",
            Field::LastBroadcast => "The linehub pipeline whose broadcast last reached this contact",
            Field::LastBroadcastDate => "Day the last linehub broadcast was sent to this contact",
        };
        format!("{what} for LINE account `{account}`. Maintained by linehub.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_follow_the_product_convention() {
        let names: Vec<_> = Field::ALL.iter().map(|f| f.name(2)).collect();
        assert_eq!(
            names,
            [
                "line_user_id_2",
                "line_user_name_2",
                "line_user_picture_2",
                "line_follow_2",
                "line_id_sync_date_2",
                "line_unanswered_2",
                "line_last_response_2",
                "line_last_broadcast_2",
                "line_last_broadcast_date_2"
            ]
        );
        let labels: Vec<_> = Field::ALL.iter().map(|f| f.label(12)).collect();
        assert_eq!(
            labels,
            [
                "LINE User ID _12",
                "LINE User Name _12",
                "LINE User Picture _12",
                "LINE Follow _12",
                "LINE ID Sync Date _12",
                "LINE Unanswered _12",
                "LINE Last Response _12",
                "LINE Last Broadcast _12",
                "LINE Last Broadcast Date _12"
            ]
        );
    }
}
