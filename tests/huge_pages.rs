//! The huge-page allocator installed as this test binary's global
//! allocator, as the `scratchgpt` binary installs it: big blocks come
//! 2 MiB-aligned, keep their contents through growing and shrinking across
//! the threshold, and (where the system has transparent huge pages) are
//! backed by 2 MiB pages only when advised.
//!
//! One test: the huge-page figure is the whole process's, so nothing else
//! may allocate big blocks beside it.

use scratchgpt::tensor::huge_pages::{
    resident_huge_page_bytes, set_advising, system_mode, HugePageAllocator, HUGE_PAGE_BYTES,
};

#[global_allocator]
static ALLOCATOR: HugePageAllocator = HugePageAllocator;

fn aligned<T>(v: &[T]) -> bool {
    v.as_ptr() as usize % HUGE_PAGE_BYTES == 0
}

#[test]
fn big_blocks_are_aligned_keep_their_contents_and_sit_on_huge_pages_when_advised() {
    // Grown one element at a time from nothing to 3 MiB: every reallocation,
    // small to small, small to big and big to big, keeps the values.
    let mut v: Vec<u32> = Vec::new();
    for i in 0..(3 * HUGE_PAGE_BYTES / 2 / 4) as u32 {
        v.push(i);
    }
    assert!(aligned(&v), "a block of {} bytes is not 2 MiB-aligned", v.capacity() * 4);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32), "growing lost values");
    // Big to small.
    v.truncate(1000);
    v.shrink_to_fit();
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32), "shrinking lost values");
    drop(v);
    // Zeroed big blocks are zeroes, and aligned.
    let zeros = vec![0u64; 5 * HUGE_PAGE_BYTES / 8];
    assert!(aligned(&zeros) && zeros.iter().all(|&z| z == 0));
    drop(zeros);

    let mode = system_mode();
    let Some(before) = resident_huge_page_bytes().filter(|_| matches!(mode.as_deref(), Some("madvise" | "always")))
    else {
        eprintln!("skipped the page check: transparent huge pages are {mode:?} here");
        return;
    };
    // 64 MiB touched right after allocation: on huge pages.
    let touched = vec![1u8; 64 << 20];
    let with_advice = resident_huge_page_bytes().unwrap();
    assert!(
        with_advice >= before + HUGE_PAGE_BYTES as u64,
        "64 MiB advised and touched, but huge pages went from {before} to {with_advice} bytes"
    );
    if mode.as_deref() == Some("madvise") {
        // Without the advice the system's default applies: 4 KiB pages.
        set_advising(false);
        let unadvised = vec![1u8; 64 << 20];
        let without_advice = resident_huge_page_bytes().unwrap();
        set_advising(true);
        // (The kernel's background thread may meanwhile merge a few pages of
        // earlier advised blocks into huge pages; 64 MiB of them would not be.)
        assert!(
            without_advice < with_advice + (16 << 20),
            "64 MiB not advised, yet huge pages went from {with_advice} to {without_advice} bytes"
        );
        drop(unadvised);
    }
    drop(touched);
}
