//! `video.probe`: written by the upload (in the video row's transaction), run by the worker's
//! `jobs/probe.rs`.

use serde::{Deserialize, Serialize};

use super::{JobKind, JobPayload};
use crate::domain::VideoId;

/// Wire form `{"videoId": "<uuid>"}`, unchanged since the first release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbePayload {
    #[serde(with = "super::video_id_serde")]
    pub video_id: VideoId,
}

impl JobPayload for ProbePayload {
    const KIND: JobKind = JobKind::new("video.probe");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobMessage, assert_wire_form, parse_payload};

    #[test]
    fn wire_form_is_unchanged() {
        let id = VideoId::generate();
        let json = serde_json::json!({ "videoId": id.as_str() });
        assert_wire_form(&ProbePayload { video_id: id }, json);
    }

    #[test]
    fn a_bad_video_id_is_named() {
        for (payload, needle) in [
            (serde_json::json!({}), "missing field `videoId`"),
            (serde_json::json!({ "videoId": "nope" }), "not a UUID"),
            (serde_json::json!({ "videoId": 7 }), "invalid type"),
            (serde_json::json!("videoId"), "invalid type"),
        ] {
            let m = JobMessage::for_test(ProbePayload::KIND, payload.clone());
            let e = parse_payload::<ProbePayload>(&m).unwrap_err().to_string();
            assert!(e.contains("video.probe"), "{payload}: {e}");
            assert!(e.contains(needle), "{payload}: {e}");
        }
    }
}
