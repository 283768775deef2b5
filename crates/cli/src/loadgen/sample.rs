//! The lesson the load generator uploads, embedded so the `vidscope` image needs no ffmpeg.
//!
//! 60 s, 128×72 H.264 at 2 fps with a silent mono AAC track, moov first (37 KB), made with:
//! `ffmpeg -f lavfi -i testsrc2=size=128x72:rate=2 -f lavfi -i anullsrc=r=8000:cl=mono -t 60
//! -c:v libx264 -preset veryslow -crf 45 -pix_fmt yuv420p -g 60 -c:a aac -b:a 8k
//! -movflags +faststart loadgen-lesson.mp4`

pub(super) const SAMPLE_MP4: &[u8] = include_bytes!("../../assets/loadgen-lesson.mp4");

/// The sample's 32-byte `ftyp` box, then noise: the upload's content check
/// accepts it (it is an MP4 by its first bytes) and ffprobe rejects it, so the probe job fails
/// permanently and is dead-lettered, exercising the failure path end to end.
pub(super) fn truncated() -> Vec<u8> {
    let mut bytes = SAMPLE_MP4[..32].to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_an_mp4_and_the_broken_copy_keeps_only_its_header() {
        assert_eq!(&SAMPLE_MP4[4..8], b"ftyp");
        assert_eq!(
            &SAMPLE_MP4[36..40],
            b"moov",
            "the ftyp box is 32 bytes, then the movie"
        );
        let broken = truncated();
        assert_eq!(&broken[..32], &SAMPLE_MP4[..32]);
        assert_eq!(broken.len(), 32 + 4096);
    }
}
