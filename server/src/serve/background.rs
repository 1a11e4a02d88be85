//! [`spawn_background`]: a future on a thread of its own, at the spool consumers' lower CPU
//! priority (see [`crate::priority`]), behind an ordinary tokio [`JoinHandle`]; and
//! [`stop_job`], how every background job of serve is stopped.

use crate::priority::{BACKGROUND_NICE, lower_thread_priority};
use std::future::Future;
use tokio::task::JoinHandle;

/// Runs `future` to completion on a new thread named `name`, in a single-threaded runtime,
/// at [`BACKGROUND_NICE`]; threads it starts (its blocking pool) inherit the priority. The
/// handle resolves with the output, or fails as panicked if the thread panicked.
pub fn spawn_background<F>(name: &'static str, future: F) -> std::io::Result<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        if let Err(e) = lower_thread_priority(BACKGROUND_NICE) {
            tracing::debug!(thread = name, error = %e, "background thread keeps its priority");
        }
        let _ = tx.send(runtime.block_on(future));
    })?;
    Ok(tokio::spawn(async move {
        match rx.await {
            Ok(output) => output,
            // The thread panicked (its message is already printed): fail this task the same way.
            Err(_) => std::panic::panic_any(format!("the {name} thread panicked")),
        }
    }))
}

/// How long a background job of serve gets to stop at shutdown.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Asks a background job to stop (`stop`) and waits [`STOP_GRACE`] for `task`, then aborts it,
/// logging `late` (what the abort costs) when given. One way for every job to stop.
pub async fn stop_job(stop: &tokio::sync::watch::Sender<bool>, mut task: JoinHandle<()>, late: Option<&str>) {
    let _ = stop.send(true);
    if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
        if let Some(late) = late {
            tracing::warn!("{late}");
        }
        task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        crate::priority::current_thread_nice().unwrap_or(i32::MIN)
    }

    #[tokio::test]
    async fn runs_at_background_priority_and_returns_its_output() {
        let ours = nice_of_this_thread();
        let handle = spawn_background("test-background", async {
            let blocking = tokio::task::spawn_blocking(nice_of_this_thread).await.unwrap_or(i32::MIN);
            (nice_of_this_thread(), blocking)
        })
        .unwrap();
        assert_eq!(handle.await.unwrap(), (BACKGROUND_NICE, BACKGROUND_NICE));
        assert_eq!(nice_of_this_thread(), ours);
    }

    #[tokio::test]
    async fn a_panic_on_the_thread_fails_the_handle() {
        let handle = spawn_background("test-panics", async { panic!("boom") }).unwrap();
        let err: tokio::task::JoinError = handle.await.unwrap_err();
        assert!(err.is_panic());
    }
}
