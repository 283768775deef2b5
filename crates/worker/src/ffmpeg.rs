//! ffprobe and ffmpeg as child processes, each run a span (`ffmpeg.probe`,
//! `ffmpeg.extract_frame`) with the exit status and, on failure, the tail of stderr.
//!
//! Failures are classified for the retry loop: a missing binary or a file ffmpeg cannot read
//! is permanent (retrying cannot help, and the message says what to install or set); a run
//! that exceeds the timeout or is killed by a signal is transient.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;
use tracing::Instrument;
use tracing::field::Empty;
use vidscope_core::videos::ProbeResult;

use crate::error::JobError;

/// The span of one child process run by [`Ffmpeg::run`]: the fields `run` fills in (exit
/// code, stderr tail, error type) declared once here, then the run's own fields.
macro_rules! process_span {
    ($name:literal, $executable:literal, $($fields:tt)*) => {
        tracing::info_span!(
            $name,
            process.executable.name = $executable,
            process.exit.code = Empty,
            ffmpeg.stderr_tail = Empty,
            error.type = Empty,
            $($fields)*
        )
    };
}

/// Bytes of stderr kept for the span when a run fails.
const STDERR_TAIL: usize = 1000;

#[derive(Debug, Clone)]
pub struct Ffmpeg {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub timeout: Duration,
}

impl Ffmpeg {
    /// Duration, codecs and resolution of `input`.
    pub async fn probe(&self, input: &Path) -> Result<ProbeResult, JobError> {
        let span = process_span!(
            "ffmpeg.probe",
            "ffprobe",
            video.duration_seconds = Empty,
            video.codec = Empty,
        );
        let mut ffprobe = Command::new(&self.ffprobe);
        ffprobe
            .args(["-v", "error", "-print_format", "json"])
            .args(["-show_format", "-show_streams"])
            .arg(input);
        let out = self.run(ffprobe, &span).instrument(span.clone()).await?;
        let probe = parse_probe(&out).map_err(|e| {
            let e = JobError::permanent("ffmpeg.bad_output", format!("ffprobe output: {e}"));
            vidscope_telemetry::classify::record_classified(&span, &e);
            e
        })?;
        if let Some(d) = probe.duration_seconds {
            span.record("video.duration_seconds", d);
        }
        if let Some(c) = &probe.video_codec {
            span.record("video.codec", c.as_str());
        }
        Ok(probe)
    }

    /// One frame of `input` at `at_seconds`, scaled to 320 pixels wide, as a JPEG at `output`.
    pub async fn extract_frame(
        &self,
        input: &Path,
        at_seconds: f64,
        output: &Path,
    ) -> Result<(), JobError> {
        let span = process_span!(
            "ffmpeg.extract_frame",
            "ffmpeg",
            ffmpeg.seek_seconds = at_seconds
        );
        let at = format!("{at_seconds:.3}");
        let mut ffmpeg = Command::new(&self.ffmpeg);
        ffmpeg
            .args(["-nostdin", "-v", "error", "-y", "-ss", at.as_str(), "-i"])
            .arg(input)
            .args(["-frames:v", "1", "-vf", "scale=320:-2", "-q:v", "4"])
            .arg(output);
        self.run(ffmpeg, &span).instrument(span.clone()).await?;
        match tokio::fs::metadata(output).await {
            Ok(m) if m.len() > 0 => Ok(()),
            _ => {
                let e = JobError::permanent(
                    "ffmpeg.no_frame",
                    format!("ffmpeg produced no frame at {at}s"),
                );
                vidscope_telemetry::classify::record_classified(&span, &e);
                Err(e)
            }
        }
    }

