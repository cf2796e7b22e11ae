//! What each LINE Login endpoint does: the authorization code flow and the calls a server makes
//! with its tokens.
//!
//! Behaviour, as LINE documents it:
//! - authorize: an unknown `client_id` or a `redirect_uri` that does not start with a registered
//!   callback URL gets a 400 error page and is never redirected. `scope` needs `openid` or
//!   `profile`, `email` needs `openid`, `code_challenge` and `code_challenge_method` come
//!   together; breaking one of these is recorded and redirected with `INVALID_SCOPE` /
//!   `INVALID_REQUEST`. Otherwise the next scripted consent of the channel is shown.
//! - consent: 302 to `redirect_uri` with `code` and `state` (and `friendship_status_changed` when
//!   `bot_prompt` was given), or `error=ACCESS_DENIED`. The code is valid 10 minutes, once.
//! - token: the code's `redirect_uri` must be identical, `client_secret` the channel's, and the
//!   PKCE verifier's S256 hash the challenge. Any attempt uses the code up. Access tokens live
//!   30 days; `id_token` only with `openid`; `scope` never lists `email`.
//! - verify (POST): signature (HS256 with the channel secret, or ES256 by `kid`), issuer,
//!   expiry, audience, nonce and subject, reported with LINE's error descriptions.
//! - profile and friendship status need the `profile` scope, userinfo `openid`.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::jwt::{ISSUER, Parsed, s256_challenge};
use super::{
    Code, Grant, LoginRecord, LoginVia, Session, User, befriend_linked_bot, is_friend_of_linked_bot, oauth_error,
    pages, random_token,
};
use crate::contract::{Matched, RequestParts, Violation, ViolationKind, parse_query};
use crate::line::LineState;
use crate::reply::Reply;
use crate::time;

/// Where the consent page's form posts.
pub(super) const CONSENT_PATH: &str = "/oauth2/v2.1/authorize/consent";

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Web-login access tokens: 30 days.
pub(super) const ACCESS_TOKEN_SECONDS: u64 = 30 * 24 * 3600;
/// Refresh tokens: 90 days after the access token was issued, at most.
const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// ID tokens expire an hour after they are issued.
pub(super) const ID_TOKEN_SECONDS: i64 = 3600;

/// One contract-checked Login API call.
pub(super) struct Call<'a> {
    pub(super) matched: &'a Matched,
    /// `METHOD /path`, for violations.
    pub(super) request: String,
    pub(super) headers: &'a HeaderMap,
}

impl Call<'_> {
    fn query(&self, name: &str) -> Option<&str> {
        self.matched.query_param(name)
    }

    /// A field of the (form) body.
    fn field(&self, name: &str) -> Option<&str> {
        self.matched.body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str)
    }

    fn rule(&self, message: &str, at: &str, problem: &str) -> Violation {
        Violation::new(ViolationKind::Rule, self.request.clone(), self.matched.operation_id.clone(), message)
            .with_detail(at, problem)
    }
}

/// A refused call: the violation to record and LINE's answer to it.
pub(super) type Refused = Box<(Violation, Reply)>;

/// Runs the operation the request matched.
pub(super) fn dispatch(line: &mut LineState, call: &Call<'_>) -> Result<Reply, Refused> {
    let op = call.matched.operation_id.as_deref().unwrap_or_default();
    match op {
        "authorize" => authorize(line, call),
        "issueAccessToken" => Ok(token(line, call)),
        "verifyAccessToken" => Ok(verify_access_token(line, call)),
        "verifyIdToken" => Ok(verify_id_token(line, call)),
        "revokeAccessToken" => Ok(revoke(line, call)),
        "getUserInfo" => Ok(user_info(line, call)),
        "getJwks" => Ok(Reply::json(StatusCode::OK, json!({ "keys": [line.login.key.jwk()] }))),
        "getUserProfile" => Ok(profile(line, call)),
        "getFriendshipStatus" => Ok(friendship(line, call)),
        _ => {
            let v = Violation::new(
                ViolationKind::NotSimulated,
                call.request.clone(),
                call.matched.operation_id.clone(),
                format!("linehub-sandbox does not simulate {op}"),
            );
            let reply = super::violation_reply(&v);
            Err(Box::new((v, reply)))
        }
    }
}

