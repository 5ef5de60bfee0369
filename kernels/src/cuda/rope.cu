/*
 * rope.cu: rotary position embedding in transformers' Llama layout
 * ("rotate half"), forward and backward.
 *
 * x is a dense [outer, t, heads, d] buffer; cos and sin are f32 tables
 * [t, d/2], row p for the position of x's row p. Element i of a head
 * vector is paired with element i + d/2 and the pair is turned by theta_i:
 *   y[i]       = x[i] cos - x[i + d/2] sin
 *   y[i + d/2] = x[i + d/2] cos + x[i] sin
 * One thread per pair (grid-stride). The backward is the rotation by
 * -theta: the same kernel with sign = -1 on sin.
 */

template <typename T>
__device__ void rope(const T* x, const float* cos_table, const float* sin_table, i64 t, i64 heads, i64 half,
                     float sign, i64 pairs, T* y) {
    FOR_EACH_INDEX(k, pairs) {
        const i64 i = k % half;
        const i64 vec = k / half;
        const i64 p = (vec / heads) % t;
        const float c = cos_table[p * half + i];
        const float s = sign * sin_table[p * half + i];
        const i64 lo = vec * 2 * half + i;
        const float x1 = to_float(x[lo]), x2 = to_float(x[lo + half]);
        y[lo] = from_float<T>(x1 * c - x2 * s);
        y[lo + half] = from_float<T>(x2 * c + x1 * s);
    }
}

#define ROPE(NAME, T)                                                                                         \
    extern "C" __global__ void rope_##NAME(const T* x, const float* cos_table, const float* sin_table, i64 t, \
                                           i64 heads, i64 half, float sign, i64 pairs, T* y) {                \
        rope<T>(x, cos_table, sin_table, t, heads, half, sign, pairs, y);                                     \
    }

ROPE(f32, float)
ROPE(f16, f16)
ROPE(bf16, bf16)
