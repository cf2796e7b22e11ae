//! `enforce_plan_limits`: report the plan's account cap and the account's message quota, and
//! hold queued sends that would exceed the quota.
//!
//! - The connector plan caps active accounts (trial and starter 2, professional 10, enterprise
//!   50). Loading the config already refuses more; the step reports how much of the cap is used.
//! - LINE counts every delivered message against the account's monthly quota
//!   (`GET /v2/bot/message/quota` and `/quota/consumption`) and refuses sends beyond it. The step
//!   compares what is left with the recipients waiting in unsent broadcast chunks: when they do
//!   not fit, the account's sends are held (recorded in the store, `broadcast_to_list` stops
//!   before sending) instead of being refused by LINE halfway; when they fit again (a new month, a
//!   bigger plan) the hold is released.
//!
//! ```yaml
//! - enforce_plan_limits:
//!     warn_at_percent: 80   # optional, 1-100: note when this share of the quota is used
//! ```

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{Step, StepError};
use crate::pipelines::{Checks, StepContext};
use crate::line::client::MessageQuota;

/// The `with:` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforcePlanLimits {
    /// Add a warning to the report once this percentage of the monthly quota is used (default 80).
    #[serde(default)]
    pub warn_at_percent: Option<Spanned<u8>>,
}

impl Step for EnforcePlanLimits {
    const KIND: &'static str = "enforce_plan_limits";

    fn check(&self, checks: &mut Checks<'_>) {
        checks.range(self.warn_at_percent.as_ref(), "warn_at_percent", 1, 100);
    }

    async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let plan = ctx.config.plan;
        let active = ctx.config.active_accounts().count() as u64;
        let cap = plan.max_active_accounts() as u64;
        ctx.report.count("active_accounts", active);
        ctx.report.count("plan_account_cap", cap);
        ctx.report.note(format!("plan `{}`: {active} of {cap} active accounts", plan.name()));

        let token = ctx.account.channel_access_token.clone();
        let quota = ctx.line.quota(&token).await?;
        let used = ctx.line.quota_consumption(&token).await?;
        let queued = ctx.store.queued_send_recipients().await?.get(&ctx.account.id).copied().unwrap_or(0);
        ctx.report.count("quota_used", used);
        ctx.report.count("queued_recipients", queued);
        let held = ctx.store.send_holds().await?.remove(&ctx.account.id);
        let MessageQuota::Limited(limit) = quota else {
            ctx.report.note(format!("`{}`: no monthly message limit; {used} messages sent this month", ctx.account.id));
            return self.release(ctx, held).await;
        };
        let left = limit.saturating_sub(used);
        ctx.report.count("quota_limit", limit);
        ctx.report.count("quota_left", left);
        let warn_at = self.warn_at_percent.as_ref().map_or(80, |w| w.value);
        if limit > 0 && used * 100 >= limit * u64::from(warn_at) {
            ctx.report.note(format!(
                "`{}` has used {used} of its {limit} messages this month ({}%)",
                ctx.account.id,
                used * 100 / limit
            ));
        }
        if queued <= left {
            return self.release(ctx, held).await;
        }
        let reason = format!(
            "{queued} queued recipients exceed the {left} messages left of this month's quota of {limit}; raise the \
             quota in LINE Official Account Manager or wait for next month"
        );
        ctx.report.count("held", 1);
        if ctx.dry_run {
            ctx.report.note(format!("would hold the sends of `{}`: {reason}", ctx.account.id));
            return Ok(());
        }
        ctx.report.note(format!("holding the sends of `{}`: {reason}", ctx.account.id));
        ctx.store.set_send_hold(ctx.account.id.clone(), Some(reason), ctx.clock.now_ms()).await?;
        Ok(())
    }
}

impl EnforcePlanLimits {
    /// Releases a hold that no longer applies.
    async fn release(&self, ctx: &mut StepContext, held: Option<String>) -> Result<(), StepError> {
        if held.is_none() {
            return Ok(());
        }
        ctx.report.count("released", 1);
        if ctx.dry_run {
            ctx.report.note(format!("would release the held sends of `{}`", ctx.account.id));
            return Ok(());
        }
        ctx.report.note(format!("released the held sends of `{}`: they fit the quota now", ctx.account.id));
        ctx.store.set_send_hold(ctx.account.id.clone(), None, ctx.clock.now_ms()).await?;
        Ok(())
    }
}
