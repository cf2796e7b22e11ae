//! Applying inbox events: from what LINE sent to the HubSpot writes linehub owes.
//!
//! Pending events are taken in event-time order. Each is classified ([`crate::sync::classify`]),
//! decided against what linehub knows of that friend ([`crate::sync::decide`]), enriched with
//! the LINE profile where the rules ask for it, and then committed in one transaction with its
//! outbox rows and its new inbox state. A crash before that commit leaves the events pending,
//! to be applied again from the start; after it, they are never applied twice.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;

use crate::clock::Clock;
use crate::config::Config;
use crate::line::client::{LineClient, Profile};
use crate::line::limits::PROFILE_CONCURRENCY;
use crate::store::{AppliedBatch, EventOutcome, Op, Store, StoreError};
use crate::sync;

/// Events taken per batch.
const BATCH: usize = 500;

/// Applies pending inbox events for one config.
pub struct Applier {
    store: Store,
    line: LineClient,
    clock: Arc<dyn Clock>,
}

impl Applier {
    /// An applier reading LINE profiles through `line`.
    pub fn new(store: Store, line: LineClient, clock: Arc<dyn Clock>) -> Applier {
        Applier { store, line, clock }
    }

    /// Applies one batch of pending events; returns how many were processed (0 = inbox drained).
    pub async fn apply_batch(&self, config: &Config) -> Result<usize, StoreError> {
        let pending = self.store.inbox_pending(BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let serials: HashMap<String, i64> = self.store.serials().await?.into_iter().collect();
        let mut batch = AppliedBatch::default();
        let mut activities = Vec::new();
        for (event_id, account_id, body) in &pending {
            let account = config.account(account_id).filter(|a| a.active);
            let serial = serials.get(account_id);
            match (account, serial, sync::classify(body)) {
                (Some(_), Some(&serial), Ok(activity)) => {
                    activities.push((event_id.clone(), account_id.clone(), serial, activity))
                }
                (_, _, Err(skip)) => batch.events.push((event_id.clone(), EventOutcome::Skipped(skip.0))),
                _ => batch.events.push((
                    event_id.clone(),
                    EventOutcome::Skipped(format!("account `{account_id}` is no longer active")),
                )),
            }
        }
        let keys = activities.iter().map(|(_, _, serial, a)| (*serial, a.user_id.clone())).collect();
        let mut states = self.store.friend_states(keys).await?;
        // Decide in order, remembering which contact op wants a profile.
        let mut wants_profile: Vec<(usize, String, i64, String)> = Vec::new();
        for (event_id, account_id, serial, activity) in activities {
            let key = (serial, activity.user_id.clone());
            let state = states.get(&key).cloned().unwrap_or_default();
            let d = sync::decide(serial, &state, &activity);
            if !d.properties.is_empty() || d.create {
                if d.fetch_profile {
                    wants_profile.push((batch.ops.len(), account_id.clone(), serial, activity.user_id.clone()));
                }
                batch.ops.push(Op::Contact {
                    user_id: activity.user_id.clone(),
                    properties: d.properties,
                    create: d.create,
                });
            }
            if let Some(summary) = d.owner_task {
                batch.ops.push(Op::OwnerTask { user_id: activity.user_id.clone(), account: account_id, summary });
            }
            states.insert(key, d.state);
            batch.events.push((event_id, EventOutcome::Applied));
        }
        let profiles = self.profiles(config, &wants_profile).await;
        for ((op_index, _, serial, user), profile) in wants_profile.iter().zip(profiles) {
            match profile {
                Ok(Some(p)) => {
                    if let Some(Op::Contact { properties, .. }) = batch.ops.get_mut(*op_index) {
                        properties.extend(sync::link::profile_properties(*serial, p.contact_fields()));
                    }
                    if let Some(s) = states.get_mut(&(*serial, user.clone())) {
                        sync::link::remember_profile(s, p.contact_fields());
                    }
                }
                // 404: not a friend any more, or no consent; the contact still gets the user id.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "LINE profile unavailable; will read it again on the next message");
                    if let Some(s) = states.get_mut(&(*serial, user.clone())) {
                        s.profile_fetched = false;
                    }
                }
            }
        }
        batch.friends = states;
        let n = batch.events.len();
        self.store.apply_batch(batch, self.clock.now_ms()).await?;
        Ok(n)
    }

    async fn profiles(
        &self,
        config: &Config,
        wanted: &[(usize, String, i64, String)],
    ) -> Vec<Result<Option<Profile>, crate::line::client::LineError>> {
        let reads: Vec<_> = wanted
            .iter()
            .map(|(_, account_id, _, user)| {
                let token = config.account(account_id).map(|a| a.channel_access_token.clone());
                let (line, user) = (self.line.clone(), user.clone());
                async move {
                    match token {
                        Some(token) => line.profile(&token, &user).await,
                        None => Ok(None),
                    }
                }
            })
            .collect();
        futures_util::stream::iter(reads).buffered(PROFILE_CONCURRENCY).collect().await
    }
}
