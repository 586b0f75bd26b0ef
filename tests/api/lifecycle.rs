//! Reading, rescheduling and cancelling, including the halves that fail.

use serde_json::{Value, json};
use slotgate::canvas::fhir::AppointmentStatus;
use slotgate::sandbox::Faults;

use crate::availability::{OPEN_WINDOW, open_app};
use crate::booking::{ELIJAH, SOFIA, a_slot, booking};
use crate::helpers::{TestApp, assert_problem, key, spawn_app_with};
use crate::seed::*;

async fn book(app: &TestApp, patient: &str, practitioner: &str, nth: usize) -> Value {
    let token = app.patient_token(patient);
    let slot = a_slot(app, &token, practitioner, nth).await;
    let r = app
        .post_json(
            "/v1/appointments",
            &token,
            &booking(&slot, patient),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn status_in_canvas(app: &TestApp, id: &str) -> AppointmentStatus {
    app.sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id))
        .unwrap()
        .status
}

#[tokio::test]
async fn another_patients_appointment_does_not_exist_for_them() {
    let app = open_app().await;
    let made = book(&app, SOFIA, OKAFOR, 0).await;
    let path = format!("/v1/appointments/{}", made["id"].as_str().unwrap());
    let elijah = app.patient_token(ELIJAH);
    assert_problem(app.get(&path, Some(&elijah)).await, 404, "not_found").await;
    assert_problem(
        app.post_json(&format!("{path}/cancel"), &elijah, &json!({}), Some(&key()))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(
            &format!("/v1/appointments?patient_id={SOFIA}"),
            Some(&elijah),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(app.get(&path, Some(&app.staff_token())).await.status(), 200);
    assert_problem(
        app.get("/v1/appointments/not-an-id", Some(&elijah)).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        status_in_canvas(&app, made["id"].as_str().unwrap()),
        AppointmentStatus::Booked
    );
}

#[tokio::test]
async fn cancelling_frees_the_slot_keeps_canvas_identifiers_and_is_harmless_twice() {
    let app = open_app().await;
    let made = book(&app, SOFIA, OKAFOR, 1).await;
    let id = made["id"].as_str().unwrap();
    let me = app.patient_token(SOFIA);
    let path = format!("/v1/appointments/{id}/cancel");
    let r = app
        .post_json(
            &path,
            &me,
            &json!({"reason": "feeling better"}),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(status_in_canvas(&app, id), AppointmentStatus::Cancelled);
    let stored = app
        .sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id))
        .unwrap();
    assert_eq!(
        stored.identifier[0].system.as_deref(),
        Some("urn:slotgate:booking"),
        "identifiers survive the PUT"
    );
    let puts = || {
        app.sandbox
            .as_ref()
            .unwrap()
            .journal()
            .iter()
            .filter(|j| j.method == "PUT")
            .count()
    };
    assert_eq!(puts(), 1);
    let again = app.post_json(&path, &me, &json!({}), Some(&key())).await;
    assert_eq!(again.status(), 200);
    assert_eq!(puts(), 1, "cancelling twice changes nothing");
    // The time is bookable again.
    let slot = a_slot(&app, &app.patient_token(ELIJAH), OKAFOR, 1).await;
    assert_eq!(
        slot["start"]
            .as_str()
            .map(|s| s.parse::<jiff::Timestamp>().unwrap()),
        made["start"]
            .as_str()
            .map(|s| s.parse::<jiff::Timestamp>().unwrap())
    );
    assert_problem(
        app.post_json(&path, &me, &json!({}), None).await,
        400,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn patients_cancel_only_before_the_cutoff_and_staff_any_time() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        "[booking]\npatient_cancel_cutoff_hours = 200\n",
    ])
    .await;
    let made = book(&app, SOFIA, OKAFOR, 0).await;
    let path = format!("/v1/appointments/{}/cancel", made["id"].as_str().unwrap());
    assert_problem(
        app.post_json(&path, &app.patient_token(SOFIA), &json!({}), Some(&key()))
            .await,
        422,
        "cancellation_window_passed",
    )
    .await;
    assert_eq!(
        status_in_canvas(&app, made["id"].as_str().unwrap()),
        AppointmentStatus::Booked
    );
    assert_eq!(
        app.post_json(&path, &app.staff_token(), &json!({}), Some(&key()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn rescheduling_books_the_new_slot_then_cancels_the_old() {
    let app = open_app().await;
    let old = book(&app, SOFIA, OKAFOR, 0).await;
    let old_id = old["id"].as_str().unwrap();
    let me = app.patient_token(SOFIA);
    let target = a_slot(&app, &me, OKAFOR, 3).await;
    let r = app
        .post_json(
            &format!("/v1/appointments/{old_id}/reschedule"),
            &me,
            &json!({"slot_id": target["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let new: Value = r.json().await.unwrap();
    assert_ne!(new["id"], old["id"]);
    assert_eq!(new["reason"]["code"], "FLUP");
    assert_eq!(status_in_canvas(&app, old_id), AppointmentStatus::Cancelled);
    let stored = app.sandbox.as_ref().unwrap().appointments();
    let new_in_canvas = stored
        .iter()
        .find(|a| a.id.as_deref() == new["id"].as_str())
        .unwrap();
    assert!(
        new_in_canvas
            .supporting_information
            .iter()
            .any(
                |r| r.reference.as_deref() == Some(&format!("Appointment/{old_id}"))
                    && r.display.as_deref() == Some("Previously Rescheduled Appointment")
            )
    );
    // Moved again: the middle appointment, now cancelled, keeps the link to the one it
    // replaced and gains the link to its own replacement (Canvas merges the PUT field by
    // field, so the cancellation sends every reference back).
    let new_id = new["id"].as_str().unwrap().to_owned();
    let third = a_slot(&app, &me, OKAFOR, 5).await;
    let r = app
        .post_json(
            &format!("/v1/appointments/{new_id}/reschedule"),
            &me,
            &json!({"slot_id": third["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let last: Value = r.json().await.unwrap();
    let middle = app
        .sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(new_id.as_str()))
        .unwrap();
    assert_eq!(middle.status, AppointmentStatus::Cancelled);
    let links: Vec<(Option<&str>, Option<&str>)> = middle
        .supporting_information
        .iter()
        .map(|r| (r.reference.as_deref(), r.display.as_deref()))
        .collect();
    let last_ref = format!("Appointment/{}", last["id"].as_str().unwrap());
    let old_ref = format!("Appointment/{old_id}");
    assert!(
        links.contains(&(
            Some(old_ref.as_str()),
            Some("Previously Rescheduled Appointment")
        )),
        "{links:?}"
    );
    assert!(
        links.contains(&(
            Some(last_ref.as_str()),
            Some("Rescheduled Replacement Appointment")
        )),
        "{links:?}"
    );
    assert!(
        links
            .iter()
            .any(|(r, _)| r.is_some_and(|r| r.starts_with("Location/"))),
        "{links:?}"
    );
}

#[tokio::test]
async fn a_failed_new_booking_leaves_the_old_appointment_untouched() {
    let app = open_app().await;
    let old = book(&app, SOFIA, OKAFOR, 0).await;
    let me = app.patient_token(SOFIA);
    let r = app
        .post_json(
            &format!(
                "/v1/appointments/{}/reschedule",
                old["id"].as_str().unwrap()
            ),
            &me,
            &json!({"slot_id": "s1.tampered.AAAA", "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_problem(r, 400, "validation_failed").await;
    // The new slot is someone else's hold: the booking half fails with slot_held.
    let target = a_slot(&app, &me, OKAFOR, 4).await;
    let held = app
        .post_json(
            "/v1/holds",
            &app.patient_token(ELIJAH),
            &json!({"slot_id": target["slot_id"]}),
            None,
        )
        .await;
    assert_eq!(held.status(), 201);
    let r = app
        .post_json(
            &format!(
                "/v1/appointments/{}/reschedule",
                old["id"].as_str().unwrap()
            ),
            &me,
            &json!({"slot_id": target["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_problem(r, 409, "slot_held").await;
    assert_eq!(
        status_in_canvas(&app, old["id"].as_str().unwrap()),
        AppointmentStatus::Booked,
        "the old appointment is untouched"
    );
}

#[tokio::test]
async fn a_failed_cancellation_half_is_finished_by_slotgate_on_its_own() {
    let app = spawn_app_with(&[OPEN_WINDOW, "[state]\nrecovery_interval_ms = 100\n"]).await;
    let old = book(&app, SOFIA, OKAFOR, 0).await;
    let old_id = old["id"].as_str().unwrap();
    let me = app.patient_token(SOFIA);
    let target = a_slot(&app, &me, OKAFOR, 3).await;
    let sandbox = app.sandbox.clone().unwrap();
    sandbox.set_faults(Faults {
        fail_next_puts: 1,
        ..Faults::default()
    });
    let k = key();
    let body = json!({"slot_id": target["slot_id"], "patient_state": "CA"});
    let path = format!("/v1/appointments/{old_id}/reschedule");
    let first = app.post_json(&path, &me, &body, Some(&k)).await;
    assert_eq!(first.status(), 201, "the new appointment is booked");
    let new_id = first.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let creates_after_first = app.creates().len();
    // Nobody retries: slotgate cancels the old one itself, pointing at its replacement.
    crate::sync::eventually("the old appointment cancelled", || async {
        status_in_canvas(&app, old_id) == AppointmentStatus::Cancelled
    })
    .await;
    let old_now = sandbox
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(old_id))
        .unwrap();
    assert!(
        old_now.supporting_information.iter().any(|r| {
            r.reference.as_deref() == Some(&format!("Appointment/{new_id}"))
                && r.display.as_deref() == Some("Rescheduled Replacement Appointment")
        }),
        "{:?}",
        old_now.supporting_information
    );
    assert_eq!(status_in_canvas(&app, &new_id), AppointmentStatus::Booked);
    // A retry with the same key replays the answer and books nothing again.
    let retry = app.post_json(&path, &me, &body, Some(&k)).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], new_id.as_str());
    assert_eq!(
        app.creates().len(),
        creates_after_first,
        "the retry booked nothing again"
    );
}

#[tokio::test]
async fn a_cancelled_appointment_cannot_be_rescheduled() {
    let app = open_app().await;
    let old = book(&app, SOFIA, OKAFOR, 0).await;
    let old_id = old["id"].as_str().unwrap();
    let me = app.patient_token(SOFIA);
    assert_eq!(
        app.post_json(
            &format!("/v1/appointments/{old_id}/cancel"),
            &me,
            &json!({}),
            Some(&key())
        )
        .await
        .status(),
        200
    );
    let target = a_slot(&app, &me, OKAFOR, 3).await;
    let r = app
        .post_json(
            &format!("/v1/appointments/{old_id}/reschedule"),
            &me,
            &json!({"slot_id": target["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_problem(r, 409, "appointment_not_active").await;
}

#[tokio::test]
async fn two_concurrent_reschedules_move_the_appointment_once() {
    let app = open_app().await;
    let old = book(&app, SOFIA, OKAFOR, 0).await;
    let old_id = old["id"].as_str().unwrap();
    let me = app.patient_token(SOFIA);
    let (a, b) = (
        a_slot(&app, &me, OKAFOR, 3).await,
        a_slot(&app, &me, OKAFOR, 5).await,
    );
    app.sandbox.as_ref().unwrap().set_faults(Faults {
        latency_ms: 50,
        ..Faults::default()
    });
    let path = format!("/v1/appointments/{old_id}/reschedule");
    let (body_a, body_b) = (
        json!({"slot_id": a["slot_id"], "patient_state": "CA"}),
        json!({"slot_id": b["slot_id"], "patient_state": "CA"}),
    );
    let (key_a, key_b) = (key(), key());
    let (ra, rb) = tokio::join!(
        app.post_json(&path, &me, &body_a, Some(&key_a)),
        app.post_json(&path, &me, &body_b, Some(&key_b))
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409],
        "one moves it, the other finds it moved"
    );
    let active = app
        .sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .filter(|x| {
            x.participant_id("Patient") == Some(SOFIA) && x.status == AppointmentStatus::Booked
        })
        .count();
    assert_eq!(active, 1, "the patient has exactly one booked appointment");
}

#[tokio::test]
async fn a_cancel_canvas_refuses_changes_nothing_and_the_same_key_finishes_it() {
    let app = open_app().await;
    let made = book(&app, SOFIA, OKAFOR, 2).await;
    let id = made["id"].as_str().unwrap().to_owned();
    let me = app.patient_token(SOFIA);
    let sandbox = app.sandbox.clone().unwrap();
    sandbox.set_faults(Faults {
        fail_next_puts: 1,
        ..Faults::default()
    });
    let k = key();
    let path = format!("/v1/appointments/{id}/cancel");
    let r = app.post_json(&path, &me, &json!({}), Some(&k)).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    assert_eq!(
        status_in_canvas(&app, &id),
        AppointmentStatus::Booked,
        "still booked: nothing half-done"
    );
    // Still the patient's: not offered to anyone else.
    let other = a_slot(&app, &app.patient_token(ELIJAH), OKAFOR, 2).await;
    assert_ne!(other["start"], made["start"]);
    // Canvas is back; the same key cancels it.
    let r = app.post_json(&path, &me, &json!({}), Some(&k)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(status_in_canvas(&app, &id), AppointmentStatus::Cancelled);
}
