//! `video.thumbnail`: written by the probe job once the video's facts are stored, run by the
//! worker's `jobs/thumbnail.rs`.

use serde::{Deserialize, Serialize};

use super::{JobKind, JobPayload};
use crate::domain::VideoId;

/// Wire form `{"videoId": "<uuid>"}`, unchanged since the first release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThumbnailPayload {
    #[serde(with = "super::video_id_serde")]
    pub video_id: VideoId,
}

impl JobPayload for ThumbnailPayload {
    const KIND: JobKind = JobKind::VideoThumbnail;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobMessage, parse_payload};

    #[test]
    fn wire_form_is_unchanged() {
        let id = VideoId::generate();
        let json = serde_json::json!({ "videoId": id.as_str() });
        let p = ThumbnailPayload {
            video_id: id.clone(),
        };
        assert_eq!(serde_json::to_value(&p).unwrap(), json);
        let m = JobMessage::for_test(JobKind::VideoThumbnail, json);
        assert_eq!(parse_payload::<ThumbnailPayload>(&m).unwrap(), p);
    }
}
