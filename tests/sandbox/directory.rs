//! Schedule, Practitioner and Location searches and reads, every directory parameter at once,
//! unknown parameters, and Fumage paging (canvas-fhir.md §2, §5, §6, §7). Patients: in
//! `patient_search.rs`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    HAYES, OAKLAND, OKAFOR, OLIVIA, PARK, REYES, link, outcome, schedule_id, spawn,
};

fn ids(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn schedules_pair_locations_with_bookable_staff_and_page_by_ten() {
    let app = spawn().await;
    let (status, first) = app.get_json("/Schedule").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["total"], 16);
    assert_eq!(first["entry"].as_array().unwrap().len(), 10);
    assert_eq!(
        link(&first, "self").unwrap(),
        "/Schedule?_count=10&_offset=0"
    );
    assert_eq!(
        link(&first, "next").unwrap(),
        "/Schedule?_count=10&_offset=10"
    );
    assert_eq!(
        link(&first, "last").unwrap(),
        "/Schedule?_count=10&_offset=10"
    );
    let all = app.all("/Schedule").await;
    assert_eq!(all.len(), 16);
    let okafor = all
        .iter()
        .find(|s| s["id"] == schedule_id(1, OKAFOR))
        .unwrap();
    assert_eq!(
        okafor["comment"],
        "Schedule for Maya Okafor MD at Oakland Clinic"
    );
    assert_eq!(
        okafor["text"]["div"],
        "<div>Schedule for Maya Okafor MD at Oakland Clinic</div>"
    );
    assert_eq!(
        okafor["actor"][0]["reference"],
        format!("Practitioner/{OKAFOR}")
    );
    assert_eq!(okafor["actor"][0]["type"], "Practitioner");
    assert!(
        !all.iter()
            .any(|s| s["id"].as_str().unwrap().contains(HAYES))
    );
}

#[tokio::test]
async fn schedules_filter_on_actor() {
    let app = spawn().await;
    let found = app
        .all(&format!("/Schedule?actor=Practitioner/{REYES}"))
        .await;
    assert_eq!(ids(&found), [schedule_id(1, REYES), schedule_id(4, REYES)]);
}

#[tokio::test]
async fn practitioners_default_to_active_schedulable_staff() {
    let app = spawn().await;
    let default = app.all("/Practitioner").await;
    assert_eq!(default.len(), 12);
    assert!(!ids(&default).contains(&HAYES.to_owned()));
    assert!(!ids(&default).contains(&PARK.to_owned()));
    for spelling in ["schedulable", "scheduleable"] {
        let path = format!("/Practitioner?include-non-{spelling}-practitioners=true");
        let with_hidden = ids(&app.all(&path).await);
        assert_eq!(with_hidden.len(), 13, "{spelling}");
        assert!(with_hidden.contains(&PARK.to_owned()));
    }
    let inactive = app
        .all("/Practitioner?active=false&include-non-schedulable-practitioners=true")
        .await;
    assert_eq!(ids(&inactive), [HAYES]);
    assert!(app.all("/Practitioner?active=false").await.is_empty());
}

#[tokio::test]
async fn practitioners_search_by_name_id_and_npi() {
    let app = spawn().await;
    assert_eq!(ids(&app.all("/Practitioner?name=oKaF").await), [OKAFOR]);
    assert_eq!(
        ids(&app.all("/Practitioner?name=maya%20oka").await),
        [OKAFOR]
    );
    let two = app
        .all(&format!("/Practitioner?_id={OKAFOR},{REYES}"))
        .await;
    assert_eq!(ids(&two), [OKAFOR, REYES]);
    assert_eq!(
        ids(&app.all("/Practitioner?npiNumber=1316900002").await),
        [REYES]
    );
    assert_eq!(app.all("/Practitioner?name=LCSW").await.len(), 1);
}

