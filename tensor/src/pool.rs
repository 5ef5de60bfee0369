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
use std::sync::Mutex;

use crate::dtype::Element;

/// Buffers smaller than this many bytes go straight back to the allocator.
const MIN_BYTES: usize = 64 * 1024;
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
    if bytes >= MIN_BYTES {
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
    if bytes < MIN_BYTES {
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
