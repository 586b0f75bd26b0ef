//! The sandbox's mutable world, shared by the server workers and `SandboxControl`: issued
//! tokens, fault knobs, settings, the appointment book and the request journal.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::appointments::{AppointmentError, Book, seeded_book};
use super::clinic::Clinic;
use super::{Faults, JournalEntry, SandboxOptions};
use crate::canvas::fhir;

/// The journal keeps this many most recent requests.
const JOURNAL_CAPACITY: usize = 10_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves plain data behind; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Today's date in UTC, the default `start` of a Slot search (§3).
pub fn today_utc() -> Date {
    Timestamp::now().to_zoned_datetime(TimeZone::UTC).date()
}

pub struct Shared {
    pub clinic: Arc<Clinic>,
    client_id: String,
    client_secret: String,
    token_ttl: Duration,
    tokens: Mutex<HashMap<String, Instant>>,
    faults: Mutex<Faults>,
    reject_double_booking: AtomicBool,
    book: Mutex<Book>,
    journal: Mutex<VecDeque<JournalEntry>>,
    notify: Mutex<Option<crate::sandbox::notify::NotifyTarget>>,
    notifier: std::sync::OnceLock<reqwest::Client>,
}

/// By hand: the state holds the client secret, live bearer tokens and the seeded patients,
/// none of which may reach a log through `{:?}`.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("client_id", &self.client_id)
            .field("token_ttl", &self.token_ttl)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(options: &SandboxOptions, clinic: Clinic) -> Result<Shared, AppointmentError> {
        let book = seeded_book(&clinic, Timestamp::now())?;
        Ok(Shared {
            clinic: Arc::new(clinic),
            client_id: options.client_id.clone(),
            client_secret: options.client_secret.clone(),
            token_ttl: Duration::from_secs(options.token_ttl_seconds),
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(options.faults.clone()),
            reject_double_booking: AtomicBool::new(options.reject_double_booking),
            book: Mutex::new(book),
            journal: Mutex::new(VecDeque::new()),
            notify: Mutex::new(options.notify.clone()),
            notifier: std::sync::OnceLock::new(),
        })
    }

    pub fn client_matches(&self, id: Option<&str>, secret: Option<&str>) -> bool {
        id == Some(self.client_id.as_str()) && secret == Some(self.client_secret.as_str())
    }

    pub fn token_ttl_seconds(&self) -> u64 {
        self.token_ttl.as_secs()
    }

    /// A fresh random bearer token, valid for the configured lifetime.
    pub fn issue_token(&self) -> String {
        let token: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(40)
            .collect();
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, expires| *expires > now);
        tokens.insert(token.clone(), now + self.token_ttl);
        token
    }

    /// Forgets every issued token, as Canvas does when an administrator revokes a client's grants.
    pub fn revoke_tokens(&self) {
        lock(&self.tokens).clear();
    }

    pub fn token_valid(&self, token: &str) -> bool {
        lock(&self.tokens)
            .get(token)
            .is_some_and(|expires| *expires > Instant::now())
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    pub fn set_notify(&self, target: Option<crate::sandbox::notify::NotifyTarget>) {
        *lock(&self.notify) = target;
    }

    /// Tells the configured receiver that an appointment changed.
    pub fn notify(&self, id: &str, created: bool) {
        let Some(target) = lock(&self.notify).clone() else {
            return;
        };
        if let Some(a) = self.with_book(|book| book.get(id).map(|r| r.to_fhir())) {
            let client = self.notifier.get_or_init(crate::sandbox::notify::client);
            crate::sandbox::notify::send(
                client,
                &target,
                crate::sandbox::notify::payload(&a, created),
            );
        }
    }

    /// Whether this PUT is one of the `fail_next_puts`, counting it down.
    pub fn take_failing_put(&self) -> bool {
        let mut faults = lock(&self.faults);
        if faults.fail_next_puts > 0 {
            faults.fail_next_puts -= 1;
            true
        } else {
            false
        }
    }

    /// Whether this create is one of the `drop_next_creates`, counting it down.
    pub fn take_dropped_create(&self) -> bool {
        countdown(&mut lock(&self.faults).drop_next_creates)
    }

    /// Whether this create is one of the `fail_after_next_creates`, counting it down.
    pub fn take_failed_create(&self) -> bool {
        countdown(&mut lock(&self.faults).fail_after_next_creates)
    }

    /// Whether this search is one of the `fail_next_lookups`, counting it down.
    pub fn take_failing_lookup(&self) -> bool {
        let mut faults = lock(&self.faults);
        if faults.fail_next_lookups > 0 {
            faults.fail_next_lookups -= 1;
            true
        } else {
            false
        }
    }

    pub fn reject_double_booking(&self) -> bool {
        self.reject_double_booking.load(Ordering::Relaxed)
    }

    pub fn set_reject_double_booking(&self, on: bool) {
        self.reject_double_booking.store(on, Ordering::Relaxed);
    }

    /// Runs `f` with the appointment book locked; keep it short and never await inside.
    pub fn with_book<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R {
        f(&mut lock(&self.book))
    }

    pub fn appointments(&self) -> Vec<fhir::Appointment> {
        self.with_book(|book| book.records().iter().map(|r| r.to_fhir()).collect())
    }

    pub fn record(&self, entry: JournalEntry) {
        let mut journal = lock(&self.journal);
        if journal.len() == JOURNAL_CAPACITY {
            journal.pop_front();
        }
        journal.push_back(entry);
    }

    pub fn journal(&self) -> Vec<JournalEntry> {
        lock(&self.journal).iter().cloned().collect()
    }

    pub fn clear_journal(&self) {
        lock(&self.journal).clear();
    }
}

/// Counts a "the next N" fault down; whether this one is among them.
fn countdown(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}
