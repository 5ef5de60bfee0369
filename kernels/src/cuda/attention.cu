/*
 * attention.cu: the masked softmax between attention's two matrix products.
 *
 * Causal attention for one (batch, head), Q [tq, d], K and V [tk, d]:
 *   S = Q K^T            (cuBLAS, batched over B*H)
 *   P = causal_softmax(scale * S)
 *   O = P V              (cuBLAS, batched)
 * Query i may look at keys j <= i + past, past = tk - tq (past > 0 is
 * decoding with a KV cache: the queries are the newest positions), and,
 * with a sliding window, only at j > i + past - window: the last `window`
 * positions up to its own (window = tk when there is none, which hides
 * nothing). These are the bounds of CausalMask in kernels/src/cpu/
 * attention.rs, the one place they are explained. This file holds the
 * part between the products: one block per row of S, which scales, masks,
 * exponentiates and normalises in place, writing exact zeros where the
 * mask hides a key, so P V adds nothing from outside the mask.
 *
 * With grouped key/value heads the rows of a group's query heads are
 * consecutive and the products run per key/value head (attention.rs);
 * here a row is a row: row r is query i = r % tq of some head.
 *
 * Backward, from dO:
 *   dV = P^T dO,  dP = dO V^T      (cuBLAS)
 *   dS = scale * P * (dP - rowsum(dP * P))   (here, in place over dP)
 *   dQ = dS K,    dK = dS^T Q      (cuBLAS)
 * The scale is folded into dS so both products can use it as is.
 *
 * This path stores the [tq, tk] matrix P for every head, which the
 * backward reuses. flash_attention.cu computes the same result without
 * ever storing it.
 */

/* The keys query row i sees: [first, end). */
__device__ inline i64 visible_end(i64 i, i64 tq, i64 tk) { return i + (tk - tq) + 1; }
__device__ inline i64 visible_first(i64 end, i64 window) { return end > window ? end - window : 0; }

template <typename T>
__device__ void causal_softmax(T* s, i64 tq, i64 tk, i64 window, float scale) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x; /* over heads * tq */
    const i64 end = visible_end(row % tq, tq, tk);
    const i64 first = visible_first(end, window);
    T* r = s + row * tk;
    float m = NEG_INFINITY_F;
    for (i64 j = first + threadIdx.x; j < end; j += blockDim.x) m = fmaxf(m, to_float(r[j]) * scale);
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (i64 j = first + threadIdx.x; j < end; j += blockDim.x) sum += expf(to_float(r[j]) * scale - m);
    sum = block_sum(sum, scratch);
    const float inv = 1.0f / sum;
    for (i64 j = threadIdx.x; j < tk; j += blockDim.x)
        r[j] = from_float<T>(j >= first && j < end ? expf(to_float(r[j]) * scale - m) * inv : 0.0f);
}

template <typename T>
__device__ void causal_softmax_backward(const T* p, T* dp, i64 tq, i64 tk, i64 window, float scale) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const i64 end = visible_end(row % tq, tq, tk);
    const i64 first = visible_first(end, window);
    const T* pr = p + row * tk;
    T* dr = dp + row * tk;
    float dot = 0.0f;
    for (i64 j = first + threadIdx.x; j < end; j += blockDim.x) dot += to_float(pr[j]) * to_float(dr[j]);
    dot = block_sum(dot, scratch);
    for (i64 j = threadIdx.x; j < tk; j += blockDim.x)
        dr[j] = from_float<T>(j >= first && j < end ? to_float(pr[j]) * (to_float(dr[j]) - dot) * scale : 0.0f);
}

#define ATTENTION(NAME, T)                                                                                   \
    extern "C" __global__ void causal_softmax_##NAME(T* s, i64 tq, i64 tk, i64 window, float scale) {       \
        causal_softmax<T>(s, tq, tk, window, scale);                                                         \
    }                                                                                                        \
    extern "C" __global__ void causal_softmax_backward_##NAME(const T* p, T* dp, i64 tq, i64 tk, i64 window, \
                                                              float scale) {                                 \
        causal_softmax_backward<T>(p, dp, tq, tk, window, scale);                                            \
    }

ATTENTION(f32, float)
ATTENTION(f16, f16)
ATTENTION(bf16, bf16)
