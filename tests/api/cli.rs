//! The binary's subcommands, run as a user would run them.

use std::process::Command;

pub fn slotgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slotgate"));
    // The tests' own environment must not leak settings into the child.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SLOTGATE_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn check_config_explains_every_mistake_and_never_prints_secrets() {
    let dir = std::env::temp_dir().join(format!("slotgate-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    std::fs::write(
        &file,
        r#"
[canvas]
instance = "myclinic"
client_secret = "super-secret-value"
timeout_ms = 0
[auth]
issuer = "https://id.example.org"
audience = "slotgate"
hs256_secret = "short"
[[locations]]
schedule_key = "1"
id = "b3476a18-3f63-422d-87e7-b3dc0cd55060"
timezone = "Mars/Olympus_Mons"
state = "ZZ"
"#,
    )
    .unwrap();
    let out = slotgate().arg("check-config").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for key in [
        "canvas.client_id",
        "canvas.timeout_ms",
        "auth.hs256_secret",
        "locations[0].timezone",
        "locations[0].state",
    ] {
        assert!(text.contains(key), "{key} not named in:\n{text}");
    }
    assert!(!text.contains("super-secret-value"), "{text}");
    assert!(!text.contains("short\""), "{text}");
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = std::env::temp_dir().join(format!("slotgate-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("good.toml");
    std::fs::write(&file, "[booking]\nmax_range_days = 7\n").unwrap();
    let out = slotgate().arg("check-config").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

#[test]
fn openapi_prints_the_committed_document() {
    let out = slotgate().arg("openapi").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        slotgate::api::docs::openapi_json()
    );
}

#[tokio::test]
async fn token_needs_a_configured_secret_and_mints_a_verifiable_one() {
    let refused = slotgate()
        .args(["token", "--patient", "a031d1ba40d74aebb8ed716716da05c2"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("hs256_secret"));

    let secret = "0123456789abcdef0123456789abcdef";
    let out = slotgate()
        .args([
            "token",
            "--patient",
            "a031d1ba40d74aebb8ed716716da05c2",
            "--scope",
            "scheduling.read",
        ])
        .env("SLOTGATE_AUTH__HS256_SECRET", secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let settings = slotgate::config::Settings::load(&slotgate::config::Sources {
        file: None,
        environment: false,
        overrides: &[&format!("[auth]\nhs256_secret = \"{secret}\"\n")],
    })
    .unwrap();
    let principal = slotgate::auth::Verifier::new(&settings.auth)
        .unwrap()
        .verify(token.trim())
        .await
        .unwrap();
    assert_eq!(
        principal.patient.unwrap().as_str(),
        "a031d1ba40d74aebb8ed716716da05c2"
    );
    assert!(principal.scopes.read && !principal.scopes.book);
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    use std::io::{BufRead, BufReader};
    let mut child = slotgate()
        .env("SLOTGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("SLOTGATE_TELEMETRY__LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("slotgate is listening on ")
                .map(str::to_owned)
        })
        .expect("the banner names the address");
    let health = std::process::Command::new("curl")
        .args(["-s", &format!("{address}/healthz")])
        .output();
    if let Ok(out) = health {
        assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(
        lines
            .map_while(Result::ok)
            .any(|l| l.contains("slotgate stopped"))
    );
}

#[tokio::test]
async fn probe_succeeds_only_on_a_2xx_answer() {
    let app = crate::helpers::spawn_app().await;
    let probe = |path: &str| {
        let url = format!("{}{path}", app.address);
        async move {
            tokio::task::spawn_blocking(move || slotgate().args(["probe", &url]).output().unwrap())
                .await
                .unwrap()
        }
    };
    assert!(probe("/healthz").await.status.success());
    let missing = probe("/nowhere").await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let closed = tokio::task::spawn_blocking(|| {
        slotgate()
            .args(["probe", "http://127.0.0.1:9/readyz"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!closed.status.success());
}

#[test]
fn the_sandbox_lists_its_demo_patients_with_ids_and_states() {
    let out = slotgate()
        .args(["sandbox", "--list-patients"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        20,
        "a heading and the nineteen active demo patients (one is inactive):\n{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("97491556534444838b94dbb0909b6b3d")
                && l.contains("Sofia Patel")
                && l.trim_end().ends_with("CA")),
        "{text}"
    );
}