    /// Runs `command` (no stdin, its output captured, killed if this future is dropped) within
    /// the timeout; returns its stdout.
    async fn run(&self, mut command: Command, span: &tracing::Span) -> Result<Vec<u8>, JobError> {
        let name = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        let fail = |e: JobError| {
            vidscope_telemetry::classify::record_classified(span, &e);
            e
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                fail(if e.kind() == std::io::ErrorKind::NotFound {
                    JobError::permanent(
                        "ffmpeg.missing",
                        format!(
                            "{name} not found: install ffmpeg or set VIDSCOPE_FFMPEG / \
                             VIDSCOPE_FFPROBE to its path"
                        ),
                    )
                } else {
                    JobError::permanent("ffmpeg.spawn", format!("cannot start {name}: {e}"))
                })
            })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(fail(JobError::transient(
                    "ffmpeg.io",
                    format!("{name} failed to run: {e}"),
                )));
            }
            Err(_) => {
                return Err(fail(JobError::transient(
                    "ffmpeg.timeout",
                    format!("{name} ran longer than {:?}", self.timeout),
                )));
            }
        };
        if let Some(code) = output.status.code() {
            span.record("process.exit.code", code as i64);
        }
        if output.status.success() {
            return Ok(output.stdout);
        }
        let tail = stderr_tail(&output.stderr);
        span.record("ffmpeg.stderr_tail", tail.as_str());
        tracing::warn!(parent: span, exit = ?output.status.code(), stderr_tail = %tail, "{name} failed");
        Err(fail(match output.status.code() {
            // Killed by a signal (OOM killer, operator): may well work next time.
            None => JobError::transient("ffmpeg.killed", format!("{name} was killed: {tail}")),
            Some(code) => JobError::permanent(
                "ffmpeg.failed",
                format!("{name} exited with {code}: {tail}"),
            ),
        }))
    }
}

fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let mut start = text.len().saturating_sub(STDERR_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct StreamJson {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<i64>,
    height: Option<i64>,
}

#[derive(Deserialize)]
struct FormatJson {
    duration: Option<String>,
}

fn parse_probe(out: &[u8]) -> Result<ProbeResult, String> {
    let json: ProbeJson = serde_json::from_slice(out).map_err(|e| e.to_string())?;
    let video = json
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("video"));
    let Some(video) = video else {
        return Err("no video stream".into());
    };
    let audio = json
        .streams
        .iter()
        .find(|s| s.codec_type.as_deref() == Some("audio"));
    Ok(ProbeResult {
        duration_seconds: json
            .format
            .and_then(|f| f.duration)
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0),
        video_codec: video.codec_name.clone(),
        audio_codec: audio.and_then(|a| a.codec_name.clone()),
        width: video.width,
        height: video.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_parsed() {
        let out = br#"{"streams":[{"codec_type":"audio","codec_name":"aac"},
            {"codec_type":"video","codec_name":"h264","width":320,"height":240}],
            "format":{"duration":"3.000000"}}"#;
        let p = parse_probe(out).unwrap();
        assert_eq!(p.duration_seconds, Some(3.0));
        assert_eq!(p.video_codec.as_deref(), Some("h264"));
        assert_eq!(p.audio_codec.as_deref(), Some("aac"));
        assert_eq!((p.width, p.height), (Some(320), Some(240)));
        assert!(parse_probe(br#"{"streams":[{"codec_type":"audio"}]}"#).is_err());
        assert!(parse_probe(b"not json").is_err());
    }

    #[test]
    fn stderr_tail_keeps_the_end() {
        let long = "x".repeat(5000) + "the reason";
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.ends_with("the reason"));
        assert!(tail.len() <= STDERR_TAIL);
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_permanent_error_naming_the_fix() {
        let f = Ffmpeg {
            ffmpeg: "/nonexistent/ffmpeg".into(),
            ffprobe: "/nonexistent/ffprobe".into(),
            timeout: Duration::from_secs(5),
        };
        let e = f.probe(Path::new("/tmp/x.mp4")).await.unwrap_err();
        assert_eq!(e.class, vidscope_telemetry::ErrorClass::Permanent);
        assert_eq!(e.error_type, "ffmpeg.missing");
        assert!(e.message.contains("VIDSCOPE_FFPROBE"), "{}", e.message);
    }
}