#[tokio::test]
async fn practitioners_search_by_email() {
    let app = spawn().await;
    assert_eq!(
        ids(&app
            .all("/Practitioner?email=Maya.Okafor@sandbox.example")
            .await),
        [OKAFOR],
        "whole address, any case"
    );
    assert!(app.all("/Practitioner?email=maya.okafor").await.is_empty());
    let (_, okafor) = app.get_json(&format!("/Practitioner/{OKAFOR}")).await;
    let email = &okafor["telecom"][1];
    assert_eq!(email["system"], "email");
    assert_eq!(email["value"], "maya.okafor@sandbox.example");
}

#[tokio::test]
async fn a_practitioner_reads_with_npi_extensions_and_licences() {
    let app = spawn().await;
    let (status, p) = app.get_json(&format!("/Practitioner/{OKAFOR}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        p["identifier"][0]["system"],
        "http://hl7.org/fhir/sid/us-npi"
    );
    let ext = p["extension"].as_array().unwrap();
    let url = |suffix: &str| {
        ext.iter()
            .find(|e| e["url"].as_str().unwrap().ends_with(suffix))
    };
    assert!(url("practitioner-personal-meeting-room-link").unwrap()["valueUrl"].is_string());
    assert_eq!(
        url("practitioner-primary-practice-location").unwrap()["valueReference"]["reference"],
        format!("Location/{OAKLAND}")
    );
    let q = &p["qualification"][0];
    assert_eq!(q["code"]["text"], "STATE");
    assert_eq!(
        q["identifier"][0]["system"],
        "http://schemas.canvasmedical.com/fhir/extensions/issuing-authority-url"
    );
    let issuer_ext = q["issuer"]["extension"].as_array().unwrap();
    assert!(
        issuer_ext[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("issuing-authority-short-name")
    );
    assert!(
        issuer_ext[1]["url"]
            .as_str()
            .unwrap()
            .ends_with("issuing-authority-state")
    );
    assert_eq!(issuer_ext[1]["valueString"], "CA");
    assert!(
        issuer_ext[2]["url"]
            .as_str()
            .unwrap()
            .ends_with("license-primary")
    );
    assert_eq!(issuer_ext[2]["valueBoolean"], true);
    assert!(q["period"]["start"].is_string() && q["period"]["end"].is_string());
    let (status, hidden) = app.get_json(&format!("/Practitioner/{HAYES}")).await;
    assert_eq!(status, StatusCode::OK, "reads find inactive staff too");
    assert_eq!(hidden["active"], false);
    let (status, body) = app
        .get_json("/Practitioner/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        outcome(&body),
        (
            "not-found".into(),
            "Unknown Practitioner resource '0123456789abcdef0123456789abcdef'".into()
        )
    );
}

#[tokio::test]
async fn locations_search_and_read() {
    let app = spawn().await;
    let all = app.all("/Location").await;
    assert_eq!(all.len(), 4);
    let oakland = &app.all(&format!("/Location?_id={OAKLAND}")).await[0];
    assert_eq!(oakland["name"], "Oakland Clinic");
    assert_eq!(oakland["status"], "active");
    assert_eq!(oakland["alias"][0], "Oakland");
    assert_eq!(oakland["address"]["state"], "CA");
    assert_eq!(
        oakland["identifier"][0]["system"],
        "http://hl7.org/fhir/sid/us-npi"
    );
    let (status, read) = app.get_json(&format!("/Location/{OAKLAND}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&read, oakland);
    let (status, _) = app.get_json("/Location/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn paging_clamps_count_keeps_filters_and_follows_next() {
    let app = spawn().await;
    let (_, page) = app.get_json("/Patient?gender=male&_count=500").await;
    assert_eq!(page["entry"].as_array().unwrap().len(), 9);
    assert_eq!(
        link(&page, "self").unwrap(),
        "/Patient?gender=male&_count=100&_offset=0"
    );
    assert_eq!(link(&page, "next"), None);
    let (_, first) = app.get_json("/Patient?gender=male&_count=4").await;
    assert_eq!(first["total"], 9);
    assert_eq!(
        link(&first, "next").unwrap(),
        "/Patient?gender=male&_count=4&_offset=4"
    );
    assert_eq!(
        link(&first, "last").unwrap(),
        "/Patient?gender=male&_count=4&_offset=8"
    );
    let (_, second) = app.get_json(&link(&first, "next").unwrap()).await;
    assert_eq!(second["entry"].as_array().unwrap().len(), 4);
    assert_ne!(second["entry"][0], first["entry"][0]);
    let (_, last) = app.get_json(&link(&first, "last").unwrap()).await;
    assert_eq!(last["entry"].as_array().unwrap().len(), 1);
    assert_eq!(link(&last, "next"), None);
    let (_, empty) = app.get_json("/Patient?family=nobody").await;
    assert_eq!(empty["total"], 0);
    assert!(empty.get("link").is_none() && empty.get("entry").is_none());
    let (status, body) = app.get_json("/Patient?_count=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(outcome(&body), ("invalid".into(), "Bad request".into()));
}

/// Every parameter canvas-fhir.md lists for a resource, sent at once, each narrowing to the
/// same record: a parameter the sandbox forgot would be refused or would widen the answer.
#[tokio::test]
async fn every_documented_parameter_is_accepted_together() {
    let app = spawn().await;
    let patient = format!(
        "/Patient?_id={OLIVIA}&identifier=100000001&name=oliv&family=mart&given=oli\
         &nickname=liv&birthdate=1988-04-12&birthDate=ge1988-01-01&gender=female\
         &email=olivia.martinez@example.org&phone=5550200001&active=true&_sort=family\
         &_has:CareTeam:participant:member=Practitioner/{OKAFOR}&_count=5&_offset=0"
    );
    assert_eq!(ids(&app.all(&patient).await), [OLIVIA]);
    let practitioner = format!(
        "/Practitioner?_id={OKAFOR}&name=okafor&active=true&email=maya.okafor@sandbox.example\
         &npiNumber=1316900001&include-non-schedulable-practitioners=false\
         &include-non-scheduleable-practitioners=false&_count=5"
    );
    assert_eq!(ids(&app.all(&practitioner).await), [OKAFOR]);
    let location = format!("/Location?_id={OAKLAND}&_count=5&_offset=0");
    assert_eq!(ids(&app.all(&location).await), [OAKLAND]);
    let schedule = format!("/Schedule?actor=Practitioner/{OKAFOR}&_count=5&_offset=0");
    assert_eq!(ids(&app.all(&schedule).await), [schedule_id(1, OKAFOR)]);
}

/// canvas-fhir.md does not say what Fumage does with a parameter it does not support; the
/// sandbox refuses it by name rather than answer unfiltered results.
#[tokio::test]
async fn unknown_search_parameters_are_refused_by_name() {
    let app = spawn().await;
    for (path, diagnostics) in [
        (
            "/Patient?family=mart&emial=x",
            "emial: unknown Patient search parameter",
        ),
        (
            "/Patient?name:exact=Olivia",
            "name:exact: unknown Patient search parameter",
        ),
        (
            "/Patient?address-state=CA",
            "address-state: unknown Patient search parameter",
        ),
        (
            "/Practitioner?specialty=dermatology",
            "specialty: unknown Practitioner search parameter",
        ),
        (
            "/Practitioner?_sort=name",
            "_sort: unknown Practitioner search parameter",
        ),
        (
            "/Location?name=Oakland",
            "name: unknown Location search parameter",
        ),
        ("/Schedule?_id=x", "_id: unknown Schedule search parameter"),
        (
            "/Schedule?_format=json",
            "_format: unknown Schedule search parameter",
        ),
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(outcome(&body), ("invalid".into(), "Bad request".into()));
        assert_eq!(body["issue"][0]["diagnostics"], diagnostics, "{path}");
    }
}
