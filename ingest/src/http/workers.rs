//! The receiver's mapping threads: a rayon pool of its own, one thread per CPU the process
//! may use, each pinned to its CPU when the pool has every CPU of the process's affinity
//! mask.
//!
//! Why pinned. A body's reader thread inflates it and hands pieces to the other threads as
//! it goes; each hand-off wakes a sleeping thread. On the 2-vCPU bench machine (Linux 6.18)
//! a `sched_switch` trace of `gatelog serve` under load showed the kernel queueing the woken
//! thread on the reader's CPU: the two threads took turns there in 4 ms slices while the
//! other CPU sat idle or ran the sinks' nice-19 work, for most of the body. Mapping a
//! 2,000-line body took 16–18 ms at the median that way and 12 ms with the threads pinned,
//! since a pinned thread that wakes runs on its own CPU, preempting background work there.
//!
//! Why only with every CPU of the mask. Under a CPU quota (a container allowed two CPUs' time
//! on a 64-CPU host) the pool is as large as the quota (`available_parallelism`), and pinning
//! it to the mask's first CPUs would stack it on cores other processes are using; the
//! threads are left to the scheduler then.
//!
//! The pool is separate from rayon's global one, so tests that build several receivers in
//! one process keep their own (`gatelog ingest` maps on a `Batcher`'s pool).

use std::sync::Arc;

/// The mapping threads. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct MappingPool {
    pool: Arc<rayon::ThreadPool>,
}

impl MappingPool {
    /// One thread per usable CPU (`available_parallelism`), named `gatelog-map-N`; pinned as
    /// the module docs say. Fails only when the threads cannot be started.
    pub(crate) fn new() -> Result<Self, rayon::ThreadPoolBuildError> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let cpus = affinity_cpus();
        let pinned = cpus.len() == threads;
        let builder = rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("gatelog-map-{i}"));
        let builder = if pinned {
            builder.start_handler(move |i| {
                if let Err(e) = pin_current_thread(cpus[i]) {
                    tracing::warn!(cpu = cpus[i], error = %e, "receiver: cannot pin a mapping thread to its cpu; it runs unpinned");
                }
            })
        } else {
            builder
        };
        let pool = Arc::new(builder.build()?);
        tracing::debug!(threads, pinned, "receiver: mapping threads started");
        Ok(MappingPool { pool })
    }

    /// The pool the receiver maps bodies on.
    pub(crate) fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// Threads in the pool: how many bodies are mapped at once.
    pub(crate) fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

/// The CPUs the calling thread may run on, in order; empty when they cannot be read.
fn affinity_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU).filter(|cpu| set.is_set(*cpu)).collect(),
        Err(_) => Vec::new(),
    }
}

fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_named_thread_per_cpu_each_pinned_to_its_own_when_it_has_them_all() {
        let workers = MappingPool::new().unwrap();
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        assert_eq!(workers.threads(), threads);
        let cpus = affinity_cpus();
        // Every thread reports its name and the CPUs it may run on.
        let seen: Vec<(String, Vec<usize>)> = workers
            .pool()
            .broadcast(|_| (std::thread::current().name().unwrap_or_default().to_owned(), affinity_cpus()));
        let mut names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        let expected: Vec<String> = (0..threads).map(|i| format!("gatelog-map-{i}")).collect();
        assert_eq!(names, expected);
        if cpus.len() == threads {
            let mut placed: Vec<usize> = seen
                .iter()
                .map(|(_, own)| {
                    assert_eq!(own.len(), 1, "{seen:?}");
                    own[0]
                })
                .collect();
            placed.sort_unstable();
            assert_eq!(placed, cpus, "one thread on each cpu of the mask");
        } else {
            assert!(seen.iter().all(|(_, own)| *own == cpus), "unpinned threads keep the mask: {seen:?}");
        }
    }
}
