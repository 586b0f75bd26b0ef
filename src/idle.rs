//! Patients first, on the CPU too: the sync sweep reads and compares every appointment of the
//! window, again and again, and that CPU work must never make a patient's request wait for a
//! core. Its future is polled on a thread of its own that the operating system schedules only
//! when a core has nothing else to do (`SCHED_IDLE` on Linux): a patient's request that wakes
//! takes the core at once, where an ordinary thread would first finish its time slice (a few
//! ms).
//!
//! Only the polling moves there. The thread enters the server's runtime, so the sockets and
//! timers the work uses are driven by the server's own threads, and any task it spawns
//! (a connection's driver, a Redis reconnection) runs there too, at normal priority. On a
//! machine kept busy by patients all the time such work slows down or pauses.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Polls `work` on a thread of its own at idle CPU priority, within the current runtime. The
/// handle is the work's on that runtime: aborting it, or the runtime ending, stops the work at
/// its next await and ends the thread.
pub fn spawn<F>(name: &str, work: F) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    // Handed to the thread once it starts; still here if it cannot.
    let work = Arc::new(Mutex::new(Some(work)));
    let started = {
        let work = work.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let Some(work) = take(&work) else { return };
                lower_priority();
                runtime.block_on(async {
                    tokio::select! {
                        biased;
                        _ = stopped => {}
                        () = work => {}
                    }
                });
                let _ = done.send(());
            })
    };
    match started {
        Ok(_) => tokio::spawn(async move {
            // Dropped with this task: the thread's work stops.
            let _stop = stop;
            let _ = finished.await;
        }),
        Err(e) => {
            tracing::warn!(error = %e, "no thread of its own for background work; it shares the server's");
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
            "background computations run at normal CPU priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_work_is_polled_at_idle_priority_and_its_tasks_run_on_the_runtime() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let caller = std::thread::current().id();
        spawn("idle-test", async move {
            let here = std::thread::current();
            // Timers and spawned tasks are the runtime's.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let spawned = tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
                .await
                .ok()
                .flatten();
            let _ = tx.send((here.id(), here.name().map(str::to_owned), policy(), spawned));
        })
        .await
        .expect("the work ends");
        let (thread, name, policy, spawned) = rx.await.expect("the work ran");
        assert_ne!(thread, caller);
        assert_eq!(name.as_deref(), Some("idle-test"));
        assert_ne!(
            spawned.as_deref(),
            Some("idle-test"),
            "a spawned task runs on the runtime"
        );
        #[cfg(target_os = "linux")]
        assert_eq!(policy, libc::SCHED_IDLE);
        let _ = policy;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
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
