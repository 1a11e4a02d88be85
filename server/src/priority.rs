//! CPU priority of the work behind the spool.
//!
//! A 2xx waits for the receiver's mapping and the spool's fsync, and nothing else; what
//! reads the spool afterwards (the ClickHouse and index sinks, and a managed ClickHouse)
//! can fall behind for a while, the spool holding the difference and its limits bounding
//! it. On shared cores that work therefore runs at a higher nice value, so a request's
//! mapping gets the cores first. Linux keeps the nice value per thread and a new thread or
//! process inherits its creator's, so lowering the thread that starts the background work
//! covers every thread that work creates.

/// The nice value of the sinks' threads.
pub const BACKGROUND_NICE: i32 = 19;

/// Sets the calling thread's nice value (0 = normal, 19 = lowest). Raising it back needs
/// privileges, so call it on a thread of its own.
pub fn lower_thread_priority(nice: i32) -> std::io::Result<()> {
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), nice).map_err(std::io::Error::from)
}

/// The calling thread's nice value.
#[cfg(test)]
pub fn current_thread_nice() -> std::io::Result<i32> {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        current_thread_nice().unwrap()
    }

    #[test]
    fn lowers_only_the_calling_thread_and_what_it_starts() {
        let before = own_nice();
        let (lowered, inherited) = std::thread::spawn(|| {
            lower_thread_priority(BACKGROUND_NICE).unwrap();
            let inherited = std::thread::spawn(own_nice).join().unwrap();
            (own_nice(), inherited)
        })
        .join()
        .unwrap();
        assert_eq!((lowered, inherited), (BACKGROUND_NICE, BACKGROUND_NICE));
        assert_eq!(own_nice(), before);
    }
}
