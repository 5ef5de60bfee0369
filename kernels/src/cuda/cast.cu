/*
 * cast.cu: converting between dtypes.
 *
 *   cast_S_to_D(x, x_layout, y, n):  y[i] = D(x[x_layout(i)])
 *
 * Every conversion goes through a double, which holds every value of every
 * dtype here exactly (int64 ids beyond 2^53 aside), and then follows Rust's
 * `as`: floats to integers truncate toward zero and saturate at the
 * integer's range, NaN becomes 0; narrowing to f16/bf16 rounds to nearest,
 * ties to even. These are the CPU's rules (tensor::to_dtype), so a cast
 * gives the same bits on both devices. The input may be any strided view;
 * the output is dense, so a cast also makes a tensor contiguous.
 */

template <typename S, typename D>
__device__ void cast(const S* x, StridedLayout lx, D* y, i64 n) {
    FOR_EACH_INDEX(i, n) { y[i] = from_double<D>(to_double(x[layout_offset(lx, i)])); }
}

#define CAST(SN, S, DN, D)                                                                      \
    extern "C" __global__ void cast_##SN##_to_##DN(const S* x, StridedLayout lx, D* y, i64 n) { \
        cast<S, D>(x, lx, y, n);                                                                \
    }

#define CAST_FROM(SN, S)       \
    CAST(SN, S, f32, float)    \
    CAST(SN, S, f16, f16)      \
    CAST(SN, S, bf16, bf16)    \
    CAST(SN, S, i64, i64)      \
    CAST(SN, S, i8, i8)

CAST_FROM(f32, float)
CAST_FROM(f16, f16)
CAST_FROM(bf16, bf16)
CAST_FROM(i64, i64)
CAST_FROM(i8, i8)
