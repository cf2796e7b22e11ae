//! ID linking: which HubSpot contact a LINE Login lands on.
//!
//! A person logs in with LINE (a login link, its QR code, a LIFF page, or a link in a marketing
//! email carrying a link token). LINE vouches for their user id and, when they grant it, their
//! email. These rules decide, from that and from what HubSpot answered, which contact gets the
//! LINE identity, whether the user's placeholder contact is merged into it, and when two real
//! contacts would have to be merged (never: the existing link is kept and the conflict shown).
//! They also decide whether a link token may be used. Callers read HubSpot and the store and
//! hand the answers in; nothing here does I/O.

/// The contact a LINE user is linked to now, as HubSpot answered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentContact {
    /// Its id (the survivor's, when HubSpot answered a merged id with another record).
    pub id: String,
    /// Whether its email is the user's placeholder (`u…@line.linehub.invalid`): a contact
    /// linehub made only because the user followed or wrote.
    pub placeholder: bool,
}

/// What is known when a login is linked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFacts {
    /// The contact a valid link token names (a link in a marketing email), when it still exists.
    pub token_contact: Option<String>,
    /// The email LINE vouches for (granted with the `email` scope), lowercased.
    pub email: Option<String>,
    /// The contact HubSpot has with that email (a consistent read by email, not search).
    pub by_email: Option<String>,
    /// The contact the user is linked to now, if any.
    pub current: Option<CurrentContact>,
}

/// What to do in HubSpot for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPlan {
    /// Give `contact` the LINE identity; first merge `merge` (the user's placeholder) into it,
    /// and give it `email` (the placeholder's real email, when none was found).
    Link {
        /// The contact that gets the LINE identity.
        contact: String,
        /// The placeholder contact to merge into it.
        merge: Option<String>,
        /// A real email to set on it.
        email: Option<String>,
    },
    /// No contact yet: create one with `email` (the real one, or the placeholder when `None`).
    Create {
        /// The real email, when LINE gave one.
        email: Option<String>,
    },
    /// The login resolves to `wanted`, but the user is already linked to `kept`, a contact with
    /// a real email: two real contacts are never merged, so the link stays and the conflict is
    /// recorded for an operator.
    Conflict {
        /// The contact the user stays linked to.
        kept: String,
        /// The contact the login pointed at.
        wanted: String,
    },
}

/// Decides where a login lands. The cases, each tested below by name:
/// - a link token names the contact, whatever email the LINE account has;
/// - else an email found in HubSpot names it;
/// - a named contact the user is already linked to is just updated;
/// - a placeholder the user has is merged into the named contact;
/// - a real contact the user is linked to is never merged into another: conflict;
/// - an email not found: the placeholder gets it, or a contact is created with it (a user
///   already linked to a real contact stays there);
/// - no email: the contact the user has is used, or a placeholder is made, as for a follow.
pub fn plan(facts: &LinkFacts) -> LinkPlan {
    let named = facts.token_contact.as_ref().or(facts.by_email.as_ref());
    match (named, &facts.current) {
        (Some(named), None) => LinkPlan::Link { contact: named.clone(), merge: None, email: None },
        (Some(named), Some(current)) if current.id == *named => {
            LinkPlan::Link { contact: named.clone(), merge: None, email: None }
        }
        (Some(named), Some(current)) if current.placeholder => {
            LinkPlan::Link { contact: named.clone(), merge: Some(current.id.clone()), email: None }
        }
        (Some(named), Some(current)) => LinkPlan::Conflict { kept: current.id.clone(), wanted: named.clone() },
        (None, Some(current)) => LinkPlan::Link {
            contact: current.id.clone(),
            merge: None,
            email: facts.email.clone().filter(|_| current.placeholder),
        },
        (None, None) => LinkPlan::Create { email: facts.email.clone() },
    }
}

/// What linehub knows of a link token presented with a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The contact it was issued for.
    pub contact: String,
    /// When it stops linking (ms).
    pub expires_at: i64,
    /// The LINE user who already linked with it on this account, if any.
    pub used_by: Option<String>,
}

/// Whether a link token may link a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerdict {
    /// It links this login to its contact.
    Links(String),
    /// This user already linked with it: nothing to do again.
    AlreadyLinked(String),
    /// Not a token linehub issued (or it was rotated away).
    Unknown,
    /// Past its expiry.
    Expired,
    /// Another LINE user already linked with it on this account: a forwarded email, or an
    /// attempt to bind someone else's record.
    UsedByAnother,
}

/// Checks a presented link token for `user` at `now`.
pub fn check_token(record: Option<&TokenRecord>, user: &str, now: i64) -> TokenVerdict {
    let Some(record) = record else {
        return TokenVerdict::Unknown;
    };
    match record.used_by.as_deref() {
        Some(u) if u == user => TokenVerdict::AlreadyLinked(record.contact.clone()),
        Some(_) => TokenVerdict::UsedByAnother,
        None if now >= record.expires_at => TokenVerdict::Expired,
        None => TokenVerdict::Links(record.contact.clone()),
    }
}

