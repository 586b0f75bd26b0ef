use super::*;

fn load(toml: &str) -> Result<Settings, Problems> {
    Settings::load(&Sources {
        file: None,
        environment: false,
        overrides: &[toml],
    })
}

fn keys(problems: &Problems) -> Vec<&str> {
    problems.0.iter().map(|p| p.key.as_str()).collect()
}

const REMOTE: &str = r#"
[canvas]
instance = "myclinic"
client_id = "abc"
client_secret = "s3cret-value"
[auth]
issuer = "https://id.example.org"
audience = "slotgate"
hs256_secret = "0123456789abcdef0123456789abcdef"
"#;

#[test]
fn defaults_run_on_the_embedded_sandbox_with_a_generated_secret() {
    let s = load("").unwrap();
    assert!(matches!(s.canvas.target, CanvasTarget::Embedded(_)));
    assert!(s.auth.hs256_generated);
    assert_eq!(s.auth.hs256_secret.as_ref().unwrap().expose().len(), 64);
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.cache.slot_ttl.as_secs(), 60);
    assert_eq!(s.booking.max_range_days, 14);
    assert!(
        s.rules.reason("INIV").is_some(),
        "demo reasons come with the sandbox"
    );
}

#[test]
fn an_instance_derives_both_canvas_urls() {
    let s = load(REMOTE).unwrap();
    let CanvasTarget::Remote(e) = s.canvas.target else {
        panic!("remote expected")
    };
    assert_eq!(
        e.fhir_url.as_str(),
        "https://fumage-myclinic.canvasmedical.com/"
    );
    assert_eq!(
        e.token_url.as_str(),
        "https://myclinic.canvasmedical.com/auth/token/"
    );
    assert!(
        s.rules.reasons.is_empty(),
        "demo rules never leak into a real clinic"
    );
}

#[test]
fn explicit_urls_win_and_the_fhir_root_ends_in_a_slash() {
    let s = load(&format!(
        "{REMOTE}\n[canvas]\nfhir_url = \"http://127.0.0.1:9000/fhir\"\ntoken_url = \"http://127.0.0.1:9000/auth/token/\"\n"
    ));
    // TOML refuses a second [canvas] table: merge the keys instead.
    assert!(s.is_err());
    let s = load(
        r#"
[canvas]
fhir_url = "http://127.0.0.1:9000/fhir"
token_url = "http://127.0.0.1:9000/auth/token/"
client_id = "abc"
client_secret = "xyz"
[auth]
issuer = "i"
audience = "a"
hs256_secret = "0123456789abcdef0123456789abcdef"
"#,
    )
    .unwrap();
    let CanvasTarget::Remote(e) = s.canvas.target else {
        panic!("remote expected")
    };
    assert_eq!(e.fhir_url.as_str(), "http://127.0.0.1:9000/fhir/");
}

#[test]
fn a_real_canvas_needs_credentials_and_token_checks() {
    let p = load("[canvas]\nfhir_url = \"https://fumage-x.canvasmedical.com\"\n").unwrap_err();
    let k = keys(&p);
    for key in [
        "canvas.token_url",
        "canvas.client_id",
        "canvas.client_secret",
        "auth",
        "auth.issuer",
        "auth.audience",
    ] {
        assert!(k.contains(&key), "{key} missing from {k:?}");
    }
}

#[test]
fn a_typo_names_itself() {
    let p = load("[canvas]\ntimout_ms = 5\n").unwrap_err();
    assert_eq!(keys(&p), ["canvas.timout_ms"]);
    assert!(p.0[0].message.contains("timeout_ms"), "{}", p.0[0].message);
}

#[test]
fn a_wrong_type_names_its_key() {
    let p = load("[booking]\nmax_range_days = \"two weeks\"\n").unwrap_err();
    assert_eq!(keys(&p), ["booking.max_range_days"]);
}

#[test]
fn every_rule_contradiction_is_reported_at_once() {
    let p = load(
        r#"
[[reasons]]
code = "A"
system = "INTERNAL"
display = "No durations"
durations = []
modalities = ["telehealth"]
appointment_type.telehealth = { system = "http://snomed.info/sct", code = "448337001" }

[[reasons]]
code = "B"
system = "INTERNAL"
display = "Zero and a missing type"
durations = [0, 30]
modalities = ["telehealth", "in_person"]
appointment_type.telehealth = { system = "http://snomed.info/sct", code = "448337001" }

[[reasons]]
code = "C"
system = "INTERNAL"
display = "Bad modality"
durations = [20]
modalities = ["carrier_pigeon"]

[[locations]]
schedule_key = "1"
id = "b3476a18-3f63-422d-87e7-b3dc0cd55060"
timezone = "America/Las_Vegas"
state = "California"

[[practitioners]]
id = "not-a-key"
"#,
    )
    .unwrap_err();
    let k = keys(&p);
    for key in [
        "reasons[0].durations",
        "reasons[1].durations[0]",
        "reasons[1].appointment_type.in_person",
        "reasons[2].modalities[0]",
        "locations[0].timezone",
        "locations[0].state",
        "practitioners[0].id",
    ] {
        assert!(k.contains(&key), "{key} missing from {k:?}");
    }
}

