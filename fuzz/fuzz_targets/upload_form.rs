//! `POST /api/upload`'s form (`vidscope_api::fuzzing::upload_form`): axum's multipart parser
//! and the handler's walk over the parts (order, names, title, file name, size limit, type
//! sniffed from the first bytes), on a body the client cut into chunks. Never panics; every
//! refusal is a 4xx; the outcome is the same however the body was chunked (a broken body may
//! be refused for its framing or for what came before the break); a file that passed
//! has the type its first bytes say and the size it had.
//!
//! Input: `raw:<max bytes> <chunk size> <chunk size>\n<body>` (the seeds: real forms), or
//! anything else, read as a form built from parts (`arbitrary`), whose outcome is also
//! checked against the file it holds.

#![no_main]

use std::cell::RefCell;

use arbitrary::{Arbitrary, Unstructured};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::response::IntoResponse as _;
use http::{Request, header};
use libfuzzer_sys::fuzz_target;
use vidscope_api::routes::upload::sniff::detect;

const BOUNDARY: &str = "vidscopefuzzboundary";

#[derive(Arbitrary, Debug)]
enum Form<'a> {
    /// Any bytes under a multipart content type.
    Raw(&'a [u8]),
    /// A form built from parts.
    Parts(Vec<Part<'a>>),
}

#[derive(Arbitrary, Debug)]
enum Name<'a> {
    File,
    Title,
    Other(&'a str),
    Missing,
}

/// The start of a file part, so that the sniffer sees video containers often.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Magic {
    None,
    Mp4,
    QuickTime,
    Heif,
    Webm,
    Matroska,
    Png,
}

#[derive(Arbitrary, Debug)]
struct Part<'a> {
    name: Name<'a>,
    filename: Option<&'a str>,
    content_type: Option<&'a str>,
    magic: Magic,
    data: &'a [u8],
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    form: Form<'a>,
    /// Two ways the client may cut the body into chunks (sizes cycled; 0 counts as 1).
    chunks_a: Vec<u8>,
    chunks_b: Vec<u16>,
    max_bytes: u16,
}

impl Magic {
    fn bytes(self) -> &'static [u8] {
        match self {
            Magic::None => b"",
            Magic::Mp4 => b"\0\0\0\x18ftypisom\0\0\0\0",
            Magic::QuickTime => b"\0\0\0\x14ftypqt  \0\0\0\0",
            Magic::Heif => b"\0\0\0\x18ftypheic\0\0\0\0",
            Magic::Webm => b"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm",
            Magic::Matroska => b"\x1a\x45\xdf\xa3\xa3\x42\x82\x88matroska",
            Magic::Png => b"\x89PNG\r\n\x1a\n",
        }
    }
}

/// A text that cannot break the part's header out of its quotes or line.
fn clean(s: &str) -> bool {
    !s.contains(['"', '\\', '\r', '\n', '\0']) && !s.chars().any(char::is_control)
}

/// The body, and the file parts' contents when the form is well-formed enough for the
/// assertions on the outcome (`None` for raw bytes or parts that could break the framing).
fn body(form: &Form<'_>) -> (Vec<u8>, Option<Vec<Vec<u8>>>) {
    let parts = match form {
        Form::Raw(b) => return (b.to_vec(), None),
        Form::Parts(parts) => parts,
    };
    let mut out = Vec::new();
    let mut files = Vec::new();
    let mut well_formed = true;
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data").as_bytes());
        let name = match p.name {
            Name::File => Some("file"),
            Name::Title => Some("title"),
            Name::Other(n) => Some(n),
            Name::Missing => None,
        };
        for (key, value) in [("name", name), ("filename", p.filename)] {
            if let Some(v) = value {
                well_formed &= clean(v);
                out.extend_from_slice(format!("; {key}=\"{v}\"").as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            well_formed &= clean(ct) && !ct.is_empty();
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        let mut data = p.magic.bytes().to_vec();
        data.extend_from_slice(p.data);
        well_formed &= !data
            .windows(BOUNDARY.len())
            .any(|w| w == BOUNDARY.as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
        if name == Some("file") {
            files.push(data);
        }
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (out, well_formed.then_some(files))
}

/// What the walk answered: the title, the file (name, type, size), or the refusal's status
/// and body.
type Outcome = Result<(Option<String>, Option<(String, &'static str, u64)>), (u16, Bytes)>;

async fn walk(body: &[u8], sizes: impl Iterator<Item = usize>, max_bytes: u64) -> Option<Outcome> {
    let mut chunks = Vec::new();
    let mut rest = body;
    let mut sizes = sizes;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        chunks.push(Bytes::copy_from_slice(chunk));
        rest = tail;
    }
    let request = Request::builder()
        .method("POST")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from_stream(vidscope_api::fuzzing::Paced::new(chunks)))
        .unwrap();
    // A body the extractor refuses never reaches the walk (the handler answers 400).
    let multipart = Multipart::from_request(request, &()).await.ok()?;
    Some(
        match vidscope_api::fuzzing::upload_form(multipart, max_bytes).await {
            Ok((title, file)) => Ok((title, file.map(|f| (f.filename, f.content_type, f.size)))),
            Err(e) => {
                let response = e.into_response();
                let status = response.status();
                assert!(status.is_client_error(), "a refusal answered {status}");
                let text = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                Err((status.as_u16(), text))
            }
        },
    )
}

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap(),
    );
}

fn check(body: &[u8], files: Option<Vec<Vec<u8>>>, max: u64, a: &[usize], b: &[usize]) {
    let (first, second) = RUNTIME.with(|rt| {
        let rt = rt.borrow();
        (
            rt.block_on(walk(body, a.iter().copied().cycle(), max)),
            rt.block_on(walk(body, b.iter().copied().cycle(), max)),
        )
    });
    // A broken body (cut short, framing wrong) may be noticed before or after another reason
    // to refuse it, depending on where the chunks end: both are refusals. Anything else,
    // acceptance above all, must not depend on the chunks.
    let broken = |o: &Option<Outcome>| matches!(o, Some(Err((400, body))) if body.starts_with(br#"{"error":{"code":"invalid_multipart""#));
    let both_refused = matches!((&first, &second), (Some(Err(_)), Some(Err(_))));
    if !(both_refused && (broken(&first) || broken(&second))) {
        assert_eq!(first, second, "the outcome depends on the chunks");
    }
    let (Some(Ok((_, Some((_, content_type, size))))), Some(files)) = (first, files) else {
        return;
    };
    // The walk took the first `file` part (a second is refused).
    let data = &files[0];
    assert_eq!(size, data.len() as u64);
    assert!(size <= max);
    assert_eq!(Some(content_type), detect(data));
}

fuzz_target!(|data: &[u8]| {
    if let Some(raw) = data.strip_prefix(b"raw:") {
        let (line, body) = match raw.iter().position(|&b| b == b'\n') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, &[][..]),
        };
        let n: Vec<usize> = String::from_utf8_lossy(line)
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let max = n.first().copied().unwrap_or(1 << 20) as u64;
        let a = [n.get(1).copied().unwrap_or(usize::MAX)];
        let b = [n.get(2).copied().unwrap_or(1)];
        return check(body, None, max, &a, &b);
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let (body, files) = body(&input.form);
    let a: Vec<usize> = input.chunks_a.iter().map(|&n| usize::from(n)).collect();
    let b: Vec<usize> = input.chunks_b.iter().map(|&n| usize::from(n)).collect();
    check(&body, files, u64::from(input.max_bytes), &a, &b);
});
