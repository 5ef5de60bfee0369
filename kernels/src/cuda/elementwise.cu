/*
 * elementwise.cu: y = f(x) and z = f(a, b) over strided, broadcast views.
 *
 * Each output element is independent, so one thread handles one element
 * (grid-stride loop). Inputs are read through layouts (prelude.cuh), which
 * is how a bias [C] is added to activations [B, T, C] without copying it:
 * the host passes the bias with the activations' shape and stride 0 along
 * B and T. Outputs are always dense and row-major.
 *
 * Float math runs in f32 whatever the storage type (f16 and bf16 are
 * widened on load and rounded on store), as on the CPU. Ops with a scalar
 * (x + c, max(x, c), ...) compute in double and round once, which is what
 * the CPU's f32 path does, so those results are bit-identical. int64 has
 * the few ops that make sense for integers; anything else is refused on
 * the host before a launch.
 *
 * Op codes are shared with elementwise.rs:
 *   unary:   0 neg  1 abs  2 exp  3 log  4 sqrt  5 tanh  6 sigmoid  7 relu
 *            8 gelu  9 gelu_grad  10 square  11 recip  12 sin  13 cos  14 silu
 *   scalar: 20 x+c  21 x-c  22 x*c  23 x/c  24 max(x,c)  25 min(x,c)  26 x^c
 *   binary:  0 add  1 sub  2 mul  3 div  4 maximum  5 minimum  6 pow
 *   compare: 0 ==  1 !=  2 <  3 <=  4 >  5 >=
 */

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

/* GELU with the tanh approximation GPT-2 uses, and its derivative. */
__device__ __forceinline__ float gelu_tanh(float x) {
    float inner = SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}
