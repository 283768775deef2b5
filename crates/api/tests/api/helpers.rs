//! What many tests here start from or look for, written once so that a change to it (another
//! way to make a user, a span that needs a flush first) is made in one place.

use vidscope_core::domain::Role;
use vidscope_testkit::otlp::CapturedSpan;
use vidscope_testkit::{TestApp, TestUser, spawn_app};

/// A running app with one signed-in user of `role`: where most tests start.
pub(crate) async fn app_with_user(role: Role) -> (TestApp, TestUser) {
    let app = spawn_app().await;
    let user = app.create_user(role).await;
    (app, user)
}

/// A running app with a signed-in admin and a signed-in viewer, in that order.
pub(crate) async fn app_with_admin_and_viewer() -> (TestApp, TestUser, TestUser) {
    let (app, admin) = app_with_user(Role::Admin).await;
    let viewer = app.create_user(Role::Viewer).await;
    (app, admin, viewer)
}

/// The span named `name` that recorded the event `event`. Telemetry is flushed first: the
/// span may still sit in the exporter's batch when the request under test has answered.
pub(crate) async fn span_with_event(app: &TestApp, name: &str, event: &str) -> CapturedSpan {
    app.flush_telemetry().await;
    app.span_where(|s| s.name == name && s.event(event).is_some())
        .await
}
