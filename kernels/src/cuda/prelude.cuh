/*
 * prelude.cuh: what every kernel source shares.
 *
 * NVRTC compiles one string at a time and finds no headers on its own, so
 * this text is put in front of each .cu source before compiling (see
 * sources.rs). It holds three small ideas:
 *
 * 1. Half-precision types without cuda_fp16.h. `f16` and `bf16` are 16 bits
 *    each. bf16 is the top half of an f32 (same exponent, 7 mantissa bits),
 *    so widening is a shift and narrowing is rounding the low 16 bits away
 *    (to nearest, ties to even, as the `half` crate does on the CPU). f16
 *    has its own exponent range, so conversions use the hardware's cvt
 *    instructions through inline PTX. Arithmetic always happens in f32.
 *
 * 2. A strided layout passed by value: a tensor's shape, strides and offset
 *    (at most MAX_DIMS dimensions). Element i of the row-major order lives
 *    at offset + sum_d coord_d(i) * stride_d; `contiguous` short-cuts that
 *    to offset + i. Broadcasting is a stride of 0, a transpose is swapped
 *    strides: kernels that take a layout read any view without a copy.
 *
 * 3. Reductions inside a block: each warp combines its 32 values with
 *    shuffles, one value per warp goes through shared memory, and the first
 *    warp's lanes combine those. The tree has a fixed shape, so the same
 *    input always gives the same bits.
 */

#define MAX_DIMS 8

typedef long long i64;
typedef signed char i8;

struct __align__(2) f16 { unsigned short bits; };
struct __align__(2) bf16 { unsigned short bits; };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float(((unsigned int)x.bits) << 16); }
__device__ __forceinline__ float to_float(f16 x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_float<bf16>(float x) {
    unsigned int u = __float_as_uint(x);
    bf16 out;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        // NaN: keep the sign and top payload bits, force it quiet.
        out.bits = (unsigned short)((u >> 16) | 0x0040u);
        return out;
    }
    // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit.
    u += 0x7fffu + ((u >> 16) & 1u);
    out.bits = (unsigned short)(u >> 16);
    return out;
}
template <> __device__ __forceinline__ f16 from_float<f16>(float x) {
    f16 out;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(out.bits) : "f"(x));
    return out;
}

/* Every dtype as a double and back, with Rust's `as` rules for integers:
   truncate toward zero, saturate at the type's range, NaN becomes 0. */
__device__ __forceinline__ double to_double(float x) { return (double)x; }
__device__ __forceinline__ double to_double(double x) { return x; }
__device__ __forceinline__ double to_double(f16 x) { return (double)to_float(x); }
__device__ __forceinline__ double to_double(bf16 x) { return (double)to_float(x); }
__device__ __forceinline__ double to_double(i64 x) { return (double)x; }
__device__ __forceinline__ double to_double(i8 x) { return (double)x; }

template <typename T> __device__ __forceinline__ T from_double(double x);
template <> __device__ __forceinline__ float from_double<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ double from_double<double>(double x) { return x; }
template <> __device__ __forceinline__ f16 from_double<f16>(double x) { return from_float<f16>((float)x); }
template <> __device__ __forceinline__ bf16 from_double<bf16>(double x) { return from_float<bf16>((float)x); }
template <> __device__ __forceinline__ i64 from_double<i64>(double x) {
    if (x != x) return 0;
    if (x >= 9223372036854775807.0) return 9223372036854775807LL;
    if (x <= -9223372036854775808.0) return (-9223372036854775807LL - 1);
    return (i64)x;
}
template <> __device__ __forceinline__ i8 from_double<i8>(double x) {
    if (x != x) return 0;
    if (x >= 127.0) return 127;
    if (x <= -128.0) return -128;
    return (i8)(int)x;
}

struct StridedLayout {
    int rank;
    int contiguous;
    i64 offset;
    i64 dims[MAX_DIMS];
    i64 strides[MAX_DIMS];
};

/* Buffer position of element `i` (row-major order) of a layout. */
__device__ __forceinline__ i64 layout_offset(const StridedLayout& l, i64 i) {
    if (l.contiguous) return l.offset + i;
    i64 off = l.offset;
    for (int d = l.rank - 1; d >= 0; --d) {
        i64 size = l.dims[d];
        off += (i % size) * l.strides[d];
        i /= size;
    }
    return off;
}

/* Grid-stride loop over n elements: any grid size covers any n. */
#define FOR_EACH_INDEX(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

#define NEG_INFINITY_F (__int_as_float(0xff800000))

/* Sum over the block; every thread gets the result. blockDim.x must be a
   multiple of 32 and `scratch` hold 32 values. */
template <typename T> __device__ T block_sum(T v, T* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* scratch may still be read by a previous call */
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (T)0;
    return warp_sum(v);
}

__device__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : NEG_INFINITY_F;
    return warp_max(v);
}
