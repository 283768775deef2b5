//! Lessons that ffmpeg makes for a test.

use std::path::Path;
use std::process::Command;

use crate::command::run_ok;

/// Writes to `path` a clip `secs` long of ffmpeg's test pattern (320x240, 25 frames a second)
/// and a 440 Hz tone, encoded as `codec_args` (ffmpeg's output options) say.
pub fn make_clip(path: &Path, secs: u32, codec_args: &[&str]) {
    run_ok(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i"])
            .arg(format!("testsrc=duration={secs}:size=320x240:rate=25"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!("sine=frequency=440:duration={secs}"))
            .args(codec_args)
            .arg(path),
        &format!(
            "making {} (scripts/test.sh installs ffmpeg)",
            path.display()
        ),
    );
}
