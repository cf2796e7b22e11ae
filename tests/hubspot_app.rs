//! The HubSpot app in `hubspot-app/` asks for the scopes linehub's API calls need, and no more,
//! and both READMEs list exactly those.

use std::collections::BTreeSet;
use std::path::Path;

/// Each scope the app may ask for, and the API path (from `src/hubspot/api.rs`) that needs it;
/// `oauth` is what every static-auth app of HubSpot's own templates asks for.
const NEEDED_BY: &[(&str, Option<&str>)] = &[
    ("oauth", None),
    ("crm.objects.contacts.read", Some("/crm/v3/objects/contacts")),
    ("crm.objects.contacts.write", Some("/crm/v3/objects/contacts")),
    ("crm.schemas.contacts.read", Some("/crm/v3/properties/contacts")),
    ("crm.schemas.contacts.write", Some("/crm/v3/properties/contacts")),
    ("crm.lists.read", Some("/crm/v3/lists")),
    ("crm.objects.owners.read", Some("/crm/v3/owners")),
    ("automation", Some("/automation/v4/actions/callbacks")),
];

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn requested_scopes() -> BTreeSet<String> {
    let app: serde_json::Value = serde_json::from_str(&read("hubspot-app/src/app/app-hsmeta.json")).unwrap();
    let scopes = app["config"]["auth"]["requiredScopes"].as_array().expect("requiredScopes");
    scopes.iter().map(|s| s.as_str().expect("a scope name").to_string()).collect()
}

#[test]
fn the_hubspot_app_asks_for_the_scopes_linehub_uses_and_no_more() {
    let api = read("src/hubspot/api.rs");
    let requested = requested_scopes();
    assert!(requested.contains("oauth"), "static-auth apps ask for `oauth`: {requested:?}");
    for scope in &requested {
        let Some((_, path)) = NEEDED_BY.iter().find(|(s, _)| s == scope) else {
            panic!("`{scope}` is asked for, but linehub has no call that needs it")
        };
        if let Some(path) = path {
            assert!(api.contains(&format!("\"{path}")), "`{scope}` is asked for, but linehub never calls {path}");
        }
    }
    for (scope, path) in NEEDED_BY {
        if path.is_some_and(|p| api.contains(&format!("\"{p}"))) {
            assert!(requested.contains(*scope), "linehub calls {path:?}, which needs `{scope}`");
        }
    }
}

#[test]
fn the_readmes_list_the_scopes_the_app_asks_for() {
    let requested = requested_scopes();
    let app_readme = read("hubspot-app/README.md");
    let table = &app_readme[app_readme.find("The app asks for these scopes").expect("scope table")..];
    let table = &table[..table.find("\n## ").unwrap_or(table.len())];
    let listed: BTreeSet<String> =
        NEEDED_BY.iter().map(|(s, _)| s.to_string()).filter(|s| table.contains(&format!("`{s}`"))).collect();
    assert_eq!(listed, requested, "hubspot-app/README.md's scope table");
    let readme = read("README.md");
    let at = readme.find("The token needs the scopes").expect("README's scope sentence");
    let sentence = &readme[at..at + readme[at..].find("\n- ").unwrap_or(readme.len() - at)];
    for (scope, _) in NEEDED_BY {
        // The README abbreviates `x.read/write`.
        let named = sentence.contains(&format!("`{scope}`"))
            || scope.strip_suffix(".read").is_some_and(|s| sentence.contains(&format!("`{s}.read/write`")))
            || scope.strip_suffix(".write").is_some_and(|s| sentence.contains(&format!("`{s}.read/write`")));
        assert_eq!(named, requested.contains(*scope), "README's scope sentence and `{scope}`:\n{sentence}");
    }
}
