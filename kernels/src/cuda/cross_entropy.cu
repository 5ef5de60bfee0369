/*
 * cross_entropy.cu: fused softmax cross-entropy over rows of logits.
 *
 * For a row of V logits z and its target class t:
 *   loss = logsumexp(z) - z[t],   logsumexp(z) = m + log sum_j exp(z_j - m)
 *   dloss/dz_j = softmax(z)_j - [j == t] = exp(z_j - logsumexp(z)) - [j == t]
 * The forward (one block per row) keeps one number per row, the logsumexp,
 * instead of a [rows, V] log-softmax: with GPT-2's 50,257 classes that is
 * a buffer as large as the logits themselves that never gets written.
 * Each row also writes its loss and whether it counted (targets equal to
 * `ignore`, -100 by PyTorch's convention, count for nothing); the host then
 * sums both with the fixed-order sum of reduce.cu, so the mean loss is
 * reproducible. A target outside [0, V) makes its row's loss NaN (the host
 * checks targets before launching; this only keeps the read in bounds).
 *
 * The backward is elementwise over [rows, V] (grid-stride):
 *   grad = (exp(z - lse[row]) - [col == t]) * scale,   0 for ignored rows
 * where scale is the incoming gradient divided by the counted rows.
 */

template <typename T>
__device__ void cross_entropy_forward(const T* logits, const i64* targets, i64 v, i64 ignore, float* lse,
                                      double* row_loss, double* row_counted) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const T* z = logits + row * v;
    float m = NEG_INFINITY_F;
    for (i64 j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, to_float(z[j]));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < v; j += blockDim.x) s += expf(to_float(z[j]) - m);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
        const float l = m + logf(s);
        const i64 t = targets[row];
        lse[row] = l;
        if (t == ignore) {
            row_loss[row] = 0.0;
            row_counted[row] = 0.0;
        } else {
            row_loss[row] = (t >= 0 && t < v) ? (double)(l - to_float(z[t])) : __longlong_as_double(0x7ff8000000000000LL);
            row_counted[row] = 1.0;
        }
    }
}

template <typename T>
__device__ void cross_entropy_backward(const T* logits, const i64* targets, const float* lse, i64 rows, i64 v,
                                       i64 ignore, float scale, T* grad) {
    FOR_EACH_INDEX(i, rows * v) {
        const i64 row = i / v, col = i - row * v;
        const i64 t = targets[row];
        float g = 0.0f;
        if (t != ignore) {
            g = expf(to_float(logits[i]) - lse[row]) * scale;
            if (col == t) g -= scale;
        }
        grad[i] = from_float<T>(g);
    }
}

#define CROSS_ENTROPY(NAME, T)                                                                               \
    extern "C" __global__ void cross_entropy_forward_##NAME(const T* logits, const i64* targets, i64 v,      \
                                                            i64 ignore, float* lse, double* row_loss,        \
                                                            double* row_counted) {                           \
        cross_entropy_forward<T>(logits, targets, v, ignore, lse, row_loss, row_counted);                    \
    }                                                                                                        \
    extern "C" __global__ void cross_entropy_backward_##NAME(const T* logits, const i64* targets,            \
                                                             const float* lse, i64 rows, i64 v, i64 ignore,  \
                                                             float scale, T* grad) {                         \
        cross_entropy_backward<T>(logits, targets, lse, rows, v, ignore, scale, grad);                       \
    }

CROSS_ENTROPY(f32, float)
CROSS_ENTROPY(f16, f16)
CROSS_ENTROPY(bf16, bf16)