/// Percent-encodes a query component (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `redirect_uri` with `params` appended to its query (which it may already have).
pub(super) fn callback_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let (base, fragment) = match redirect_uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (redirect_uri, None),
    };
    let mut url = base.to_string();
    for (i, (k, v)) in params.iter().enumerate() {
        let sep = if i == 0 && !base.contains('?') {
            "?"
        } else if i == 0 && (base.ends_with('?') || base.ends_with('&')) {
            ""
        } else {
            "&"
        };
        url.push_str(&format!("{sep}{}={}", encode(k), encode(v)));
    }
    if let Some(f) = fragment {
        url.push('#');
        url.push_str(f);
    }
    url
}

/// `GET /oauth2/v2.1/authorize`.
fn authorize(line: &mut LineState, call: &Call<'_>) -> Result<Reply, Refused> {
    let client_id = call.query("client_id").unwrap_or_default();
    let redirect_uri = call.query("redirect_uri").unwrap_or_default().to_string();
    let state = call.query("state").unwrap_or_default().to_string();
    let Some(channel) = line.login.channel(client_id) else {
        return Ok(pages::error(
            StatusCode::BAD_REQUEST,
            "Invalid client",
            &format!("{client_id} is not the channel ID of a LINE Login channel."),
        ));
    };
    if !channel.spec.callback_urls.iter().any(|u| redirect_uri.starts_with(u.as_str())) {
        return Ok(pages::error(
            StatusCode::BAD_REQUEST,
            "Invalid redirect_uri",
            &format!("{redirect_uri} is not registered as a callback URL of channel {client_id}."),
        ));
    }
    let redirect_error = |error: &str, description: &str| {
        Reply::redirect(callback_url(
            &redirect_uri,
            &[("error", error), ("error_description", description), ("state", &state)],
        ))
    };
    for (param, supported) in [("response_mode", "query"), ("prompt", "consent|login")] {
        if let Some(value) = call.query(param)
            && !supported.split('|').any(|s| s == value)
        {
            let v = Violation::new(
                ViolationKind::NotSimulated,
                call.request.clone(),
                call.matched.operation_id.clone(),
                format!("linehub-sandbox does not simulate {param}={value}"),
            );
            return Err(Box::new((
                v,
                pages::error(StatusCode::NOT_IMPLEMENTED, "Not simulated", &format!("{param}={value}")),
            )));
        }
    }
    let mut scopes: Vec<String> = Vec::new();
    for s in call.query("scope").unwrap_or_default().split(' ') {
        if !scopes.iter().any(|x| x == s) {
            scopes.push(s.to_string());
        }
    }
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if !has("openid") && !has("profile") {
        let v = call.rule("scope needs openid or profile", "query:scope", "neither openid nor profile is asked");
        return Err(Box::new((v, redirect_error("INVALID_SCOPE", "scope must include openid or profile"))));
    }
    if has("email") && !has("openid") {
        let v = call.rule("the email scope needs openid", "query:scope", "email without openid");
        return Err(Box::new((v, redirect_error("INVALID_SCOPE", "email needs the openid scope"))));
    }
    let code_challenge = call.query("code_challenge").map(str::to_string);
    if code_challenge.is_some() != call.query("code_challenge_method").is_some() {
        let v = call.rule(
            "code_challenge and code_challenge_method=S256 go together",
            "query:code_challenge_method",
            "only one of code_challenge and code_challenge_method is given",
        );
        return Err(Box::new((
            v,
            redirect_error("INVALID_REQUEST", "code_challenge needs code_challenge_method=S256"),
        )));
    }
    let bot_prompt = call.query("bot_prompt").is_some();
    let channel_id = client_id.to_string();
    let bot_name = channel
        .spec
        .linked_bot_access_token
        .as_deref()
        .and_then(|t| line.index(t).ok())
        .map(|i| line.channels[i].spec.display_name.clone());
    let email_permission = channel.spec.email_permission;
    let Some(consent) = line.login.channel_mut(&channel_id).and_then(|c| c.queue.pop_front()) else {
        return Ok(pages::no_user(&channel_id));
    };
    let session_id = random_token(24);
    let page = pages::consent(&pages::ConsentPage {
        session: &session_id,
        channel_id: &channel_id,
        scopes: &scopes,
        consent: &consent,
        bot_name: if bot_prompt { Some(bot_name.as_deref().unwrap_or("the LINE Official Account")) } else { None },
        email_offered: has("email") && email_permission,
    });
    line.login.sessions.insert(
        session_id,
        Session {
            channel_id,
            redirect_uri,
            state,
            scopes,
            nonce: call.query("nonce").map(str::to_string),
            bot_prompt,
            code_challenge,
            consent,
        },
    );
    Ok(page)
}