#[test]
fn full_phi_needs_a_baa() {
    let p = load(
        r#"
[[sync.sinks]]
name = "ops"
kind = "webhook"
url = "https://ops.example.org/hooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
phi = "full"
"#,
    )
    .unwrap_err();
    assert_eq!(keys(&p), ["sync.sinks[0].phi"]);
}

#[test]
fn the_contract_example_file_is_valid() {
    // The configuration shown in api-contract.md, with real-looking values.
    let key_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/google-service-account.json"
    );
    let s = load(
        &r#"
[server]
listen = "127.0.0.1:8080"
trusted_proxies = ["10.0.0.0/8"]
cors_origins = ["https://app.example.org"]
max_body_bytes = 65536
[canvas]
instance = "myclinic"
client_id = "id"
client_secret = "secret"
timeout_ms = 10000
[auth]
issuer = "https://id.example.org"
audience = "slotgate"
hs256_secret = "0123456789abcdef0123456789abcdef"
patient_claim = "fhirUser"
[cache]
slot_ttl_seconds = 60
stale_if_error_seconds = 900
[rate_limit]
browse_per_minute = 600
book_per_minute = 30
[booking]
min_notice_minutes = 120
max_horizon_days = 90
max_range_days = 14
hold_minutes = 10
patient_cancel_cutoff_hours = 24
max_active_per_patient = 3
[sync]
reconcile_interval_seconds = 300
window_days = 30
max_attempts = 8
canvas_webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
public_url = "https://slotgate.example.org"
[[sync.sinks]]
name = "ops"
kind = "webhook"
url = "https://ops.example.org/hooks/slotgate"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
phi = "neutral"
[[sync.sinks]]
name = "gcal"
kind = "google"
phi = "busy"
service_account_key_file = "{FIXTURE}"
calendars = { "4150cd20de8a470aa570a852859ac87e" = "dr.okafor@clinic.example" }
[[sync.inbound]]
kind = "google"
practitioner_id = "4150cd20de8a470aa570a852859ac87e"
calendar = "dr.okafor@clinic.example"
sink = "gcal"
[state]
backend = "memory"
[[reasons]]
code = "INIV"
system = "INTERNAL"
display = "Initial Visit"
durations = [30, 60]
modalities = ["telehealth", "in_person"]
specialties = ["primary_care"]
appointment_type.telehealth = { system = "http://snomed.info/sct", code = "448337001" }
appointment_type.in_person = { system = "http://snomed.info/sct", code = "308335008" }
[[practitioners]]
id = "4150cd20de8a470aa570a852859ac87e"
specialties = ["primary_care"]
modalities = ["telehealth", "in_person"]
languages = ["en", "es"]
[[locations]]
schedule_key = "1"
id = "b3476a18-3f63-422d-87e7-b3dc0cd55060"
timezone = "America/Los_Angeles"
state = "CA"
"#
        .replace("{FIXTURE}", key_file),
    )
    .unwrap();
    assert_eq!(s.sync.sinks.len(), 2);
    assert_eq!(s.rules.reasons[0].durations, vec![30, 60]);
    assert_eq!(s.server.trusted_proxies[0].to_string(), "10.0.0.0/8");
    assert_eq!(s.rules.locations[0].state.as_str(), "CA");
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
fn environment_overrides_the_file_and_numbers_stay_text_for_secrets() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "slotgate.toml",
            "[canvas]\ninstance = \"myclinic\"\nclient_id = \"file-id\"\ntimeout_ms = 5000\n[auth]\nissuer = \"i\"\naudience = \"a\"\n",
        )?;
        jail.set_env("SLOTGATE_CANVAS__TIMEOUT_MS", "2500");
        jail.set_env("SLOTGATE_CANVAS__CLIENT_ID", "0123");
        jail.set_env("SLOTGATE_CANVAS__CLIENT_SECRET", "000777");
        jail.set_env(
            "SLOTGATE_AUTH__HS256_SECRET",
            "0123456789abcdef0123456789abcdef",
        );
        let s = Settings::load(&Sources {
            file: Some(std::path::Path::new("slotgate.toml")),
            environment: true,
            overrides: &[],
        })
        .map_err(|p| p.to_string())?;
        assert_eq!(s.canvas.timeout.as_millis(), 2500);
        let CanvasTarget::Remote(e) = &s.canvas.target else {
            panic!("remote expected")
        };
        assert_eq!(e.client_id, "0123");
        assert_eq!(e.client_secret.expose(), "000777");
        Ok(())
    });
}

