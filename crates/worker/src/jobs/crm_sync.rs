//! `crm.sync`: tells the CRM (seed 002's GoHighLevel integration) that a user registered or
//! completed a lesson. Payload: [`CrmSyncPayload`], enqueued with the registration or the
//! lesson's completion (`vidscope_core::jobs::crm_registered` / `crm_lesson_completed`). The job
//! id is the CRM call's `Idempotency-Key`, so a redelivered job is one contact update at the CRM.

use vidscope_core::jobs::JobMessage;
use vidscope_core::jobs::crm_sync::CrmSyncPayload;

use super::{Job, JobContext};
use crate::crm::CrmContact;
use crate::error::JobError;

pub struct CrmSync;

impl Job for CrmSync {
    type Payload = CrmSyncPayload;

    async fn run(
        &self,
        ctx: &JobContext,
        job: &JobMessage,
        payload: CrmSyncPayload,
    ) -> Result<(), JobError> {
        let CrmSyncPayload { user_id, event } = payload;
        tracing::Span::current().record("user.id", user_id.as_str());
        let Some(crm) = &ctx.crm else {
            tracing::info!(
                crm.event = event.as_str(),
                "CRM sync is off (VIDSCOPE_CRM_URL unset)"
            );
            return Ok(());
        };
        let Some(email) = vidscope_core::users::email_of(&ctx.db, &user_id).await? else {
            return Err(JobError::permanent(
                "user.not_found",
                format!("user {user_id} is gone"),
            ));
        };
        let contact = CrmContact {
            user_id,
            email,
            event,
        };
        crm.sync_contact(&contact, &job.id)
            .await
            .map_err(|e| JobError::classified(&e))
    }
}
