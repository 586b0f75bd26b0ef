//! `POST /v1/appointments`: the checks in the contract's order, exactly-once under concurrency,
//! replays and interrupted creates, and the FHIR body Canvas receives.

use serde_json::{Value, json};
use slotgate::sandbox::Faults;

use crate::availability::{OPEN_WINDOW, open_app};
use crate::helpers::{TestApp, assert_problem, key, spawn_app_with};
use crate::seed::*;

pub const SOFIA: &str = "97491556534444838b94dbb0909b6b3d"; // CA, nothing booked
pub const ELIJAH: &str = "626385e7825a47bc947517782cc056ef"; // CA, nothing booked
pub const GRACE: &str = "6e7358325b9341e197348c0d9d74e512"; // CA, nothing booked
pub const OLIVIA: &str = "6052e4cce53549a5864604d1cf81e0fc"; // CA, one booking seeded

/// Slots offered to a caller, as JSON.
pub async fn slots_for(app: &TestApp, token: &str, params: &[(&str, &str)]) -> Vec<Value> {
    let r = app.availability(token, params).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["slots"]
        .as_array()
        .unwrap()
        .clone()
}

/// Every 30-minute follow-up a CA patient is offered with one clinician in one modality, three
/// to nine days out.
pub async fn week_of(app: &TestApp, token: &str, practitioner: &str, modality: &str) -> Vec<Value> {
    let (start, end) = (days(3).to_string(), days(9).to_string());
    slots_for(
        app,
        token,
        &[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", modality),
            ("practitioner", practitioner),
            ("start", &start),
            ("end", &end),
        ],
    )
    .await
}

/// A CA telehealth follow-up with one clinician, a few days out.
pub async fn a_slot(app: &TestApp, token: &str, practitioner: &str, nth: usize) -> Value {
    let slots = week_of(app, token, practitioner, "telehealth").await;
    slots
        .get(nth)
        .cloned()
        .unwrap_or_else(|| panic!("{practitioner} has {} slots", slots.len()))
}

pub fn booking(slot: &Value, patient: &str) -> Value {
    json!({"slot_id": slot["slot_id"], "reason_code": "FLUP", "patient_id": patient, "patient_state": "CA"})
}

#[tokio::test]
async fn a_patient_books_sees_and_lists_the_appointment() {
    let app = open_app().await;
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
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let made: Value = r.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/appointments/{}", made["id"].as_str().unwrap())
    );
    assert_eq!(made["status"], "booked");
    let instant = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert_eq!(instant(&made["start"]), instant(&slot["start"]));
    assert_eq!(instant(&made["end"]), instant(&slot["end"]));
    assert!(
        made["start"].as_str().unwrap().ends_with("-08:00")
            || made["start"].as_str().unwrap().ends_with("-07:00"),
        "in Oakland's zone"
    );
    assert_eq!(
        made["reason"],
        json!({"code": "FLUP", "display": "Follow-up Visit"})
    );
    assert_eq!(made["modality"], "telehealth");
    assert_eq!(made["practitioner"], slot["practitioner"]);
    assert_eq!(made["location"], slot["location"]);
    assert_eq!(made["patient_id"], SOFIA);
    let read: Value = app.get(&location, Some(&me)).await.json().await.unwrap();
    assert_eq!(read["id"], made["id"]);
    assert_eq!(read["status"], "booked");
    let listed: Value = app
        .get("/v1/appointments", Some(&me))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == made["id"])
    );
    // Gone from everyone's availability at once.
    let again = week_of(&app, &app.patient_token(ELIJAH), OKAFOR, "telehealth").await;
    assert!(again.iter().all(|s| s["start"] != slot["start"]));
}

