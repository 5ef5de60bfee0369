/*
 * rope.cu: rotary position embedding in transformers' Llama layout
 * ("rotate half"), forward and backward.
 *
 * x is a dense [outer, t, heads, d] buffer; cos and sin are f32 tables
 * [t, half], row p for the position of x's row p. The first 2 half
 * elements of each head turn (all d, or a part with partial rotary):
 * element i is paired with element i + half and the pair is turned by
 * theta_i:
 *   y[i]        = x[i] cos - x[i + half] sin
 *   y[i + half] = x[i + half] cos + x[i] sin
 * and the last d - 2 half elements pass through. One thread per pair or
 * passed element: `per_head` = half + (d - 2 half) of them per head
 * (grid-stride). The backward is the rotation by -theta: the same kernel
 * with sign = -1 on sin.
 */

template <typename T>
__device__ void rope(const T* x, const float* cos_table, const float* sin_table, i64 t, i64 heads, i64 d,
                     i64 half, float sign, i64 items, T* y) {
    const i64 per_head = d - half;
    FOR_EACH_INDEX(k, items) {
        const i64 i = k % per_head;
        const i64 vec = k / per_head;
        if (i >= half) { /* past the rotary part: element i + half passes through */
            y[vec * d + i + half] = x[vec * d + i + half];
            continue;
        }
        const i64 p = (vec / heads) % t;
        const float c = cos_table[p * half + i];
        const float s = sign * sin_table[p * half + i];
        const i64 lo = vec * d + i;
        const float x1 = to_float(x[lo]), x2 = to_float(x[lo + half]);
        y[lo] = from_float<T>(x1 * c - x2 * s);
        y[lo + half] = from_float<T>(x2 * c + x1 * s);
    }
}

#define ROPE(NAME, T)                                                                                         \
    extern "C" __global__ void rope_##NAME(const T* x, const float* cos_table, const float* sin_table, i64 t, \
                                           i64 heads, i64 d, i64 half, float sign, i64 items, T* y) {         \
        rope<T>(x, cos_table, sin_table, t, heads, d, half, sign, items, y);                                  \
    }

ROPE(f32, float)
ROPE(f16, f16)
ROPE(bf16, bf16)
