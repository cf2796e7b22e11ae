//! LINE Login v2.1: the calls that turn a login into a LINE user id linehub can trust.
//!
//! - the authorize URL (`{login_base_url}/oauth2/v2.1/authorize`) with `state`, `nonce`, PKCE
//!   (S256), the scopes and `bot_prompt`;
//! - the code exchange (`POST /oauth2/v2.1/token`, with the Login channel secret and the PKCE
//!   verifier);
//! - ID token checks: web-login tokens are HS256, keyed with the Login channel secret, and are
//!   verified here ([`verify_web_id_token`]): algorithm fixed (the header is never trusted),
//!   signature compared in constant time, then `iss`, `aud`, `exp` and `nonce`. LIFF tokens are
//!   ES256 and are verified by LINE (`POST /oauth2/v2.1/verify`);
//! - access-token verification (`GET /oauth2/v2.1/verify`), and the friendship status with the
//!   linked account (`GET /friendship/v1/status`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{LineConfig, LoginConfig};

/// The issuer of LINE's ID tokens.
pub const ISSUER: &str = "https://access.line.me";

/// The claims of a verified ID token that linehub uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The LINE user id.
    pub sub: String,
    /// The Login channel id.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// The nonce of the authorize request (web login).
    #[serde(default)]
    pub nonce: Option<String>,
    /// Display name (`profile` scope).
    #[serde(default)]
    pub name: Option<String>,
    /// Picture URL (`profile` scope).
    #[serde(default)]
    pub picture: Option<String>,
    /// Email (`email` scope, when the person granted it).
    #[serde(default)]
    pub email: Option<String>,
}

/// Why a login could not be completed; each names what a person or operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The ID token is not one LINE made for this login.
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
    /// LINE refused a call (a used or expired code, a wrong secret, an expired token…).
    #[error("LINE refused the {call} ({status}): {message}")]
    Refused {
        /// Which call.
        call: &'static str,
        /// HTTP status.
        status: u16,
        /// LINE's error and description.
        message: String,
    },
    /// LINE could not be reached or answered something unreadable.
    #[error("LINE Login is unavailable ({call}): {message}")]
    Unavailable {
        /// Which call.
        call: &'static str,
        /// What happened (without URLs or tokens).
        message: String,
    },
}

/// The tokens of a code exchange.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    /// The user's access token (for the friendship status).
    pub access_token: String,
    /// The ID token (present with the `openid` scope).
    #[serde(default)]
    pub id_token: Option<String>,
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    /// Kept in the store until the callback.
    pub verifier: String,
    /// Sent to LINE with the authorize request.
    pub challenge: String,
}

