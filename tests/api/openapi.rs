use crate::helpers::spawn_app;

/// The committed spec is what the code serves; regenerate with
/// `cargo run -- openapi > openapi/openapi.json`.
#[tokio::test]
async fn the_committed_spec_equals_the_served_one() {
    let app = spawn_app().await;
    let served: serde_json::Value = app
        .get("/api-docs/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed"),
    )
    .unwrap();
    assert_eq!(
        served, committed,
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
