//! Recycling large tensor buffers.
//!
//! A training step allocates the same activation and gradient buffers every
//! step and frees them all by the next. The system allocator returns big
//! blocks to the kernel on free, so each new step paid again for fresh,
//! zero-filled pages: on the tiny preset about a third of a step went to page
//! faults. Instead, a dropped tensor's buffer (if large) is kept here, keyed
//! by element type and length, and the next op that needs that many
//! elements takes it back. Values are never reused: a buffer comes out empty
//! (length 0, capacity ready) and the op writes every element.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::dtype::Element;

/// Buffers smaller than this many bytes go straight back to the allocator.
const MIN_BYTES: usize = 64 * 1024;
/// The threshold in force: `MIN_BYTES`, or 32 MiB once
/// [`keep_freed_memory`] has the system allocator recycle everything smaller.
static POOLED_FROM: AtomicUsize = AtomicUsize::new(MIN_BYTES);
/// Where glibc's allocator switches to `mmap` once tuned.
const MMAP_THRESHOLD: usize = 32 << 20;
/// The pool never holds more than this; beyond it buffers are freed.
const MAX_POOLED_BYTES: usize = 1 << 30;

#[derive(Default)]
struct Pool {
    free: HashMap<(TypeId, usize), Vec<Box<dyn Any + Send>>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// An empty vector with room for `len` elements, recycled when one fits.
pub fn take<T: Element>(len: usize) -> Vec<T> {
    let bytes = len * std::mem::size_of::<T>();
    if bytes >= POOLED_FROM.load(Ordering::Relaxed) {
        let mut guard = POOL.lock().unwrap();
        let pool = guard.get_or_insert_with(Pool::default);
        if let Some(buffer) = pool.free.get_mut(&(TypeId::of::<T>(), len)).and_then(Vec::pop) {
            pool.bytes -= bytes;
            let mut v = *buffer.downcast::<Vec<T>>().expect("keyed by type");
            v.clear();
            return v;
        }
    }
    Vec::with_capacity(len)
}

/// `len` zeros, in a recycled buffer when one fits.
pub fn zeroed<T: Element>(len: usize) -> Vec<T> {
    let mut v = take(len);
    v.resize(len, T::ZERO);
    v
}

/// Keeps a large buffer for reuse (called when a tensor's storage drops).
pub(crate) fn give<T: Element>(v: Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < POOLED_FROM.load(Ordering::Relaxed) {
        return;
    }
    let mut guard = POOL.lock().unwrap();
    let pool = guard.get_or_insert_with(Pool::default);
    if pool.bytes + bytes > MAX_POOLED_BYTES {
        return;
    }
    pool.bytes += bytes;
    pool.free.entry((TypeId::of::<T>(), v.capacity())).or_default().push(Box::new(v));
}

/// Tells glibc's allocator to keep freed memory for reuse, once at
/// program start (the command line does; a library must not decide it for
/// its host program).
///
/// By default glibc serves a request above a threshold that adapts up to
/// 32 MiB with its own `mmap` and gives it back to the kernel on `free`,
/// returns the top of its heap to the kernel once 128 KiB lie free there,
/// and gives each thread (rayon's workers too) an arena of its own. A
/// training step frees and reallocates hundreds of megabytes of activations
/// and gradients, so every step paid again for fresh zero-filled pages
/// (gpt2-small, batch 4×64: ~95,000 page faults a step, a fifth of its
/// time). Here: the threshold fixed at 32 MiB, trimming only past 1 GiB, one
/// arena. A freed activation's pages then serve the next request of any
/// size, and this pool keeps only what glibc still maps afresh, buffers of
/// 32 MiB and more (logits, the vocabulary-sized embedding gradient).
/// Measured: ~600 page faults a step, and a lower peak (2.4 GB against
/// 3.1 GB), since medium buffers no longer wait here for an exact-length
/// match while glibc could have reused their memory.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        const M_ARENA_MAX: i32 = -8;
        // SAFETY: mallopt only changes allocator parameters; the values are
        // within the ranges glibc documents (the threshold ≤ 32 MiB).
        unsafe {
            mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD as i32);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
            mallopt(M_ARENA_MAX, 1);
        }
        POOLED_FROM.store(MMAP_THRESHOLD, Ordering::Relaxed);
    }
}

/// Frees every pooled buffer (for long-lived programs between phases).
pub fn clear() {
    *POOL.lock().unwrap() = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_empty() {
        let len = MIN_BYTES; // f32: 4 × MIN_BYTES bytes, above the threshold
        let mut v = zeroed::<f32>(len);
        v[0] = 7.0;
        let ptr = v.as_ptr();
        give(v);
        let w = take::<f32>(len);
        assert_eq!(w.as_ptr(), ptr);
        assert!(w.is_empty() && w.capacity() >= len);
        // Another type or length never gets it.
        give(w);
        let (longer, other_type) = (take::<f32>(len + 1), take::<i64>(len / 2));
        assert_ne!(longer.as_ptr(), ptr);
        assert_ne!(other_type.as_ptr(), ptr as *const i64);
    }
}
