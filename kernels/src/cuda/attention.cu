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
 * Soft-capping (Gemma 2's attn_logit_softcapping, a cap c > 0; c = 0
 * means none) squashes each scaled score before the mask and softmax:
 *   x = scale * S,   x' = c * tanh(x / c)
 * so the softmax runs over x' and no score leaves (-c, c). Its backward
 * multiplies dS by d x'/dS = scale * (1 - tanh^2(x / c)); the raw scores
 * are recomputed by one more product (S = Q K^T into a scratch buffer,
 * attention.rs) rather than kept from the forward, as the CPU kernel does.
 *
 * This path stores the [tq, tk] matrix P for every head, which the
 * backward reuses. flash_attention.cu computes the same result without
 * ever storing it (for plain causal attention: no window, no groups, no
 * cap).
 */

/* The keys query row i sees: [first, end). */
__device__ inline i64 visible_end(i64 i, i64 tq, i64 tk) { return i + (tk - tq) + 1; }
__device__ inline i64 visible_first(i64 end, i64 window) { return end > window ? end - window : 0; }

/* A scaled score, soft-capped when cap > 0 (the CPU's order: cap * tanh(x / cap)). */
__device__ inline float capped(float x, float cap) { return cap > 0.0f ? cap * tanhf(x / cap) : x; }

template <typename T>
__device__ void causal_softmax(T* s, i64 tq, i64 tk, i64 window, float scale, float cap) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x; /* over heads * tq */
    const i64 end = visible_end(row % tq, tq, tk);
    const i64 first = visible_first(end, window);
    T* r = s + row * tk;
    float m = NEG_INFINITY_F;
    for (i64 j = first + threadIdx.x; j < end; j += blockDim.x) m = fmaxf(m, capped(to_float(r[j]) * scale, cap));
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (i64 j = first + threadIdx.x; j < end; j += blockDim.x) sum += expf(capped(to_float(r[j]) * scale, cap) - m);
    sum = block_sum(sum, scratch);
    const float inv = 1.0f / sum;
    for (i64 j = threadIdx.x; j < tk; j += blockDim.x)
        r[j] = from_float<T>(j >= first && j < end ? expf(capped(to_float(r[j]) * scale, cap) - m) * inv : 0.0f);
}

/* scores: the raw Q K^T when cap > 0 (null otherwise), for the cap's derivative. */
template <typename T>
__device__ void causal_softmax_backward(const T* p, T* dp, const T* scores, i64 tq, i64 tk, i64 window, float scale,
                                        float cap) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const i64 end = visible_end(row % tq, tq, tk);
    const i64 first = visible_first(end, window);
    const T* pr = p + row * tk;
    T* dr = dp + row * tk;
    float dot = 0.0f;
    for (i64 j = first + threadIdx.x; j < end; j += blockDim.x) dot += to_float(pr[j]) * to_float(dr[j]);
    dot = block_sum(dot, scratch);
    for (i64 j = threadIdx.x; j < tk; j += blockDim.x) {
        float g = 0.0f;
        if (j >= first && j < end) {
            g = to_float(pr[j]) * (to_float(dr[j]) - dot) * scale;
            if (cap > 0.0f) {
                const float t = tanhf(to_float(scores[row * tk + j]) * scale / cap);
                g *= 1.0f - t * t;
            }
        }
        dr[j] = from_float<T>(g);
    }
}

#define ATTENTION(NAME, T)                                                                                        \
    extern "C" __global__ void causal_softmax_##NAME(T* s, i64 tq, i64 tk, i64 window, float scale, float cap) {  \
        causal_softmax<T>(s, tq, tk, window, scale, cap);                                                         \
    }                                                                                                             \
    extern "C" __global__ void causal_softmax_backward_##NAME(const T* p, T* dp, const T* scores, i64 tq, i64 tk, \
                                                              i64 window, float scale, float cap) {               \
        causal_softmax_backward<T>(p, dp, scores, tq, tk, window, scale, cap);                                    \
    }

ATTENTION(f32, float)
ATTENTION(f16, f16)
ATTENTION(bf16, bf16)
