//! The contracts the simulators check requests against, parsed once per process.
//!
//! LINE's own OpenAPI documents (Apache-2.0, copied unchanged into `specs/line/`) and linehub's
//! own contracts for LINE Login (`contracts/line-login.yaml`) and HubSpot
//! (`contracts/hubspot.yaml`), written from the services' public documentation, are compiled
//! into the crate, so the standalone `linehub sandbox` needs no files beside it.
//! A document that fails to load is a defect of this crate, caught by its tests, hence the panics.

use std::sync::OnceLock;

use crate::contract::Contract;

/// LINE Messaging API text, as published by LINE.
const LINE_MESSAGING_API: &str = include_str!("../specs/line/messaging-api.yml");
/// LINE webhook definitions, as published by LINE.
const LINE_WEBHOOK: &str = include_str!("../specs/line/webhook.yml");
/// linehub's LINE Login v2.1 / LIFF contract.
const LINE_LOGIN: &str = include_str!("../contracts/line-login.yaml");
/// linehub's HubSpot CRM contract.
const HUBSPOT: &str = include_str!("../contracts/hubspot.yaml");

fn load(cell: &'static OnceLock<Contract>, build: fn() -> Contract) -> &'static Contract {
    cell.get_or_init(build)
}

/// LINE's Messaging API, with `X-Line-Retry-Key` refused where an operation does not declare it.
pub fn line_messaging() -> &'static Contract {
    static CELL: OnceLock<Contract> = OnceLock::new();
    load(&CELL, || {
        Contract::from_yaml("messaging-api.yml", LINE_MESSAGING_API)
            .unwrap_or_else(|e| panic!("bundled LINE spec does not load: {e}"))
            .guard_undeclared_header("X-Line-Retry-Key")
    })
}

/// LINE's webhook event definitions (`CallbackRequest` and every event type).
pub fn line_webhook() -> &'static Contract {
    static CELL: OnceLock<Contract> = OnceLock::new();
    load(&CELL, || {
        Contract::from_yaml("webhook.yml", LINE_WEBHOOK)
            .unwrap_or_else(|e| panic!("bundled LINE webhook spec does not load: {e}"))
    })
}

/// linehub's LINE Login v2.1 and LIFF contract, written from LINE's public documentation (LINE
/// publishes no OpenAPI document for Login).
pub fn line_login() -> &'static Contract {
    static CELL: OnceLock<Contract> = OnceLock::new();
    load(&CELL, || {
        Contract::from_yaml("line-login.yaml", LINE_LOGIN)
            .unwrap_or_else(|e| panic!("bundled LINE Login contract does not load: {e}"))
    })
}

/// linehub's HubSpot CRM contract.
pub fn hubspot() -> &'static Contract {
    static CELL: OnceLock<Contract> = OnceLock::new();
    load(&CELL, || {
        Contract::from_yaml("hubspot.yaml", HUBSPOT)
            .unwrap_or_else(|e| panic!("bundled HubSpot contract does not load: {e}"))
    })
}
