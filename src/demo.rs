//! `linehub demo`: the whole product on the built-in sandbox, with no accounts or secrets.
//!
//! It starts the LINE and HubSpot simulators and a daemon on a generated config, then plays a
//! short scenario over real HTTP, exactly as LINE and HubSpot would: a user adds the account as a
//! friend and sends a message, then a HubSpot workflow pushes a LINE message back, then the user
//! logs in with LINE and lands on the contact a rep had made for them. After each
//! step it prints what changed in HubSpot, in HubSpot's words (contact properties by label, tasks,
//! the timeline note), and what LINE delivered. Then it keeps serving, with the URLs printed, so the
//! sandbox can be poked at by hand, until Ctrl-C (or exits at once with `--once`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use linehub_sandbox::{
    ChannelSpec, Contact, LoginChannelSpec, LoginConsent, OwnerSpec, Profile, Sandbox, SandboxConfig, hubspot_actions,
    webhook,
};
use tokio::net::TcpListener;

use crate::daemon::Daemon;
use crate::line::signature;
use crate::settings::Settings;
use crate::sync::properties::Field;

const ACCOUNT: &str = "demo";
const SECRET: &str = "demo-channel-secret-0123456789abcdef";
const TOKEN: &str = "demo-channel-access-token";
const CLIENT_SECRET: &str = "demo-hubspot-app-client-secret";
const LOGIN_CHANNEL: &str = "1650000042";
const LOGIN_SECRET: &str = "demo-login-channel-secret";

/// Where the demo listens.
pub struct DemoOptions {
    /// linehub's listener.
    pub listen: SocketAddr,
    /// The sandbox's listener.
    pub sandbox_listen: SocketAddr,
    /// Exit after the scenario instead of serving until Ctrl-C.
    pub once: bool,
}

