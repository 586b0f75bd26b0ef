//! Patient search by every documented parameter, sorting, and the Patient read
//! (canvas-fhir.md §6).

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    BENJAMIN, CHARLOTTE, HAYES, ISABELLA, JAMES, OKAFOR, OLIVIA, SOFIA, WHITFIELD, link, outcome,
    spawn,
};

fn ids(resources: &[Value]) -> Vec<String> {
    resources
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn patients_search_by_identifier_forms() {
    let app = spawn().await;
    let mrn = "http://canvasmedical.com%7C100000001";
    assert_eq!(
        ids(&app.all(&format!("/Patient?identifier={mrn}")).await),
        [OLIVIA]
    );
    assert_eq!(
        ids(&app.all("/Patient?identifier=100000001").await),
        [OLIVIA]
    );
    let partner = "https://partner.sandbox.example/members";
    assert_eq!(
        app.all(&format!("/Patient?identifier={partner}|"))
            .await
            .len(),
        2
    );
    assert_eq!(
        ids(&app
            .all(&format!("/Patient?identifier={partner}|M-0001"))
            .await),
        [OLIVIA]
    );
    assert!(
        app.all("/Patient?identifier=|M-0001").await.is_empty(),
        "it has a system"
    );
    assert!(
        app.all("/Patient?identifier=other|100000001")
            .await
            .is_empty()
    );
    assert_eq!(app.all("/Patient?_id=").await.len(), 0);
    assert_eq!(
        ids(&app.all(&format!("/Patient?_id={OLIVIA}")).await),
        [OLIVIA]
    );
}

#[tokio::test]
async fn patients_search_by_name_birthdate_gender_and_active() {
    let app = spawn().await;
    assert_eq!(ids(&app.all("/Patient?family=mart").await), [OLIVIA]);
    assert_eq!(ids(&app.all("/Patient?given=OLI").await), [OLIVIA]);
    assert_eq!(ids(&app.all("/Patient?name=ivia%20mar").await), [OLIVIA]);
    assert_eq!(
        ids(&app.all("/Patient?birthdate=1988-04-12").await),
        [OLIVIA]
    );
    assert_eq!(
        ids(&app.all("/Patient?birthDate=1988-04-12").await),
        [OLIVIA]
    );
    let old = app.all("/Patient?birthdate=lt1960-01-01").await;
    assert_eq!(old.len(), 2);
    let range = app
        .all("/Patient?birthdate=ge1990-01-01&birthdate=le1990-12-31")
        .await;
    assert_eq!(range.len(), 1);
    assert_eq!(app.all("/Patient?gender=other").await.len(), 1);
    assert_eq!(
        app.all("/Patient").await.len(),
        20,
        "active defaults to both"
    );
    assert_eq!(app.all("/Patient?active=false").await.len(), 1);
    let sorted = app.all("/Patient?_sort=-birthdate&_count=3").await;
    assert_eq!(sorted[0]["birthDate"], "2004-12-02");
}

#[tokio::test]
async fn patients_search_by_nickname_email_and_phone() {
    let app = spawn().await;
    assert_eq!(ids(&app.all("/Patient?nickname=LIV").await), [OLIVIA]);
    assert_eq!(
        ids(&app.all("/Patient?nickname=b").await),
        [ISABELLA, BENJAMIN]
    );
    assert!(
        app.all("/Patient?nickname=olivia").await.is_empty(),
        "an official name is not a nickname"
    );
    assert_eq!(
        ids(&app.all("/Patient?name=charlie").await),
        [CHARLOTTE],
        "name searches cover nicknames"
    );
    assert_eq!(
        ids(&app.all("/Patient?email=Olivia.Martinez@example.org").await),
        [OLIVIA]
    );
    assert!(
        app.all("/Patient?email=olivia@example.org")
            .await
            .is_empty()
    );
    assert_eq!(ids(&app.all("/Patient?phone=5550200002").await), [JAMES]);
    assert!(app.all("/Patient?phone=5550109999").await.is_empty());
    for bad in ["555-020-0002", "555020000", "+15550200002"] {
        let (status, body) = app.get_json(&format!("/Patient?phone={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["issue"][0]["diagnostics"], "phone: expected 10 digits");
    }
}

#[tokio::test]
async fn patients_search_by_care_team_member() {
    let app = spawn().await;
    let member = "_has:CareTeam:participant:member";
    let okafor = format!("/Patient?{member}=Practitioner/{OKAFOR}");
    assert_eq!(ids(&app.all(&okafor).await), [OLIVIA, JAMES]);
    let both = format!("{okafor}&{member}=Practitioner/{WHITFIELD}");
    assert_eq!(
        ids(&app.all(&both).await),
        [OLIVIA],
        "repeats must all match"
    );
    let either = format!("{okafor},Practitioner/{WHITFIELD}");
    assert_eq!(ids(&app.all(&either).await), [OLIVIA, JAMES, SOFIA]);
    let bare = format!("/Patient?{member}={WHITFIELD}");
    assert_eq!(ids(&app.all(&bare).await), [OLIVIA, SOFIA]);
    let nobody = format!("/Patient?{member}=Practitioner/{HAYES}");
    assert!(app.all(&nobody).await.is_empty());
    let (_, page) = app.get_json(&format!("{okafor}&_count=1")).await;
    assert_eq!(
        link(&page, "next").unwrap(),
        format!(
            "/Patient?_has%3ACareTeam%3Aparticipant%3Amember=Practitioner%2F{OKAFOR}&_count=1&_offset=1"
        )
    );
}

#[tokio::test]
async fn patients_sort_by_each_documented_key() {
    let app = spawn().await;
    let first = |bundle: &serde_json::Value| bundle["entry"][0]["resource"]["id"].clone();
    let (_, by_family) = app.get_json("/Patient?_sort=family&_count=1").await;
    assert_eq!(first(&by_family), BENJAMIN, "Anderson");
    let (_, by_given) = app.get_json("/Patient?_sort=-given&_count=1").await;
    assert_eq!(first(&by_given), SOFIA);
    let by_id = ids(&app.all("/Patient?_sort=-_id").await);
    let mut sorted = by_id.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(by_id, sorted);
    let (_, by_birth) = app.get_json("/Patient?_sort=birthdate&_count=1").await;
    assert_eq!(by_birth["entry"][0]["resource"]["birthDate"], "1948-02-14");
    let (status, body) = app.get_json("/Patient?_sort=gender").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["issue"][0]["diagnostics"],
        "_sort: cannot sort by 'gender'"
    );
}

#[tokio::test]
async fn a_patient_reads_with_mrn_address_and_state() {
    let app = spawn().await;
    let (status, p) = app.get_json(&format!("/Patient/{OLIVIA}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["identifier"][0]["system"], "http://canvasmedical.com");
    assert_eq!(p["identifier"][0]["type"]["coding"][0]["code"], "MR");
    assert_eq!(p["address"][0]["state"], "CA");
    assert_eq!(p["address"][0]["use"], "home");
    assert_eq!(p["gender"], "female");
    assert_eq!(p["birthDate"], "1988-04-12");
    assert_eq!(p["active"], true);
    assert_eq!(p["name"][0]["use"], "official");
    assert_eq!(p["name"][1]["use"], "nickname");
    assert_eq!(p["name"][1]["given"][0], "Liv");
    let telecom = p["telecom"].as_array().unwrap();
    let value =
        |system: &str| telecom.iter().find(|t| t["system"] == system).unwrap()["value"].clone();
    assert_eq!(value("phone"), "5550200001");
    assert_eq!(value("email"), "olivia.martinez@example.org");
    let (status, body) = app
        .get_json("/Patient/ffffffffffffffffffffffffffffffff")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(outcome(&body).0, "not-found");
}
