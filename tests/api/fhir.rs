//! The FHIR scheduling operations: `$find`, `$hold` and `$book` answer from the same rules,
//! cache, holds and booking path as `/v1`, and refuse with `OperationOutcome`s carrying the
//! `/v1` codes.

use serde_json::{Value, json};

use crate::availability::open_app;
use crate::booking::{ELIJAH, SOFIA, slots_for, week_of};
use crate::helpers::{TestApp, key};
use crate::seed::*;

const NEW_YORKER: &str = "7652c75faafc4bafa1d8393b1189715f"; // lives in NY

fn parameters(list: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": list})
}

/// Follow-ups by telehealth with Okafor (CA only), three to nine days out.
fn okafor_follow_ups(extra: &[Value]) -> Value {
    let mut list = vec![
        json!({"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "FLUP"}}),
        json!({"name": "duration", "valueInteger": 30}),
        json!({"name": "modality", "valueCode": "telehealth"}),
        json!({"name": "practitioner", "valueReference": {"reference": format!("Practitioner/{OKAFOR}")}}),
        json!({"name": "location-reference", "valueReference": {"reference": format!("Location/{OAKLAND}")}}),
        json!({"name": "start", "valueDate": days(3).to_string()}),
        json!({"name": "end", "valueDate": days(9).to_string()}),
    ];
    list.extend(extra.iter().cloned());
    parameters(json!(list))
}

impl TestApp {
    async fn fhir(
        &self,
        op: &str,
        token: Option<&str>,
        body: &Value,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/fhir/r4/Appointment/${op}", self.address))
            .header("Content-Type", "application/fhir+json")
            .body(body.to_string());
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(k) = key {
            request = request.header("Idempotency-Key", k);
        }
        request.send().await.expect("the request reaches slotgate")
    }

    /// A 200 FHIR answer.
    async fn fhir_ok(&self, op: &str, token: &str, body: &Value, key: Option<&str>) -> Value {
        let r = self.fhir(op, Some(token), body, key).await;
        let status = r.status();
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/fhir+json"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Asserts an OperationOutcome with the `/v1` status and code, and returns it.
async fn assert_outcome(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/fhir+json"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    for issue in body["issue"].as_array().unwrap() {
        assert_eq!(issue["severity"], "error");
        assert_eq!(
            issue["details"]["coding"][0]["system"],
            "urn:slotgate:problem"
        );
        assert_eq!(issue["details"]["coding"][0]["code"], code, "{body}");
    }
    body
}

fn matches(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn instant(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

fn slot_id(appointment: &Value) -> String {
    appointment["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["system"] == "urn:slotgate:slot-id")
        .and_then(|i| i["value"].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn find_hold_book_is_the_v1_answer_and_booking() {
    let app = open_app().await;
    let sofia = app.patient_token(SOFIA);
    let found = app
        .fhir_ok(
            "find",
            &sofia,
            &okafor_follow_ups(&[json!({"name": "_count", "valueInteger": 3})]),
            None,
        )
        .await;
    assert_eq!(found["resourceType"], "Bundle");
    assert_eq!(found["type"], "searchset");
    let proposed = matches(&found);
    assert_eq!(proposed.len(), 3, "_count caps the entries");
    // The same times, in the same order, as /v1 offers.
    // The same question on /v1: Oakland's local days, as location-reference makes them.
    let (start, end) = (days(3).to_string(), days(9).to_string());
    let v1 = slots_for(
        &app,
        &sofia,
        &[
            ("reason", "FLUP"),
            ("duration", "30"),
            ("state", "CA"),
            ("modality", "telehealth"),
            ("practitioner", OKAFOR),
            ("location", OAKLAND),
            ("start", &start),
            ("end", &end),
            ("limit", "1000"),
        ],
    )
    .await;
    assert_eq!(
        found["total"],
        v1.len(),
        "total counts every match, not the page"
    );
    for (a, s) in proposed.iter().zip(&v1) {
        assert_eq!(a["status"], "proposed");
        assert_eq!(instant(&a["start"]), instant(&s["start"]));
        assert_eq!(
            slot_id(a),
            s["slot_id"].as_str().unwrap(),
            "the slot id /v1 books by"
        );
        assert_eq!(a["serviceType"][0]["coding"][0]["code"], "FLUP");
        assert_eq!(a["minutesDuration"], 30);
        assert_eq!(
            a["participant"][0]["actor"]["reference"],
            format!("Patient/{SOFIA}")
        );
        assert_eq!(
            a["participant"][1]["actor"]["reference"],
            format!("Practitioner/{OKAFOR}")
        );
    }

    // $hold: the pending Appointment is the hold; the time leaves everyone else's answers.
    let held = app
        .fhir_ok(
            "hold",
            &sofia,
            &parameters(json!([{"name": "appointment-resource", "resource": proposed[0]}])),
            None,
        )
        .await;
    assert_eq!(held["status"], "pending");
    let hold_id = held["id"].as_str().unwrap().to_owned();
    assert_eq!(held["start"], proposed[0]["start"]);
    assert_eq!(
        held["extension"][0]["url"],
        "urn:slotgate:fhir:hold-expires-at"
    );
    let elijah = app.patient_token(ELIJAH);
    let taken = instant(&proposed[0]["start"]);
    assert!(
        week_of(&app, &elijah, OKAFOR, "telehealth")
            .await
            .iter()
            .all(|s| instant(&s["start"]) != taken)
    );
    let again = app
        .fhir_ok("find", &elijah, &okafor_follow_ups(&[]), None)
        .await;
    assert!(
        matches(&again)
            .iter()
            .all(|a| a["start"] != proposed[0]["start"]),
        "held times are never offered"
    );
    // Someone else cannot hold or book it.
    assert_outcome(
        app.fhir(
            "hold",
            Some(&elijah),
            &parameters(json!([{"name": "appointment-resource", "resource": proposed[0]}])),
            None,
        )
        .await,
        409,
        "slot_held",
    )
    .await;

    // $book by the hold's id: one booked Appointment with its Canvas id, readable on /v1.
    let by_hold = parameters(
        json!([{"name": "appointment-reference", "valueReference": {"reference": format!("Appointment/{hold_id}")}}]),
    );
    let k = key();
    let booked = app.fhir_ok("book", &sofia, &by_hold, Some(&k)).await;
    assert_eq!(booked["status"], "booked");
    let id = booked["id"].as_str().unwrap().to_owned();
    assert_ne!(id, hold_id);
    let read: Value = app
        .get(&format!("/v1/appointments/{id}"), Some(&sofia))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["start"], proposed[0]["start"]);
    assert_eq!(read["patient_id"], SOFIA);
    assert_eq!(read["reason"]["code"], "FLUP");
    // The same key replays the booking; Canvas got one create.
    let replay = app.fhir("book", Some(&sofia), &by_hold, Some(&k)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(replayed["id"], id);
    assert_eq!(app.creates().len(), 1);
    // The hold was spent; another key finds the time taken.
    assert_outcome(
        app.fhir(
            "book",
            Some(&sofia),
            &parameters(json!([{"name": "appointment-resource", "resource": proposed[0]}])),
            Some(&key()),
        )
        .await,
        409,
        "slot_unavailable",
    )
    .await;
}

#[tokio::test]
async fn book_twice_with_one_key_books_once_and_a_v1_slot_id_books_through_fhir() {
    let app = open_app().await;
    let staff = app.staff_token();
    let slot = &week_of(&app, &staff, OKAFOR, "telehealth").await[1];
    let body = parameters(json!([
        {"name": "appointment-reference", "valueReference": {"identifier": {"system": "urn:slotgate:slot-id", "value": slot["slot_id"]}}},
        {"name": "patient-reference", "valueReference": {"reference": format!("Patient/{ELIJAH}")}},
    ]));
    // No key: refused before anything happens, naming the header.
    let missing = assert_outcome(
        app.fhir("book", Some(&staff), &body, None).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(missing["issue"][0]["diagnostics"], "Idempotency-Key");
    let k = key();
    let first = app.fhir_ok("book", &staff, &body, Some(&k)).await;
    let second = app.fhir_ok("book", &staff, &body, Some(&k)).await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(instant(&first["start"]), instant(&slot["start"]));
    assert_eq!(
        first["participant"][0]["actor"]["reference"],
        format!("Patient/{ELIJAH}")
    );
    assert_eq!(app.creates().len(), 1, "one appointment in Canvas");
}

#[tokio::test]
async fn licensure_follows_the_patients_address_unless_a_state_is_given() {
    let app = open_app().await;
    let staff = app.staff_token();
    let for_patient = |p: &str, state: Option<&str>| {
        let mut extra = vec![
            json!({"name": "patient-reference", "valueReference": {"reference": format!("Patient/{p}")}}),
        ];
        if let Some(s) = state {
            extra.push(json!({"name": "patient-state", "valueString": s}));
        }
        okafor_follow_ups(&extra)
    };
    let ca = app
        .fhir_ok("find", &staff, &for_patient(SOFIA, None), None)
        .await;
    assert!(ca["total"].as_u64().unwrap() > 0);
    // Okafor holds a California licence only: nothing for a patient at home in New York...
    let ny = app
        .fhir_ok("find", &staff, &for_patient(NEW_YORKER, None), None)
        .await;
    assert_eq!(ny["total"], 0);
    assert!(ny.get("entry").is_none());
    // ...unless they will be in California for the visit.
    let visiting = app
        .fhir_ok("find", &staff, &for_patient(NEW_YORKER, Some("CA")), None)
        .await;
    assert_eq!(visiting["total"], ca["total"]);
    // Booking for the New Yorker at home is refused as /v1 refuses it.
    let slot = matches(&ca)[0].clone();
    assert_outcome(
        app.fhir(
            "book",
            Some(&staff),
            &parameters(json!([
                {"name": "appointment-resource", "resource": slot},
                {"name": "patient-reference", "valueReference": {"reference": format!("Patient/{NEW_YORKER}")}},
            ])),
            Some(&key()),
        )
        .await,
        422,
        "practitioner_not_licensed",
    )
    .await;
}

#[tokio::test]
async fn refusals_are_operation_outcomes_with_the_v1_codes() {
    let app = open_app().await;
    let sofia = app.patient_token(SOFIA);
    // No token; a token without the scope.
    assert_outcome(
        app.fhir("find", None, &okafor_follow_ups(&[]), None).await,
        401,
        "unauthorized",
    )
    .await;
    let reader = app.token(Some(SOFIA), "scheduling.read");
    assert_outcome(
        app.fhir("book", Some(&reader), &okafor_follow_ups(&[]), None)
            .await,
        403,
        "forbidden",
    )
    .await;
    // Another patient's question.
    assert_outcome(
        app.fhir(
            "find",
            Some(&sofia),
            &okafor_follow_ups(&[json!({"name": "patient-reference", "valueReference": {"reference": format!("Patient/{ELIJAH}")}})]),
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // Every bad parameter named, where it is.
    let bad = assert_outcome(
        app.fhir(
            "find",
            Some(&sofia),
            &parameters(json!([{"name": "duration", "valueString": "long"}, {"name": "colour", "valueString": "blue"}])),
            None,
        )
        .await,
        400,
        "validation_failed",
    )
    .await;
    let paths: Vec<String> = bad["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["diagnostics"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["parameter[1]", "visit-type", "duration"]);
    assert_eq!(bad["issue"][1]["code"], "required");
    assert_eq!(
        bad["issue"][1]["expression"][0],
        "Parameters.parameter.where(name = 'visit-type')"
    );
    // Business rules.
    let reason = |code: &str, minutes: u32| {
        parameters(json!([
            {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": code}},
            {"name": "duration", "valueInteger": minutes},
            {"name": "patient-state", "valueString": "CA"},
        ]))
    };
    assert_outcome(
        app.fhir("find", Some(&sofia), &reason("NOPE", 30), None)
            .await,
        422,
        "reason_not_allowed",
    )
    .await;
    assert_outcome(
        app.fhir("find", Some(&sofia), &reason("MEDR", 15), None)
            .await,
        422,
        "reason_not_allowed",
    )
    .await;
    assert_outcome(
        app.fhir("find", Some(&sofia), &reason("FLUP", 45), None)
            .await,
        422,
        "duration_not_allowed",
    )
    .await;
    let ok = app
        .fhir_ok("find", &app.staff_token(), &reason("MEDR", 15), None)
        .await;
    assert_eq!(
        ok["resourceType"], "Bundle",
        "staff may book staff-only reasons"
    );
    // A patient Canvas does not know.
    assert_outcome(
        app.fhir(
            "find",
            Some(&app.staff_token()),
            &okafor_follow_ups(&[json!({"name": "patient-reference", "valueReference": {"reference": "Patient/0123456789abcdef0123456789abcdef"}})]),
            None,
        )
        .await,
        404,
        "patient_not_found",
    )
    .await;
    // An altered slot id; a hold that is not there.
    let forged = parameters(
        json!([{"name": "appointment-reference", "valueReference": {"identifier": {"system": "urn:slotgate:slot-id", "value": "s1.forged.slot"}}}]),
    );
    assert_outcome(
        app.fhir("hold", Some(&sofia), &forged, None).await,
        400,
        "validation_failed",
    )
    .await;
    let missing = parameters(
        json!([{"name": "appointment-reference", "valueReference": {"reference": format!("Appointment/{}", uuid::Uuid::new_v4())}}]),
    );
    assert_outcome(
        app.fhir("book", Some(&sofia), &missing, Some(&key())).await,
        404,
        "not_found",
    )
    .await;
    // Not FHIR JSON; the wrong method.
    let r = app
        .http
        .post(format!("{}/fhir/r4/Appointment/$find", app.address))
        .bearer_auth(&sofia)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_outcome(r, 400, "validation_failed").await;
    let r = app.get("/fhir/r4/Appointment/$find", Some(&sofia)).await;
    assert_eq!(r.headers()["allow"], "POST");
    assert_outcome(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn exact_instants_bound_the_answer_and_count_caps_it() {
    let app = open_app().await;
    let staff = app.staff_token();
    let all = matches(
        &app.fhir_ok(
            "find",
            &staff,
            &okafor_follow_ups(&[json!({"name": "patient-state", "valueString": "CA"})]),
            None,
        )
        .await,
    );
    assert!(all.len() > 4);
    let (from, until) = (
        all[1]["start"].as_str().unwrap(),
        all[3]["end"].as_str().unwrap(),
    );
    let mut list =
        okafor_follow_ups(&[json!({"name": "patient-state", "valueString": "CA"})])["parameter"]
            .as_array()
            .unwrap()
            .clone();
    list.retain(|p| p["name"] != "start" && p["name"] != "end");
    list.push(json!({"name": "start", "valueDateTime": from}));
    list.push(json!({"name": "end", "valueDateTime": until}));
    let some = matches(
        &app.fhir_ok("find", &staff, &parameters(json!(list)), None)
            .await,
    );
    let starts: Vec<&Value> = some.iter().map(|a| &a["start"]).collect();
    assert_eq!(
        starts,
        [&all[1]["start"], &all[2]["start"], &all[3]["start"]]
    );
}

#[tokio::test]
async fn the_capability_statement_is_public_and_names_the_operations() {
    let app = open_app().await;
    let r = app.get("/fhir/r4/metadata", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    let cs: Value = r.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let ops = cs["rest"][0]["resource"][0]["operation"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(ops.len(), 3);
    for op in ops {
        let url = op["definition"].as_str().unwrap();
        let path = url.split_once("/fhir/r4/").unwrap().1;
        let d: Value = app
            .get(&format!("/fhir/r4/{path}"), None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(d["resourceType"], "OperationDefinition");
        assert_eq!(d["code"], op["name"]);
        assert_eq!(d["url"], url);
    }
    assert_outcome(
        app.get("/fhir/r4/OperationDefinition/nope", None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn the_holding_and_key_rules_of_v1_hold_here_too() {
    let app = open_app().await;
    let sofia = app.patient_token(SOFIA);
    let proposed = matches(
        &app.fhir_ok("find", &sofia, &okafor_follow_ups(&[]), None)
            .await,
    );
    let hold =
        |n: usize| parameters(json!([{"name": "appointment-resource", "resource": proposed[n]}]));
    // A patient holds at most two slots at once.
    app.fhir_ok("hold", &sofia, &hold(0), None).await;
    app.fhir_ok("hold", &sofia, &hold(1), None).await;
    assert_outcome(
        app.fhir("hold", Some(&sofia), &hold(2), None).await,
        422,
        "hold_limit_reached",
    )
    .await;
    // One Idempotency-Key, two different bookings: the second is refused, nothing booked twice.
    let k = key();
    let book =
        |n: usize| parameters(json!([{"name": "appointment-resource", "resource": proposed[n]}]));
    let first = app.fhir_ok("book", &sofia, &book(3), Some(&k)).await;
    assert_eq!(first["status"], "booked");
    assert_outcome(
        app.fhir("book", Some(&sofia), &book(4), Some(&k)).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(app.creates().len(), 1);
}

#[tokio::test]
async fn in_person_the_patient_is_at_the_clinic_and_dates_are_each_locations_own() {
    let app = open_app().await;
    let staff = app.staff_token();
    let new_yorker = json!({"name": "patient-reference", "valueReference": {"reference": format!("Patient/{NEW_YORKER}")}});
    // Okafor (California only) sees a New Yorker in person in Oakland: the patient will be
    // there, whatever their home address says.
    let in_person = parameters(json!([
        {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "FLUP"}},
        {"name": "duration", "valueInteger": 30},
        {"name": "modality", "valueCode": "in_person"},
        {"name": "practitioner", "valueReference": {"reference": format!("Practitioner/{OKAFOR}")}},
        {"name": "start", "valueDate": days(3).to_string()},
        {"name": "end", "valueDate": days(9).to_string()},
        new_yorker.clone(),
    ]));
    let found = matches(&app.fhir_ok("find", &staff, &in_person, None).await);
    assert!(!found.is_empty(), "in person in Oakland");
    // Without a modality: the same in-person times, and no video ones (not licensed in NY).
    let mut either = in_person.clone();
    either["parameter"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["name"] != "modality");
    let both = matches(&app.fhir_ok("find", &staff, &either, None).await);
    assert!(!both.is_empty());
    assert!(
        both.iter()
            .all(|a| a["appointmentType"]["coding"][0]["code"] == "308335008"),
        "in person only"
    );
    let booked = app
        .fhir_ok(
            "book",
            &staff,
            &parameters(
                json!([{"name": "appointment-resource", "resource": found[0]}, new_yorker]),
            ),
            Some(&key()),
        )
        .await;
    assert_eq!(booked["status"], "booked");
    // Whole days without a location are each location's own local days, across four zones.
    let day = days(4).to_string();
    let anywhere = parameters(json!([
        {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "FLUP"}},
        {"name": "modality", "valueCode": "in_person"},
        {"name": "start", "valueDate": day}, {"name": "end", "valueDate": day},
        {"name": "_count", "valueInteger": 1000},
    ]));
    let all = matches(&app.fhir_ok("find", &staff, &anywhere, None).await);
    let zones: std::collections::BTreeSet<&str> = all
        .iter()
        .map(|a| &a["start"].as_str().unwrap()[19..])
        .collect();
    assert!(zones.len() > 1, "several zones: {zones:?}");
    assert!(
        all.iter()
            .all(|a| a["start"].as_str().unwrap().starts_with(&day)),
        "local days"
    );
}