/// Runs the demo, printing to stdout. `stop` ends the serving phase.
pub async fn run(options: DemoOptions, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(
        TcpListener::bind(options.sandbox_listen)
            .await
            .with_context(|| format!("binding {}", options.sandbox_listen))?,
        SandboxConfig::default(),
    )
    .await
    .context("starting the sandbox")?;
    let bot = sandbox.line().add_channel(ChannelSpec::new(TOKEN, SECRET)).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Bound first: LINE Login sends the person back to the address linehub really has.
    let listener = TcpListener::bind(options.listen).await.with_context(|| format!("binding {}", options.listen))?;
    let listen = listener.local_addr().context("reading linehub's address")?;
    let mut login_channel =
        LoginChannelSpec::new(LOGIN_CHANNEL, LOGIN_SECRET, format!("http://{listen}/line/{ACCOUNT}/login/callback"));
    login_channel.linked_bot_access_token = Some(TOKEN.into());
    login_channel.email_permission = true;
    sandbox.line().add_login_channel(login_channel).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = tempfile_dir()?;
    let text = format!(
        "server:\n  listen: \"{listen}\"\n  public_base_url: \"http://{listen}\"\nstore:\n  path: \"{store}\"\nplan: trial\nhubspot:\n  base_url: \"{hs}\"\n  token: \"{hs_token}\"\n  client_secret: \"{CLIENT_SECRET}\"\n  tier: professional\nline:\n  api_base_url: \"{hs}\"\n  data_api_base_url: \"{hs}\"\n  login_base_url: \"{hs}\"\naccounts:\n  - id: {ACCOUNT}\n    name: \"linehub demo\"\n    channel_secret: \"{SECRET}\"\n    channel_access_token: \"{TOKEN}\"\n    login:\n      channel_id: \"{LOGIN_CHANNEL}\"\n      channel_secret: \"{LOGIN_SECRET}\"\n      email: true\n",
        store = dir.join("linehub.db").display(),
        hs = sandbox.base_url(),
        hs_token = SandboxConfig::default().hubspot_token,
    );
    let settings =
        Settings::load_str(&dir.join("config.yaml"), &text).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let daemon = Daemon::start(settings, listener).await?;
    let http = reqwest::Client::new();
    let webhook_url = format!("http://{}/line/{ACCOUNT}/webhook", daemon.addr());

    println!("linehub demo: LINE and HubSpot are simulated; every step below is real HTTP.\n");
    println!("  sandbox (LINE + HubSpot APIs)  {}", sandbox.base_url());
    println!("  linehub webhook                {webhook_url}\n");

    let user = webhook::random_user_id();
    let name = "Sato Hanako";
    let mut profile = Profile::named(name);
    profile.picture_url = Some("https://profile.line-scdn.net/demo".into());
    sandbox.line().add_friend(TOKEN, &user, profile).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = crate::clock::system_now_ms();

    println!("1. {name} adds \"linehub demo\" as a friend on LINE.");
    let status = deliver(&http, &webhook_url, &bot, webhook::follow(&user, now, false)).await?;
    println!("   LINE -> linehub: POST /line/{ACCOUNT}/webhook (follow, signed) -> {status}");
    let contact = wait_for(&sandbox, &user, |c| c.properties.contains_key(&Field::UserName.name(1))).await?;
    println!("   HubSpot: contact {} created", contact.id);
    print_properties(&contact, &["email"]);

    let owner = sandbox.hubspot().add_owner(OwnerSpec {
        email: "rep@example.com".into(),
        first_name: "Yamada".into(),
        last_name: "Taro".into(),
    });
    sandbox
        .hubspot()
        .update_contact(&contact.id, &[("hubspot_owner_id", &owner)])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("\n2. In HubSpot, a sales rep (Yamada Taro, owner {owner}) takes the contact.");

    let text = "こんにちは！予約できますか？";
    println!("\n3. {name} sends \"{text}\".");
    let status = deliver(&http, &webhook_url, &bot, webhook::text_message(&user, now + 1000, text)).await?;
    println!("   LINE -> linehub: POST /line/{ACCOUNT}/webhook (message, signed) -> {status}");
    let contact =
        wait_for(&sandbox, &user, |c| c.properties.get(&Field::LastResponse.name(1)).is_some_and(|t| t == text))
            .await?;
    println!("   HubSpot: contact {} updated", contact.id);
    print_properties(&contact, &[]);
    let task = wait_for_task(&sandbox).await?;
    println!(
        "   HubSpot: task \"{}\" for owner {} on contact {}: {}",
        task.properties.get("hs_task_subject").map(String::as_str).unwrap_or("?"),
        task.properties.get("hubspot_owner_id").map(String::as_str).unwrap_or("?"),
        contact.id,
        task.properties.get("hs_task_body").map(String::as_str).unwrap_or("")
    );

    println!("\n4. A HubSpot workflow runs the action \"Push LINE message\" on the contact.");
    let action_url = format!("http://{listen}/hubspot/actions/push-line-message");
    let inputs = serde_json::json!({
        "account": ACCOUNT,
        "message_1": "{{contact.line_user_name_1}}様、ご予約を承りました。",
        "message_2": r#"{"type":"sticker","packageId":"446","stickerId":"1988"}"#,
    });
    let contact_id = contact.id.parse::<u64>().context("the sandbox gave a contact id that is not a number")?;
    let body = hubspot_actions::execution_request(&format!("ap-demo-{now}"), contact_id, inputs).to_string();
    let mut request =
        http.post(format!("http://{}/hubspot/actions/push-line-message", daemon.addr())).body(body.clone());
    let signed = linehub_sandbox::hubspot_signing::headers_v3(
        CLIENT_SECRET,
        "POST",
        &action_url,
        body.as_bytes(),
        crate::clock::system_now_ms(),
    );
    for (name, value) in signed {
        request = request.header(name, value);
    }
    let answer: serde_json::Value = request.send().await?.json().await?;
    println!(
        "   HubSpot -> linehub: POST /hubspot/actions/push-line-message (signed) -> {}",
        answer["outputFields"]["hs_execution_state"].as_str().unwrap_or("?")
    );
    if answer["outputFields"]["hs_execution_state"] != "BLOCK" {
        bail!("linehub did not take the workflow action: {answer}");
    }
    let done = wait_for_completion(&sandbox).await?;
    for sent in sandbox.line().sent_messages() {
        let texts: Vec<String> = sent
            .messages
            .iter()
            .map(|m| {
                m["text"].as_str().map_or_else(|| format!("[{}]", m["type"].as_str().unwrap_or("?")), str::to_string)
            })
            .collect();
        println!("   linehub -> LINE: push to {} -> {}", sent.to.join(","), texts.join(" + "));
    }
    if let Some(note) = sandbox.hubspot().notes().into_iter().next() {
        let text = note.properties.get("hs_note_body").map(String::as_str).unwrap_or("");
        println!("   HubSpot: note on contact {}: {}", contact.id, plain(text));
    }
    println!(
        "   HubSpot: workflow action completed: {}",
        serde_json::Value::Object(done.output_fields.into_iter().collect())
    );

    let email = "hanako.sato@example.com";
    let rep_contact = sandbox
        .hubspot()
        .create_contact(&[("email", email), ("firstname", "Hanako"), ("lastname", "Sato")])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("\n5. A rep had entered {name} from a web form as contact {rep_contact} ({email}).");
    println!("   {name} opens the login link http://{listen}/line/{ACCOUNT}/login and shares her email with LINE.");
    let mut consent = LoginConsent::allow(&user, name);
    consent.email = Some(email.into());
    consent.grant_email = true;
    sandbox.line().script_login(LOGIN_CHANNEL, consent).map_err(|e| anyhow::anyhow!("{e}"))?;
    let landed = log_in(&http, &format!("http://{}/line/{ACCOUNT}/login", daemon.addr()), &sandbox.base_url()).await?;
    println!("   browser: LINE consent page -> allow -> linehub: \"{landed}\"");
    let merged = wait_for(&sandbox, &user, |c| c.id == rep_contact).await?;
    println!(
        "   HubSpot: placeholder contact {} merged into contact {}, which now has the LINE identity",
        contact.id, merged.id
    );
    print_properties(&merged, &["email"]);

    let violations = sandbox.violations();
    if !violations.is_empty() {
        bail!("the sandbox saw requests its contracts do not allow: {violations:?}");
    }
    println!("\nEvery request linehub made was checked against LINE's and HubSpot's contracts: 0 violations.");

    if !options.once {
        println!("\nStill serving. Try: curl {}/_sandbox/hubspot/contacts   (Ctrl-C to stop)", sandbox.base_url());
        stop.await;
    }
    daemon.shutdown().await?;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A fresh directory for the demo's config and store.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("linehub-demo-{}-{}", std::process::id(), crate::clock::system_now_ms()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

async fn deliver(http: &reqwest::Client, url: &str, bot: &str, event: serde_json::Value) -> anyhow::Result<u16> {
    let body = webhook::body(bot, vec![event]);
    let sig = signature::sign(SECRET.as_bytes(), &body);
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-line-signature", sig)
        .body(body)
        .send()
        .await?;
    Ok(res.status().as_u16())
}

async fn wait_for(sandbox: &Sandbox, user: &str, done: impl Fn(&Contact) -> bool) -> anyhow::Result<Contact> {
    for _ in 0..200 {
        if let Some(c) = sandbox
            .hubspot()
            .find_by_property(&Field::UserId.name(1), user)
            .into_iter()
            .find(|c| !c.archived && done(c))
        {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the contact did not reach HubSpot within 10 s")
}

async fn wait_for_task(sandbox: &Sandbox) -> anyhow::Result<linehub_sandbox::Activity> {
    for _ in 0..200 {
        if let Some(t) = sandbox.hubspot().tasks().into_iter().next() {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no task reached HubSpot within 10 s")
}

async fn wait_for_completion(sandbox: &Sandbox) -> anyhow::Result<linehub_sandbox::CallbackCompletion> {
    for _ in 0..200 {
        if let Some(c) = sandbox.hubspot().callbacks().into_iter().next() {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the workflow action was not completed within 10 s")
}

/// Logs in through `login_url` as a browser would: to LINE's consent page, "allow", back to
/// linehub; returns what linehub's page says.
async fn log_in(http: &reqwest::Client, login_url: &str, line: &str) -> anyhow::Result<String> {
    let page = http.get(login_url).send().await?.text().await?;
    let session = page
        .split("name=\"session\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("LINE's consent page has no form")?;
    let consent = format!("{line}/oauth2/v2.1/authorize/consent");
    let back = http.post(consent).form(&[("session", session), ("decision", "allow")]).send().await?;
    let status = back.status();
    let html = back.text().await?;
    // The page's message is its `status` paragraph.
    let text = html
        .split("id=\"status\"")
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split("</p>").next())
        .map(plain)
        .unwrap_or_default();
    if !status.is_success() {
        bail!("the login failed ({status}): {text}");
    }
    Ok(text)
}

/// A note body's HTML as one line of text.
fn plain(html: &str) -> String {
    let spaced = html.replace("<li>", " ").replace("</ol>", " — ").replace("</p>", " ").replace("<br>", " ");
    let mut out = String::new();
    let mut in_tag = false;
    for ch in spaced.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&").trim().to_string()
}

/// Prints the LINE properties of account 1 by label, plus `extra` internal names.
fn print_properties(contact: &Contact, extra: &[&str]) {
    for name in extra {
        if let Some(v) = contact.properties.get(*name) {
            println!("     {:<24} {v}", name);
        }
    }
    for field in Field::ALL {
        if let Some(v) = contact.properties.get(&field.name(1)) {
            println!("     {:<24} {v}", field.label(1));
        }
    }
}
