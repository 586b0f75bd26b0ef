//! TEMPORARY stub of the sandbox interface; replaced by the real sandbox branch at merge.
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub struct SandboxOptions {
    pub listen: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    pub clinic: ClinicSpec,
    pub faults: Faults,
    pub reject_double_booking: bool,
    pub token_ttl_seconds: u64,
}
pub enum ClinicSpec {
    Demo,
    Generated { clinicians: usize },
}
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Faults {
    pub latency_ms: u64,
    pub error_rate: f64,
    pub down: bool,
    pub stall_after_create_ms: u64,
}
pub struct Clinic;
impl Clinic {
    pub fn demo(_today: jiff::civil::Date) -> Clinic {
        Clinic
    }
    pub fn generated(_n: usize, _today: jiff::civil::Date) -> Clinic {
        Clinic
    }
    pub fn slotgate_rules_toml(&self) -> String {
        String::new()
    }
}
pub struct Sandbox {
    addr: SocketAddr,
}
#[derive(Clone)]
pub struct SandboxControl;
impl Sandbox {
    pub async fn start(options: SandboxOptions) -> std::io::Result<Sandbox> {
        Ok(Sandbox {
            addr: options.listen,
        })
    }
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn control(&self) -> SandboxControl {
        SandboxControl
    }
    pub async fn stop(self) {}
}
pub struct JournalEntry {
    pub method: String,
    pub path: String,
    pub status: u16,
}
impl SandboxControl {
    pub fn set_faults(&self, _f: Faults) {}
    pub fn journal(&self) -> Vec<JournalEntry> {
        Vec::new()
    }
}