/// `POST /oauth2/v2.1/authorize/consent`: the consent page's form (the sandbox's own page, so
/// not part of LINE's contract). Cancel always cancels; otherwise the scripted consent decides.
pub(super) fn consent(line: &mut LineState, req: &RequestParts<'_>) -> Reply {
    let form = parse_query(Some(&String::from_utf8_lossy(req.body)));
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let decision = field("decision");
    let Some(session) = field("session").and_then(|s| line.login.sessions.remove(s)) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "Login session expired",
            "This login session is unknown or used.",
        );
    };
    if !matches!(decision, Some("allow" | "deny")) {
        return pages::error(StatusCode::BAD_REQUEST, "Invalid request", "decision must be allow or deny.");
    }
    let consent = &session.consent;
    if decision == Some("deny") || consent.deny {
        line.login.records.push(LoginRecord {
            channel_id: session.channel_id.clone(),
            user_id: consent.user_id.clone(),
            via: LoginVia::Web,
            allowed: false,
            became_friend: false,
        });
        return Reply::redirect(callback_url(
            &session.redirect_uri,
            &[
                ("error", "ACCESS_DENIED"),
                ("error_description", "The user has denied the approval"),
                ("state", &session.state),
            ],
        ));
    }
    let became_friend = session.bot_prompt && befriend_linked_bot(line, &session.channel_id, consent);
    let email_permission = line.login.channel(&session.channel_id).is_some_and(|c| c.spec.email_permission);
    let email_shared = session.scopes.iter().any(|s| s == "email") && email_permission && consent.grant_email;
    let user = User {
        id: consent.user_id.clone(),
        name: consent.name.clone(),
        picture: consent.picture.clone(),
        email: consent.email.clone().filter(|_| email_shared),
    };
    line.login.records.push(LoginRecord {
        channel_id: session.channel_id.clone(),
        user_id: user.id.clone(),
        via: LoginVia::Web,
        allowed: true,
        became_friend,
    });
    let code = random_token(16);
    line.login.codes.insert(
        code.clone(),
        Code {
            channel_id: session.channel_id.clone(),
            redirect_uri: session.redirect_uri.clone(),
            scopes: session.scopes.clone(),
            nonce: session.nonce.clone(),
            code_challenge: session.code_challenge.clone(),
            user,
            expires: Instant::now() + CODE_LIFETIME,
        },
    );
    let changed = if became_friend { "true" } else { "false" };
    let mut params = vec![("code", code.as_str()), ("state", session.state.as_str())];
    if session.bot_prompt {
        params.push(("friendship_status_changed", changed));
    }
    Reply::redirect(callback_url(&session.redirect_uri, &params))
}

/// The claims of an ID token for `user`, as LINE writes them.
pub(super) fn id_token_claims(channel_id: &str, user: &User, scopes: &[String], nonce: Option<&str>) -> Value {
    let iat = time::now_ms() / 1000;
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(ISSUER));
    claims.insert("sub".into(), json!(user.id));
    claims.insert("aud".into(), json!(channel_id));
    claims.insert("exp".into(), json!(iat + ID_TOKEN_SECONDS));
    claims.insert("iat".into(), json!(iat));
    if let Some(n) = nonce {
        claims.insert("nonce".into(), json!(n));
    }
    claims.insert("amr".into(), json!(["linesso"]));
    if scopes.iter().any(|s| s == "profile") {
        claims.insert("name".into(), json!(user.name));
        if let Some(p) = &user.picture {
            claims.insert("picture".into(), json!(p));
        }
    }
    if let Some(e) = &user.email {
        claims.insert("email".into(), json!(e));
    }
    Value::Object(claims)
}

/// Stores a new access token (and, for web logins, a refresh token) for `grant`.
pub(super) fn issue(line: &mut LineState, grant: Grant, refresh: bool) -> (String, Option<String>) {
    let access = random_token(32);
    if let Some(c) = line.login.channel_mut(&grant.channel_id) {
        c.tokens_issued += 1;
    }
    let refresh_token = refresh.then(|| {
        let token = random_token(32);
        let expires = Instant::now() + REFRESH_TOKEN_LIFETIME;
        line.login.refresh_tokens.insert(token.clone(), Grant { expires, ..grant.clone() });
        token
    });
    line.login.access_tokens.insert(access.clone(), grant);
    (access, refresh_token)
}