__device__ __forceinline__ float gelu_tanh_grad(float x) {
    float th = tanhf(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
    float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

__device__ __forceinline__ float unary_float(int op, float v, double c) {
    switch (op) {
        case 0: return -v;
        case 1: return fabsf(v);
        case 2: return expf(v);
        case 3: return logf(v);
        case 4: return sqrtf(v);
        case 5: return tanhf(v);
        case 6: return 1.0f / (1.0f + expf(-v));
        case 7: return v > 0.0f ? v : 0.0f;
        case 8: return gelu_tanh(v);
        case 9: return gelu_tanh_grad(v);
        case 10: return v * v;
        case 11: return 1.0f / v;
        case 12: return sinf(v);
        case 13: return cosf(v);
        case 14: return v / (1.0f + expf(-v));
        case 20: return (float)((double)v + c);
        case 21: return (float)((double)v - c);
        case 22: return (float)((double)v * c);
        case 23: return (float)((double)v / c);
        case 24: return (float)fmax((double)v, c);
        case 25: return (float)fmin((double)v, c);
        case 26: return powf(v, (float)c);
        default: return __int_as_float(0x7fc00000); /* NaN: unknown op */
    }
}

__device__ __forceinline__ i64 unary_int(int op, i64 v, double c) {
    switch (op) {
        case 0: return -v;
        case 1: return v < 0 ? -v : v;
        case 7: return v > 0 ? v : 0;
        case 10: return v * v;
        case 20: return from_double<i64>((double)v + c);
        case 21: return from_double<i64>((double)v - c);
        case 22: return from_double<i64>((double)v * c);
        case 23: return from_double<i64>((double)v / c);
        case 24: return from_double<i64>(fmax((double)v, c));
        case 25: return from_double<i64>(fmin((double)v, c));
        default: return 0;
    }
}

__device__ __forceinline__ float binary_float(int op, float x, float y) {
    switch (op) {
        case 0: return x + y;
        case 1: return x - y;
        case 2: return x * y;
        case 3: return x / y;
        case 4: return x >= y ? x : y; /* as the CPU: NaN in x gives y */
        case 5: return x <= y ? x : y;
        case 6: return powf(x, y);
        default: return __int_as_float(0x7fc00000);
    }
}

__device__ __forceinline__ i64 binary_int(int op, i64 x, i64 y) {
    switch (op) {
        case 0: return x + y;
        case 1: return x - y;
        case 2: return x * y;
        case 4: return x > y ? x : y;
        case 5: return x < y ? x : y;
        default: return 0;
    }
}

template <typename T>
__device__ __forceinline__ bool compare(int op, T x, T y) {
    switch (op) {
        case 0: return x == y;
        case 1: return x != y;
        case 2: return x < y;
        case 3: return x <= y;
        case 4: return x > y;
        default: return x >= y;
    }
}

/* Loads for comparisons: half types compare as their float values. */
__device__ __forceinline__ float cmp_value(f16 v) { return to_float(v); }
__device__ __forceinline__ float cmp_value(bf16 v) { return to_float(v); }
__device__ __forceinline__ float cmp_value(float v) { return v; }
__device__ __forceinline__ i64 cmp_value(i64 v) { return v; }
__device__ __forceinline__ int cmp_value(i8 v) { return v; }

template <typename T>
__device__ void unary_f(const T* x, StridedLayout lx, T* y, i64 n, int op, double c) {
    FOR_EACH_INDEX(i, n) { y[i] = from_float<T>(unary_float(op, to_float(x[layout_offset(lx, i)]), c)); }
}

template <typename T>
__device__ void binary_f(const T* a, StridedLayout la, const T* b, StridedLayout lb, T* out, i64 n, int op) {
    FOR_EACH_INDEX(i, n) {
        float x = to_float(a[layout_offset(la, i)]);
        float y = to_float(b[layout_offset(lb, i)]);
        out[i] = from_float<T>(binary_float(op, x, y));
    }
}

template <typename T>
__device__ void compare_any(const T* a, StridedLayout la, const T* b, StridedLayout lb, i8* out, i64 n, int op) {
    FOR_EACH_INDEX(i, n) {
        out[i] = compare(op, cmp_value(a[layout_offset(la, i)]), cmp_value(b[layout_offset(lb, i)])) ? 1 : 0;
    }
}

template <typename T>
__device__ void where_any(const i8* mask, StridedLayout lm, const T* a, StridedLayout la, const T* b,
                          StridedLayout lb, T* out, i64 n) {
    FOR_EACH_INDEX(i, n) { out[i] = mask[layout_offset(lm, i)] != 0 ? a[layout_offset(la, i)] : b[layout_offset(lb, i)]; }
}

#define FLOAT_OPS(NAME, T)                                                                                   \
    extern "C" __global__ void unary_##NAME(const T* x, StridedLayout lx, T* y, i64 n, int op, double c) {   \
        unary_f<T>(x, lx, y, n, op, c);                                                                      \
    }                                                                                                        \
    extern "C" __global__ void binary_##NAME(const T* a, StridedLayout la, const T* b, StridedLayout lb,     \
                                             T* out, i64 n, int op) {                                        \
        binary_f<T>(a, la, b, lb, out, n, op);                                                               \
    }

FLOAT_OPS(f32, float)
FLOAT_OPS(f16, f16)
FLOAT_OPS(bf16, bf16)

extern "C" __global__ void unary_i64(const i64* x, StridedLayout lx, i64* y, i64 n, int op, double c) {
    FOR_EACH_INDEX(i, n) { y[i] = unary_int(op, x[layout_offset(lx, i)], c); }
}

extern "C" __global__ void binary_i64(const i64* a, StridedLayout la, const i64* b, StridedLayout lb, i64* out,
                                      i64 n, int op) {
    FOR_EACH_INDEX(i, n) { out[i] = binary_int(op, a[layout_offset(la, i)], b[layout_offset(lb, i)]); }
}

#define ANY_OPS(NAME, T)                                                                                     \
    extern "C" __global__ void compare_##NAME(const T* a, StridedLayout la, const T* b, StridedLayout lb,    \
                                              i8* out, i64 n, int op) {                                      \
        compare_any<T>(a, la, b, lb, out, n, op);                                                            \
    }                                                                                                        \
    extern "C" __global__ void where_##NAME(const i8* mask, StridedLayout lm, const T* a, StridedLayout la,  \
                                            const T* b, StridedLayout lb, T* out, i64 n) {                   \
        where_any<T>(mask, lm, a, la, b, lb, out, n);                                                        \
    }

ANY_OPS(f32, float)
ANY_OPS(f16, f16)
ANY_OPS(bf16, bf16)
ANY_OPS(i64, i64)
ANY_OPS(i8, i8)
