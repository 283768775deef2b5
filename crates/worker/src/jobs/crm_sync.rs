//! `crm.sync`: tells the CRM (seed 002's GoHighLevel integration) that a user registered or
//! completed a lesson. Payload: `{"userId": "...", "event": {"type": "registered"}}` or
//! `{"type": "lesson_completed", "video_id": "..."}` (written by
//! `vidscope_core::jobs::crm_registered` / `crm_lesson_completed`). The job id is the CRM call's
//! `Idempotency-Key`, so a redelivered job is one contact update at the CRM.

use vidscope_core::jobs::{JobKind, JobMessage};

use super::{Handler, JobContext, JobFuture};
use crate::crm::{CrmContact, CrmEvent};
use crate::error::JobError;

pub struct CrmSync;

impl Handler for CrmSync {
    fn kind(&self) -> JobKind {
        JobKind::CrmSync
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a JobMessage) -> JobFuture<'a> {
        Box::pin(run(ctx, job))
    }
}

async fn run(ctx: &JobContext, job: &JobMessage) -> Result<(), JobError> {
    let bad = |why: &str| JobError::permanent("job.bad_payload", why.to_owned());
    let user_id = job
        .payload
        .get("userId")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("payload has no userId"))?;
    let event: CrmEvent = job
        .payload
        .get("event")
        .cloned()
        .ok_or_else(|| bad("payload has no event"))
        .and_then(|e| serde_json::from_value(e).map_err(|e| bad(&format!("bad event: {e}"))))?;
    tracing::Span::current().record("user.id", user_id);
    let Some(crm) = &ctx.crm else {
        tracing::info!(
            crm.event = event.as_str(),
            "CRM sync is off (VIDSCOPE_CRM_URL unset)"
        );
        return Ok(());
    };
    let Some(email) = vidscope_core::users::email_of(&ctx.db, user_id).await? else {
        return Err(JobError::permanent(
            "user.not_found",
            format!("user {user_id} is gone"),
        ));
    };
    let contact = CrmContact {
        user_id: user_id.to_owned(),
        email,
        event,
    };
    crm.sync_contact(&contact, &job.id)
        .await
        .map_err(|e| JobError::classified(&e))
}
