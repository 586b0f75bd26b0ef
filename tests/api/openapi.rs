use crate::helpers::{spawn_app, spawn_app_with};

fn committed() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed"),
    )
    .unwrap()
}

/// The committed spec is what the code serves; regenerate with
/// `cargo run -- openapi > openapi/openapi.json`.
#[tokio::test]
async fn the_committed_spec_equals_the_served_one() {
    // Not the demo (a token secret of the clinic's own): exactly the committed document.
    let app = spawn_app_with(&[
        "[auth]\nhs256_secret = \"a secret of the clinic's own, not the demo's\"\n",
    ])
    .await;
    let served: serde_json::Value = app
        .get("/api-docs/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        served,
        committed(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
    assert_eq!(
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
        slotgate::api::docs::openapi_json(),
        "byte-for-byte as `slotgate openapi` prints it"
    );
}

#[test]
fn the_spec_is_openapi_3_1_with_bearer_auth_and_examples() {
    let spec: serde_json::Value =
        serde_json::from_str(&slotgate::api::docs::openapi_json()).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        assert!(
            schema.get("example").is_some() || schema.get("examples").is_some(),
            "{name} has no example"
        );
    }
    let problem = &spec["paths"]["/v1/locations"]["get"]["responses"]["401"]["content"];
    assert!(
        problem.get("application/problem+json").is_some(),
        "{problem}"
    );
    let ids: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| {
            op["operationId"]
                .as_str()
                .expect("every operation has an id")
        })
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "operation ids are unique: {ids:?}");
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/locations",
        "/v1/reasons",
        "/v1/practitioners",
        "/v1/availability",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is documented");
    }
}

/// On the demo, only the examples of the bodies that book differ: they name what exists now.
#[tokio::test]
async fn the_demo_serves_the_committed_spec_with_live_booking_examples() {
    let app = spawn_app().await;
    let mut served: serde_json::Value = serde_json::Value::Null;
    for _ in 0..100 {
        served = app
            .get("/api-docs/openapi.json", None)
            .await
            .json()
            .await
            .unwrap();
        if served != committed() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut committed = committed();
    for body in ["BookBody", "HoldBody", "RescheduleBody"] {
        let live = served["components"]["schemas"][body]["example"].take();
        let static_one = committed["components"]["schemas"][body]["example"].take();
        assert!(
            live["slot_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("s1.")),
            "{body}: {live}"
        );
        assert_ne!(
            live["slot_id"], static_one["slot_id"],
            "{body}: a live slot, not the committed example"
        );
    }
    // The waitlist's example: the demo patient, waiting two weeks from today.
    let live = served["components"]["schemas"]["WaitlistBody"]["example"].take();
    committed["components"]["schemas"]["WaitlistBody"]["example"].take();
    let fortnight = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .saturating_add(jiff::Span::new().days(14));
    assert_eq!(live["latest_date"], fortnight.to_string(), "{live}");
    assert_eq!(live["reason_code"], "FLUP");
    // The FHIR operations' examples: the demo patient, and $hold/$book a live slot.
    for op in ["$find", "$hold", "$book"] {
        let at = |doc: &mut serde_json::Value| {
            doc["paths"][format!("/fhir/r4/Appointment/{op}")]["post"]["requestBody"]["content"]
                ["application/fhir+json"]["example"]
                .take()
        };
        let (live, static_one) = (at(&mut served), at(&mut committed));
        assert_ne!(live, static_one, "{op}: a live example");
        let named = |name: &str| {
            live["parameter"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .cloned()
        };
        assert!(named("patient-reference").is_some(), "{op}: {live}");
        if op != "$find" {
            let slot = named("appointment-reference").unwrap();
            let id = slot["valueReference"]["identifier"]["value"]
                .as_str()
                .unwrap();
            assert!(id.starts_with("s1."), "{op}: {live}");
        }
    }
    assert_eq!(served, committed, "nothing else differs");
}
