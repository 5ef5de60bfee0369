//! The CPU's peaks, measured: what "GFLOP/s" and "GB/s" are fractions of.
//!
//! Arithmetic. A core's peak is (FMA units) × (lanes per vector) × 2 FLOPs
//! × clock. Rather than trust a datasheet (the clock under load, turbo and
//! how many FMA units run 512-bit vectors all vary), each thread runs a loop
//! of fused multiply-adds with nothing else in it: 24 independent
//! accumulator chains, enough to cover the FMA latency on every unit, in the
//! widest vectors the CPU has (AVX-512: 16 floats; AVX2: 8). The threads run
//! it at once, so a clock that drops with more busy cores is counted, and
//! their rates add up to the peak that a training step's FLOP/s is compared
//! with (`bench train` reports that fraction as its utilisation, MFU). On a
//! CPU with neither instruction set there is no vector FMA to measure and
//! the peak is unknown (`None`).
//!
//! Memory. Decoding one token reads every weight once, so its speed is
//! bounded by how fast memory can be read. [`read_bandwidth`] times the
//! plainest read there is, the threads summing a buffer as large as the
//! weights (far larger than the caches), which is what `bench generate`
//! compares its bytes per token with.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::time::Instant;

use rayon::prelude::*;

use super::isa::Isa;

/// Independent accumulators per thread (the register tile of the GEMM uses
/// as many).
const CHAINS: usize = 24;
/// Loop iterations per timing: 24 FMAs each, a few milliseconds.
const ITERATIONS: usize = 1 << 20;
/// Timings per thread; the fastest counts (a timer interrupt or another
/// process can only slow one down).
const TRIES: usize = 5;

/// Single-precision FLOP/s of all threads of the current rayon pool running
/// FMAs together, or `None` without AVX2+FMA or AVX-512.
pub fn fma_peak_flops() -> Option<f64> {
    let isa = Isa::detect();
    if isa == Isa::Scalar {
        return None;
    }
    let rates = rayon::broadcast(|_| (0..TRIES).map(|_| thread_rate(isa)).fold(0.0, f64::max));
    Some(rates.iter().sum())
}

/// FLOP/s of one timing of the FMA loop on this thread.
fn thread_rate(isa: Isa) -> f64 {
    let start = Instant::now();
    let flops_per_iteration = match isa {
        // SAFETY: the instruction sets were detected on this CPU.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { fma_loop_avx512() },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { fma_loop_avx2() },
        _ => unreachable!("no vector FMA to measure"),
    };
    let seconds = start.elapsed().as_secs_f64();
    (ITERATIONS * flops_per_iteration) as f64 / seconds
}

/// Runs the loop in 512-bit vectors; returns the FLOPs of one iteration.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512() -> usize {
    let (a, b) = (_mm512_set1_ps(1.000_001), _mm512_set1_ps(-1e-7));
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..ITERATIONS {
        for x in &mut acc {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    // Kept alive so that the loop is not optimised away.
    std::hint::black_box(acc);
    CHAINS * 16 * 2
}

/// Runs the loop in 256-bit vectors; returns the FLOPs of one iteration.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2() -> usize {
    let (a, b) = (_mm256_set1_ps(1.000_001), _mm256_set1_ps(-1e-7));
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..ITERATIONS {
        for x in &mut acc {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    std::hint::black_box(acc);
    CHAINS * 8 * 2
}

/// Bytes per second the threads of the current rayon pool read from a
/// buffer of `bytes` (rounded down to whole floats), summing it in
/// parallel: the best of three passes, after one that pages it in.
pub fn read_bandwidth(bytes: usize) -> f64 {
    let floats = vec![1.0f32; (bytes / 4).max(1)];
    // One contiguous part per thread, each read front to back: a single
    // stream per core, which the hardware prefetcher follows.
    let part = floats.len().div_ceil(rayon::current_num_threads());
    let pass = || floats.par_chunks(part).map(stream_sum).sum::<f32>();
    std::hint::black_box(pass());
    let best = (0..3)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(pass());
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    (floats.len() * 4) as f64 / best
}

/// Sums a slice in 32 running partial sums (two or four vector registers),
/// so that many loads are in flight at once and the loop waits only on
/// memory. (`lanes::sum`'s 16 partials, right for rows already in cache,
/// read main memory at two thirds of this speed: its chains of dependent
/// adds fill the scheduler before enough cache misses are outstanding.)
fn stream_sum(xs: &[f32]) -> f32 {
    const PARTIALS: usize = 32;
    let mut partial = [0.0f32; PARTIALS];
    let groups = xs.chunks_exact(PARTIALS);
    let tail: f32 = groups.remainder().iter().sum();
    for group in groups {
        for (p, &x) in partial.iter_mut().zip(group) {
            *p += x;
        }
    }
    partial.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_measured_where_there_is_a_vector_fma() {
        match fma_peak_flops() {
            // Any vector FMA unit does well over a GFLOP/s; the upper bound
            // catches a loop the compiler removed (it would time as ~0 s).
            Some(flops) => {
                eprintln!("FMA peak: {:.1} GFLOP/s", flops / 1e9);
                assert!(flops > 1e9 && flops < 1e14, "{flops} FLOP/s")
            }
            None => assert_eq!(Isa::detect(), Isa::Scalar),
        }
    }

    #[test]
    fn memory_reads_at_a_plausible_rate() {
        // 16 MiB: fast to test; any memory reads 100 MB/s, none 100 TB/s.
        let rate = read_bandwidth(16 << 20);
        assert!(rate > 1e8 && rate < 1e14, "{rate} B/s");
    }
}