#[test]
fn secrets_never_show_in_debug_output() {
    let s = load(REMOTE).unwrap();
    let printed = format!("{s:?}");
    assert!(!printed.contains("s3cret-value"));
    assert!(!printed.contains("0123456789abcdef0123456789abcdef"));
    assert!(printed.contains("[redacted]"));
}

#[test]
fn the_demo_sandbox_is_never_served_publicly_by_accident() {
    let p = load("[server]\nlisten = \"0.0.0.0:8080\"\n").unwrap_err();
    assert_eq!(keys(&p), ["canvas.instance"]);
    assert!(load("[server]\nlisten = \"0.0.0.0:8080\"\n[sandbox]\nallow_public = true\n").is_ok());
    assert!(
        load(&format!("{REMOTE}\n[server]\nlisten = \"0.0.0.0:8080\"\n")).is_ok(),
        "a real Canvas may listen anywhere"
    );
}

#[test]
fn a_syntax_error_names_its_place_but_never_quotes_the_line() {
    let p = load("[canvas]\nclient_secret = \"s3cr3t-value-123\n").unwrap_err();
    let text = p.to_string();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("line"), "{text}");
}

#[test]
fn location_ids_are_compared_in_canvas_form() {
    let s = load(
        "[[locations]]\nschedule_key = \"1\"\nid = \"B3476A18-3F63-422D-87E7-B3DC0CD55060\"\ntimezone = \"America/Los_Angeles\"\nstate = \"CA\"\n",
    )
    .unwrap();
    assert_eq!(
        s.rules.locations[0].id,
        "b3476a18-3f63-422d-87e7-b3dc0cd55060"
    );
}

#[test]
fn smart_scheduling_links_are_off_by_default() {
    let s = load("").unwrap();
    assert!(s.smart.is_none());
    // Off, a booking URL alone changes nothing, but a wrong one is still named.
    assert!(
        load("[smart]\nbooking_url = \"https://book.example.org/start\"\n")
            .unwrap()
            .smart
            .is_none()
    );
    let p = load("[smart]\nbooking_url = \"book.example.org\"\n").unwrap_err();
    assert_eq!(keys(&p), ["smart.booking_url"]);
}

#[test]
fn smart_needs_a_booking_url_when_enabled() {
    let p = load("[smart]\nenabled = true\n").unwrap_err();
    assert_eq!(keys(&p), ["smart.booking_url"]);
    let s = load(
        "[smart]\nenabled = true\nbooking_url = \"https://book.example.org/start?clinic=7\"\npublic_url = \"https://api.example.org/scheduling\"\n",
    )
    .unwrap();
    let smart = s.smart.unwrap();
    assert_eq!(
        smart.booking_url.as_str(),
        "https://book.example.org/start?clinic=7"
    );
    assert_eq!(smart.days, 14);
    assert_eq!(smart.max_age.as_secs(), 300);
    assert_eq!(
        smart.public_url.unwrap().as_str(),
        "https://api.example.org/scheduling/",
        "a base its paths join beneath"
    );
}

#[test]
fn smart_values_out_of_range_name_their_keys() {
    let p = load(
        "[smart]\nenabled = true\nbooking_url = \"mailto:desk@example.org\"\ndays = 0\nmax_age_seconds = 0\npublic_url = \"https://api.example.org/?x=1\"\n",
    )
    .unwrap_err();
    let mut k = keys(&p);
    k.sort_unstable();
    assert_eq!(
        k,
        [
            "smart.booking_url",
            "smart.days",
            "smart.max_age_seconds",
            "smart.public_url"
        ]
    );
    let p = load("[smart]\ndays = 91\n").unwrap_err();
    assert_eq!(keys(&p), ["smart.days"]);
    // Never further than patients may book, once it is on (a short horizon with the
    // publication off needs no [smart] at all).
    let on = "[smart]\nenabled = true\nbooking_url = \"https://book.example.org/\"\n";
    let p = load(&format!("[booking]\nmax_horizon_days = 7\n{on}days = 8\n")).unwrap_err();
    assert_eq!(keys(&p), ["smart.days"]);
    assert!(p.0[0].message.contains("max_horizon_days"), "{p}");
    assert!(load(&format!("[booking]\nmax_horizon_days = 7\n{on}days = 7\n")).is_ok());
    assert!(load("[booking]\nmax_horizon_days = 7\n").is_ok());
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
fn smart_is_enabled_from_the_environment_like_any_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("SLOTGATE_SMART__ENABLED", "true");
        jail.set_env(
            "SLOTGATE_SMART__BOOKING_URL",
            "https://book.example.org/start",
        );
        jail.set_env("SLOTGATE_SMART__DAYS", "21");
        let s = Settings::load(&Sources {
            file: None,
            environment: true,
            overrides: &[],
        })
        .map_err(|p| p.to_string())?;
        let smart = s.smart.expect("enabled from the environment");
        assert_eq!(smart.booking_url.as_str(), "https://book.example.org/start");
        assert_eq!(smart.days, 21);
        Ok(())
    });
}
