//! Big buffers on 2 MiB pages: an allocator for memory-bound decoding.
//!
//! The CPU finds a virtual address's physical page through the TLB, a small
//! cache of page-table entries. With the usual 4 KiB pages, streaming
//! gpt2-small's 250 MB of f16 weights for one token touches 61,000 pages,
//! each a TLB miss and a walk of the page tables beside the stream's own
//! loads; on 2 MiB pages the same weights are 120 pages.
//! Measured on a 2-core AMD EPYC (one `[200000, 768]` f16 matrix-vector
//! product, 2 threads, best of 5): 28.5 GB/s on 4 KiB pages against 34 on
//! 2 MiB pages, and in another hour 35 against 47.
//!
//! Only whole 2 MiB pages inside a block get them: a block under 2 MiB,
//! and the last partial page of a bigger one, stay on 4 KiB pages. So
//! gpt2-small's f16 weights sit 192 of 248 MiB on huge pages, and
//! SmolLM2-135M's f16 layer matrices (each under 2 MiB) not at all,
//! only its embedding. Decoding, medians of 7 runs alternating
//! with `SCRATCHGPT_HUGE_PAGES=0`, tokens/s: gpt2-small f32 67.8 → 80.0;
//! f16, int8 and SmolLM2's f16 and int4 moved −4% to +9%, within the
//! noise of a machine whose memory other guests share (a 10-run f16
//! comparison earlier gave 102 → 111). Training gpt2-small, 1–2.5% faster.
//!
//! Linux gives an anonymous mapping 2 MiB pages ("transparent huge pages")
//! when the range is 2 MiB-aligned and either the system's mode is
//! `always`, or it is `madvise` (the usual default) and the program asked
//! with `madvise(MADV_HUGEPAGE)` before touching the memory: pages already
//! faulted in stay 4 KiB. Tensors hold their data in plain `Vec`s, which
//! take memory from the global allocator, so the request is made there:
//! [`HugePageAllocator`] wraps the system allocator, and every block of
//! 2 MiB or more comes 2 MiB-aligned and advised. Smaller blocks pass
//! through unchanged. The `scratchgpt` binary installs it with
//! `#[global_allocator]`; a program using the library may do the same.
//!
//! Costs: a big block is aligned by the system's `memalign`, which may
//! leave up to 2 MiB before it for smaller blocks to reuse, and a 2 MiB
//! page is resident as soon as one byte of it is touched. Nothing changes
//! where the system has no transparent huge pages (other systems, or the
//! mode `never`): the blocks are aligned and the advice does nothing.
//! [`set_advising`]`(false)` stops the advice for blocks allocated after it
//! (the CLI's `SCRATCHGPT_HUGE_PAGES=0`), to measure the difference.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// The size of a huge page on x86-64 and most arm64 kernels, and the size
/// from which a block is allocated on them.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

static ADVISING: AtomicBool = AtomicBool::new(true);

/// Whether blocks allocated from now on are advised to use huge pages.
pub fn set_advising(on: bool) {
    ADVISING.store(on, Ordering::Relaxed);
}

/// The global allocator that puts big blocks on huge pages (see the module
/// documentation). Install it with
/// `#[global_allocator] static ALLOCATOR: HugePageAllocator = HugePageAllocator;`.
pub struct HugePageAllocator;

/// The layout a block is really allocated with: 2 MiB-aligned from 2 MiB
/// up, as asked otherwise. Every method decides by this one rule, so a
/// block is freed with the alignment it was allocated with.
pub fn system_layout(layout: Layout) -> Layout {
    if layout.size() < HUGE_PAGE_BYTES {
        return layout;
    }
    Layout::from_size_align(layout.size(), layout.align().max(HUGE_PAGE_BYTES))
        .expect("a size that fit its layout fits a 2 MiB alignment")
}

/// Asks the kernel for huge pages over the whole 2 MiB pages of a fresh
/// block (its start is 2 MiB-aligned; a partial last page stays 4 KiB).
fn advise(block: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !block.is_null() && ADVISING.load(Ordering::Relaxed) {
        unsafe extern "C" {
            fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        // SAFETY: the range lies inside the block just allocated; the advice
        // changes how its pages are backed, never their contents. A kernel
        // without huge pages refuses it (EINVAL), which changes nothing.
        unsafe {
            madvise(block, size - size % HUGE_PAGE_BYTES, MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (block, size);
}

// SAFETY: every block comes from `System` with `system_layout(layout)` and
// goes back to it with the same layout; the advice does not touch memory.
unsafe impl GlobalAlloc for HugePageAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let real = system_layout(layout);
        // SAFETY: `real` has the caller's non-zero size.
        let block = unsafe { System.alloc(real) };
        if real != layout {
            advise(block, layout.size());
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let real = system_layout(layout);
        if real == layout {
            // SAFETY: as in `alloc`.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // Advised before the zeroes touch it, so they fault in huge pages
        // (the system allocator zeroes over-aligned blocks by hand too).
        // SAFETY: as in `alloc`; the block holds `layout.size()` bytes.
        unsafe {
            let block = System.alloc(real);
            advise(block, layout.size());
            if !block.is_null() {
                std::ptr::write_bytes(block, 0, layout.size());
            }
            block
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: allocated above with this layout's `system_layout`.
        unsafe { System.dealloc(block, system_layout(layout)) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` fits `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if system_layout(layout) == layout && system_layout(new_layout) == new_layout {
            // Small to small: the system may grow the block in place.
            // SAFETY: forwarded from the caller.
            return unsafe { System.realloc(block, layout, new_size) };
        }
        // To, from or between big blocks: a fresh block (advised before the
        // copy touches it) and a copy, as the system does for over-aligned
        // blocks anyway.
        // SAFETY: `new_layout` is valid (see above); both blocks hold at
        // least the bytes copied, and the old one is freed once.
        unsafe {
            let fresh = self.alloc(new_layout);
            if !fresh.is_null() {
                std::ptr::copy_nonoverlapping(block, fresh, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            fresh
        }
    }
}

/// Bytes of this process's anonymous memory on huge pages now
/// (`AnonHugePages` of `/proc/self/smaps_rollup`), or `None` where the
/// kernel does not report it.
pub fn resident_huge_page_bytes() -> Option<u64> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kib: u64 = line["AnonHugePages:".len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The system's transparent huge page mode (`always`, `madvise` or
/// `never`: the bracketed word of
/// `/sys/kernel/mm/transparent_hugepage/enabled`), or `None` where there
/// is no such file.
pub fn system_mode() -> Option<String> {
    let modes = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = modes.find('[')? + 1;
    let end = start + modes[start..].find(']')?;
    Some(modes[start..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_from_two_mib_up_are_aligned_to_it_and_smaller_ones_are_left_alone() {
        let small = Layout::from_size_align(HUGE_PAGE_BYTES - 1, 8).unwrap();
        assert_eq!(system_layout(small), small);
        let big = Layout::from_size_align(HUGE_PAGE_BYTES, 8).unwrap();
        assert_eq!(system_layout(big).align(), HUGE_PAGE_BYTES);
        assert_eq!(system_layout(big).size(), HUGE_PAGE_BYTES);
        let aligned_more = Layout::from_size_align(3 * HUGE_PAGE_BYTES, 4 * HUGE_PAGE_BYTES).unwrap();
        assert_eq!(system_layout(aligned_more), aligned_more);
    }
}
