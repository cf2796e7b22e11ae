//! LIFF in the sandbox: a small stand-in for LINE's LIFF SDK and the session it starts.
//!
//! `GET /liff/sdk.js` serves a script that defines a global `liff` as if the page were open in
//! the LINE app (`isInClient()` is true). `liff.init({liffId})` posts to
//! `/_sandbox/liff/{liffId}/session` on the sandbox the script came from; that pops the next
//! scripted consent of the LIFF app's Login channel and answers an ES256 ID token and a 12-hour
//! access token, which `getIDToken()` and `getAccessToken()` then return. `getFriendship()` and
//! `getProfile()` call the Login API with that access token, as the real SDK does.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::oauth::{id_token_claims, issue};
use super::{Grant, LoginRecord, LoginVia, User, befriend_linked_bot};
use crate::line::LineState;
use crate::reply::Reply;

/// LIFF access tokens live 12 hours.
const LIFF_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

const SDK: &str = r#"/* linehub sandbox: a stand-in for the LIFF SDK, talking to the sandbox that served it. */
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = script && script.src ? new URL(script.src, window.location.href).origin : window.location.origin;
  var session = { liffId: null, idToken: null, accessToken: null };

  function fail(code, message) {
    var error = new Error(message);
    error.code = code;
    return error;
  }

  function json(response) {
    return response.json().then(function (body) {
      if (!response.ok) {
        throw fail("INIT_FAILED", body.error || body.message || ("status " + response.status));
      }
      return body;
    });
  }

  function authorized(path) {
    if (session.accessToken === null) {
      return Promise.reject(fail("UNAUTHORIZED", "liff.init has not completed"));
    }
    return fetch(origin + path, { headers: { Authorization: "Bearer " + session.accessToken } }).then(json);
  }

  function decode(part) {
    var b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var bytes = atob(b64);
    var text = decodeURIComponent(Array.prototype.map.call(bytes, function (c) {
      return "%" + ("00" + c.charCodeAt(0).toString(16)).slice(-2);
    }).join(""));
    return JSON.parse(text);
  }

  var resolveReady;
  window.liff = {
    id: null,
    ready: new Promise(function (resolve) { resolveReady = resolve; }),
    init: function (config) {
      if (!config || !config.liffId) {
        return Promise.reject(fail("INVALID_CONFIG", "liffId is required"));
      }
      session.liffId = config.liffId;
      window.liff.id = config.liffId;
      return fetch(origin + "/_sandbox/liff/" + encodeURIComponent(config.liffId) + "/session", { method: "POST" })
        .then(json)
        .then(function (body) {
          session.idToken = body.idToken;
          session.accessToken = body.accessToken;
          resolveReady();
        });
    },
    isLoggedIn: function () { return session.accessToken !== null; },
    isInClient: function () { return true; },
    getOS: function () { return "web"; },
    login: function () {
      if (session.accessToken === null && session.liffId !== null) {
        window.liff.init({ liffId: session.liffId });
      }
    },
    logout: function () { session.idToken = null; session.accessToken = null; },
    getIDToken: function () { return session.idToken; },
    getDecodedIDToken: function () { return session.idToken === null ? null : decode(session.idToken.split(".")[1]); },
    getAccessToken: function () { return session.accessToken; },
    getProfile: function () { return authorized("/v2/profile"); },
    getFriendship: function () { return authorized("/friendship/v1/status"); },
    closeWindow: function () {}
  };
})();
"#;

/// `GET /liff/sdk.js`.
pub(super) fn sdk() -> Reply {
    Reply::text(StatusCode::OK, "application/javascript; charset=utf-8", SDK.to_string())
}

/// Starts a LIFF session: pops the next scripted consent of the app's channel and answers
/// `{idToken, accessToken}`; `Err` carries the status and message the SDK's `init` rejects with.
pub(crate) fn session(line: &mut LineState, liff_id: &str) -> Result<Value, (StatusCode, String)> {
    let Some(channel) = line.login.channels.iter_mut().find(|c| c.spec.liff_ids.iter().any(|id| id == liff_id)) else {
        return Err((StatusCode::NOT_FOUND, format!("no LIFF app {liff_id}")));
    };
    let channel_id = channel.spec.channel_id.clone();
    let email_permission = channel.spec.email_permission;
    let Some(consent) = channel.queue.pop_front() else {
        return Err((StatusCode::CONFLICT, format!("no LINE user is signed in: no login scripted for {channel_id}")));
    };
    if consent.deny {
        line.login.records.push(LoginRecord {
            channel_id,
            user_id: consent.user_id,
            via: LoginVia::Liff,
            allowed: false,
            became_friend: false,
        });
        return Err((StatusCode::FORBIDDEN, "the user did not allow the LIFF app".to_string()));
    }
    let became_friend = befriend_linked_bot(line, &channel_id, &consent);
    let mut scopes = vec!["openid".to_string(), "profile".to_string()];
    let email_shared = email_permission && consent.grant_email && consent.email.is_some();
    if email_shared {
        scopes.push("email".to_string());
    }
    let user = User {
        id: consent.user_id.clone(),
        name: consent.name.clone(),
        picture: consent.picture.clone(),
        email: consent.email.clone().filter(|_| email_shared),
    };
    let id_token = line.login.key.sign(&id_token_claims(&channel_id, &user, &scopes, None));
    line.login.records.push(LoginRecord {
        channel_id: channel_id.clone(),
        user_id: user.id.clone(),
        via: LoginVia::Liff,
        allowed: true,
        became_friend,
    });
    let grant = Grant { channel_id, user, scopes, expires: Instant::now() + LIFF_ACCESS_TOKEN_LIFETIME };
    let (access_token, _) = issue(line, grant, false);
    Ok(json!({ "idToken": id_token, "accessToken": access_token }))
}
