/*
 * layer_norm.cu: layer norm over the last dimension, forward and backward.
 *
 * For a row x of n values (one token's channels):
 *   mean = sum x / n,   var = sum (x - mean)^2 / n,   rstd = 1 / sqrt(var + eps)
 *   xhat = (x - mean) * rstd,   y = xhat * gamma + beta
 * The forward runs one block per row and keeps mean and rstd (f32, one per
 * row) for the backward. With g = dy * gamma:
 *   dx     = rstd * (g - mean(g) - xhat * mean(g * xhat))      per row
 *   dgamma = sum over rows of dy * xhat,   dbeta = sum over rows of dy
 * dx is again one block per row. dgamma and dbeta are column sums over all
 * rows (B*T of them); rather than adding into them from every row with
 * atomics (whose order, and so whose rounding, changes run to run), rows
 * are cut into fixed chunks: pass 1 has one thread per (chunk, column)
 * summing its chunk down the column, pass 2 adds the chunk partials in
 * order. Same input, same bits. gamma and beta may be absent (null).
 */

template <typename T>
__device__ void layer_norm_forward(const T* x, const T* gamma, const T* beta, float eps, i64 n, T* y,
                                   float* mean_out, float* rstd_out) {
    __shared__ float scratch[32];
    const i64 off = (i64)blockIdx.x * n;
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) s += to_float(x[off + j]);
    const float mean = block_sum(s, scratch) / (float)n;
    float v = 0.0f;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float d = to_float(x[off + j]) - mean;
        v += d * d;
    }
    const float var = block_sum(v, scratch) / (float)n;
    const float rstd = 1.0f / sqrtf(var + eps);
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float g = gamma ? to_float(gamma[j]) : 1.0f;
        float b = beta ? to_float(beta[j]) : 0.0f;
        y[off + j] = from_float<T>((to_float(x[off + j]) - mean) * rstd * g + b);
    }
    if (threadIdx.x == 0) {
        mean_out[blockIdx.x] = mean;
        rstd_out[blockIdx.x] = rstd;
    }
}

template <typename T>
__device__ void layer_norm_backward_dx(const T* x, const T* gamma, const float* mean, const float* rstd,
                                       const T* dy, i64 n, T* dx) {
    __shared__ float scratch[32];
    const i64 off = (i64)blockIdx.x * n;
    const float mu = mean[blockIdx.x], r = rstd[blockIdx.x];
    float sg = 0.0f, sgx = 0.0f;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float xhat = (to_float(x[off + j]) - mu) * r;
        float g = to_float(dy[off + j]) * (gamma ? to_float(gamma[j]) : 1.0f);
        sg += g;
        sgx += g * xhat;
    }
    const float mean_g = block_sum(sg, scratch) / (float)n;
    const float mean_gx = block_sum(sgx, scratch) / (float)n;
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        float xhat = (to_float(x[off + j]) - mu) * r;
        float g = to_float(dy[off + j]) * (gamma ? to_float(gamma[j]) : 1.0f);
        dx[off + j] = from_float<T>(r * (g - mean_g - xhat * mean_gx));
    }
}

/* Pass 1: thread (column j, chunk c) sums rows [c*per, (c+1)*per). */
template <typename T>
__device__ void layer_norm_backward_params_partial(const T* x, const float* mean, const float* rstd, const T* dy,
                                                   i64 rows, i64 n, i64 per, float* partial_gamma,
                                                   float* partial_beta) {
    const i64 j = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 c = blockIdx.y;
    if (j >= n) return;
    const i64 start = c * per;
    const i64 end = start + per < rows ? start + per : rows;
    float sg = 0.0f, sb = 0.0f;
    for (i64 r = start; r < end; ++r) {
        float d = to_float(dy[r * n + j]);
        sg += d * (to_float(x[r * n + j]) - mean[r]) * rstd[r];
        sb += d;
    }
    partial_gamma[c * n + j] = sg;
    partial_beta[c * n + j] = sb;
}

/* Pass 2: dgamma[j] and dbeta[j] add the chunk partials in chunk order. */
template <typename T>
__device__ void layer_norm_backward_params_final(const float* partial_gamma, const float* partial_beta, i64 chunks,
                                                 i64 n, T* dgamma, T* dbeta) {
    FOR_EACH_INDEX(j, n) {
        float sg = 0.0f, sb = 0.0f;
        for (i64 c = 0; c < chunks; ++c) {
            sg += partial_gamma[c * n + j];
            sb += partial_beta[c * n + j];
        }
        dgamma[j] = from_float<T>(sg);
        dbeta[j] = from_float<T>(sb);
    }
}

#define LAYER_NORM(NAME, T)                                                                                   \
    extern "C" __global__ void layer_norm_forward_##NAME(const T* x, const T* gamma, const T* beta, float eps, \
                                                         i64 n, T* y, float* mean, float* rstd) {             \
        layer_norm_forward<T>(x, gamma, beta, eps, n, y, mean, rstd);                                         \
    }                                                                                                         \
    extern "C" __global__ void layer_norm_backward_dx_##NAME(const T* x, const T* gamma, const float* mean,   \
                                                             const float* rstd, const T* dy, i64 n, T* dx) {  \
        layer_norm_backward_dx<T>(x, gamma, mean, rstd, dy, n, dx);                                           \
    }                                                                                                         \
    extern "C" __global__ void layer_norm_backward_params_partial_##NAME(                                     \
        const T* x, const float* mean, const float* rstd, const T* dy, i64 rows, i64 n, i64 per,              \
        float* partial_gamma, float* partial_beta) {                                                          \
        layer_norm_backward_params_partial<T>(x, mean, rstd, dy, rows, n, per, partial_gamma, partial_beta);   \
    }                                                                                                         \
    extern "C" __global__ void layer_norm_backward_params_final_##NAME(                                       \
        const float* partial_gamma, const float* partial_beta, i64 chunks, i64 n, T* dgamma, T* dbeta) {      \
        layer_norm_backward_params_final<T>(partial_gamma, partial_beta, chunks, n, dgamma, dbeta);           \
    }

LAYER_NORM(f32, float)
LAYER_NORM(f16, f16)
LAYER_NORM(bf16, bf16)
