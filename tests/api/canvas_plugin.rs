//! The receiver side of the Canvas plugin (`integrations/canvas-plugin`): exactly what the plugin
//! sends is accepted, and the clinician's cached availability goes as soon as it arrives,
//! before anything is read from Canvas. (The plugin's own tests, and an end-to-end run of its
//! request against a running slotgate, are in `integrations/canvas-plugin`, run by `.ci/run`.)

use serde_json::{Value, json};
use slotgate::sandbox::Faults;

use crate::availability::OPEN_WINDOW;
use crate::booking::{SOFIA, a_slot, booking};
use crate::helpers::{TestApp, key, spawn_app_with};
use crate::seed::*;
use crate::sync::{CANVAS_SECRET, eventually, notify, signed};

async fn okafor_week(app: &TestApp, token: &str) -> Value {
    let (start, end) = (days(3).to_string(), days(9).to_string());
    let r = app
        .availability(
            token,
            &[
                ("reason", "FLUP"),
                ("duration", "30"),
                ("state", "CA"),
                ("modality", "telehealth"),
                ("practitioner", OKAFOR),
                ("start", &start),
                ("end", &end),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_plugins_notification_drops_the_clinicians_cached_slots_before_canvas_is_read() {
    let secret = format!("[sync]\ncanvas_webhook_secret = \"{CANVAS_SECRET}\"\n");
    let app = spawn_app_with(&[OPEN_WINDOW, &secret]).await;
    let sandbox = app.sandbox.clone().unwrap();
    let me = app.patient_token(SOFIA);
    let slot = a_slot(&app, &me, OKAFOR, 0).await;
    let r = app
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // slotgate has planned it (so it knows the clinician), and the week is cached.
    eventually("the booking is planned", || async {
        sandbox
            .journal()
            .iter()
            .any(|j| j.method == "GET" && j.path == format!("/Appointment/{id}"))
    })
    .await;
    assert_eq!(okafor_week(&app, &me).await["stale"], false);
    // Canvas goes away; then the plugin tells of a change to the appointment.
    sandbox.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let body = json!({"event_type": "appointment_updated", "appointment": {"id": id}}).to_string();
    let now = jiff::Timestamp::now().as_second();
    let r = notify(
        &app,
        &body,
        &signed(CANVAS_SECRET, &body, "msg_plugin_1", now),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["accepted"], id.as_str());
    // The cached week is gone at once: with Canvas down, the answer is the last good one,
    // marked stale, rather than the cached answer from before the change.
    let after = okafor_week(&app, &me).await;
    assert_eq!(after["stale"], true, "{after}");
    sandbox.set_faults(Faults::default());
}
