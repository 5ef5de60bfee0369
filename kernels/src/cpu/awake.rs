//! Keeping the pool's threads awake through one pass of decoding.
//!
//! Decoding a token is a chain of small parallel products (a layer's q, k
//! and v, its output projection, its MLP: tens of microseconds each at
//! SmolLM2-135M's size) with short serial steps between them (norms,
//! rotary embedding, attention, the KV cache). Between two products
//! rayon's idle threads spin for a moment, then fall asleep; on a virtual
//! machine waking one again takes tens of microseconds, as long as the
//! product it was woken for. The calling thread does not wait for it: it
//! works through the tasks itself, and the late thread finds little left.
//! A loop of SmolLM2-135M's f16 products at 2 threads, with 20–40 µs of
//! serial work between them, took 15–25% longer that way than with the
//! other thread polling; decoding the model itself gained about 6%.
//!
//! So for the length of one pass, [`with_threads_awake`] gives every other
//! thread of the pool a task of its own: poll for rayon work and run it
//! (`rayon::yield_now`), until the pass is over. llama.cpp's threads wait
//! the same way, spinning between operations. The price is that those
//! cores stay busy for the whole pass, so it is for short passes whose
//! parallel work needs every thread; a pass run this way also waits, at
//! its end, for any unrelated task the other threads were busy with.
//!
//! A poller also stops once it has found nothing to do for
//! [`IDLE_LIMIT`], far longer than any gap between a token's products. It
//! must, because a thread may run its poller nested inside one of the
//! pass's own tasks. A thread looks for work in its own queue of broadcast
//! tasks before stealing; if it is preempted between the two, the poller
//! may land in its queue meanwhile, and the thread steals a task of the
//! pass first. When that task then waits for a part another thread took,
//! the waiting thread runs what its queues hold: the poller. Polling until
//! the pass ended, the poller would hold up the task the pass waits for,
//! forever; it hung one `bench generate` run in some hundreds. Giving up
//! when idle turns that into a pause of `IDLE_LIMIT`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a poller polls with nothing to run before it returns.
pub const IDLE_LIMIT: Duration = Duration::from_micros(500);

/// Whether some pass is keeping threads awake now. One at a time: a
/// second pass (nested in the first, or on another thread) runs as it is.
/// A pass's thread that waits inside rayon may pick up another pass's
/// polling task, and each pass could end up under the other's, waiting
/// out `IDLE_LIMIT` at every turn.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Whether a pass is keeping the pool's threads awake now: then handing a
/// product's rows to another thread costs little more than a queue push,
/// since that thread is polling, and the matrix-vector products share out
/// smaller matrices than they otherwise would (`gemv`'s threshold). A hint
/// about the whole pool, not about the calling thread.
pub fn threads_are_awake() -> bool {
    IN_USE.load(Ordering::Relaxed)
}

/// Stores a value in a flag when dropped: at the end of a scope, or while
/// a panic unwinds through it.
struct StoreOnDrop<'a>(&'a AtomicBool, bool);

impl Drop for StoreOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Release);
    }
}

/// Runs `pass` on this thread while the pool's other threads poll for
/// work instead of sleeping, and returns its result.
pub fn with_threads_awake<R>(pass: impl FnOnce() -> R) -> R {
    if rayon::current_num_threads() < 2 || IN_USE.swap(true, Ordering::Acquire) {
        return pass();
    }
    // Released when this returns or unwinds.
    let _in_use = StoreOnDrop(&IN_USE, false);
    let done = AtomicBool::new(false);
    let caller = rayon::current_thread_index();
    rayon::in_place_scope(|scope| {
        scope.spawn_broadcast(|_, thread| {
            // The caller's own copy returns at once: it runs `pass`.
            if Some(thread.index()) == caller {
                return;
            }
            poll_until(&done);
        });
        // The pollers stop when the pass ends, a panic included (the
        // scope waits for them before the panic goes on).
        let _done = StoreOnDrop(&done, true);
        pass()
    })
}

/// Runs `f` on one of the global pool's threads, and returns its result:
/// at once when this thread is one already, else handing `f` to the pool
/// and waiting for it. A pass started outside the pool would hand it every
/// parallel product on its own and sleep until that was done, waking once
/// per product: decoding a 3.5M-parameter GPT-2 in f32 from the main
/// thread ran at 1165 tokens/s, and 1963 from a pool's thread (2-core Xeon,
/// medians of 5). Thread-local settings stay behind: the caller carries
/// over those `f` needs (whether autograd records, say).
pub fn on_a_pool_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    // From outside any pool, `scope` runs its body on a pool thread.
    rayon::scope(|_| f())
}

