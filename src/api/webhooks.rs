//! `POST /v1/webhooks/canvas`: Canvas's appointment notifications, in both payload families
//! (the legacy notification protocol and plugin-style events). A notification is a hint: it
//! names an appointment, whose current state is then read from Canvas.

use actix_web::{HttpRequest, HttpResponse, post, web};
use aws_lc_rs::constant_time;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use crate::config::sync::webhook_key;
use crate::error::{ApiError, Code};
use crate::sync::signature;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"accepted": "317d8c8d-6b2e-4a7c-9d1e-1f2a3b4c5d6e"}))]
pub struct Accepted {
    /// The appointment that will be synced.
    pub accepted: String,
}

fn refuse() -> ApiError {
    ApiError::new(
        Code::Unauthorized,
        "The notification is not signed with the configured secret.",
    )
}

/// Standard Webhooks signature, or the secret itself as a bearer token.
fn authentic(request: &HttpRequest, body: &[u8], secret: &str) -> bool {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(bearer) = header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
        return constant_time::verify_slices_are_equal(bearer.trim().as_bytes(), secret.as_bytes())
            .is_ok();
    }
    let Some(key) = webhook_key(secret) else {
        return false;
    };
    let now = jiff::Timestamp::now().as_second();
    signature::verify(
        &key,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body,
        now,
    )
    .is_ok()
}

/// The appointment a notification is about, in either payload family.
pub fn appointment_id(payload: &Value) -> Option<String> {
    payload["appointment_external_id"]
        .as_str()
        .or_else(|| payload["appointment"]["id"].as_str())
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .map(str::to_owned)
}

/// Receives a Canvas appointment notification: verified, then answered at once; the
/// appointment's current state is read from Canvas and synced.
#[utoipa::path(
    operation_id = "receive_canvas_notification",
    context_path = "/v1",
    tag = "webhooks",
    security(()),
    request_body(content = Object, description = "A Canvas appointment notification (legacy protocol or plugin event)"),
    params(
        ("webhook-id" = Option<String>, Header, description = "Standard Webhooks message id"),
        ("webhook-timestamp" = Option<String>, Header, description = "Unix seconds; older than 5 minutes is refused"),
        ("webhook-signature" = Option<String>, Header, description = "v1,<base64 HMAC-SHA256>; or send the secret as a bearer token"),
    ),
    responses(
        (status = 202, description = "Accepted; the appointment will be synced", body = Accepted),
        (status = 400, description = "The payload names no appointment", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed with the configured secret, or too old; nothing happens", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/canvas")]
