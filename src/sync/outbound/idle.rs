//! Patients first, on the CPU too: the sweep reads and compares every appointment of the
//! window, over and over, and that work must never make a patient's request wait for a
//! core. It runs on a thread of its own that the operating system schedules only when a core
//! has nothing else to do (`SCHED_IDLE` on Linux): a patient's request that wakes up takes the
//! core at once, where an ordinary thread would first finish its time slice (a few ms).
//!
//! On a machine kept busy by patients all the time the sweep slows down or pauses; it is the
//! backstop for changes nobody told slotgate of, and its progress metric shows how far it is.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Runs `work` on a thread of its own at idle CPU priority, with a runtime of its own. The
/// handle is the work's on the caller's runtime: aborting it, or that runtime ending, stops
/// the work at its next await and ends the thread.
pub(super) fn spawn<F>(name: &str, work: F) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    // Handed to the thread once it starts; taken back if it cannot.
    let work = Arc::new(Mutex::new(Some(work)));
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            let work = work.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let Some(work) = take(&work) else { return };
                    lower_priority();
                    runtime.block_on(async {
                        tokio::select! {
                            () = work => {}
                            _ = stopped => {}
                        }
                    });
                    let _ = done.send(());
                })
                .map_err(|e| e.to_string())
        });
    match started {
        Ok(_) => tokio::spawn(async move {
            // Dropped with this task: the thread's work stops.
            let _stop = stop;
            let _ = finished.await;
        }),
        Err(e) => {
            tracing::warn!(error = %e, "no thread of its own for background work; it shares the server's");
            // The thread never started, so the work is still here.
            let work = take(&work);
            tokio::spawn(async move {
                if let Some(work) = work {
                    work.await;
                }
            })
        }
    }
}

fn take<F>(work: &Mutex<Option<F>>) -> Option<F> {
    work.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Asks the OS to run the calling thread only when nothing else wants the CPU.
#[cfg(target_os = "linux")]
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` only reads `param`, a valid value that outlives the call;
    // pid 0 is the calling thread. Lowering one's own priority needs no privilege.
    let set = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if set != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "background work runs at normal CPU priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_work_runs_at_idle_priority_on_its_own_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let caller = std::thread::current().id();
        spawn("idle-test", async move {
            let here = std::thread::current();
            let _ = tx.send((here.id(), here.name().map(str::to_owned), policy()));
        })
        .await
        .expect("the work ends");
        let (thread, name, policy) = rx.await.expect("the work ran");
        assert_ne!(thread, caller);
        assert_eq!(name.as_deref(), Some("idle-test"));
        #[cfg(target_os = "linux")]
        assert_eq!(policy, libc::SCHED_IDLE);
        let _ = policy;
    }

    #[tokio::test]
    async fn aborting_the_handle_stops_the_work() {
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = Flag(dropped.clone());
        let handle = spawn("idle-test", async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!dropped.load(Ordering::SeqCst), "still running");
        handle.abort();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the work never stopped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[cfg(target_os = "linux")]
    fn policy() -> i32 {
        // SAFETY: no arguments; reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[cfg(not(target_os = "linux"))]
    fn policy() -> i32 {
        0
    }
}
