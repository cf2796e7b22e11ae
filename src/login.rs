//! ID linking through LINE Login: from a login route to a committed link.
//!
//! [`begin`] stores an attempt (state, nonce, PKCE verifier, the link token it carries) before
//! the person leaves for LINE. [`complete_web`] takes the attempt back once, exchanges the code,
//! verifies the ID token itself and reads the friendship; [`complete_liff`] has LINE verify the
//! token the LIFF page obtained (never trusting a profile the page sends). Both end in
//! [`commit`]: the link token is checked ([`crate::sync::login::check_token`]) and the login is
//! committed with the friend's state and an outbox row, so the person gets an answer at once and
//! the writer does the HubSpot work exactly once, across restarts.
//!
//! Every failure is a [`LoginFailure`] with a message for the person (no secret, no internals)
//! and one for the log.

use sha2::{Digest, Sha256};

use crate::config::{Account, Config, LoginConfig};
use crate::line::login::{IdClaims, LoginClient, LoginError, pkce, random_token, verify_web_id_token};
use crate::store::logins::{LoginAttempt, LoginCommit, LoginCommitted, TakenAttempt};
use crate::store::{Store, StoreError};
use crate::sync::LineProfile;
use crate::sync::link::observed_link_properties;
use crate::sync::login::{TokenVerdict, check_token, normalize_email};

/// How long a login may take, from the login link to the callback.
pub const ATTEMPT_TTL_MS: i64 = 10 * 60 * 1000;
/// The longest link token accepted (they are 43 characters; anything much longer is not ours).
const MAX_LINK_TOKEN_LEN: usize = 128;

/// Why a login did not link; shown to the person as a page and logged.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    /// No active account with a `login:` block has this id.
    #[error("no login is set up for this account")]
    NoLogin,
    /// The `state` was never issued (or is long gone).
    #[error("unknown login state")]
    UnknownState,
    /// The `state` was already used: a replayed callback.
    #[error("this login was already completed")]
    StateUsed,
    /// The login took longer than [`ATTEMPT_TTL_MS`].
    #[error("the login expired")]
    StateExpired,
    /// LINE sent the person back with an error (`ACCESS_DENIED` when they cancelled).
    #[error("LINE returned {code}: {description}")]
    LineSaidNo {
        /// LINE's `error`.
        code: String,
        /// LINE's `error_description`.
        description: String,
    },
    /// A required parameter is missing.
    #[error("the request is missing `{0}`")]
    Missing(&'static str),
    /// LINE refused, or the token did not verify.
    #[error(transparent)]
    Line(#[from] LoginError),
    /// The link token was not issued by linehub or was rotated away.
    #[error("the link token is not valid")]
    UnknownLinkToken,
    /// The link token expired.
    #[error("the link token expired")]
    ExpiredLinkToken,
    /// Another LINE user already linked with this link token.
    #[error("the link token was already used by another LINE account")]
    LinkTokenUsedByAnother,
    /// The store failed; nothing was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginFailure {
    /// The HTTP status of the page that explains it.
    pub fn status(&self) -> u16 {
        match self {
            LoginFailure::NoLogin => 404,
            LoginFailure::Store(_) => 503,
            LoginFailure::Line(LoginError::Unavailable { .. }) => 502,
            LoginFailure::LinkTokenUsedByAnother => 409,
            _ => 400,
        }
    }

    /// What the person is told: what happened and what to do, without internals.
    pub fn message(&self) -> &'static str {
        match self {
            LoginFailure::NoLogin => "There is no LINE login for this address.",
            LoginFailure::UnknownState | LoginFailure::Missing(_) => {
                "This login link is not valid. Please open the login link again."
            }
            LoginFailure::StateUsed => "This login was already completed. To log in again, open the login link again.",
            LoginFailure::StateExpired => "This login took too long and expired. Please open the login link again.",
            LoginFailure::LineSaidNo { code, .. } if code == "ACCESS_DENIED" => {
                "You cancelled the LINE login, so nothing was linked. You can open the login link again at any time."
            }
            LoginFailure::LineSaidNo { .. } => "LINE could not complete the login. Please try again later.",
            LoginFailure::Line(LoginError::Unavailable { .. }) => {
                "LINE could not be reached. Please try again in a moment."
            }
            LoginFailure::Line(_) => "LINE could not confirm this login. Please open the login link again.",
            LoginFailure::UnknownLinkToken => "This link is not valid. Please use the newest link you received.",
            LoginFailure::ExpiredLinkToken => "This link has expired. Please ask for a new one.",
            LoginFailure::LinkTokenUsedByAnother => {
                "This link was already used by another LINE account, so it cannot link yours. If you received it in a forwarded email, ask for your own link."
            }
            LoginFailure::Store(_) => "The service is busy. Please try again in a moment.",
        }
    }
}

