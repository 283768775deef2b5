//! Accounts (issue 28): a user changes their password (their other sessions end) and signs out
//! everywhere; an admin lists accounts, changes a role, disables and enables an account (its
//! sessions end at once, it cannot sign in), and sets a temporary password that must be
//! changed before anything else. Bad input is a 4xx naming the field; an admin can neither
//! disable themselves nor demote the last admin. Each change is traced with who did it to whom.

use reqwest::Method;
use serde_json::{Value, json};
use vidscope_core::domain::{Role, UserId};
use vidscope_testkit::{TestApp, TestUser, expect_error, spawn_app};

use crate::auth::{cookie_of, login};
use crate::helpers::{app_with_admin_and_viewer, app_with_user, span_with_event};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// `admin` sets `password` as the temporary password of account `id`.
async fn set_temporary(
    app: &TestApp,
    admin: &TestUser,
    id: &str,
    password: &str,
) -> reqwest::Response {
    let path = format!("/api/users/{id}/temporary-password");
    let body = json!({"password": password});
    call(app, Method::POST, &path, &admin.cookie, Some(body)).await
}

/// `method path` with `cookie` and an optional JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> reqwest::Response {
    app.request(method, path, Some(cookie), body.as_ref()).await
}

async fn change_password(
    app: &TestApp,
    cookie: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    let body = json!({"current_password": current, "new_password": new});
    call(
        app,
        Method::POST,
        "/api/account/password",
        cookie,
        Some(body),
    )
    .await
}

async fn patch_user(app: &TestApp, admin: &TestUser, id: &str, body: Value) -> reqwest::Response {
    let path = format!("/api/users/{id}");
    call(app, Method::PATCH, &path, &admin.cookie, Some(body)).await
}

/// `GET /api/auth/session` with `cookie`.
async fn session(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.get_with("/api/auth/session", &[("cookie", cookie)])
        .await
}

/// The status of `GET /api/auth/session` with `cookie`.
async fn session_status(app: &TestApp, cookie: &str) -> u16 {
    session(app, cookie).await.status().as_u16()
}

/// The user `GET /api/auth/session` names for `cookie`.
async fn session_user(app: &TestApp, cookie: &str) -> Value {
    let body: Value = session(app, cookie).await.json().await.unwrap();
    body["user"].clone()
}

/// The status of `user` signing in with `password`.
async fn login_status(app: &TestApp, user: &TestUser, password: &str) -> u16 {
    login(app, &user.user.email, &password)
        .await
        .status()
        .as_u16()
}

/// A second session of `user`, through the sign-in route.
async fn second_session(app: &TestApp, user: &TestUser) -> String {
    let resp = login(app, &user.user.email, &user.password).await;
    assert_eq!(resp.status(), 200);
    cookie_of(&resp)
}

