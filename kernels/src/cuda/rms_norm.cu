/*
 * rms_norm.cu: RMSNorm over the last dimension (Llama's norm), forward and
 * backward.
 *
 * For a row x of n values:
 *   rstd = 1 / sqrt(mean(x^2) + eps),   xhat = x * rstd,   y = xhat * w
 * Like transformers' LlamaRMSNorm, xhat is computed in f32 and rounded to
 * the storage type before the weight multiplies it (for f32 that rounding
 * is a no-op). The forward runs one block per row and keeps rstd (f32, one
 * per row). With g = dy * w:
 *   dx = rstd * (g - xhat * mean(g * xhat))      one block per row
 *   dw = sum over rows of dy * xhat
 * dw is a column sum over every row, reduced as layer_norm.cu does: fixed
 * chunks of rows per thread (pass 1), chunk partials added in order (pass
 * 2), so the same input gives the same bits. w may be absent (null).
 */

template <typename T>
__device__ void rms_norm_forward(const T* x, const T* w, float eps, i64 n, T* y, float* rstd_out) {
    __shared__ float scratch[32];
    const i64 off = (i64)blockIdx.x * n;
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float v = to_float(x[off + j]);
        s += v * v;
    }
    const float rstd = rsqrtf(block_sum(s, scratch) / (float)n + eps);
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float xhat = to_float(from_float<T>(to_float(x[off + j]) * rstd));
        y[off + j] = from_float<T>(w ? xhat * to_float(w[j]) : xhat);
    }
    if (threadIdx.x == 0) rstd_out[blockIdx.x] = rstd;
}

template <typename T>
__device__ void rms_norm_backward_dx(const T* x, const T* w, const float* rstd, const T* dy, i64 n, T* dx) {
    __shared__ float scratch[32];
    const i64 off = (i64)blockIdx.x * n;
    const float r = rstd[blockIdx.x];
    float sgx = 0.0f;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float g = to_float(dy[off + j]) * (w ? to_float(w[j]) : 1.0f);
        sgx += g * to_float(x[off + j]) * r;
    }
    const float mean_gx = block_sum(sgx, scratch) / (float)n;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float g = to_float(dy[off + j]) * (w ? to_float(w[j]) : 1.0f);
        dx[off + j] = from_float<T>(r * (g - to_float(x[off + j]) * r * mean_gx));
    }
}

/* Pass 1: thread (column j, chunk c) sums rows [c*per, (c+1)*per). */
template <typename T>
__device__ void rms_norm_backward_weight_partial(const T* x, const float* rstd, const T* dy, i64 rows, i64 n,
                                                 i64 per, float* partial) {
    const i64 j = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 c = blockIdx.y;
    if (j >= n) return;
    const i64 start = c * per;
    const i64 end = start + per < rows ? start + per : rows;
    float s = 0.0f;
    for (i64 r = start; r < end; ++r) s += to_float(dy[r * n + j]) * to_float(x[r * n + j]) * rstd[r];
    partial[c * n + j] = s;
}

/* Pass 2: dw[j] adds the chunk partials in chunk order. */
template <typename T>
__device__ void rms_norm_backward_weight_final(const float* partial, i64 chunks, i64 n, T* dw) {
    FOR_EACH_INDEX(j, n) {
        float s = 0.0f;
        for (i64 c = 0; c < chunks; ++c) s += partial[c * n + j];
        dw[j] = from_float<T>(s);
    }
}

#define RMS_NORM(NAME, T)                                                                                        \
    extern "C" __global__ void rms_norm_forward_##NAME(const T* x, const T* w, float eps, i64 n, T* y,          \
                                                       float* rstd) {                                           \
        rms_norm_forward<T>(x, w, eps, n, y, rstd);                                                             \
    }                                                                                                            \
    extern "C" __global__ void rms_norm_backward_dx_##NAME(const T* x, const T* w, const float* rstd,           \
                                                           const T* dy, i64 n, T* dx) {                         \
        rms_norm_backward_dx<T>(x, w, rstd, dy, n, dx);                                                         \
    }                                                                                                            \
    extern "C" __global__ void rms_norm_backward_weight_partial_##NAME(                                         \
        const T* x, const float* rstd, const T* dy, i64 rows, i64 n, i64 per, float* partial) {                 \
        rms_norm_backward_weight_partial<T>(x, rstd, dy, rows, n, per, partial);                                \
    }                                                                                                            \
    extern "C" __global__ void rms_norm_backward_weight_final_##NAME(const float* partial, i64 chunks, i64 n,   \
                                                                     T* dw) {                                   \
        rms_norm_backward_weight_final<T>(partial, chunks, n, dw);                                              \
    }

RMS_NORM(f32, float)
RMS_NORM(f16, f16)
RMS_NORM(bf16, bf16)