/// A fresh PKCE pair: 32 random bytes (43 characters of base64url) and their SHA-256.
pub fn pkce() -> Pkce {
    let verifier = random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

/// `bytes` random bytes as base64url: states, nonces, verifiers and link tokens.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Verifies a web-login ID token: HS256 with the Login channel secret, issued by LINE for
/// `channel_id`, not expired at `now_ms`, carrying `nonce`.
pub fn verify_web_id_token(
    token: &str,
    channel_secret: &str,
    channel_id: &str,
    nonce: &str,
    now_ms: i64,
) -> Result<IdClaims, LoginError> {
    let bad = |why: &str| LoginError::InvalidIdToken(why.to_string());
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a JWT"));
    };
    let alg: serde_json::Value = decode_json(header).ok_or_else(|| bad("unreadable header"))?;
    if alg["alg"].as_str() != Some("HS256") {
        return Err(bad("web login tokens are HS256"));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| bad("unreadable signature"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(channel_secret.as_bytes()).map_err(|_| bad("unusable key"))?;
    mac.update(&token.as_bytes()[..header.len() + 1 + payload.len()]);
    mac.verify_slice(&signature).map_err(|_| bad("signature does not match the Login channel secret"))?;
    let claims: IdClaims = decode_json(payload).ok_or_else(|| bad("unreadable claims"))?;
    check_claims(&claims, channel_id, Some(nonce), now_ms)?;
    Ok(claims)
}

/// Checks the claims every ID token must satisfy (and the nonce, when one was sent).
pub fn check_claims(claims: &IdClaims, channel_id: &str, nonce: Option<&str>, now_ms: i64) -> Result<(), LoginError> {
    let bad = |why: &str| LoginError::InvalidIdToken(why.to_string());
    if claims.iss != ISSUER {
        return Err(bad("issuer is not LINE"));
    }
    if claims.aud != channel_id {
        return Err(bad("issued for another channel"));
    }
    if claims.exp.saturating_mul(1000) <= now_ms {
        return Err(bad("expired"));
    }
    if let Some(nonce) = nonce
        && claims.nonce.as_deref() != Some(nonce)
    {
        return Err(bad("nonce does not match this login"));
    }
    if !crate::sync::link::is_line_user_id(&claims.sub) {
        return Err(bad("subject is not a LINE user id"));
    }
    Ok(())
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// The LINE Login endpoints for one config.
#[derive(Clone)]
pub struct LoginClient {
    http: reqwest::Client,
    login_base_url: String,
    api_base_url: String,
}

impl LoginClient {
    /// A client for the hosts in `line`.
    pub fn new(line: &LineConfig) -> Result<LoginClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("linehub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(LoginClient {
            http,
            login_base_url: line.login_base_url.trim_end_matches('/').to_string(),
            api_base_url: line.api_base_url.trim_end_matches('/').to_string(),
        })
    }

    /// Where the person is sent to log in.
    pub fn authorize_url(
        &self,
        login: &LoginConfig,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> String {
        let scope = if login.email { "openid profile email" } else { "openid profile" };
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", login.channel_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("scope", scope),
            ("nonce", nonce),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(prompt) = login.bot_prompt.param() {
            pairs.push(("bot_prompt", prompt));
        }
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        format!("{}/oauth2/v2.1/authorize?{}", self.login_base_url, query.join("&"))
    }

    /// Exchanges an authorization code for the user's tokens.
    pub async fn exchange(
        &self,
        login: &LoginConfig,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Tokens, LoginError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", login.channel_id.as_str()),
            ("client_secret", login.channel_secret.expose()),
            ("code_verifier", verifier),
        ];
        let req = self.http.post(format!("{}/oauth2/v2.1/token", self.api_base_url)).form(&form);
        answer(req, "code exchange").await
    }

    /// Has LINE verify an ID token (any algorithm) for `channel_id`: the LIFF path.
    pub async fn verify_id_token(&self, id_token: &str, channel_id: &str) -> Result<IdClaims, LoginError> {
        let form = [("id_token", id_token), ("client_id", channel_id)];
        let req = self.http.post(format!("{}/oauth2/v2.1/verify", self.api_base_url)).form(&form);
        match answer::<IdClaims>(req, "ID token verification").await {
            Err(LoginError::Refused { status: 400, message, .. }) => Err(LoginError::InvalidIdToken(message)),
            other => other,
        }
    }

    /// Checks that `access_token` is valid and was issued to `channel_id`.
    pub async fn verify_access_token(&self, access_token: &str, channel_id: &str) -> Result<(), LoginError> {
        #[derive(Deserialize)]
        struct Verified {
            client_id: String,
            expires_in: i64,
        }
        let req =
            self.http.get(format!("{}/oauth2/v2.1/verify", self.api_base_url)).query(&[("access_token", access_token)]);
        let v: Verified = answer(req, "access token verification").await?;
        if v.client_id != channel_id || v.expires_in <= 0 {
            return Err(LoginError::InvalidIdToken("the access token belongs to another channel or expired".into()));
        }
        Ok(())
    }

    /// Whether the user is a friend (and has not blocked) the account linked to the channel.
    pub async fn friendship(&self, access_token: &str) -> Result<bool, LoginError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Friendship {
            friend_flag: bool,
        }
        let req = self.http.get(format!("{}/friendship/v1/status", self.api_base_url)).bearer_auth(access_token);
        Ok(answer::<Friendship>(req, "friendship status").await?.friend_flag)
    }
}

