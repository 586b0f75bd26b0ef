//! Appointment business rules: unknown codes and references, and double booking (§4).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    NOAH_BROWN, OKAFOR, OLIVIA, REYES, appointment, at, day, rejected, spawn, variant,
};

#[tokio::test]
async fn unknown_types_and_reasons_are_422_with_canvas_texts() {
    let app = spawn().await;
    let d = day(&app);
    let good = appointment(OKAFOR, Some(OLIVIA), &at(d, "17:00"), &at(d, "17:30"));
    let unknown_type = json!({"coding": [{"system": "http://snomed.info/sct", "code": "999"}]});
    assert_eq!(
        rejected(&app, &variant(&good, "appointmentType", unknown_type)).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "business-rule".into(),
            "Appointment Type does not exist with code: 999 and system: http://snomed.info/sct"
                .into()
        )
    );
    let unknown_reason = json!([{"coding": [{"system": "INTERNAL", "code": "XRAY"}]}]);
    assert_eq!(
        rejected(&app, &variant(&good, "reasonCode", unknown_reason)).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "business-rule".into(),
            "structured reason for visit with code XRAY does not exist".into()
        )
    );
    let free_text = variant(&good, "reasonCode", json!([{"text": "Free text only"}]));
    assert_eq!(
        app.post("/Appointment", &free_text).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn unknown_references_and_missing_patients_are_422() {
    let app = spawn().await;
    let d = day(&app);
    let good = appointment(OKAFOR, Some(OLIVIA), &at(d, "17:00"), &at(d, "17:30"));
    let practitioner = json!({"actor": {"reference": format!("Practitioner/{OKAFOR}")}});
    let stranger = json!({"actor": {"reference": "Patient/ffffffffffffffffffffffffffffffff"}});
    let nowhere = json!([{"reference": "Location/00000000-0000-4000-8000-000000000000"}]);
    for (key, value) in [
        ("supportingInformation", nowhere),
        ("participant", json!([practitioner])),
        ("participant", json!([practitioner, stranger])),
    ] {
        let (status, code, _) = rejected(&app, &variant(&good, key, value.clone())).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "business-rule"),
            "{key} = {value}"
        );
    }
}

#[tokio::test]
async fn double_booking_is_allowed_by_default_and_refused_when_configured() {
    let app = spawn().await;
    let d = day(&app);
    let first = appointment(OKAFOR, Some(OLIVIA), &at(d, "17:00"), &at(d, "17:30"));
    let overlapping = appointment(OKAFOR, Some(NOAH_BROWN), &at(d, "17:15"), &at(d, "17:45"));
    app.book(&first).await;
    app.book(&overlapping).await;
    let settings = app
        .client
        .put(format!("{}/_sandbox/settings", app.base))
        .json(&json!({"reject_double_booking": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), StatusCode::OK);
    assert!(app.control().reject_double_booking());
    assert_eq!(
        rejected(&app, &overlapping).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "business-rule".into(),
            "This appointment time is no longer available.".into()
        )
    );
    // Another practitioner at the same time is fine, and so is a free time.
    let other = appointment(REYES, Some(NOAH_BROWN), &at(d, "17:15"), &at(d, "17:45"));
    app.book(&other).await;
    let later = appointment(OKAFOR, Some(OLIVIA), &at(d, "19:00"), &at(d, "19:30"));
    let id = app.book(&later).await;
    // Moving onto a taken time is refused too.
    let onto = json!({"status": "booked", "start": at(d, "17:20"), "end": at(d, "17:50")});
    let moved = app.put(&format!("/Appointment/{id}"), &onto).await;
    assert_eq!(moved.status(), StatusCode::UNPROCESSABLE_ENTITY);
    app.control().set_reject_double_booking(false);
    app.book(&overlapping).await;
}
