//! `video.purge`: written by the lesson delete (in the transaction that removes the row), run
//! by the worker's `jobs/purge.rs`, which removes the objects it names from the store.

use serde::{Deserialize, Serialize};

use super::{JobKind, JobPayload};
use crate::domain::VideoId;

/// Wire form `{"videoId": "<uuid>", "keys": ["videos/<uuid>/lesson.mp4", ...]}`. The keys are
/// carried rather than derived because the row they came from no longer exists when the job
/// runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgePayload {
    #[serde(with = "super::video_id_serde")]
    pub video_id: VideoId,
    /// Object keys to remove; each is parsed again by the worker before any I/O.
    pub keys: Vec<String>,
}

impl JobPayload for PurgePayload {
    const KIND: JobKind = JobKind::new("video.purge");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::assert_wire_form;

    #[test]
    fn wire_form() {
        let id = VideoId::generate();
        let json = serde_json::json!({ "videoId": id.as_str(), "keys": ["a/b.mp4"] });
        let payload = PurgePayload {
            video_id: id,
            keys: vec!["a/b.mp4".into()],
        };
        assert_wire_form(&payload, json);
    }
}
