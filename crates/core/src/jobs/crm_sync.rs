//! `crm.sync`: written with a registration or a lesson's first completion (in that write's
//! transaction), run by the worker's `jobs/crm_sync.rs`, which tells the CRM.

use serde::{Deserialize, Serialize};

use super::{JobKind, JobPayload, NewJob};

/// Wire form `{"userId": "...", "event": {"type": "registered"}}` or
/// `{"userId": "...", "event": {"type": "lesson_completed", "video_id": "..."}}`, unchanged
/// since the first release (hence the snake_case inside `event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmSyncPayload {
    pub user_id: String,
    pub event: CrmEvent,
}

impl JobPayload for CrmSyncPayload {
    const KIND: JobKind = JobKind::new("crm.sync");
}

/// What happened to the user, as the CRM is told (`event` in its request body too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CrmEvent {
    Registered,
    /// `video_id` is the progress API's lesson id (any short name, not only a UUID).
    LessonCompleted {
        video_id: String,
    },
}

impl CrmEvent {
    pub fn as_str(&self) -> &'static str {
        match self {
            CrmEvent::Registered => "registered",
            CrmEvent::LessonCompleted { .. } => "lesson_completed",
        }
    }

    pub fn video_id(&self) -> Option<&str> {
        match self {
            CrmEvent::Registered => None,
            CrmEvent::LessonCompleted { video_id } => Some(video_id),
        }
    }
}

/// The CRM sync of a registration. The id derives from the user, so the account is announced
/// once whatever happens.
pub fn crm_registered(user_id: &str) -> NewJob {
    NewJob::with_id(
        format!("crm.registered/{user_id}"),
        &CrmSyncPayload {
            user_id: user_id.to_owned(),
            event: CrmEvent::Registered,
        },
    )
}

/// The CRM sync of a finished lesson; once per user and video (a concurrent second save of the
/// completion writes the same outbox id, which is ignored).
pub fn crm_lesson_completed(user_id: &str, video_id: &str) -> NewJob {
    NewJob::with_id(
        format!("crm.lesson_completed/{user_id}/{video_id}"),
        &CrmSyncPayload {
            user_id: user_id.to_owned(),
            event: CrmEvent::LessonCompleted {
                video_id: video_id.to_owned(),
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobMessage, parse_payload};

    /// The JSON the earlier, untyped producers wrote: jobs already queued must still parse.
    #[test]
    fn wire_form_is_unchanged() {
        let registered = serde_json::json!({ "userId": "u1", "event": { "type": "registered" } });
        let completed = serde_json::json!({
            "userId": "u1",
            "event": { "type": "lesson_completed", "video_id": "v9" },
        });
        assert_eq!(crm_registered("u1").payload(), Some(&registered));
        assert_eq!(crm_registered("u1").id, "crm.registered/u1");
        assert_eq!(crm_lesson_completed("u1", "v9").payload(), Some(&completed));
        assert_eq!(
            crm_lesson_completed("u1", "v9").id,
            "crm.lesson_completed/u1/v9"
        );
        let m = JobMessage::for_test(CrmSyncPayload::KIND, completed);
        assert_eq!(
            parse_payload::<CrmSyncPayload>(&m).unwrap(),
            CrmSyncPayload {
                user_id: "u1".into(),
                event: CrmEvent::LessonCompleted {
                    video_id: "v9".into()
                },
            }
        );
    }

    #[test]
    fn a_malformed_payload_is_named() {
        for (payload, needle) in [
            (
                serde_json::json!({ "event": { "type": "registered" } }),
                "missing field `userId`",
            ),
            (
                serde_json::json!({ "userId": "u1" }),
                "missing field `event`",
            ),
            (
                serde_json::json!({ "userId": "u1", "event": { "type": "deleted" } }),
                "unknown variant `deleted`",
            ),
            (
                serde_json::json!({ "userId": "u1", "event": { "type": "lesson_completed" } }),
                "missing field `video_id`",
            ),
        ] {
            let m = JobMessage::for_test(CrmSyncPayload::KIND, payload.clone());
            let e = parse_payload::<CrmSyncPayload>(&m).unwrap_err().to_string();
            assert!(e.contains("crm.sync"), "{payload}: {e}");
            assert!(e.contains(needle), "{payload}: {e}");
        }
    }
}
