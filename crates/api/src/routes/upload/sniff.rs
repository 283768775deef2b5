//! What a file is, from its first bytes rather than its name or the declared type.

/// Types an upload may have; everything else is answered with 415.
pub const ALLOWED: &[&str] = &[
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
];

/// Bytes [`detect`] wants to see (less is fine at end of file).
pub const SNIFF_LEN: usize = 64;

/// The media type the bytes start like, `None` when unrecognised. Only the first
/// [`SNIFF_LEN`] bytes count: the handler may hand over more (it reads whole chunks until it
/// has that many), and the verdict must not depend on how the client cut the body.
///
/// ISO base media files (MP4, MOV, and also 3GP, HEIF images, M4A audio) start with an
/// `ftyp` box at offset 4 whose major brand says which; Matroska and WebM start with the EBML
/// magic `1A 45 DF A3` and name their DocType in the header that follows.
pub fn detect(head: &[u8]) -> Option<&'static str> {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some(match &head[8..12] {
            b"qt  " => "video/quicktime",
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc" => "image/heif",
            b"avif" | b"avis" => "image/avif",
            b"M4A " | b"M4B " => "audio/mp4",
            [b'3', b'g', ..] => "video/3gpp",
            _ => "video/mp4",
        });
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        let doc_type_is = |name: &[u8]| head.windows(name.len()).any(|w| w == name);
        return Some(if doc_type_is(b"webm") {
            "video/webm"
        } else {
            "video/x-matroska"
        });
    }
    const OTHERS: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x7FELF", "application/x-elf"),
        (b"RIFF", "application/x-riff"),
    ];
    OTHERS
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 0x18];
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(brand);
        v.extend_from_slice(&[0; 12]);
        v
    }

    #[test]
    fn recognises_videos_by_content() {
        assert_eq!(detect(&ftyp(b"isom")), Some("video/mp4"));
        assert_eq!(detect(&ftyp(b"mp42")), Some("video/mp4"));
        assert_eq!(detect(&ftyp(b"qt  ")), Some("video/quicktime"));
        let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84];
        webm.extend_from_slice(b"webm");
        assert_eq!(detect(&webm), Some("video/webm"));
        let mut mkv = vec![0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x42, 0x82, 0x88];
        mkv.extend_from_slice(b"matroska");
        assert_eq!(detect(&mkv), Some("video/x-matroska"));
        for t in [detect(&ftyp(b"isom")), detect(&webm), detect(&mkv)] {
            assert!(ALLOWED.contains(&t.unwrap()));
        }
    }

    /// Found by the `upload_sniff` fuzz target: the handler reads chunks until it has at least
    /// `SNIFF_LEN` bytes, so how many it hands over depends on how the client cut the body. A
    /// Matroska file whose bytes say `webm` only past that point was WebM in one large chunk
    /// and Matroska in small ones.
    #[test]
    fn the_verdict_looks_only_at_the_first_bytes() {
        let mut mkv = vec![0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x42, 0x82, 0x88];
        mkv.extend_from_slice(b"matroska");
        mkv.resize(SNIFF_LEN, 0);
        let head = mkv.clone();
        mkv.extend_from_slice(b"webm");
        assert_eq!(detect(&head), Some("video/x-matroska"));
        assert_eq!(
            detect(&mkv),
            detect(&head),
            "a longer head changed the verdict"
        );
    }

    #[test]
    fn names_what_is_not_a_video() {
        assert_eq!(detect(&ftyp(b"heic")), Some("image/heif"));
        assert_eq!(detect(&ftyp(b"M4A ")), Some("audio/mp4"));
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(detect(b"hello world"), None);
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"\0\0\0\x18ftyp"), None, "truncated box");
        for t in ["image/heif", "audio/mp4", "image/png", "video/3gpp"] {
            assert!(!ALLOWED.contains(&t));
        }
    }
}