/// Sends `req` and reads a JSON answer, turning failures into [`LoginError`]s that carry no
/// URL or token.
async fn answer<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
    call: &'static str,
) -> Result<T, LoginError> {
    let unavailable = |e: reqwest::Error| LoginError::Unavailable { call, message: e.without_url().to_string() };
    let res = req.send().await.map_err(unavailable)?;
    let status = res.status().as_u16();
    let text = res.text().await.map_err(unavailable)?;
    if !(200..300).contains(&status) {
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let message = match (body["error"].as_str(), body["error_description"].as_str()) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.to_string(),
            _ => body["message"].as_str().unwrap_or("no explanation").to_string(),
        };
        return Err(LoginError::Refused { call, status, message });
    }
    serde_json::from_str(&text)
        .map_err(|e| LoginError::Unavailable { call, message: format!("unreadable answer: {e}") })
}

/// Percent-encodes a query value (space as `%20`, as LINE documents for `scope`).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "login-secret";
    const USER: &str = "U0123456789abcdef0123456789abcdef";

    fn sign(header: &str, claims: &serde_json::Value, secret: &str) -> String {
        let head = URL_SAFE_NO_PAD.encode(header);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{head}.{body}").as_bytes());
        format!("{head}.{body}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    fn claims(exp: i64) -> serde_json::Value {
        serde_json::json!({"iss": ISSUER, "sub": USER, "aud": "1650000001", "exp": exp, "iat": 0, "nonce": "n1",
                           "name": "Ann", "email": "ann@example.com"})
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn a_web_login_token_signed_with_the_channel_secret_verifies() {
        let token = sign(HS256, &claims(100), SECRET);
        let c = verify_web_id_token(&token, SECRET, "1650000001", "n1", 99_000).unwrap();
        assert_eq!((c.sub.as_str(), c.email.as_deref()), (USER, Some("ann@example.com")));
    }

    #[test]
    fn tampered_expired_misaddressed_or_replayed_tokens_are_refused() {
        let token = sign(HS256, &claims(100), SECRET);
        let refused =
            |t: &str, aud: &str, nonce: &str, now: i64| verify_web_id_token(t, SECRET, aud, nonce, now).is_err();
        assert!(refused(&token, "1650000001", "n1", 100_000), "expired");
        assert!(refused(&token, "1650000002", "n1", 0), "another channel");
        assert!(refused(&token, "1650000001", "n2", 0), "another login's nonce");
        assert!(refused(&sign(HS256, &claims(100), "other"), "1650000001", "n1", 0), "wrong key");
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims(100);
        forged["sub"] = serde_json::json!("U9999999999abcdef0123456789abcdef");
        parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
        assert!(refused(&parts.join("."), "1650000001", "n1", 0), "claims changed after signing");
        let none = sign(r#"{"alg":"none"}"#, &claims(100), SECRET);
        assert!(refused(&none, "1650000001", "n1", 0), "the header's algorithm is not trusted");
        assert!(refused("a.b", "1650000001", "n1", 0));
    }

    #[test]
    fn pkce_challenges_are_the_s256_of_their_verifier() {
        let p = pkce();
        assert_eq!(p.verifier.len(), 43);
        assert_eq!(p.challenge, URL_SAFE_NO_PAD.encode(Sha256::digest(p.verifier.as_bytes())));
        assert_ne!(pkce().verifier, p.verifier);
    }

    #[test]
    fn query_values_are_percent_encoded_with_spaces_as_percent_20() {
        assert_eq!(encode("openid profile"), "openid%20profile");
        assert_eq!(encode("https://x/cb?a=1"), "https%3A%2F%2Fx%2Fcb%3Fa%3D1");
    }
}
