//! Calendar-sync administration: status, dead letters, and retrying them (`scheduling.admin`).

use actix_web::{HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::AdminAccess;
use crate::error::ApiError;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "ops", "kind": "webhook", "last_success": "2026-12-01T17:00:02Z", "pending": 0, "failing": 0, "dead": 1}))]
pub struct SinkStatus {
    pub name: String,
    pub kind: String,
    pub last_success: Option<String>,
    /// Changes waiting for delivery.
    pub pending: usize,
    /// Of those, how many failed at least once.
    pub failing: usize,
    pub dead: usize,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"leader": true, "sinks": [{"name": "ops", "kind": "webhook", "last_success": "2026-12-01T17:00:02Z", "pending": 0, "failing": 0, "dead": 1}], "inbound": []}))]
pub struct SyncStatus {
    /// Whether this replica is the one doing the sync work (always, with one process).
    pub leader: bool,
    pub sinks: Vec<SinkStatus>,
    /// Inbound calendars (meetings that block time): channel, last read, what failed.
    pub inbound: Vec<crate::sync::inbound::InboundStatus>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "7d9f1c2a-3b4e-4f5a-8b6c-7d8e9f0a1b2c", "sink": "ops", "appointment_id": "317d8c8d-6b2e-4a7c-9d1e-1f2a3b4c5d6e", "type": "upsert", "attempts": 8, "last_error": "HTTP 500", "webhook_id": "msg_3c1f2b7d9e10aa55bb66cc77"}))]
pub struct DeadLetterDto {
    pub id: String,
    pub sink: String,
    pub appointment_id: String,
    /// `upsert` (bring the event to a state) or `remove`.
    #[serde(rename = "type")]
    pub kind: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The Standard Webhooks message id, for webhook sinks.
    pub webhook_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"dead_letters": []}))]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetterDto>,
}

/// Calendar sync status per sink.
#[utoipa::path(
    operation_id = "sync_status",
    context_path = "/v1",
    tag = "admin",
    security(("bearer" = ["scheduling.admin"])),
    responses(
        (status = 200, description = "Per sink: last success, pending, failing and dead changes; per inbound calendar: its push channel, last read and last error", body = SyncStatus),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.admin", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/sync")]
pub async fn status(
    _: AdminAccess,
    state: web::Data<AppState>,
) -> Result<web::Json<SyncStatus>, ApiError> {
    let mut sinks = Vec::new();
    for sink in state.sync.sinks() {
        let stats = state
            .sync
            .store()
            .stats(sink.name().to_owned())
            .await
            .map_err(super::store_error)?;
        sinks.push(SinkStatus {
            name: sink.name().to_owned(),
            kind: sink.kind().to_owned(),
            last_success: stats.last_success.map(|t| t.to_string()),
            pending: stats.pending,
            failing: stats.failing,
            dead: stats.dead,
        });
    }
    Ok(web::Json(SyncStatus {
        leader: state.leading.load(std::sync::atomic::Ordering::SeqCst),
        sinks,
        inbound: state.inbound.status().await,
    }))
}

/// Changes that could not be delivered after `[sync] max_attempts` tries.
#[utoipa::path(
    operation_id = "list_dead_letters",
    context_path = "/v1",
    tag = "admin",
    security(("bearer" = ["scheduling.admin"])),
    responses(
        (status = 200, description = "The dead letters", body = DeadLetters),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.admin", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/sync/dead-letters")]
pub async fn dead_letters(
    _: AdminAccess,
    state: web::Data<AppState>,
) -> Result<web::Json<DeadLetters>, ApiError> {
    let letters = state
        .sync
        .store()
        .dead_letters()
        .await
        .map_err(super::store_error)?;
    let webhook_sinks: Vec<&str> = state
        .sync
        .sinks()
        .iter()
        .filter(|s| s.kind() == "webhook")
        .map(|s| s.name())
        .collect();
    Ok(web::Json(DeadLetters {
        dead_letters: letters
            .into_iter()
            .map(|l| DeadLetterDto {
                webhook_id: webhook_sinks
                    .contains(&l.job.sink.as_str())
                    .then(|| l.job.message_id.clone()),
                id: l.job.id,
                sink: l.job.sink,
                appointment_id: l.job.appointment_id,
                kind: if l.job.desired.is_some() {
                    "upsert".into()
                } else {
                    "remove".into()
                },
                attempts: l.job.attempts,
                last_error: l.job.last_error,
            })
            .collect(),
    }))
}

/// Queues a dead letter for delivery again.
#[utoipa::path(
    operation_id = "retry_dead_letter",
    context_path = "/v1",
    tag = "admin",
    params(("id" = String, Path, description = "A dead letter's id")),
    security(("bearer" = ["scheduling.admin"])),
    responses(
        (status = 202, description = "Queued again as the same message, unless the appointment changed since (then its current Canvas state goes instead)"),
        (status = 401, description = "No valid token", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks scheduling.admin", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/sync/dead-letters/{id}/retry")]
pub async fn retry(
    _: AdminAccess,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The letter goes again in two seconds, and the sync leader plans its appointment from
    // Canvas before that: a newer state replaces it, one the sink holds already drops it.
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(2))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let revived = state
        .sync
        .store()
        .revive(path.into_inner(), at)
        .await
        .map_err(super::store_error)?;
    let Some(appointment) = revived else {
        return Err(ApiError::not_found("There is no such dead letter."));
    };
    state.sync.enqueue(&[appointment]).await;
    Ok(HttpResponse::Accepted().finish())
}
