/*
 * softmax.cu: softmax and log-softmax over the rows of a dense [rows, n]
 * buffer, forward and backward; one block per row.
 *
 *   softmax(x)_j     = exp(x_j - m) / s,      m = max_j x_j,  s = sum_j exp(x_j - m)
 *   log_softmax(x)_j = (x_j - m) - log s
 *
 * Subtracting the row maximum first keeps exp from overflowing. A row is
 * read three times (max, sum, write); rows of a few thousand floats stay
 * in the L1/L2 caches between passes, so the extra reads cost little and
 * the kernel stays simple.
 *
 * Backward, given the forward's output y and the gradient dy:
 *   softmax:      dx = y * (dy - sum_j dy_j y_j)
 *   log_softmax:  dx = dy - exp(y) * sum_j dy_j
 */

template <typename T>
__device__ void softmax_forward(const T* x, T* y, i64 n, int log) {
    __shared__ float scratch[32];
    const T* row = x + (i64)blockIdx.x * n;
    T* out = y + (i64)blockIdx.x * n;
    float m = NEG_INFINITY_F;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, to_float(row[j]));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) s += expf(to_float(row[j]) - m);
    s = block_sum(s, scratch);
    if (log) {
        const float log_s = logf(s);
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) out[j] = from_float<T>((to_float(row[j]) - m) - log_s);
    } else {
        const float inv = 1.0f / s;
        for (i64 j = threadIdx.x; j < n; j += blockDim.x) out[j] = from_float<T>(expf(to_float(row[j]) - m) * inv);
    }
}

template <typename T>
__device__ void softmax_backward(const T* y, const T* dy, T* dx, i64 n, int log) {
    __shared__ float scratch[32];
    const i64 off = (i64)blockIdx.x * n;
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x)
        s += log ? to_float(dy[off + j]) : to_float(dy[off + j]) * to_float(y[off + j]);
    s = block_sum(s, scratch);
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float yj = to_float(y[off + j]), dyj = to_float(dy[off + j]);
        dx[off + j] = from_float<T>(log ? dyj - expf(yj) * s : yj * (dyj - s));
    }
}

#define SOFTMAX(NAME, T)                                                                                     \
    extern "C" __global__ void softmax_forward_##NAME(const T* x, T* y, i64 n, int log) {                   \
        softmax_forward<T>(x, y, n, log);                                                                    \
    }                                                                                                        \
    extern "C" __global__ void softmax_backward_##NAME(const T* y, const T* dy, T* dx, i64 n, int log) {    \
        softmax_backward<T>(y, dy, dx, n, log);                                                              \
    }

SOFTMAX(f32, float)
SOFTMAX(f16, f16)
SOFTMAX(bf16, bf16)