/// `POST /oauth2/v2.1/token`.
fn token(line: &mut LineState, call: &Call<'_>) -> Reply {
    let invalid_grant = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let invalid_request = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", d);
    let client_id = call.field("client_id").unwrap_or_default().to_string();
    let Some(channel) = line.login.channel(&client_id) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "invalid client_id");
    };
    if call.field("client_secret") != Some(channel.spec.channel_secret.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "invalid client_secret");
    }
    let secret = channel.spec.channel_secret.clone();
    let now = Instant::now();
    let (grant, nonce, id_token) = match call.field("grant_type") {
        Some("authorization_code") => {
            // Any attempt uses the code up, as a stolen code must not be tried twice.
            let Some(code) = call.field("code").and_then(|c| line.login.codes.remove(c)) else {
                return invalid_grant("authorization code not found or already used");
            };
            if code.channel_id != client_id {
                return invalid_grant("authorization code was issued to another client");
            }
            if code.expires <= now {
                return invalid_grant("authorization code expired");
            }
            if call.field("redirect_uri") != Some(code.redirect_uri.as_str()) {
                return invalid_grant("redirect_uri does not match");
            }
            match (&code.code_challenge, call.field("code_verifier")) {
                (Some(challenge), Some(verifier)) if s256_challenge(verifier) == *challenge => {}
                (Some(_), Some(_)) => return invalid_grant("code_verifier does not match code_challenge"),
                (Some(_), None) => return invalid_request("code_verifier is required"),
                (None, Some(_)) => return invalid_request("code_verifier given without a code_challenge"),
                (None, None) => {}
            }
            let expires = now + Duration::from_secs(ACCESS_TOKEN_SECONDS);
            let grant = Grant { channel_id: client_id.clone(), user: code.user, scopes: code.scopes, expires };
            let openid = grant.scopes.iter().any(|s| s == "openid");
            (grant, code.nonce, openid)
        }
        Some("refresh_token") => {
            let found = call.field("refresh_token").and_then(|t| line.login.refresh_tokens.remove(t));
            let Some(old) = found.filter(|g| g.channel_id == client_id && g.expires > now) else {
                return invalid_grant("invalid refresh token");
            };
            let expires = now + Duration::from_secs(ACCESS_TOKEN_SECONDS);
            (Grant { expires, ..old }, None, false)
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant_type"),
    };
    let scope: Vec<&str> = grant.scopes.iter().map(String::as_str).filter(|s| *s != "email").collect();
    let mut body = json!({
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": scope.join(" "),
        "token_type": "Bearer",
    });
    if id_token {
        let claims = id_token_claims(&client_id, &grant.user, &grant.scopes, nonce.as_deref());
        body["id_token"] = json!(super::jwt::sign_hs256(&secret, &claims));
    }
    let (access, refresh) = issue(line, grant, true);
    body["access_token"] = json!(access);
    body["refresh_token"] = json!(refresh);
    Reply::json(StatusCode::OK, body)
}

/// `GET /oauth2/v2.1/verify?access_token=`.
fn verify_access_token(line: &mut LineState, call: &Call<'_>) -> Reply {
    let now = Instant::now();
    match call.query("access_token").and_then(|t| line.login.grant(t, now)) {
        Some(g) => {
            let scope: Vec<&str> = g.scopes.iter().map(String::as_str).filter(|s| *s != "email").collect();
            Reply::json(
                StatusCode::OK,
                json!({
                    "scope": scope.join(" "),
                    "client_id": g.channel_id,
                    "expires_in": g.expires.saturating_duration_since(now).as_secs(),
                }),
            )
        }
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "access token expired"),
    }
}

