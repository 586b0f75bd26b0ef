//! The sinks' far ends: a webhook receiver that notes when each appointment first arrives,
//! and a Google Calendar fake (token, lookups that find nothing, inserts, patches, deletes).
//! Either can be down (503).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    first: Mutex<HashMap<String, Instant>>,
    hooks: AtomicU64,
    google: AtomicU64,
    down: AtomicBool,
}

pub struct Receiver {
    url: String,
    state: Arc<State>,
}

async fn hook(state: web::Data<State>, body: web::Bytes) -> HttpResponse {
    state.hooks.fetch_add(1, Ordering::Relaxed);
    if state.down.load(Ordering::Relaxed) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let value: Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(id) = value["data"]["appointment_id"].as_str() {
        let mut first = state.first.lock().unwrap();
        first.entry(id.to_owned()).or_insert_with(Instant::now);
    }
    HttpResponse::NoContent().finish()
}

async fn google(
    state: web::Data<State>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    state.google.fetch_add(1, Ordering::Relaxed);
    let path = req.path();
    if path == "/token" {
        return HttpResponse::Ok()
            .json(json!({"access_token": "g", "expires_in": 3600, "token_type": "Bearer"}));
    }
    match req.method().as_str() {
        "GET" => HttpResponse::Ok().json(json!({"items": []})),
        "POST" => {
            let value: Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = value["extendedProperties"]["private"]["slotgate_appointment_id"]
                .as_str()
                .unwrap_or("x")
                .replace('-', "");
            HttpResponse::Ok().json(json!({"id": format!("evt{id}"), "status": "confirmed"}))
        }
        "DELETE" => HttpResponse::NoContent().finish(),
        _ => HttpResponse::Ok().json(json!({"status": "confirmed"})),
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(State::default());
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/hooks", web::post().to(hook))
                .default_service(web::to(google))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("a free port");
        let url = format!("http://{}", server.addrs()[0]);
        tokio::spawn(server.run());
        Receiver { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A service-account key whose token endpoint is this fake.
    pub fn google_key(&self) -> String {
        let mut key: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/google-service-account.json"
        ))
        .expect("the fixture key");
        key["token_uri"] = json!(format!("{}/token", self.url));
        let file =
            std::env::temp_dir().join(format!("slotgate-bench-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&file, key.to_string()).expect("a temporary key file");
        file.display().to_string()
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::Relaxed);
    }

    pub fn hooks(&self) -> u64 {
        self.state.hooks.load(Ordering::Relaxed)
    }

    pub fn google(&self) -> u64 {
        self.state.google.load(Ordering::Relaxed)
    }

    /// When a message about `id` first arrived, waiting up to `limit`.
    pub async fn wait_for(&self, id: &str, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(at) = self.state.first.lock().unwrap().get(id) {
                return Some(*at);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}
