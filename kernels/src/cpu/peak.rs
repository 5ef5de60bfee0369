//! The CPU's arithmetic peak, measured: what "GFLOP/s" is a fraction of.
//!
//! A core's peak is (FMA units) × (lanes per vector) × 2 FLOPs × clock.
//! Rather than trust a datasheet (the clock under load, turbo and how many
//! FMA units run 512-bit vectors all vary), each thread runs a loop of
//! fused multiply-adds with nothing else in it: 24 independent accumulator
//! chains, enough to cover the FMA latency on every unit, in the widest
//! vectors the CPU has (AVX-512: 16 floats; AVX2: 8). The threads run it at
//! once, so a clock that drops with more busy cores is counted, and their
//! rates add up to the peak that a training step's FLOP/s is compared with
//! (`bench train` reports that fraction as its utilisation, MFU).
//!
//! On a CPU with neither instruction set there is no vector FMA to measure
//! and the peak is unknown (`None`).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::time::Instant;

use super::gemv::Isa;

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
}
