//! The rest of the contract's "Guarantees that do not depend on Canvas being fast": a
//! reschedule that ends with exactly one appointment active on its own, the old appointment not
//! counted against the patient's limit, Other Events as staff business, holds per patient.

use std::time::Duration;

use serde_json::{Value, json};
use slotgate::canvas::fhir::AppointmentStatus;
use slotgate::sandbox::Faults;

use crate::availability::OPEN_WINDOW;
use crate::booking::{ELIJAH, SOFIA, a_slot, booking};
use crate::helpers::{TestApp, assert_problem, key, spawn_app_with};
use crate::seed::*;
use crate::slow_canvas::{Clinic, SLOW};
use crate::sync::eventually;

fn status_of(c: &Clinic, id: &str) -> Option<AppointmentStatus> {
    c.sandbox
        .control()
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id))
        .map(|a| a.status)
}

async fn book(app: &TestApp, token: &str, patient: &str, nth: usize) -> Value {
    let slot = a_slot(app, token, OKAFOR, nth).await;
    let r = app
        .post_json(
            "/v1/appointments",
            token,
            &booking(&slot, patient),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn a_reschedule_canvas_did_not_confirm_finishes_on_its_own(shared: bool) {
    let c = Clinic::start(shared, SLOW).await;
    let me = c.a().patient_token(SOFIA);
    let old = book(c.a(), &me, SOFIA, 0).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let target = a_slot(c.a(), &me, OKAFOR, 4).await;
    // The new appointment's create times out and Canvas commits it 3 s later.
    c.sandbox.control().set_faults(Faults {
        commit_late_ms: 3_000,
        ..Faults::default()
    });
    let body = json!({"slot_id": target["slot_id"], "patient_state": "CA"});
    let r = c
        .a()
        .post_json(
            &format!("/v1/appointments/{old_id}/reschedule"),
            &me,
            &body,
            Some(&key()),
        )
        .await;
    assert_problem(r, 504, "upstream_timeout").await;
    assert_eq!(status_of(&c, &old_id), Some(AppointmentStatus::Booked));
    // Nobody retries: once Canvas shows the new one, slotgate cancels the old one.
    eventually("the old appointment is cancelled", || async {
        status_of(&c, &old_id) == Some(AppointmentStatus::Cancelled)
    })
    .await;
    let active: Vec<_> = c
        .sandbox
        .control()
        .appointments()
        .into_iter()
        .filter(|a| a.participant_id("Patient") == Some(SOFIA) && a.status.blocks_time())
        .collect();
    assert_eq!(active.len(), 1, "exactly one of the two is active");
    assert!(
        active[0]
            .supporting_information
            .iter()
            .any(|r| { r.reference.as_deref() == Some(&format!("Appointment/{old_id}")) })
    );
}

#[tokio::test]
async fn an_unconfirmed_reschedule_ends_with_one_active_appointment_in_one_process() {
    a_reschedule_canvas_did_not_confirm_finishes_on_its_own(false).await;
}

#[tokio::test]
async fn an_unconfirmed_reschedule_ends_with_one_active_appointment_across_replicas() {
    a_reschedule_canvas_did_not_confirm_finishes_on_its_own(true).await;
}

#[tokio::test]
async fn a_reschedule_canvas_refused_leaves_the_old_appointment_alone_for_good() {
    let c = Clinic::start(false, SLOW).await;
    let me = c.a().patient_token(SOFIA);
    let old = book(c.a(), &me, SOFIA, 0).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let target = a_slot(c.a(), &me, OKAFOR, 4).await;
    // Someone else books the target first: the move is recorded, then refused for certain.
    let elijah = c.a().patient_token(ELIJAH);
    let taken = c
        .a()
        .post_json(
            "/v1/appointments",
            &elijah,
            &booking(&target, ELIJAH),
            Some(&key()),
        )
        .await;
    assert_eq!(taken.status(), 201);
    let creates = crate::replicas::creates(&c.sandbox);
    let body = json!({"slot_id": target["slot_id"], "patient_state": "CA"});
    let r = c
        .a()
        .post_json(
            &format!("/v1/appointments/{old_id}/reschedule"),
            &me,
            &body,
            Some(&key()),
        )
        .await;
    assert_problem(r, 409, "slot_unavailable").await;
    // Several recovery passes later the old one still stands and nothing more was created.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(status_of(&c, &old_id), Some(AppointmentStatus::Booked));
    assert_eq!(crate::replicas::creates(&c.sandbox), creates);
}

#[tokio::test]
async fn a_patient_at_the_booking_limit_may_still_reschedule() {
    let app = spawn_app_with(&[OPEN_WINDOW, "[booking]\nmax_active_per_patient = 1\n"]).await;
    let me = app.patient_token(SOFIA);
    let old = book(&app, &me, SOFIA, 0).await;
    let another = a_slot(&app, &me, OKAFOR, 2).await;
    let refused = app
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&another, SOFIA),
            Some(&key()),
        )
        .await;
    assert_problem(refused, 422, "booking_limit_reached").await;
    let moved = app
        .post_json(
            &format!(
                "/v1/appointments/{}/reschedule",
                old["id"].as_str().unwrap()
            ),
            &me,
            &json!({"slot_id": another["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_eq!(
        moved.status(),
        201,
        "the appointment being replaced does not count"
    );
}

#[tokio::test]
async fn a_patient_can_neither_cancel_nor_reschedule_an_other_event_that_names_them() {
    let app = spawn_app_with(&[OPEN_WINDOW]).await;
    let staff = app.staff_token();
    let start = format!("{}T20:00:00Z", days(5));
    let end = format!("{}T21:00:00Z", days(5));
    let event = json!({"practitioner_ids": [OKAFOR], "start": start, "end": end,
        "title": "Care conference", "patient_id": SOFIA});
    let r = app
        .post_json("/v1/events", &staff, &event, Some(&key()))
        .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let id = made["events"][0]["id"].as_str().unwrap().to_owned();
    let me = app.patient_token(SOFIA);
    let cancel = app
        .post_json(
            &format!("/v1/appointments/{id}/cancel"),
            &me,
            &json!({}),
            Some(&key()),
        )
        .await;
    assert_problem(cancel, 404, "not_found").await;
    let target = a_slot(&app, &me, OKAFOR, 1).await;
    let move_it = app
        .post_json(
            &format!("/v1/appointments/{id}/reschedule"),
            &me,
            &json!({"slot_id": target["slot_id"], "patient_state": "CA"}),
            Some(&key()),
        )
        .await;
    assert_problem(move_it, 404, "not_found").await;
    let kept = app
        .sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == Some(id.as_str()))
        .unwrap();
    assert_eq!(kept.status, AppointmentStatus::Booked, "untouched");
    // Staff still may.
    let cancel = app
        .post_json(
            &format!("/v1/appointments/{id}/cancel"),
            &staff,
            &json!({}),
            Some(&key()),
        )
        .await;
    assert_eq!(cancel.status(), 200);
}

#[tokio::test]
async fn a_patient_holds_at_most_two_slots_at_once_staff_holds_for_them_included() {
    let app = spawn_app_with(&[OPEN_WINDOW]).await;
    let me = app.patient_token(SOFIA);
    let staff = app.staff_token();
    let app = &app;
    let hold = |slot: &Value, token: &str, patient: Option<&str>| {
        let mut body = json!({"slot_id": slot["slot_id"]});
        if let Some(p) = patient {
            body["patient_id"] = json!(p);
        }
        let token = token.to_owned();
        async move { app.post_json("/v1/holds", &token, &body, None).await }
    };
    let slots: Vec<Value> =
        futures::future::join_all((0..4).map(|n| a_slot(app, &me, OKAFOR, n))).await;
    let first = hold(&slots[0], &me, None).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(hold(&slots[1], &staff, Some(SOFIA)).await.status(), 201);
    let third = hold(&slots[2], &me, None).await;
    let problem = assert_problem(third, 422, "hold_limit_reached").await;
    assert!(
        problem["detail"].as_str().unwrap().contains('2'),
        "{problem}"
    );
    // Released, the allowance comes back.
    let released = app
        .delete(
            &format!("/v1/holds/{}", first["hold_id"].as_str().unwrap()),
            &me,
        )
        .await;
    assert_eq!(released.status(), 204);
    assert_eq!(hold(&slots[2], &me, None).await.status(), 201);
    // Staff's own holds without a patient count for the staff token, not for Sofia.
    assert_eq!(hold(&slots[3], &staff, None).await.status(), 201);
}

#[tokio::test]
async fn a_failed_cancel_half_is_finished_by_the_other_replica_or_this_one() {
    let c = Clinic::start(true, SLOW).await;
    let me = c.a().patient_token(SOFIA);
    let old = book(c.a(), &me, SOFIA, 0).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let target = a_slot(c.a(), &me, OKAFOR, 3).await;
    c.sandbox.control().set_faults(Faults {
        fail_next_puts: 1,
        ..Faults::default()
    });
    let body = json!({"slot_id": target["slot_id"], "patient_state": "CA"});
    let r = c
        .a()
        .post_json(
            &format!("/v1/appointments/{old_id}/reschedule"),
            &me,
            &body,
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201);
    let new_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("the old appointment is cancelled", || async {
        status_of(&c, &old_id) == Some(AppointmentStatus::Cancelled)
    })
    .await;
    assert_eq!(status_of(&c, &new_id), Some(AppointmentStatus::Booked));
}

async fn a_reschedule_retried_while_unconfirmed_waits_then_finishes(shared: bool) {
    let c = Clinic::start(shared, SLOW).await;
    let me = c.a().patient_token(SOFIA);
    let old = book(c.a(), &me, SOFIA, 0).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    let target = a_slot(c.a(), &me, OKAFOR, 5).await;
    let creates = crate::replicas::creates(&c.sandbox);
    c.sandbox.control().set_faults(Faults {
        commit_late_ms: 3_000,
        ..Faults::default()
    });
    let (path, k) = (format!("/v1/appointments/{old_id}/reschedule"), key());
    let body = json!({"slot_id": target["slot_id"], "patient_state": "CA"});
    let first = c.a().post_json(&path, &me, &body, Some(&k)).await;
    assert_problem(first, 504, "upstream_timeout").await;
    c.sandbox.control().set_faults(Faults::default());
    // The retry waits for Canvas rather than booking again or giving up on the move.
    let retry = c.b().post_json(&path, &me, &body, Some(&k)).await;
    assert_problem(retry, 504, "upstream_timeout").await;
    assert_eq!(status_of(&c, &old_id), Some(AppointmentStatus::Booked));
    let mut done = None;
    for _ in 0..60 {
        let r = c.b().post_json(&path, &me, &body, Some(&k)).await;
        if r.status() == 201 {
            done = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = done.expect("the key's answer is the new appointment once Canvas shows it");
    let new_id = new["id"].as_str().unwrap();
    eventually("the old appointment is cancelled", || async {
        status_of(&c, &old_id) == Some(AppointmentStatus::Cancelled)
    })
    .await;
    assert_eq!(status_of(&c, new_id), Some(AppointmentStatus::Booked));
    assert_eq!(
        crate::replicas::creates(&c.sandbox),
        creates + 1,
        "one create"
    );
}

#[tokio::test]
async fn a_reschedule_retried_while_unconfirmed_waits_then_finishes_in_one_process() {
    a_reschedule_retried_while_unconfirmed_waits_then_finishes(false).await;
}

#[tokio::test]
async fn a_reschedule_retried_while_unconfirmed_waits_then_finishes_across_replicas() {
    a_reschedule_retried_while_unconfirmed_waits_then_finishes(true).await;
}
