/*
 * attention.cu: the masked softmax between attention's two matrix products.
 *
 * Causal attention for one (batch, head), Q [tq, d], K and V [tk, d]:
 *   S = Q K^T            (cuBLAS, batched over B*H)
 *   P = causal_softmax(scale * S)
 *   O = P V              (cuBLAS, batched)
 * Query i may look at keys j <= i + past, past = tk - tq (past > 0 is
 * decoding with a KV cache: the queries are the newest positions). This
 * file holds the part between the products: one block per row of S, which
 * scales, masks, exponentiates and normalises in place, writing exact
 * zeros where the mask hides a key, so P V adds nothing from the future.
 *
 * Backward (tq = tk), from dO:
 *   dV = P^T dO,  dP = dO V^T      (cuBLAS)
 *   dS = scale * P * (dP - rowsum(dP * P))   (here, in place over dP)
 *   dQ = dS K,    dK = dS^T Q      (cuBLAS)
 * The scale is folded into dS so both products can use it as is.
 *
 * This path stores the [tq, tk] matrix P for every head, which the
 * backward reuses. flash_attention.cu computes the same result without
 * ever storing it.
 */

template <typename T>
__device__ void causal_softmax(T* s, i64 tq, i64 tk, float scale) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x; /* over heads * tq */
    const i64 i = row % tq;
    const i64 visible = i + (tk - tq) + 1;
    T* r = s + row * tk;
    float m = NEG_INFINITY_F;
    for (i64 j = threadIdx.x; j < visible; j += blockDim.x) m = fmaxf(m, to_float(r[j]) * scale);
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (i64 j = threadIdx.x; j < visible; j += blockDim.x) sum += expf(to_float(r[j]) * scale - m);
    sum = block_sum(sum, scratch);
    const float inv = 1.0f / sum;
    for (i64 j = threadIdx.x; j < tk; j += blockDim.x)
        r[j] = from_float<T>(j < visible ? expf(to_float(r[j]) * scale - m) * inv : 0.0f);
}

template <typename T>
__device__ void causal_softmax_backward(const T* p, T* dp, i64 t, float scale) {
    __shared__ float scratch[32];
    const i64 row = blockIdx.x;
    const i64 i = row % t;
    const T* pr = p + row * t;
    T* dr = dp + row * t;
    float dot = 0.0f;
    for (i64 j = threadIdx.x; j <= i; j += blockDim.x) dot += to_float(pr[j]) * to_float(dr[j]);
    dot = block_sum(dot, scratch);
    for (i64 j = threadIdx.x; j < t; j += blockDim.x)
        dr[j] = from_float<T>(j <= i ? to_float(pr[j]) * (to_float(dr[j]) - dot) * scale : 0.0f);
}

#define ATTENTION(NAME, T)                                                                                   \
    extern "C" __global__ void causal_softmax_##NAME(T* s, i64 tq, i64 tk, float scale) {                   \
        causal_softmax<T>(s, tq, tk, scale);                                                                 \
    }                                                                                                        \
    extern "C" __global__ void causal_softmax_backward_##NAME(const T* p, T* dp, i64 t, float scale) {      \
        causal_softmax_backward<T>(p, dp, t, scale);                                                         \
    }

ATTENTION(f32, float)
ATTENTION(f16, f16)
ATTENTION(bf16, bf16)
