//! `GET /v1/reasons` and `GET /v1/practitioners`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::availability::open_app;
use crate::helpers::assert_problem;
use crate::seed::*;

#[tokio::test]
async fn patients_see_the_reasons_they_may_book_and_staff_see_all() {
    let app = open_app().await;
    let patient = app.token(Some("a031d1ba40d74aebb8ed716716da05c2"), "scheduling.read");
    let codes = |body: Value| -> Vec<String> {
        body["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let mine = codes(
        app.get("/v1/reasons", Some(&patient))
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(mine, ["INIV", "FLUP", "THER", "DERM"]);
    let all: Value = app
        .get("/v1/reasons", Some(&app.staff_token()))
        .await
        .json()
        .await
        .unwrap();
    let iniv = &all["reasons"][0];
    assert_eq!(iniv["durations_minutes"], serde_json::json!([30, 60]));
    assert_eq!(
        iniv["modalities"],
        serde_json::json!(["telehealth", "in_person"])
    );
    assert_eq!(iniv["specialties"], serde_json::json!(["primary_care"]));
    assert_eq!(iniv["system"], "INTERNAL");
    assert!(codes(all).contains(&"MEDR".to_owned()));
}

async fn ids(app: &crate::helpers::TestApp, query: &str) -> BTreeSet<String> {
    let r = app
        .get(
            &format!("/v1/practitioners{query}"),
            Some(&app.staff_token()),
        )
        .await;
    assert_eq!(r.status(), 200, "{query}");
    let body: Value = r.json().await.unwrap();
    body["practitioners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn practitioners_are_filtered_like_availability() {
    let app = open_app().await;
    let all = ids(&app, "").await;
    assert_eq!(
        all.len(),
        11,
        "inactive and non-schedulable staff are not listed, nor Chen"
    );
    assert!(!all.contains(HAYES) && !all.contains(PARK));
    assert!(
        !all.contains(CHEN),
        "with no state licence he can be booked for nothing"
    );
    // In person needs a licence in the location's state: Bell only practises in Arizona.
    assert!(
        !ids(&app, "?modality=in_person&state=CA")
            .await
            .contains(BELL),
        "his CA licence expired"
    );
    assert!(
        ids(&app, "?modality=in_person&state=AZ")
            .await
            .contains(BELL)
    );
    assert!(
        !ids(&app, "?reason=FLUP&modality=in_person")
            .await
            .contains(CHEN)
    );
    let wa = ids(&app, "?state=WA").await;
    assert_eq!(
        wa,
        [REYES, WHITFIELD, VASQUEZ]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let ther = ids(&app, "?reason=THER&state=NY").await;
    assert_eq!(
        ther,
        [KIM].iter().map(|s| s.to_string()).collect(),
        "Chen holds no state licence"
    );
    let in_person_brooklyn = ids(&app, &format!("?modality=in_person&location={BROOKLYN}")).await;
    assert!(in_person_brooklyn.contains(OSEI) && !in_person_brooklyn.contains(KIM));
    let spanish = ids(&app, "?language=es").await;
    assert!(spanish.contains(OKAFOR) && spanish.contains(REYES) && !spanish.contains(KIM));
    assert!(ids(&app, "?specialty=dermatology").await.contains(BELL));
    // In person needs a licence in the location's state: Bell only practises in Arizona.
    let in_person_ca = ids(&app, "?modality=in_person&state=CA").await;
    assert!(!in_person_ca.contains(BELL), "his CA licence expired");
    assert!(
        ids(&app, "?modality=in_person&state=AZ")
            .await
            .contains(BELL)
    );
    assert!(
        !ids(&app, "?reason=FLUP&modality=in_person")
            .await
            .contains(CHEN)
    );
}

#[tokio::test]
async fn a_practitioner_carries_licensed_states_and_locations() {
    let app = open_app().await;
    let body: Value = app
        .get(
            "/v1/practitioners?language=ko&reason=THER",
            Some(&app.staff_token()),
        )
        .await
        .json()
        .await
        .unwrap();
    let kim = &body["practitioners"][0];
    assert_eq!(kim["id"], KIM);
    assert_eq!(kim["name"], "Jordan Kim LCSW");
    assert_eq!(
        kim["licensed_states"],
        serde_json::json!(["FL", "NY", "TN"])
    );
    let locations: BTreeSet<&str> = kim["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(locations, [NASHVILLE, BROOKLYN].into_iter().collect());
    assert_eq!(kim["modalities"], serde_json::json!(["telehealth"]));
}

#[tokio::test]
async fn practitioner_filters_are_validated() {
    let app = open_app().await;
    let token = app.staff_token();
    for (query, field) in [
        ("?state=ZZ", "state"),
        ("?modality=video", "modality"),
        ("?location=", "location"),
        ("?shoe_size=9", "shoe_size"),
    ] {
        let body = assert_problem(
            app.get(&format!("/v1/practitioners{query}"), Some(&token))
                .await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
    let none: Value = app
        .get("/v1/practitioners?reason=NOPE", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        none["practitioners"],
        serde_json::json!([]),
        "an unknown reason is a filter nobody passes"
    );
    let patient = app.token(Some("a031d1ba40d74aebb8ed716716da05c2"), "scheduling.read");
    let staff_only: Value = app
        .get("/v1/practitioners?reason=MEDR", Some(&patient))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(staff_only["practitioners"], serde_json::json!([]));
}
