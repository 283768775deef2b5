//! The upload's type sniffer (`vidscope_api::routes::upload::sniff`): never panics, and its
//! verdict depends only on the first `SNIFF_LEN` bytes, so it cannot depend on how the body
//! was cut into chunks (the handler reads chunks until it has at least that many, which may
//! be more). The whole form, chunked by the client, is `upload_form`'s.
//!
//! Input: the file's first bytes; the last byte is also the size of the chunks it came in.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vidscope_api::routes::upload::sniff::{ALLOWED, SNIFF_LEN, detect};

/// What the handler sniffs: chunks gathered until there are `SNIFF_LEN` bytes or no more.
fn head_as_read(data: &[u8], chunk: usize) -> &[u8] {
    let mut len = 0;
    while len < SNIFF_LEN && len < data.len() {
        len = (len + chunk.max(1)).min(data.len());
    }
    &data[..len]
}

fuzz_target!(|data: &[u8]| {
    let chunk = usize::from(data.last().copied().unwrap_or(1));
    let verdict = detect(data);
    let first = &data[..data.len().min(SNIFF_LEN)];
    assert_eq!(
        verdict,
        detect(first),
        "the verdict looked past {SNIFF_LEN} bytes"
    );
    assert_eq!(
        detect(head_as_read(data, chunk)),
        verdict,
        "the verdict depends on the chunks"
    );
    if let Some(t) = verdict {
        assert!(t.contains('/'), "{t}");
        if ALLOWED.contains(&t) {
            assert!(t.starts_with("video/"), "{t}");
        }
    }
});
