//! `POST /api/telemetry/player`'s body (`vidscope_api::fuzzing::player_batch`): any bytes.
//! Never panics; a batch accepted holds 1 to 100 events; every refusal is a 4xx with a JSON
//! body that says what is wrong.

#![no_main]

use axum::response::IntoResponse as _;
use libfuzzer_sys::fuzz_target;
use vidscope_api::routes::telemetry::player::MAX_EVENTS;

fuzz_target!(|data: &[u8]| {
    match vidscope_api::fuzzing::player_batch(data) {
        Ok((events, _)) => assert!((1..=MAX_EVENTS).contains(&events), "{events} events"),
        Err(e) => {
            let response = e.into_response();
            assert!(response.status().is_client_error(), "{}", response.status());
            let body = ready(axum::body::to_bytes(response.into_body(), usize::MAX)).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
            let message = json["error"]["message"].as_str();
            assert!(message.is_some_and(|m| !m.is_empty()), "{json}");
            assert!(json["error"]["code"].is_string(), "{json}");
        }
    }
});

/// The body of an error response is a ready buffer: one poll.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("an error body was not ready"),
    }
}