/// What a completed login did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// Committed: the writer links the contact.
    Linked {
        /// The LINE user.
        user_id: String,
    },
    /// This LINE user already linked with this link token: nothing to do.
    AlreadyLinked {
        /// The LINE user.
        user_id: String,
    },
}

/// The login of account `id`, if it is active and has a `login:` block.
pub fn login_of<'a>(config: &'a Config, id: &str) -> Result<(&'a Account, &'a LoginConfig), LoginFailure> {
    let account = config.account(id).filter(|a| a.active).ok_or(LoginFailure::NoLogin)?;
    let login = account.login.as_ref().ok_or(LoginFailure::NoLogin)?;
    Ok((account, login))
}

/// The public URLs of an account's login surface.
pub struct LoginUrls {
    /// `GET` starts LINE Login.
    pub login: String,
    /// LINE Login's Callback URL.
    pub callback: String,
    /// The LIFF endpoint URL.
    pub liff_endpoint: String,
    /// The page for LINE's email permission application.
    pub sample: String,
    /// `https://liff.line.me/{liffId}`, when LIFF is configured.
    pub liff: Option<String>,
}

impl LoginUrls {
    /// The URLs of account `id` under `public_base_url`.
    pub fn new(public_base_url: &str, id: &str, login: &LoginConfig) -> LoginUrls {
        let base = format!("{}/line/{id}", public_base_url.trim_end_matches('/'));
        LoginUrls {
            login: format!("{base}/login"),
            callback: format!("{base}/login/callback"),
            liff_endpoint: format!("{base}/liff"),
            sample: format!("{base}/login/sample"),
            liff: login.liff_id.as_ref().map(|id| format!("https://liff.line.me/{id}")),
        }
    }

    /// What a QR code should open: the LIFF URL when LIFF is configured (it opens inside
    /// LINE), else the login URL.
    pub fn qr_target(&self) -> &str {
        self.liff.as_deref().unwrap_or(&self.login)
    }
}

/// The hash a link token is stored under.
pub fn hash_link_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh link token: 32 random bytes, base64url.
pub fn new_link_token() -> String {
    random_token(32)
}

/// A started login: where to send the person (web) and the state to carry (LIFF).
pub struct Started {
    /// The attempt's state.
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE challenge.
    pub challenge: String,
}

/// Stores a new attempt for `account_id` (`via` `web` or `liff`), carrying `link` if given.
pub async fn begin(
    store: &Store,
    account_id: &str,
    via: &str,
    link: Option<&str>,
    now: i64,
) -> Result<Started, LoginFailure> {
    let link_token = match link.map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) if l.len() > MAX_LINK_TOKEN_LEN => return Err(LoginFailure::UnknownLinkToken),
        Some(l) => Some(hash_link_token(l)),
        None => None,
    };
    let pkce = pkce();
    let attempt = LoginAttempt {
        state: random_token(24),
        account_id: account_id.to_string(),
        via: via.to_string(),
        nonce: random_token(24),
        code_verifier: pkce.verifier,
        link_token,
        expires_at: now + ATTEMPT_TTL_MS,
    };
    let started = Started { state: attempt.state.clone(), nonce: attempt.nonce.clone(), challenge: pkce.challenge };
    store.begin_login(attempt, now).await?;
    Ok(started)
}

/// Takes the attempt of `state` for `account_id`, once.
async fn take(store: &Store, account_id: &str, state: &str, via: &str, now: i64) -> Result<LoginAttempt, LoginFailure> {
    match store.take_login(account_id.to_string(), state.to_string(), now).await? {
        TakenAttempt::Taken(a) if a.via == via => Ok(a),
        TakenAttempt::Taken(_) | TakenAttempt::Unknown => Err(LoginFailure::UnknownState),
        TakenAttempt::Used => Err(LoginFailure::StateUsed),
        TakenAttempt::Expired => Err(LoginFailure::StateExpired),
    }
}

/// The query LINE sends the person back with.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The attempt's state.
    pub state: Option<String>,
    /// LINE's error, when the login did not happen.
    pub error: Option<String>,
    /// LINE's explanation of `error`.
    pub error_description: Option<String>,
    /// Whether the person added the account as a friend during the login.
    pub friendship_status_changed: Option<String>,
}