/// The message of a JSON error answer's body (testkit's `expect_error` returns the body).
fn message_of(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The event `name` of the span named `span` that has it, waiting for it to be exported.
async fn event_on(app: &TestApp, span: &str, name: &str) -> vidscope_testkit::otlp::CapturedEvent {
    let found = span_with_event(app, span, name).await;
    found.events.into_iter().find(|e| e.name == name).unwrap()
}

/// `user.account_actions_total` has counted `action` with `outcome` at least once.
async fn counted(app: &TestApp, action: &str, outcome: &str) {
    let point = app
        .metric_point("user.account_actions_total", |p| {
            p.attr_str("action") == Some(action)
                && p.attr_str("outcome") == Some(outcome)
                && p.value.as_i64().is_some_and(|n| n >= 1)
        })
        .await;
    assert!(point.value.as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn a_user_changes_their_password_and_their_other_sessions_end() {
    // Arrange: two sessions, each used once so the session cache holds both.
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let other_device = second_session(&app, &viewer).await;
    assert_eq!(session_status(&app, &viewer.cookie).await, 200);
    assert_eq!(session_status(&app, &other_device).await, 200);

    // Act
    let resp = change_password(&app, &viewer.cookie, &viewer.password, NEW_PASSWORD).await;

    // Assert
    assert_eq!(resp.status(), 204);
    assert_eq!(
        session_status(&app, &viewer.cookie).await,
        200,
        "this one stays"
    );
    assert_eq!(
        session_status(&app, &other_device).await,
        401,
        "the other ended at once"
    );
    assert_eq!(
        login_status(&app, &viewer, &viewer.password).await,
        401,
        "the old password no longer works"
    );
    assert_eq!(
        login_status(&app, &viewer, NEW_PASSWORD).await,
        200,
        "the new one does"
    );

    // Traced with who, and never the passwords.
    let event = event_on(&app, "api.account.change_password", "user.password_changed").await;
    assert_eq!(event.attr_str("user.id"), Some(viewer.user.id.as_str()));
    assert_eq!(
        event.attr_str("target.user.id"),
        Some(viewer.user.id.as_str())
    );
    assert_eq!(event.attr_i64("sessions.revoked"), Some(1));
    counted(&app, "password_change", "done").await;
    app.flush_telemetry().await;
    for secret in [viewer.password.as_str(), NEW_PASSWORD] {
        assert!(
            !app.otlp.raw_contains(secret.as_bytes()),
            "{secret} was exported"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_a_valid_new_one() {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let cookie = viewer.cookie.as_str();
    let current = viewer.password.as_str();
    for (current, new, status, code, needle) in [
        (
            "not my password",
            NEW_PASSWORD,
            400,
            "wrong_password",
            "current_password",
        ),
        ("", NEW_PASSWORD, 400, "wrong_password", "current_password"),
        (current, "short", 400, "invalid_password", "new_password"),
        (
            current,
            &"x".repeat(129),
            400,
            "invalid_password",
            "new_password",
        ),
        (current, current, 400, "invalid_password", "differ"),
    ] {
        let resp = change_password(&app, cookie, current, new).await;
        let body = expect_error(resp, status, code, &format!("{current:?} -> {new:?}")).await;
        let message = message_of(&body);
        assert!(message.contains(needle), "{message}");
    }
    for (body, needle) in [
        (json!({"current_password": current}), "new_password"),
        (json!({"new_password": NEW_PASSWORD}), "current_password"),
        (
            json!({"current_password": current, "new_password": NEW_PASSWORD, "user_id": "x"}),
            "user_id",
        ),
    ] {
        let resp = call(
            &app,
            Method::POST,
            "/api/account/password",
            cookie,
            Some(body),
        )
        .await;
        let message = message_of(&expect_error(resp, 400, "invalid_json", needle).await);
        assert!(message.contains(needle), "{message}");
    }
    // Nothing changed: the password is still the old one.
    assert_eq!(login_status(&app, &viewer, current).await, 200);
    counted(&app, "password_change", "refused").await;

    // Wrong guesses are throttled like sign-ins (five per account by default).
    let mut last = 0;
    for _ in 0..6 {
        last = change_password(&app, cookie, "guess guess guess", NEW_PASSWORD)
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "guessing the current password is throttled");
    app.stop().await;
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_this_one_included() {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let other_device = second_session(&app, &viewer).await;
    let bystander = app.create_user(Role::Viewer).await;
    for cookie in [&viewer.cookie, &other_device] {
        assert_eq!(session_status(&app, cookie).await, 200);
    }

    let resp = call(
        &app,
        Method::DELETE,
        "/api/account/sessions",
        &viewer.cookie,
        None,
    )
    .await;

    assert_eq!(resp.status(), 204);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("Max-Age=0"), "{set_cookie}");
    for cookie in [&viewer.cookie, &other_device] {
        assert_eq!(session_status(&app, cookie).await, 401);
    }
    assert_eq!(
        session_status(&app, &bystander.cookie).await,
        200,
        "only theirs"
    );
    let event = event_on(&app, "api.account.sign_out_all", "user.sessions_revoked").await;
    assert_eq!(event.attr_str("user.id"), Some(viewer.user.id.as_str()));
    assert_eq!(event.attr_i64("sessions.revoked"), Some(2));
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_account_loses_its_sessions_at_once_and_cannot_sign_in() {
    // Arrange
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    assert_eq!(
        session_status(&app, &viewer.cookie).await,
        200,
        "cached now"
    );
    let id = viewer.user.id.as_str();

    // Act
    let resp = patch_user(&app, &admin, id, json!({"disabled": true})).await;

    // Assert
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["disabled"], true, "{body}");
    assert!(body["disabled_at"].is_i64(), "{body}");
    assert_eq!(
        session_status(&app, &viewer.cookie).await,
        401,
        "ended at once"
    );
    let refused = login(&app, &viewer.user.email, &viewer.password).await;
    expect_error(
        refused,
        403,
        "account_disabled",
        "a disabled account signing in",
    )
    .await;
    // A wrong password says nothing about the account.
    let wrong = login(&app, &viewer.user.email, &"not the password").await;
    expect_error(wrong, 401, "invalid_credentials", "a wrong password").await;
    let listed: Value = app.get_as("/api/users", &admin).await.json().await.unwrap();
    let row = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .cloned()
        .unwrap();
    assert_eq!(row["disabled"], true, "{row}");
    let event = event_on(&app, "api.users.update", "user.disabled").await;
    assert_eq!(event.attr_str("user.id"), Some(admin.user.id.as_str()));
    assert_eq!(event.attr_str("target.user.id"), Some(id));
    assert_eq!(event.attr_i64("sessions.revoked"), Some(1));

    // Enabled again, it signs in as before.
    let resp = patch_user(&app, &admin, id, json!({"disabled": false})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["disabled"], false, "{body}");
    assert_eq!(body["disabled_at"], Value::Null, "{body}");
    assert_eq!(login_status(&app, &viewer, &viewer.password).await, 200);
    let event = event_on(&app, "api.users.update", "user.enabled").await;
    assert_eq!(event.attr_str("target.user.id"), Some(id));
    counted(&app, "disable", "done").await;
    counted(&app, "enable", "done").await;
    app.stop().await;
}

#[tokio::test]
async fn a_role_change_applies_to_open_sessions_at_once() {
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    let id = viewer.user.id.as_str();
    assert_eq!(app.get_as("/api/users", &viewer).await.status(), 403);
    // A viewer cannot make themselves admin.
    let own = patch_user(&app, &viewer, id, json!({"role": "admin"})).await;
    expect_error(own, 403, "forbidden", "a viewer making themselves admin").await;

    let resp = patch_user(&app, &admin, id, json!({"role": "admin"})).await;

    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["role"], "admin", "{body}");
    assert_eq!(
        app.get_as("/api/users", &viewer).await.status(),
        200,
        "at once"
    );
    let event = event_on(&app, "api.users.update", "user.role_changed").await;
    assert_eq!(event.attr_str("user.id"), Some(admin.user.id.as_str()));
    assert_eq!(event.attr_str("target.user.id"), Some(id));
    assert_eq!(event.attr_str("role.previous"), Some("viewer"));
    assert_eq!(event.attr_str("role.new"), Some("admin"));

    // And back: the former viewer loses the admin routes at once too.
    let resp = patch_user(&app, &admin, id, json!({"role": "viewer"})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.get_as("/api/users", &viewer).await.status(), 403);
    counted(&app, "role_change", "done").await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_cannot_disable_themselves_or_demote_the_last_admin() {
    let (app, admin) = app_with_user(Role::Admin).await;
    let me = admin.user.id.as_str();
    let cases = [
        (json!({"disabled": true}), "cannot_disable_self"),
        (json!({"role": "viewer"}), "last_admin"),
        (json!({"role": "viewer", "disabled": false}), "last_admin"),
    ];
    for (body, code) in cases {
        let resp = patch_user(&app, &admin, me, body.clone()).await;
        expect_error(resp, 409, code, &body.to_string()).await;
    }
    let resp = set_temporary(&app, &admin, me, "temporary password").await;
    expect_error(
        resp,
        409,
        "cannot_reset_self",
        "an admin resetting their own password",
    )
    .await;
    // Nothing changed: still an admin, still signed in.
    assert_eq!(app.get_as("/api/users", &admin).await.status(), 200);
    counted(&app, "role_change", "refused").await;

    // With a second admin, stepping down is fine; disabling oneself still is not.
    let second = app.create_user(Role::Admin).await;
    let resp = patch_user(&app, &admin, me, json!({"role": "viewer"})).await;
    assert_eq!(resp.status(), 200);
    let resp = patch_user(&app, &second, me, json!({"role": "admin"})).await;
    assert_eq!(resp.status(), 200);
    let resp = patch_user(&app, &second, &second.user.id, json!({"disabled": true})).await;
    expect_error(
        resp,
        409,
        "cannot_disable_self",
        "the second admin disabling themselves",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn bad_account_input_is_a_4xx_naming_the_field() {
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    let id = viewer.user.id.as_str();
    for (body, code, needle) in [
        (json!({"role": "root"}), "invalid_role", "role"),
        (json!({"role": ""}), "invalid_role", "role"),
        (json!({}), "empty_update", "role"),
        (json!({"role": null}), "invalid_json", "role"),
        (json!({"disabled": "yes"}), "invalid_json", "disabled"),
        (json!({"disabled": null}), "invalid_json", "disabled"),
        (json!({"email": "x@example.com"}), "invalid_json", "email"),
    ] {
        let resp = patch_user(&app, &admin, id, body.clone()).await;
        let message = message_of(&expect_error(resp, 400, code, &body.to_string()).await);
        assert!(message.contains(needle), "{body}: {message}");
    }
    let resp = patch_user(&app, &admin, "not-a-uuid", json!({"role": "admin"})).await;
    let message = message_of(&expect_error(resp, 400, "invalid_id", "a user id not a UUID").await);
    assert!(message.contains("id"), "{message}");
    let nobody = UserId::parse("0b9e3c52-5f04-4a8e-9d1e-3f2a1c7d8e90").unwrap();
    let resp = patch_user(&app, &admin, nobody.as_str(), json!({"role": "admin"})).await;
    expect_error(resp, 404, "not_found", "an unknown user id").await;
    let temporary = |id: &str| format!("/api/users/{id}/temporary-password");
    for (path, body, status, code) in [
        (
            temporary(id),
            json!({"password": "short"}),
            400,
            "invalid_password",
        ),
        (temporary(id), json!({}), 400, "invalid_json"),
        (
            temporary("x"),
            json!({"password": "long enough"}),
            400,
            "invalid_id",
        ),
        (
            temporary(nobody.as_str()),
            json!({"password": "long enough"}),
            404,
            "not_found",
        ),
    ] {
        let resp = call(&app, Method::POST, &path, &admin.cookie, Some(body.clone())).await;
        expect_error(resp, status, code, &format!("{path} {body}")).await;
    }
    // Nothing changed.
    let account = vidscope_core::users::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((account.role, account.disabled_at), (Role::Viewer, None));
    assert!(!account.must_change_password);
    counted(&app, "temporary_password", "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_temporary_password_must_be_changed_before_anything_else() {
    // Arrange
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    let id = viewer.user.id.as_str();
    let temporary = "temporary 4 you";

    // Act: the admin sets it; the user signs in with it.
    let resp = set_temporary(&app, &admin, id, temporary).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        session_status(&app, &viewer.cookie).await,
        401,
        "sessions ended"
    );
    assert_eq!(login_status(&app, &viewer, &viewer.password).await, 401);
    let resp = login(&app, &viewer.user.email, &temporary).await;
    assert_eq!(resp.status(), 200);
    let cookie = cookie_of(&resp);
    let body: Value = resp.json().await.unwrap();

    // Assert: only the password change is open until it is done.
    assert_eq!(body["user"]["must_change_password"], true, "{body}");
    let refused = app.get_with("/api/videos", &[("cookie", &cookie)]).await;
    let body = expect_error(
        refused,
        403,
        "password_change_required",
        "before the change",
    )
    .await;
    let message = message_of(&body);
    assert!(message.contains("/api/account/password"), "{message}");
    let me = session_user(&app, &cookie).await;
    assert_eq!(me["must_change_password"], true, "{me}");
    let page = app.get_with("/videos", &[("cookie", &cookie)]).await;
    assert_eq!(page.status(), 303, "pages send it to the sign-in form");
    let listed: Value = app.get_as("/api/users", &admin).await.json().await.unwrap();
    assert!(
        listed.to_string().contains("\"must_change_password\":true"),
        "{listed}"
    );

    let resp = change_password(&app, &cookie, temporary, NEW_PASSWORD).await;
    assert_eq!(resp.status(), 204);
    let videos = app.get_with("/api/videos", &[("cookie", &cookie)]).await;
    assert_eq!(videos.status(), 200, "the same session works fully now");
    let me = session_user(&app, &cookie).await;
    assert_eq!(me["must_change_password"], false, "{me}");

    let event = event_on(
        &app,
        "api.users.set_temporary_password",
        "user.temporary_password_set",
    )
    .await;
    assert_eq!(event.attr_str("user.id"), Some(admin.user.id.as_str()));
    assert_eq!(event.attr_str("target.user.id"), Some(id));
    assert_eq!(event.attr_i64("sessions.revoked"), Some(1));
    counted(&app, "temporary_password", "done").await;
    app.flush_telemetry().await;
    assert!(!app.otlp.raw_contains(temporary.as_bytes()));
    app.stop().await;
}

/// The HTML of the sign-up page, a 200 whether sign-up is open or not, and of the sign-in page.
async fn sign_up_and_sign_in_pages(app: &TestApp) -> (String, String) {
    let page = app.get("/signup").await;
    assert_eq!(page.status(), 200);
    let sign_up = page.text().await.unwrap();
    let sign_in = app.get("/login").await.text().await.unwrap();
    (sign_up, sign_in)
}

#[tokio::test]
async fn the_sign_up_page_is_there_only_when_registration_is_on() {
    // On (the tests' setting): the form, linked from the sign-in page.
    let app = spawn_app().await;
    let (html, login) = sign_up_and_sign_in_pages(&app).await;
    assert!(html.contains("action=\"/api/auth/register\""), "{html}");
    assert!(login.contains("href=\"/signup\""), "{login}");
    app.stop().await;

    // Off (the default): the page says so, the sign-in page has no link, the API refuses.
    let app = vidscope_testkit::spawn_app_with(|s| s.api.registration_enabled = false).await;
    let (html, login) = sign_up_and_sign_in_pages(&app).await;
    assert!(html.contains("Sign-up is closed"), "{html}");
    assert!(!html.contains("<form"), "{html}");
    assert!(!login.contains("/signup"), "{login}");
    let body = json!({"email": "new@example.com", "password": "long enough"});
    let resp = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden", "registering while sign-up is off").await;
    app.stop().await;
}

#[tokio::test]
async fn the_account_and_users_pages_show_what_each_user_may_do() {
    let (app, admin, viewer) = app_with_admin_and_viewer().await;

    let mine = app.get_as("/account", &viewer).await;
    assert_eq!(mine.status(), 200);
    let html = mine.text().await.unwrap();
    assert!(html.contains(&viewer.user.email), "{html}");
    assert!(html.contains("/assets/account.js"), "{html}");
    assert!(
        !html.contains("href=\"/users\""),
        "no admin link for a viewer: {html}"
    );
    assert_eq!(app.get_as("/users", &viewer).await.status(), 403);

    let page = app.get_as("/users", &admin).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for needle in [
        viewer.user.email.as_str(),
        viewer.user.id.as_str(),
        "/assets/users.js",
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    // The admin's own row offers no disable button.
    let own_row = html
        .split("<tr ")
        .find(|row| row.contains(&admin.user.id))
        .unwrap();
    assert!(!own_row.contains("class=\"toggle\""), "{own_row}");

    // A temporary password opens the account page and nothing else.
    let resp = set_temporary(&app, &admin, &viewer.user.id, "temporary 4 you").await;
    assert_eq!(resp.status(), 204);
    let cookie = cookie_of(&login(&app, &viewer.user.email, &"temporary 4 you").await);
    let page = app.get_with("/account", &[("cookie", &cookie)]).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("must-change"));
    assert_eq!(
        app.get_with("/videos", &[("cookie", &cookie)])
            .await
            .status(),
        303
    );
    app.stop().await;
}

/// A running app whose only accounts are two admins.
async fn two_admins() -> (TestApp, TestUser, TestUser) {
    let (app, a) = app_with_user(Role::Admin).await;
    let b = app.create_user(Role::Admin).await;
    (app, a, b)
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let (app, a, b) = two_admins().await;

    // Each demotes the other at the same moment: one must win, the other be refused, as the
    // last admin (409) when both are in flight together, or as no admin any more (403) when
    // the winner's change reached the loser's session first.
    let viewer = json!({"role": "viewer"});
    let (first, second) = tokio::join!(
        patch_user(&app, &a, &b.user.id, viewer.clone()),
        patch_user(&app, &b, &a.user.id, viewer),
    );

    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200, "one demotion goes through: {statuses:?}");
    assert!([403, 409].contains(&statuses[1]), "{statuses:?}");
    let admins = vidscope_core::users::list(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.role == Role::Admin)
        .count();
    assert_eq!(admins, 1);
    app.stop().await;
}

/// The rule itself, without the session check in front: two transactions demoting the only two
/// admins at once cannot both commit (on Postgres the admins' rows are locked while it is
/// checked; SQLite's write lock is taken at `BEGIN`).
#[tokio::test]
async fn concurrent_demotions_of_the_last_two_admins_cannot_both_commit() {
    use vidscope_core::users::{AccountChange, ChangeRefused, update};
    let (app, a, b) = two_admins().await;
    let db = &app.state.db;
    let demote = AccountChange {
        role: Some(Role::Viewer),
        disabled: None,
    };
    for _ in 0..5 {
        let (first, second) = tokio::join!(
            update(db, &a.user.id, &b.user.id, demote),
            update(db, &b.user.id, &a.user.id, demote),
        );
        let outcomes = [first.unwrap().map(|_| ()), second.unwrap().map(|_| ())];
        assert!(
            outcomes.contains(&Ok(())) && outcomes.contains(&Err(ChangeRefused::LastAdmin)),
            "{outcomes:?}"
        );
        // Both admins again for the next round.
        let promote = AccountChange {
            role: Some(Role::Admin),
            disabled: None,
        };
        for id in [&a.user.id, &b.user.id] {
            update(db, &a.user.id, id, promote).await.unwrap().unwrap();
        }
    }
    app.stop().await;
}

/// With Redis, the session cache every replica shares: a disable reaches it at once too.
#[tokio::test]
async fn a_disable_ends_sessions_cached_in_redis_at_once() {
    let app = TestApp::builder().with_redis().spawn().await;
    let admin = app.create_user(Role::Admin).await;
    let viewer = app.create_user(Role::Viewer).await;
    assert_eq!(
        session_status(&app, &viewer.cookie).await,
        200,
        "cached now"
    );

    let resp = patch_user(&app, &admin, &viewer.user.id, json!({"disabled": true})).await;

    assert_eq!(resp.status(), 200);
    assert_eq!(session_status(&app, &viewer.cookie).await, 401);
    app.stop().await;
}
