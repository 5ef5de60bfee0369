/*
 * swiglu.cu: SiLU's backward and the fused SwiGLU of the Llama MLP.
 *
 *   silu(x)  = x * sigmoid(x),   silu'(x) = s (1 + x (1 - s)),  s = sigmoid(x)
 *   swiglu(g, u) = silu(g) * u
 *   dg = dy * u * silu'(g),   du = dy * silu(g)
 * (silu's forward is op 14 of elementwise.cu.) Each kernel is one pass over
 * dense [n] buffers: the forward reads g and u and writes y, the backward
 * reads g, u, dy and writes both gradients, so the [B, T, hidden]
 * activation silu(g) is never stored.
 */

__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

template <typename T>
__device__ void silu_backward(const T* x, const T* dy, T* dx, i64 n) {
    FOR_EACH_INDEX(i, n) {
        float v = to_float(x[i]);
        float s = sigmoid_f(v);
        dx[i] = from_float<T>(to_float(dy[i]) * s * (1.0f + v * (1.0f - s)));
    }
}

template <typename T>
__device__ void swiglu_forward(const T* gate, const T* up, T* y, i64 n) {
    FOR_EACH_INDEX(i, n) {
        float g = to_float(gate[i]);
        y[i] = from_float<T>(g * sigmoid_f(g) * to_float(up[i]));
    }
}

template <typename T>
__device__ void swiglu_backward(const T* gate, const T* up, const T* dy, T* dgate, T* dup, i64 n) {
    FOR_EACH_INDEX(i, n) {
        float g = to_float(gate[i]), d = to_float(dy[i]);
        float s = sigmoid_f(g);
        dup[i] = from_float<T>(d * g * s);
        dgate[i] = from_float<T>(d * to_float(up[i]) * s * (1.0f + g * (1.0f - s)));
    }
}

#define SWIGLU(NAME, T)                                                                                      \
    extern "C" __global__ void silu_backward_##NAME(const T* x, const T* dy, T* dx, i64 n) {                 \
        silu_backward<T>(x, dy, dx, n);                                                                      \
    }                                                                                                        \
    extern "C" __global__ void swiglu_forward_##NAME(const T* gate, const T* up, T* y, i64 n) {              \
        swiglu_forward<T>(gate, up, y, n);                                                                   \
    }                                                                                                        \
    extern "C" __global__ void swiglu_backward_##NAME(const T* gate, const T* up, const T* dy, T* dgate,    \
                                                      T* dup, i64 n) {                                       \
        swiglu_backward<T>(gate, up, dy, dgate, dup, n);                                                     \
    }

SWIGLU(f32, float)
SWIGLU(f16, f16)
SWIGLU(bf16, bf16)