/// `POST /oauth2/v2.1/verify`: checks an ID token the way LINE does, in LINE's order.
fn verify_id_token(line: &mut LineState, call: &Call<'_>) -> Reply {
    let refuse = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", d);
    let client_id = call.field("client_id").unwrap_or_default();
    let Some(token) = call.field("id_token").and_then(Parsed::parse) else {
        return refuse("Invalid IdToken.");
    };
    let signed = match token.alg() {
        "HS256" => {
            // Signed with the secret of the channel it was issued to; checked against the
            // audience's secret so a token for another channel reports its audience.
            let aud = token.claims["aud"].as_str();
            [aud, Some(client_id)]
                .into_iter()
                .flatten()
                .filter_map(|id| line.login.channel(id))
                .any(|c| token.hs256_valid(&c.spec.channel_secret))
        }
        "ES256" => token.es256_valid(&line.login.key),
        _ => false,
    };
    if !signed {
        return refuse("Invalid IdToken.");
    }
    let claims = &token.claims;
    if claims["iss"].as_str() != Some(ISSUER) {
        return refuse("Invalid IdToken Issuer.");
    }
    match claims["exp"].as_i64() {
        Some(exp) if exp > time::now_ms() / 1000 => {}
        Some(_) => return refuse("IdToken expired."),
        None => return refuse("Invalid IdToken."),
    }
    if claims["aud"].as_str() != Some(client_id) {
        return refuse("Invalid IdToken Audience.");
    }
    if let Some(nonce) = call.field("nonce")
        && claims["nonce"].as_str() != Some(nonce)
    {
        return refuse("Invalid IdToken Nonce.");
    }
    if let Some(user_id) = call.field("user_id")
        && claims["sub"].as_str() != Some(user_id)
    {
        return refuse("Invalid IdToken Subject Identifier.");
    }
    Reply::json(StatusCode::OK, claims.clone())
}

/// `POST /oauth2/v2.1/revoke`: 200 whether or not the token was valid.
fn revoke(line: &mut LineState, call: &Call<'_>) -> Reply {
    let client_id = call.field("client_id").unwrap_or_default();
    if let Some(token) = call.field("access_token")
        && line.login.access_tokens.get(token).is_some_and(|g| g.channel_id == client_id)
    {
        line.login.access_tokens.remove(token);
    }
    Reply::empty(StatusCode::OK)
}

/// The live grant of the request's `Authorization: Bearer` user access token, which must carry
/// `scope`; else LINE's 401 or 403.
fn bearer_grant(line: &LineState, call: &Call<'_>, scope: &str) -> Result<Grant, Reply> {
    let Some(grant) = crate::bearer(call.headers).and_then(|t| line.login.grant(t, Instant::now())) else {
        return Err(Reply::json(StatusCode::UNAUTHORIZED, json!({ "message": "invalid token" })));
    };
    if !grant.scopes.iter().any(|s| s == scope) {
        return Err(Reply::json(StatusCode::FORBIDDEN, json!({ "message": format!("The {scope} scope is required") })));
    }
    Ok(grant.clone())
}

/// `GET /oauth2/v2.1/userinfo`.
fn user_info(line: &mut LineState, call: &Call<'_>) -> Reply {
    let grant = match bearer_grant(line, call, "openid") {
        Ok(g) => g,
        Err(reply) => return reply,
    };
    let mut body = json!({ "sub": grant.user.id });
    if grant.scopes.iter().any(|s| s == "profile") {
        body["name"] = json!(grant.user.name);
        if let Some(p) = &grant.user.picture {
            body["picture"] = json!(p);
        }
    }
    Reply::json(StatusCode::OK, body)
}

/// `GET /v2/profile`.
fn profile(line: &mut LineState, call: &Call<'_>) -> Reply {
    let grant = match bearer_grant(line, call, "profile") {
        Ok(g) => g,
        Err(reply) => return reply,
    };
    let mut body = json!({ "userId": grant.user.id, "displayName": grant.user.name });
    if let Some(p) = &grant.user.picture {
        body["pictureUrl"] = json!(p);
    }
    Reply::json(StatusCode::OK, body)
}

/// `GET /friendship/v1/status`.
fn friendship(line: &mut LineState, call: &Call<'_>) -> Reply {
    let grant = match bearer_grant(line, call, "profile") {
        Ok(g) => g,
        Err(reply) => return reply,
    };
    let friend = is_friend_of_linked_bot(line, &grant.channel_id, &grant.user.id);
    Reply::json(StatusCode::OK, json!({ "friendFlag": friend }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_parameters_join_the_redirect_uris_own_query() {
        assert_eq!(
            callback_url("https://a.example/cb", &[("code", "x"), ("state", "s")]),
            "https://a.example/cb?code=x&state=s"
        );
        assert_eq!(callback_url("https://a.example/cb?acct=1", &[("code", "x")]), "https://a.example/cb?acct=1&code=x");
        assert_eq!(callback_url("https://a.example/cb?", &[("code", "x")]), "https://a.example/cb?code=x");
        assert_eq!(
            callback_url("https://a.example/cb", &[("error_description", "a b&c")]),
            "https://a.example/cb?error_description=a%20b%26c"
        );
    }
}