#[tokio::test]
async fn canvas_receives_the_documented_appointment_body() {
    let app = spawn_app_with(&[OPEN_WINDOW, "[[practitioners]]\nid = \"c48de0f40beb4fee86f872da7a840cf9\"\nspecialties = [\"primary_care\"]\nmodalities = [\"telehealth\", \"in_person\"]\nlanguages = [\"en\", \"es\"]\ntelehealth_url = \"https://meet.example.org/okafor\"\n"]).await;
    let me = app.patient_token(SOFIA);
    let slot = a_slot(&app, &me, OKAFOR, 1).await;
    let mut body = booking(&slot, SOFIA);
    body["comment"] = json!("Rash since Tuesday");
    let made: Value = app
        .post_json("/v1/appointments", &me, &body, Some(&key()))
        .await
        .json()
        .await
        .unwrap();
    let creates = app.creates();
    assert_eq!(creates.len(), 1);
    let sent = &creates[0];
    let identifier = sent["identifier"][0]["value"].as_str().unwrap();
    assert_eq!(identifier.len(), 32);
    let start: jiff::Timestamp = slot["start"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = slot["end"].as_str().unwrap().parse().unwrap();
    let utc = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    assert_eq!(
        sent,
        &json!({
            "resourceType": "Appointment",
            "contained": [{"resourceType": "Endpoint", "id": "appointment-meeting-endpoint", "status": "active",
                           "connectionType": {}, "payloadType": [{"coding": []}], "address": "https://meet.example.org/okafor"}],
            "identifier": [{"use": "usual", "system": "urn:slotgate:booking", "value": identifier}],
            "status": "booked",
            "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "448337001"}]},
            "reasonCode": [{"coding": [{"system": "INTERNAL", "code": "FLUP", "display": "Follow-up Visit"}], "text": "Rash since Tuesday"}],
            "supportingInformation": [{"reference": format!("Location/{OAKLAND}")}, {"reference": "#appointment-meeting-endpoint", "type": "Endpoint"}],
            "start": utc(start),
            "end": utc(end),
            "participant": [
                {"actor": {"reference": format!("Patient/{SOFIA}")}, "status": "accepted"},
                {"actor": {"reference": format!("Practitioner/{OKAFOR}")}, "status": "accepted"}
            ]
        })
    );
    // Canvas kept it as sent.
    let stored = app
        .sandbox
        .as_ref()
        .unwrap()
        .appointments()
        .into_iter()
        .find(|a| a.id.as_deref() == made["id"].as_str())
        .unwrap();
    assert_eq!(
        stored.meeting_link(),
        Some("https://meet.example.org/okafor")
    );
    // In person: the same clinician, but no visit link and the in-person type.
    let in_person = week_of(&app, &me, OKAFOR, "in_person")
        .await
        .into_iter()
        .find(|s| s["start"] != slot["start"])
        .expect("an in-person slot");
    let r = app
        .post_json(
            "/v1/appointments",
            &me,
            &booking(&in_person, SOFIA),
            Some(&key()),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let creates = app.creates();
    let sent = creates.last().unwrap();
    assert!(sent.get("contained").is_none(), "{sent}");
    assert_eq!(
        sent["supportingInformation"].as_array().unwrap().len(),
        1,
        "{sent}"
    );
    assert!(
        sent["supportingInformation"][0]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Location/")
    );
    assert_ne!(sent["appointmentType"], creates[0]["appointmentType"]);
}

#[tokio::test]
async fn every_check_fails_on_its_own_in_the_contracts_order() {
    let app = spawn_app_with(&["[booking]\nmin_notice_minutes = 1440\nmax_horizon_days = 400\nmax_range_days = 31\nmax_active_per_patient = 1\n"]).await;
    let sofia = app.patient_token(SOFIA);
    let staff = app.staff_token();
    let slot = a_slot(&app, &sofia, OKAFOR, 2).await;
    let post = |token: String, body: Value| {
        let app = &app;
        async move {
            app.post_json("/v1/appointments", &token, &body, Some(&key()))
                .await
        }
    };
    // 400: the body and the key.
    let r = app
        .post_json("/v1/appointments", &sofia, &booking(&slot, SOFIA), None)
        .await;
    assert_eq!(
        assert_problem(r, 400, "validation_failed").await["errors"][0]["field"],
        "Idempotency-Key"
    );
    // Another start time, same signature.
    let id = slot["slot_id"].as_str().unwrap();
    let (payload, signature) = id.strip_prefix("s1.").unwrap().split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claim: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    claim["s"] = json!(claim["s"].as_i64().unwrap() + 1800);
    let mut tampered = booking(&slot, SOFIA);
    tampered["slot_id"] = json!(format!(
        "s1.{}.{signature}",
        b64.encode(serde_json::to_vec(&claim).unwrap())
    ));
    assert_eq!(
        assert_problem(
            post(sofia.clone(), tampered).await,
            400,
            "validation_failed"
        )
        .await["errors"][0]["field"],
        "slot_id"
    );
    let mut bad = booking(&slot, SOFIA);
    bad["patient_state"] = json!("ZZ");
    bad.as_object_mut().unwrap().remove("reason_code");
    let body = assert_problem(post(sofia.clone(), bad).await, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "reason_code");
    // 403: not her patient.
    assert_problem(
        post(sofia.clone(), booking(&slot, ELIJAH)).await,
        403,
        "forbidden",
    )
    .await;
    // 422s, each alone.
    let mut r = booking(&slot, SOFIA);
    r["reason_code"] = json!("MEDR");
    assert_problem(post(sofia.clone(), r).await, 422, "reason_not_allowed").await;
    let mut r = booking(&slot, SOFIA);
    r["reason_code"] = json!("INIV");
    let fifteen = slots_for(
        &app,
        &staff,
        &[
            ("reason", "FLUP"),
            ("duration", "15"),
            ("state", "CA"),
            ("practitioner", OKAFOR),
            ("start", &days(3).to_string()),
            ("end", &days(9).to_string()),
        ],
    )
    .await;
    r["slot_id"] = fifteen[0]["slot_id"].clone();
    assert_problem(post(sofia.clone(), r).await, 422, "duration_not_allowed").await;
    let lindqvist = slots_for(
        &app,
        &staff,
        &[
            ("reason", "FLUP"),
            ("duration", "20"),
            ("state", "NY"),
            ("modality", "telehealth"),
            ("practitioner", LINDQVIST),
            ("start", &days(3).to_string()),
            ("end", &days(9).to_string()),
        ],
    )
    .await;
    let derm = json!({"slot_id": lindqvist[0]["slot_id"], "reason_code": "DERM", "patient_id": SOFIA, "patient_state": "NY"});
    assert_problem(post(sofia.clone(), derm).await, 422, "modality_not_allowed").await;
    let mut ny = booking(&slot, SOFIA);
    ny["patient_state"] = json!("NY");
    assert_problem(
        post(sofia.clone(), ny).await,
        422,
        "practitioner_not_licensed",
    )
    .await;
    let soon = slots_for(
        &app,
        &staff,
        &[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", "telehealth"),
            ("start", &days(0).to_string()),
            ("end", &days(1).to_string()),
        ],
    )
    .await;
    let inside_notice = soon
        .iter()
        .find(|s| {
            s["start"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                < jiff::Timestamp::now() + jiff::SignedDuration::from_hours(23)
        })
        .unwrap();
    assert_problem(
        post(sofia.clone(), booking(inside_notice, SOFIA)).await,
        422,
        "outside_booking_window",
    )
    .await;
    // Olivia already has an upcoming appointment and the limit is one; staff are exempt.
    let olivia = app.patient_token(OLIVIA);
    assert_problem(
        post(olivia, booking(&slot, OLIVIA)).await,
        422,
        "booking_limit_reached",
    )
    .await;
    assert_problem(
        post(
            staff.clone(),
            booking(&slot, "00000000000000000000000000000000"),
        )
        .await,
        404,
        "patient_not_found",
    )
    .await;
    // 409 slot_held: another caller holds it.
    let held = app
        .post_json(
            "/v1/holds",
            &app.patient_token(GRACE),
            &json!({"slot_id": slot["slot_id"]}),
            None,
        )
        .await;
    assert_eq!(held.status(), 201);
    assert_problem(
        post(sofia.clone(), booking(&slot, SOFIA)).await,
        409,
        "slot_held",
    )
    .await;
    // 409 slot_unavailable: the holder books it, then nobody else can.
    let hold: Value = held.json().await.unwrap();
    let mut mine = booking(&slot, GRACE);
    mine["hold_id"] = hold["hold_id"].clone();
    assert_eq!(post(app.patient_token(GRACE), mine).await.status(), 201);
    assert_problem(
        post(staff, booking(&slot, ELIJAH)).await,
        409,
        "slot_unavailable",
    )
    .await;
    assert_eq!(app.creates().len(), 1, "no refused request reached Canvas");
}

#[tokio::test]
async fn twenty_five_concurrent_bookings_of_one_slot_make_one_appointment() {
    let app = open_app().await;
    let staff = app.staff_token();
    let slot = a_slot(&app, &staff, REYES, 0).await;
    app.sandbox.as_ref().unwrap().set_faults(Faults {
        latency_ms: 20,
        ..Faults::default()
    });
    let patients = [
        "97491556534444838b94dbb0909b6b3d",
        "626385e7825a47bc947517782cc056ef",
        "6e7358325b9341e197348c0d9d74e512",
        "dd29985f53784d5eb45ee0a157c5f866",
    ];
    let requests = (0..25).map(|i| {
        let body = booking(&slot, patients[i % patients.len()]);
        let (app, staff) = (&app, staff.clone());
        async move {
            app.post_json("/v1/appointments", &staff, &body, Some(&key()))
                .await
        }
    });
    let answers = futures::future::join_all(requests).await;
    let mut created = 0;
    for r in answers {
        match r.status().as_u16() {
            201 => created += 1,
            409 => assert_eq!(r.json::<Value>().await.unwrap()["code"], "slot_unavailable"),
            other => panic!("unexpected {other}: {}", r.text().await.unwrap()),
        }
    }
    assert_eq!(created, 1, "exactly one booking wins");
    assert_eq!(app.creates().len(), 1, "exactly one Canvas create");
}

#[tokio::test]
async fn the_same_key_replays_refuses_another_body_and_waits_for_the_first() {
    let app = open_app().await;
    let me = app.patient_token(SOFIA);
    let slot = a_slot(&app, &me, OKAFOR, 3).await;
    let k = key();
    let first = app
        .post_json("/v1/appointments", &me, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let replay = app
        .post_json("/v1/appointments", &me, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    assert_eq!(app.creates().len(), 1, "a replay makes no Canvas call");
    let mut other = booking(&slot, SOFIA);
    other["comment"] = json!("something else");
    assert_problem(
        app.post_json("/v1/appointments", &me, &other, Some(&k))
            .await,
        422,
        "idempotency_key_reused",
    )
    .await;
    // While the first request with a key runs, the second waits its turn.
    let slot2 = a_slot(&app, &me, OKAFOR, 5).await;
    app.sandbox.as_ref().unwrap().set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let k2 = key();
    let body = booking(&slot2, SOFIA);
    let (a, b) = tokio::join!(
        app.post_json("/v1/appointments", &me, &body, Some(&k2)),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            app.post_json("/v1/appointments", &me, &body, Some(&k2))
                .await
        }
    );
    assert_eq!(a.status(), 201);
    assert_problem(b, 409, "request_in_progress").await;
    // Keys belong to their caller: another patient's identical key is another request.
    let other_caller = app
        .post_json(
            "/v1/appointments",
            &app.patient_token(ELIJAH),
            &booking(&slot, ELIJAH),
            Some(&k),
        )
        .await;
    assert_problem(other_caller, 409, "slot_unavailable").await;
}

#[tokio::test]
async fn a_create_that_times_out_after_reaching_canvas_is_found_not_repeated() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        "[canvas]\ntimeout_ms = 600\nconnect_timeout_ms = 200\n",
    ])
    .await;
    let me = app.patient_token(SOFIA);
    let slot = a_slot(&app, &me, OKAFOR, 4).await;
    let sandbox = app.sandbox.clone().unwrap();
    sandbox.set_faults(Faults {
        stall_after_create_ms: 2_000,
        ..Faults::default()
    });
    let k = key();
    let r = app
        .post_json("/v1/appointments", &me, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    sandbox.set_faults(Faults::default());
    // Let the stalled create finish answering, so the journal has it.
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let stored = sandbox.appointments();
    let found = stored
        .iter()
        .find(|a| a.id.as_deref() == made["id"].as_str())
        .expect("the booking is in Canvas");
    let identifier = found.identifier[0].value.clone();
    let mine: Vec<_> = stored
        .iter()
        .filter(|a| a.identifier.iter().any(|i| i.value == identifier))
        .collect();
    assert_eq!(mine.len(), 1, "exactly one appointment in Canvas");
    assert_eq!(app.creates().len(), 1, "the create was not sent twice");
    // And the client's retry with the same key gets the same appointment.
    let retry: Value = app
        .post_json("/v1/appointments", &me, &booking(&slot, SOFIA), Some(&k))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retry["id"].as_str(), mine[0].id.as_deref());
}

#[tokio::test]
async fn a_canvas_refusal_books_nothing_and_the_key_can_be_retried() {
    let app = open_app().await;
    let me = app.patient_token(ELIJAH);
    let slot = a_slot(&app, &me, REYES, 2).await;
    let sandbox = app.sandbox.clone().unwrap();
    // Canvas refuses the create (every later write too) once it is reached.
    sandbox.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let k = key();
    let r = app
        .post_json("/v1/appointments", &me, &booking(&slot, ELIJAH), Some(&k))
        .await;
    assert!(r.status().is_server_error());
    sandbox.set_faults(Faults::default());
    assert!(
        sandbox
            .appointments()
            .iter()
            .all(|a| a.participant_id("Patient") != Some(ELIJAH)),
        "nothing booked"
    );
    let retry = app
        .post_json("/v1/appointments", &me, &booking(&slot, ELIJAH), Some(&k))
        .await;
    assert_eq!(retry.status(), 201, "after a 5xx the same key tries again");
    assert_eq!(
        sandbox
            .appointments()
            .iter()
            .filter(|a| a.participant_id("Patient") == Some(ELIJAH))
            .count(),
        1
    );
}

#[tokio::test]
async fn an_unconfirmed_create_keeps_its_time_from_others_until_canvas_decides() {
    let app = spawn_app_with(&[
        OPEN_WINDOW,
        "[canvas]\ntimeout_ms = 600\nconnect_timeout_ms = 200\n",
    ])
    .await;
    let sofia = app.patient_token(SOFIA);
    let slot = a_slot(&app, &sofia, OKAFOR, 6).await;
    let sandbox = app.sandbox.clone().unwrap();
    // Canvas commits the create only after slotgate has given up on it.
    sandbox.set_faults(Faults {
        commit_late_ms: 1_500,
        ..Faults::default()
    });
    let k = key();
    let r = app
        .post_json("/v1/appointments", &sofia, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_problem(r, 504, "upstream_timeout").await;
    sandbox.set_faults(Faults::default());
    // Canvas still shows the time free, but nobody else may take it meanwhile.
    let elijah = app.patient_token(ELIJAH);
    let r = app
        .post_json(
            "/v1/appointments",
            &elijah,
            &booking(&slot, ELIJAH),
            Some(&key()),
        )
        .await;
    assert_problem(r, 409, "slot_unavailable").await;
    let offered = week_of(&app, &elijah, OKAFOR, "telehealth").await;
    assert!(offered.iter().all(|s| s["start"] != slot["start"]));
    // Sofia retrying before Canvas decides gets 504 again, not a second create.
    let r = app
        .post_json("/v1/appointments", &sofia, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_problem(r, 504, "upstream_timeout").await;
    // Canvas made it after all: the retry with the same key finds it; one create in all.
    crate::sync::eventually("Canvas committed", || async {
        sandbox.appointments().iter().any(|a| {
            a.participant_id("Patient") == Some(SOFIA)
                && a.start.map(|s| s.timestamp.to_string())
                    == slot["start"]
                        .as_str()
                        .map(|s| s.parse::<jiff::Timestamp>().unwrap().to_string())
        })
    })
    .await;
    let r = app
        .post_json("/v1/appointments", &sofia, &booking(&slot, SOFIA), Some(&k))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // The sandbox journals the late create once its handler ends, just after it committed.
    crate::sync::eventually("the create is journalled", || async {
        !app.creates().is_empty()
    })
    .await;
    assert_eq!(app.creates().len(), 1, "never sent twice");
}

#[tokio::test]
async fn a_time_taken_in_canvas_behind_the_cache_is_refused_from_canvas_itself() {
    let app = open_app().await;
    let sofia = app.patient_token(SOFIA);
    // Sofia sees the time (now cached) ...
    let slot = a_slot(&app, &sofia, OKAFOR, 7).await;
    let sandbox = app.sandbox.clone().unwrap();
    // ... while Canvas's own UI books it for Elijah; slotgate is not told.
    sandbox.set_notify(None);
    let taken = json!({
        "resourceType": "Appointment", "status": "booked",
        "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "448337001"}]},
        "reasonCode": [{"coding": [{"system": "INTERNAL", "code": "FLUP", "display": "Follow-up Visit"}]}],
        "supportingInformation": [{"reference": format!("Location/{}", slot["location"]["id"].as_str().unwrap())}],
        "start": slot["start"], "end": slot["end"],
        "participant": [
            {"actor": {"reference": format!("Patient/{ELIJAH}")}, "status": "accepted"},
            {"actor": {"reference": format!("Practitioner/{OKAFOR}")}, "status": "accepted"}
        ]
    });
    let r = app
        .http
        .post(format!("{}/Appointment", app.sandbox_url.as_ref().unwrap()))
        .bearer_auth(sandbox.issue_token())
        .json(&taken)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        week_of(&app, &sofia, OKAFOR, "telehealth")
            .await
            .iter()
            .any(|s| s["start"] == slot["start"]),
        "the cache still offers it"
    );
    // The booking asks Canvas now, not the cache: refused, nothing created.
    let r = app
        .post_json(
            "/v1/appointments",
            &sofia,
            &booking(&slot, SOFIA),
            Some(&key()),
        )
        .await;
    let problem = assert_problem(r, 409, "slot_unavailable").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no longer free"),
        "{problem}"
    );
    assert_eq!(app.creates().len(), 1, "only Canvas's own");
}