/// Runs the pool's tasks as they come until `done`, or until none has
/// come for [`IDLE_LIMIT`].
fn poll_until(done: &AtomicBool) {
    let mut idle_since = None;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = None;
            continue;
        }
        if idle_since.get_or_insert_with(Instant::now).elapsed() > IDLE_LIMIT {
            return;
        }
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;
    use std::collections::HashSet;
    use std::sync::Mutex;

    #[test]
    fn the_pass_runs_once_and_its_parallel_work_reaches_every_thread() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let (calls, threads) = (Mutex::new(0), Mutex::new(HashSet::new()));
        let sum = pool.install(|| {
            with_threads_awake(|| {
                *calls.lock().unwrap() += 1;
                (0..3000usize)
                    .into_par_iter()
                    .with_max_len(1)
                    .map(|i| {
                        threads.lock().unwrap().insert(rayon::current_thread_index());
                        // Enough work per item that every thread takes some.
                        std::thread::sleep(std::time::Duration::from_micros(20));
                        i
                    })
                    .sum::<usize>()
            })
        });
        assert_eq!(sum, 3000 * 2999 / 2);
        assert_eq!(*calls.lock().unwrap(), 1);
        assert_eq!(threads.lock().unwrap().len(), 3, "every thread took part");
    }

    #[test]
    fn a_pass_says_the_threads_are_awake_while_it_runs() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        // Other tests' passes share the flag, so only the inside is certain.
        assert!(pool.install(|| with_threads_awake(threads_are_awake)));
    }

    #[test]
    fn work_from_outside_the_pool_runs_on_a_pool_thread() {
        // The test harness's threads are not rayon's.
        assert_eq!(rayon::current_thread_index(), None);
        assert!(on_a_pool_thread(|| rayon::current_thread_index()).is_some());
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        // Already on one: the same thread runs it.
        let (outer, inner) =
            pool.install(|| (rayon::current_thread_index(), on_a_pool_thread(rayon::current_thread_index)));
        assert_eq!(outer, inner);
    }

    #[test]
    fn passes_nest_and_run_outside_a_pool() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let inner =
            pool.install(|| with_threads_awake(|| with_threads_awake(|| (0..100).into_par_iter().sum::<i32>())));
        assert_eq!(inner, 4950);
        // From a thread outside any pool: the global pool's threads poll.
        assert_eq!(with_threads_awake(|| (0..100).into_par_iter().sum::<i32>()), 4950);
        let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(single.install(|| with_threads_awake(|| 7)), 7);
    }

    #[test]
    fn passes_on_several_threads_of_one_pool_all_finish() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let sums: Vec<usize> = pool.install(|| {
            (0..12usize)
                .into_par_iter()
                .with_max_len(1)
                .map(|p| with_threads_awake(|| (0..1000usize).into_par_iter().map(|i| i * p).sum::<usize>()))
                .collect()
        });
        assert_eq!(sums, (0..12).map(|p| 499_500 * p).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_pass_panics_instead_of_hanging() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| with_threads_awake(|| -> usize { panic!("inside the pass") }))
        }));
        assert!(outcome.is_err());
        // The next pass still gets its pollers.
        assert_eq!(pool.install(|| with_threads_awake(|| (0..10).into_par_iter().sum::<i32>())), 45);
    }

    #[test]
    fn a_poller_under_a_task_its_pass_waits_for_lets_it_finish() {
        // The hang the idle limit prevents, made on purpose: a task of the
        // pass runs a poller while it waits for a part another thread took
        // (the other thread is made to take it). The poller's pass cannot end
        // before that task does, so its `done` is never set.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            let never = AtomicBool::new(false);
            let part_taken = AtomicBool::new(false);
            let sum = pool.install(|| {
                let (a, b) = rayon::join(
                    || {
                        // Waits for the other thread to steal `b`, then polls
                        // (here the other thread's `b` is already done, and
                        // nothing else will come).
                        while !part_taken.load(Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                        poll_until(&never);
                        1
                    },
                    || {
                        part_taken.store(true, Ordering::Release);
                        2
                    },
                );
                a + b
            });
            sender.send(sum).unwrap();
        });
        let sum = receiver.recv_timeout(std::time::Duration::from_secs(20)).expect("the poller never returned");
        assert_eq!(sum, 3);
    }
}