/// An email as linehub compares and stores it: trimmed and lowercased (HubSpot matches emails
/// without regard to case).
pub fn normalize_email(email: &str) -> Option<String> {
    let e = email.trim().to_ascii_lowercase();
    (e.len() >= 3 && e.contains('@') && !e.starts_with('@') && !e.ends_with('@')).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholder(id: &str) -> Option<CurrentContact> {
        Some(CurrentContact { id: id.into(), placeholder: true })
    }

    fn real(id: &str) -> Option<CurrentContact> {
        Some(CurrentContact { id: id.into(), placeholder: false })
    }

    fn link(contact: &str, merge: Option<&str>, email: Option<&str>) -> LinkPlan {
        LinkPlan::Link { contact: contact.into(), merge: merge.map(Into::into), email: email.map(Into::into) }
    }

    #[test]
    fn a_link_token_names_its_contact_whatever_email_the_line_account_has() {
        let facts = LinkFacts {
            token_contact: Some("7".into()),
            email: Some("other@example.com".into()),
            by_email: Some("9".into()),
            current: None,
        };
        assert_eq!(plan(&facts), link("7", None, None));
    }

    #[test]
    fn an_email_found_in_hubspot_links_that_contact() {
        let facts = LinkFacts { email: Some("a@example.com".into()), by_email: Some("9".into()), ..Default::default() };
        assert_eq!(plan(&facts), link("9", None, None));
    }

    #[test]
    fn the_placeholder_is_merged_into_the_contact_found() {
        let facts = LinkFacts {
            email: Some("a@example.com".into()),
            by_email: Some("9".into()),
            current: placeholder("3"),
            ..Default::default()
        };
        assert_eq!(plan(&facts), link("9", Some("3"), None));
        let by_token = LinkFacts { token_contact: Some("7".into()), current: placeholder("3"), ..Default::default() };
        assert_eq!(plan(&by_token), link("7", Some("3"), None));
    }

    #[test]
    fn a_user_already_linked_to_the_contact_found_is_just_updated() {
        let facts = LinkFacts { token_contact: Some("9".into()), current: real("9"), ..Default::default() };
        assert_eq!(plan(&facts), link("9", None, None));
        let placeholder_found = LinkFacts {
            email: Some("a@example.com".into()),
            by_email: Some("3".into()),
            current: placeholder("3"),
            ..Default::default()
        };
        assert_eq!(plan(&placeholder_found), link("3", None, None), "a contact is never merged into itself");
    }

    #[test]
    fn two_contacts_with_real_emails_are_never_merged() {
        let facts = LinkFacts {
            email: Some("a@example.com".into()),
            by_email: Some("9".into()),
            current: real("4"),
            ..Default::default()
        };
        assert_eq!(plan(&facts), LinkPlan::Conflict { kept: "4".into(), wanted: "9".into() });
    }

    #[test]
    fn an_email_not_found_is_given_to_the_placeholder() {
        let facts = LinkFacts { email: Some("a@example.com".into()), current: placeholder("3"), ..Default::default() };
        assert_eq!(plan(&facts), link("3", None, Some("a@example.com")));
    }

    #[test]
    fn an_email_not_found_without_a_contact_creates_one_with_it() {
        let facts = LinkFacts { email: Some("a@example.com".into()), ..Default::default() };
        assert_eq!(plan(&facts), LinkPlan::Create { email: Some("a@example.com".into()) });
    }

    #[test]
    fn an_email_not_found_leaves_a_real_contact_its_own_email() {
        let facts = LinkFacts { email: Some("a@example.com".into()), current: real("4"), ..Default::default() };
        assert_eq!(plan(&facts), link("4", None, None));
    }

    #[test]
    fn without_an_email_the_users_contact_is_used_or_a_placeholder_made() {
        assert_eq!(plan(&LinkFacts { current: placeholder("3"), ..Default::default() }), link("3", None, None));
        assert_eq!(plan(&LinkFacts::default()), LinkPlan::Create { email: None });
    }

    #[test]
    fn a_link_token_links_only_until_it_expires_and_only_one_line_user() {
        let fresh = TokenRecord { contact: "7".into(), expires_at: 100, used_by: None };
        assert_eq!(check_token(Some(&fresh), "U1", 99), TokenVerdict::Links("7".into()));
        assert_eq!(check_token(Some(&fresh), "U1", 100), TokenVerdict::Expired);
        assert_eq!(check_token(None, "U1", 0), TokenVerdict::Unknown);
        let used = TokenRecord { used_by: Some("U1".into()), ..fresh };
        assert_eq!(check_token(Some(&used), "U1", 500), TokenVerdict::AlreadyLinked("7".into()));
        assert_eq!(check_token(Some(&used), "U2", 50), TokenVerdict::UsedByAnother, "a forwarded email");
    }

    #[test]
    fn emails_are_compared_lowercased_and_trimmed() {
        assert_eq!(normalize_email(" Ann@Example.COM ").as_deref(), Some("ann@example.com"));
        assert_eq!(normalize_email("not-an-email"), None);
        assert_eq!(normalize_email("@x"), None);
    }
}
