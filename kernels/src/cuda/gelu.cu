/*
 * gelu.cu: GELU forward and backward, fused.
 *
 * GPT-2's activation, with the tanh approximation it was trained with:
 *   gelu(x)  = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)
 *   gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
 *
 * The backward takes the forward's input and the incoming gradient and
 * writes dx = dy * gelu'(x) in one pass: one read of x and dy, one write,
 * instead of a gelu' kernel followed by a multiply. Buffers are dense
 * [n]; the MLP's hidden activations [B, T, 4C] are the typical input.
 */

#define SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

template <typename T>
__device__ void gelu_forward(const T* x, T* y, i64 n) {
    FOR_EACH_INDEX(i, n) {
        float v = to_float(x[i]);
        float inner = SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v);
        y[i] = from_float<T>(0.5f * v * (1.0f + tanhf(inner)));
    }
}

template <typename T>
__device__ void gelu_backward(const T* x, const T* dy, T* dx, i64 n) {
    FOR_EACH_INDEX(i, n) {
        float v = to_float(x[i]);
        float th = tanhf(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
        float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * v * v);
        float grad = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du;
        dx[i] = from_float<T>(to_float(dy[i]) * grad);
    }
}

#define GELU(NAME, T)                                                                                  \
    extern "C" __global__ void gelu_forward_##NAME(const T* x, T* y, i64 n) { gelu_forward<T>(x, y, n); } \
    extern "C" __global__ void gelu_backward_##NAME(const T* x, const T* dy, T* dx, i64 n) {            \
        gelu_backward<T>(x, dy, dx, n);                                                                \
    }

GELU(f32, float)
GELU(f16, f16)
GELU(bf16, bf16)
