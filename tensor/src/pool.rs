//! Recycling large tensor buffers.
//!
//! A training step allocates the same activation and gradient buffers every
//! step and frees them all by the next. The system allocator returns big
//! blocks to the kernel on free, so each new step paid again for fresh,
//! zero-filled pages: on the tiny preset about a third of a step went to page
//! faults. Instead, a dropped tensor's buffer (if large) is kept here, keyed
//! by element type and length, and the next op that needs that many
//! elements takes it back. A buffer comes out empty (length 0, capacity
//! ready) for an op that fills it, or, for an op that overwrites every
//! element anyway ([`for_overwrite`]), holding its old values, which spares
//! zeroing it first.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
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
/// Below `POOLED_FROM`, buffers handed out by [`for_overwrite`] are still
/// kept from this size up (activations: layer norm, GELU and attention
/// outputs and their gradients).
const OVERWRITTEN_FROM: usize = 1 << 20;
/// Addresses remembered as `for_overwrite` buffers, at most (a buffer that
/// leaves its tensor without coming back would otherwise stay listed).
const MAX_OVERWRITTEN: usize = 1 << 12;

#[derive(Default)]
struct Pool {
    free: HashMap<(TypeId, usize), Vec<Box<dyn Any + Send>>>,
    bytes: usize,
    /// Addresses of the medium buffers `for_overwrite` handed out.
    overwritten: HashSet<usize>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// An empty vector with room for `len` elements, recycled when one fits.
pub fn take<T: Element>(len: usize) -> Vec<T> {
    recycled(len).unwrap_or_else(|| Vec::with_capacity(len))
}

/// `len` zeros, in a recycled buffer when one fits.
pub fn zeroed<T: Element>(len: usize) -> Vec<T> {
    let mut v = take(len);
    v.resize(len, T::ZERO);
    v
}

/// `len` elements for an op that overwrites every one of them: a recycled
/// buffer as its last tensor left it, or zeros when none fits. Zeroing a
/// 25 MB activation only for the kernel to overwrite it would cost a pass
/// over memory on one thread; a recycled buffer already holds `len` valid
/// values, so it is handed out as it is.
///
/// Such buffers are kept when they come back even below `POOLED_FROM`
/// (down to 1 MiB), since reusing them spares that pass: the same
/// activations come back every step. Other medium buffers (a weight's
/// gradient) still go back to the allocator, which reuses their memory for
/// requests of any size and keeps the peak lower than idle pooled buffers
/// would.
pub fn for_overwrite<T: Element>(len: usize) -> Vec<T> {
    let v = match recycled(len) {
        Some(mut v) => {
            // SAFETY: `give` keeps only buffers whose every element was
            // initialised (length equal to capacity, here `len`); `clear`
            // left those values in place, and T is plain data (Copy).
            unsafe { v.set_len(len) };
            v
        }
        None => vec![T::ZERO; len],
    };
    let bytes = len * std::mem::size_of::<T>();
    if (OVERWRITTEN_FROM..POOLED_FROM.load(Ordering::Relaxed)).contains(&bytes) {
        let mut guard = POOL.lock().unwrap();
        let listed = &mut guard.get_or_insert_with(Pool::default).overwritten;
        if listed.len() >= MAX_OVERWRITTEN {
            listed.clear();
        }
        listed.insert(v.as_ptr() as usize);
    }
    v
}

/// The smallest buffer the pool keeps of any kind.
fn smallest_kept() -> usize {
    POOLED_FROM.load(Ordering::Relaxed).min(OVERWRITTEN_FROM)
}

/// A pooled buffer of exactly `len` elements' capacity, emptied.
fn recycled<T: Element>(len: usize) -> Option<Vec<T>> {
    let bytes = len * std::mem::size_of::<T>();
    if bytes < smallest_kept() {
        return None;
    }
    let mut guard = POOL.lock().unwrap();
    let pool = guard.get_or_insert_with(Pool::default);
    let buffer = pool.free.get_mut(&(TypeId::of::<T>(), len)).and_then(Vec::pop)?;
    pool.bytes -= bytes;
    let mut v = *buffer.downcast::<Vec<T>>().expect("keyed by type");
    v.clear();
    Some(v)
}

/// Keeps a large buffer for reuse (called when a tensor's storage drops).
pub(crate) fn give<T: Element>(v: Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    // Only full buffers, so that a recycled one is initialised throughout.
    if bytes < smallest_kept() || v.len() != v.capacity() {
        return;
    }
    let mut guard = POOL.lock().unwrap();
    let pool = guard.get_or_insert_with(Pool::default);
    let overwritten = pool.overwritten.remove(&(v.as_ptr() as usize));
    if (bytes < POOLED_FROM.load(Ordering::Relaxed) && !overwritten) || pool.bytes + bytes > MAX_POOLED_BYTES {
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
/// 32 MiB and more (logits, the vocabulary-sized embedding gradient), and
/// the activations [`for_overwrite`] hands out.
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

/// Frees every pooled buffer (for long-lived programs between phases) and
/// hands the allocator's free memory back to the system: once
/// [`keep_freed_memory`] has told glibc to keep freed pages for reuse, a
/// phase's buffers would otherwise stay resident (loading an f32
/// gpt2-small folder, which first builds a random model, left ~850 MiB
/// resident for 475 MiB of weights).
pub fn clear() {
    *POOL.lock().unwrap() = None;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe {
            malloc_trim(0);
        }
    }
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
        // Back in the pool (full, as a tensor's buffer comes back), another
        // type or length never gets it, and its own still does. (An empty
        // one would go to the allocator, which may hand the same address to
        // anyone.)
        let mut w = w;
        w.resize(len, 0.0);
        give(w);
        let (longer, other_type) = (take::<f32>(len + 1), take::<i64>(len / 2));
        assert_ne!(longer.as_ptr(), ptr);
        assert_ne!(other_type.as_ptr(), ptr as *const i64);
        let own = take::<f32>(len);
        assert_eq!(own.as_ptr(), ptr);
    }

    #[test]
    fn for_overwrite_hands_back_full_buffers_as_they_were() {
        let len = MIN_BYTES / 2 + 3; // f64: above the threshold, a length no other test uses
        let fresh = for_overwrite::<f64>(len);
        assert!(fresh.len() == len && fresh.iter().all(|&x| x == 0.0));
        let mut v = fresh;
        v[len - 1] = 5.0;
        let ptr = v.as_ptr();
        give(v);
        let again = for_overwrite::<f64>(len);
        assert_eq!((again.as_ptr(), again.len(), again[len - 1]), (ptr, len, 5.0));
        // A buffer not filled to its capacity is never kept: its tail was
        // never written.
        let mut partial = Vec::<f64>::with_capacity(len);
        partial.push(1.0);
        let ptr = partial.as_ptr();
        give(partial);
        give(again);
        let reused = for_overwrite::<f64>(len);
        assert_ne!(reused.as_ptr(), ptr);
    }
}
