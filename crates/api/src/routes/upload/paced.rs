//! A request body in given chunks, each delivered as from a socket: only after the reader has
//! waited for it, never on its immediate second look. The upload form's unit tests and its fuzz
//! target (`fuzz/fuzz_targets/upload_form.rs`) read forms through it, so that the multipart
//! parser sees the reads a network gives. (A stream that is ready on every look trips a bug of
//! multer 3.1: when its first look for the opening boundary comes back empty and the second
//! brings the whole body and its end at once, it answers "incomplete multipart stream" without
//! looking at what it got.) Each chunk is first answered `Pending` with the waker woken, so the
//! reader goes back to the runtime; no task or channel, which held the fuzz target near 540
//! inputs/s.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;

pub struct Paced {
    chunks: std::vec::IntoIter<Bytes>,
    waited: bool,
}

impl Paced {
    pub fn new(chunks: Vec<Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter(),
            waited: false,
        }
    }
}

impl futures_util::Stream for Paced {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.waited {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.waited = false;
        Poll::Ready(self.chunks.next().map(Ok))
    }
}
