use std::time::Duration;

use vidscope_telemetry::SamplerConfig;
use vidscope_testkit::{TestApp, TraceResponse};

fn sampled(resp: &reqwest::Response) -> bool {
    TraceResponse::of(resp.headers()).sampled
}

#[tokio::test]
async fn ratio_sampler_keeps_about_a_tenth_and_always_follows_a_sampled_parent() {
    let app = TestApp::builder()
        .telemetry(|mut c, _| {
            c.sampler = SamplerConfig::ParentBasedTraceIdRatio(0.1);
            c
        })
        .spawn()
        .await;

    // 2 000 root requests: between 7 % and 13 % sampled.
    let mut kept = 0;
    for _ in 0..2000 {
        let resp = app.get("/healthz").await;
        assert_eq!(resp.status(), 200);
        if sampled(&resp) {
            kept += 1;
        }
    }
    assert!(
        (140..=260).contains(&kept),
        "sampled {kept} of 2000 root requests"
    );

    // What the header claims is what was exported: one server span per sampled request.
    app.flush_telemetry().await;
    let exported = app.otlp.spans_named("GET /healthz").len();
    assert_eq!(exported, kept, "exported server spans vs sampled responses");

    // A sampled parent is always followed, an unsampled one never.
    for i in 0..200u32 {
        let trace = format!("{:032x}", 0xabc0_0000u64 + u64::from(i));
        let resp = app
            .get_with(
                "/healthz",
                &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
            )
            .await;
        assert!(sampled(&resp), "sampled parent {trace} not followed");
        let resp = app
            .get_with(
                "/healthz",
                &[("traceparent", &format!("00-{trace}-00f067aa0ba902b8-00"))],
            )
            .await;
        assert!(!sampled(&resp), "unsampled parent {trace} was sampled");
    }
    app.flush_telemetry().await;
    app.otlp
        .wait_until(
            |r| r.spans_named("GET /healthz").len() == kept + 200,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    app.stop().await;
}