/// Completes a web login from LINE's callback.
pub async fn complete_web(
    store: &Store,
    client: &LoginClient,
    config: &Config,
    account_id: &str,
    callback: &Callback,
    now: i64,
) -> Result<Completed, LoginFailure> {
    let (account, login) = login_of(config, account_id)?;
    let state = callback.state.as_deref().ok_or(LoginFailure::Missing("state"))?;
    // The attempt is taken even when LINE reports an error: a state serves one round trip.
    let attempt = take(store, account_id, state, "web", now).await?;
    if let Some(code) = &callback.error {
        return Err(LoginFailure::LineSaidNo {
            code: code.clone(),
            description: callback.error_description.clone().unwrap_or_default(),
        });
    }
    let code = callback.code.as_deref().ok_or(LoginFailure::Missing("code"))?;
    let redirect_uri = LoginUrls::new(&config.server.public_base_url, account_id, login).callback;
    let tokens = client.exchange(login, code, &redirect_uri, &attempt.code_verifier).await?;
    let id_token = tokens.id_token.as_deref().ok_or(LoginError::InvalidIdToken("LINE sent no ID token".into()))?;
    let claims = verify_web_id_token(id_token, login.channel_secret.expose(), &login.channel_id, &attempt.nonce, now)?;
    let friend = client.friendship(&tokens.access_token).await?;
    let added = callback.friendship_status_changed.as_deref() == Some("true");
    commit(store, account, &attempt, &claims, friend, added, now).await
}

/// Completes a LIFF login: the page's `state`, and the ID and access tokens LIFF gave it.
#[allow(clippy::too_many_arguments)]
pub async fn complete_liff(
    store: &Store,
    client: &LoginClient,
    config: &Config,
    account_id: &str,
    state: &str,
    id_token: &str,
    access_token: &str,
    now: i64,
) -> Result<Completed, LoginFailure> {
    let (account, login) = login_of(config, account_id)?;
    let attempt = take(store, account_id, state, "liff", now).await?;
    let claims = client.verify_id_token(id_token, &login.channel_id).await?;
    crate::line::login::check_claims(&claims, &login.channel_id, None, now)?;
    client.verify_access_token(access_token, &login.channel_id).await?;
    let friend = client.friendship(access_token).await?;
    commit(store, account, &attempt, &claims, friend, false, now).await
}

/// Checks the attempt's link token and commits the login.
#[allow(clippy::too_many_arguments)]
async fn commit(
    store: &Store,
    account: &Account,
    attempt: &LoginAttempt,
    claims: &IdClaims,
    friend: bool,
    added_now: bool,
    now: i64,
) -> Result<Completed, LoginFailure> {
    let user = claims.sub.clone();
    let mut token_contact = None;
    if let Some(hash) = &attempt.link_token {
        let record = store.link_token(hash.clone(), account.id.clone()).await?;
        match check_token(record.as_ref(), &user, now) {
            TokenVerdict::Links(contact) => token_contact = Some(contact),
            TokenVerdict::AlreadyLinked(_) => return Ok(Completed::AlreadyLinked { user_id: user }),
            TokenVerdict::Unknown => return Err(LoginFailure::UnknownLinkToken),
            TokenVerdict::Expired => return Err(LoginFailure::ExpiredLinkToken),
            TokenVerdict::UsedByAnother => return Err(LoginFailure::LinkTokenUsedByAnother),
        }
    }
    let serial = store
        .serials()
        .await?
        .into_iter()
        .find(|(id, _)| *id == account.id)
        .map(|(_, serial)| serial)
        .ok_or(LoginFailure::NoLogin)?;
    let email = claims.email.as_deref().and_then(normalize_email);
    let commit = LoginCommit {
        state: attempt.state.clone(),
        account_id: account.id.clone(),
        serial,
        user_id: user.clone(),
        link_token: token_contact.as_ref().and(attempt.link_token.clone()),
        token_contact,
        email,
    };
    let (name, picture, observed_user) = (claims.name.clone(), claims.picture.clone(), user.clone());
    // Computed against the friend's state inside the commit, so an event applied meanwhile is
    // never undone.
    let observe = move |state: &crate::sync::FriendState| {
        let profile = name.as_deref().map(|name| LineProfile { name, picture: picture.as_deref() });
        observed_link_properties(serial, &observed_user, profile, Some(friend), state, None, now)
    };
    match store.commit_login(commit, observe, now).await? {
        LoginCommitted::TokenUsedByAnother => Err(LoginFailure::LinkTokenUsedByAnother),
        LoginCommitted::Queued { known_before } => {
            if friend && !known_before && !added_now {
                tracing::warn!(
                    account = %account.id,
                    "a LINE user who logged in is a friend of the account but unknown to it: the LINE Login channel is probably under another provider than the Messaging API channel (user ids differ between providers)"
                );
                let problem = crate::store::logins::LinkProblem {
                    id: 0,
                    kind: "provider".into(),
                    account_id: account.id.clone(),
                    user_id: user.clone(),
                    contact_id: None,
                    other_contact_id: None,
                    detail: "LINE reports this user as a friend, but the account never saw the user id: put the LINE Login channel under the same provider as the Messaging API channel".into(),
                    created_at: now,
                };
                store.record_link_problem(problem).await?;
            }
            Ok(Completed::Linked { user_id: user })
        }
    }
}