pub async fn canvas(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = &state.settings.sync.canvas_webhook_secret else {
        return Err(refuse());
    };
    if !authentic(&request, &body, secret.expose()) {
        return Err(refuse());
    }
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::invalid("body", "must be a JSON notification"))?;
    let id = appointment_id(&payload).ok_or_else(|| {
        ApiError::invalid("appointment_external_id", "names no Canvas appointment")
    })?;
    state.sync.notified(id.clone()).await;
    Ok(HttpResponse::Accepted().json(Accepted { accepted: id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_payload_families_name_the_appointment() {
        let id = "317d8c8d-6b2e-4a7c-9d1e-1f2a3b4c5d6e";
        let legacy = serde_json::json!({"canvas_patient_key": "x", "appointment_external_id": id, "created": true});
        let plugin = serde_json::json!({"event_type": "appointment_created", "appointment": {"id": id}, "patient": {"id": "x"}});
        assert_eq!(appointment_id(&legacy).as_deref(), Some(id));
        assert_eq!(appointment_id(&plugin).as_deref(), Some(id));
        assert_eq!(
            appointment_id(&serde_json::json!({"appointment_external_id": "../etc"})),
            None
        );
    }
}

fn not_ours() -> ApiError {
    ApiError::new(
        Code::Unauthorized,
        "The push does not come from a channel slotgate opened.",
    )
}

/// Receives a Google Calendar push for an inbound calendar: checked against the channel's id
/// and token (unknown: 401, nothing read), answered at once; on a change the calendar is read
/// with its sync token and Canvas brought in line.
#[utoipa::path(
    operation_id = "receive_google_push",
    context_path = "/v1",
    tag = "webhooks",
    security(()),
    params(
        ("X-Goog-Channel-ID" = Option<String>, Header, description = "The watch channel slotgate opened"),
        ("X-Goog-Channel-Token" = Option<String>, Header, description = "The token slotgate gave that channel"),
        ("X-Goog-Resource-State" = Option<String>, Header, description = "`sync` (the handshake), `exists` or `not_exists`"),
    ),
    responses(
        (status = 200, description = "Accepted; the calendar will be read"),
        (status = 401, description = "Not a channel slotgate opened; nothing is read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/google")]
pub async fn google(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let (channel, token) = (header("x-goog-channel-id"), header("x-goog-channel-token"));
    if channel.is_empty() || token.is_empty() {
        return Err(not_ours());
    }
    state
        .inbound
        .google_push(channel, token, header("x-goog-resource-state"))
        .await
        .map_err(|_| not_ours())?;
    Ok(HttpResponse::Ok().finish())
}

/// Graph change notifications, as Graph posts them (documentation only: the body is read
/// field by field, and anything else in it is ignored).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"value": [{"subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07", "clientState": "a generated secret", "changeType": "created", "resource": "Users/dr.okafor@clinic.example/Events/AAMkAGI1"}]}))]
pub struct GraphNotifications {
    value: Vec<GraphChange>,
}

#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
#[schema(example = json!({"subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07", "clientState": "a generated secret", "changeType": "updated", "resource": "Users/dr.okafor@clinic.example/Events/AAMkAGI1"}))]
pub struct GraphChange {
    subscriptionId: String,
    clientState: String,
    /// On a change notification: `created`, `updated` or `deleted`.
    changeType: Option<String>,
    resource: Option<String>,
    /// On a lifecycle notification instead: `reauthorizationRequired` (the subscription is
    /// renewed), `subscriptionRemoved` (a new one is made and the calendar read whole) or
    /// `missed` (the calendar is read whole).
    lifecycleEvent: Option<String>,
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphQuery {
    /// Sent by Graph when a subscription is created or renewed: echoed back as text.
    #[serde(rename = "validationToken")]
    #[param(rename = "validationToken", max_length = 2048)]
    validation_token: Option<String>,
}

/// Receives Microsoft Graph change notifications for inbound calendars. With
/// `validationToken` it is Graph's handshake, answered with the token as text. Otherwise every
/// notification must carry its subscription's `clientState` (else 401, nothing read); the
/// events named are read (a recurring series: its calendar) and Canvas brought in line. The same address receives the
/// subscriptions' lifecycle notifications.
#[utoipa::path(
    operation_id = "receive_graph_notification",
    context_path = "/v1",
    tag = "webhooks",
    security(()),
    params(GraphQuery),
    request_body(content = Option<GraphNotifications>, description = "Graph change notifications; absent on the validation handshake"),
    responses(
        (status = 200, description = "The validation token, as text", body = String, content_type = "text/plain"),
        (status = 202, description = "Accepted; the calendars will be read"),
        (status = 400, description = "Not a notification payload", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "A notification without its subscription's clientState (or no body and no validationToken); nothing is read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/graph")]
pub async fn graph(
    query: web::Query<GraphQuery>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &query.validation_token {
        if token.len() > 2048 {
            return Err(ApiError::invalid("validationToken", "is too long"));
        }
        // Graph's handshake comes without a body.
        if !body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(
                "validationToken",
                "comes without a body (a validation request carries no notifications)",
            ));
        }
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(token.clone()));
    }
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::invalid("body", "must be a JSON change notification"))?
    };
    // Neither a handshake nor a notification: nothing that came from a subscription.
    if payload.is_null() {
        return Err(not_ours());
    }
    if !payload["value"].is_array() {
        return Err(ApiError::invalid("value", "must list the notifications"));
    }
    state
        .inbound
        .graph_push(&payload)
        .await
        .map_err(|_| not_ours())?;
    Ok(HttpResponse::Accepted().finish())
}
