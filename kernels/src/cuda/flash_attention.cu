/*
 * flash_attention.cu: causal attention that never stores the T x T matrix.
 *
 * attention.cu writes the scores S = Q K^T for a whole head, softmaxes
 * them and multiplies by V: at T = 1024 that is 4 MB per head, per layer,
 * written and read back, and kept for the backward. Here each thread owns
 * one query row i and walks the keys in tiles of BC, keeping only
 *   m  = the largest score seen so far,
 *   l  = sum of exp(score - m) so far,
 *   acc = sum of exp(score - m) * v so far       (D values)
 * When a tile raises the maximum from m to m', everything summed so far is
 * rescaled by exp(m - m') ("online softmax"); at the end O_i = acc / l and
 * the row's logsumexp L_i = m + log l is kept: D + 1 numbers per row
 * instead of T. Key and value tiles are loaded into shared memory once per
 * block and read by all its BR threads. Tiles entirely in the future of a
 * block's last query are skipped (causal), and query i sees keys
 * j <= i + past as in attention.cu.
 *
 * Backward recomputes the probabilities from L instead of reading a saved
 * matrix:  P_ij = exp(scale * q_i . k_j - L_i)  and, with
 * delta_i = sum_c dO_ic O_ic (= sum_j P_ij dP_ij),
 *   dS_ij = P_ij (dO_i . v_j - delta_i)
 *   dQ_i = scale * sum_j dS_ij k_j      (a thread per query row)
 *   dK_j = scale * sum_i dS_ij q_i      (a thread per key row)
 *   dV_j = sum_i P_ij dO_i              (a thread per key row)
 * Each gradient row is owned by one thread and summed in a fixed order,
 * so there are no atomics and the result is reproducible. dK and dV are
 * separate kernels so each thread holds fewer head-dim vectors in
 * registers. Head dims 32, 64 and 128 are compiled (D is a template
 * argument so the per-row vectors live in registers); inputs are dense
 * [B*H, T, D]. This is the readable version: plain f32 arithmetic, no
 * tensor cores.
 */

#define BR 64 /* query (or key) rows per block = threads per block */
#define BC 32 /* rows per shared-memory tile of the other side */

template <typename T, int D>
__device__ void load_row(const T* src, i64 row, float* dst) {
#pragma unroll
    for (int c = 0; c < D; ++c) dst[c] = to_float(src[row * D + c]);
}

template <typename T, int D>
__device__ void flash_forward(const T* q, const T* k, const T* v, T* o, float* lse, i64 tq, i64 tk, float scale) {
    __shared__ float ks[BC][D];
    __shared__ float vs[BC][D];
    __shared__ float scores[BR][BC + 1];
    const i64 bh = blockIdx.y;
    const i64 past = tk - tq;
    const i64 first = (i64)blockIdx.x * BR;
    const i64 i = first + threadIdx.x;
    const bool active = i < tq;
    const i64 last = (first + BR - 1 < tq ? first + BR - 1 : tq - 1);
    const i64 key_end = last + past + 1 < tk ? last + past + 1 : tk;
    float qi[D], acc[D];
    if (active) load_row<T, D>(q, bh * tq + i, qi);
#pragma unroll
    for (int c = 0; c < D; ++c) acc[c] = 0.0f;
    float m = NEG_INFINITY_F, l = 0.0f;
    for (i64 k0 = 0; k0 < key_end; k0 += BC) {
        for (int e = threadIdx.x; e < BC * D; e += blockDim.x) {
            const int r = e / D, c = e % D;
            const i64 key = k0 + r;
            ks[r][c] = key < tk ? to_float(k[(bh * tk + key) * D + c]) : 0.0f;
            vs[r][c] = key < tk ? to_float(v[(bh * tk + key) * D + c]) : 0.0f;
        }
        __syncthreads();
        if (active) {
            /* Scores of this tile go to the thread's own row of shared
               memory: a register array would need the key loop unrolled,
               which multiplies the code (and NVRTC's time) by BC. */
            float tile_max = NEG_INFINITY_F;
#pragma unroll 1
            for (int j = 0; j < BC; ++j) {
                const i64 key = k0 + j;
                float sj = NEG_INFINITY_F;
                if (key < tk && key <= i + past) {
                    float dot = 0.0f;
#pragma unroll
                    for (int c = 0; c < D; ++c) dot += qi[c] * ks[j][c];
                    sj = dot * scale;
                }
                scores[threadIdx.x][j] = sj;
                tile_max = fmaxf(tile_max, sj);
            }
            if (tile_max > NEG_INFINITY_F) {
                const float m_new = fmaxf(m, tile_max);
                const float correction = expf(m - m_new);
                l *= correction;
#pragma unroll
                for (int c = 0; c < D; ++c) acc[c] *= correction;
#pragma unroll 1
                for (int j = 0; j < BC; ++j) {
                    const float sj = scores[threadIdx.x][j];
                    if (sj > NEG_INFINITY_F) {
                        const float p = expf(sj - m_new);
                        l += p;
#pragma unroll
                        for (int c = 0; c < D; ++c) acc[c] += p * vs[j][c];
                    }
                }
                m = m_new;
            }
        }
        __syncthreads();
    }
    if (active) {
        const float inv = 1.0f / l;
#pragma unroll
        for (int c = 0; c < D; ++c) o[(bh * tq + i) * D + c] = from_float<T>(acc[c] * inv);
        lse[bh * tq + i] = m + logf(l);
    }
}

/* delta_i = dO_i . O_i, one thread per row of [B*H*tq]. */
template <typename T, int D>
__device__ void flash_delta(const T* o, const T* d_out, float* delta, i64 rows) {
    FOR_EACH_INDEX(r, rows) {
        float s = 0.0f;
#pragma unroll
        for (int c = 0; c < D; ++c) s += to_float(o[r * D + c]) * to_float(d_out[r * D + c]);
        delta[r] = s;
    }
}

/* dQ: a thread per query row, key tiles in shared memory. */
template <typename T, int D>
__device__ void flash_backward_dq(const T* q, const T* k, const T* v, const T* d_out, const float* lse,
                                  const float* delta, T* dq, i64 tq, i64 tk, float scale) {
    __shared__ float ks[BC][D];
    __shared__ float vs[BC][D];
    const i64 bh = blockIdx.y;
    const i64 past = tk - tq;
    const i64 first = (i64)blockIdx.x * BR;
    const i64 i = first + threadIdx.x;
    const bool active = i < tq;
    const i64 last = (first + BR - 1 < tq ? first + BR - 1 : tq - 1);
    const i64 key_end = last + past + 1 < tk ? last + past + 1 : tk;
    float qi[D], doi[D], acc[D];
    float li = 0.0f, di = 0.0f;
    if (active) {
        load_row<T, D>(q, bh * tq + i, qi);
        load_row<T, D>(d_out, bh * tq + i, doi);
        li = lse[bh * tq + i];
        di = delta[bh * tq + i];
    }
#pragma unroll
    for (int c = 0; c < D; ++c) acc[c] = 0.0f;
    for (i64 k0 = 0; k0 < key_end; k0 += BC) {
        for (int e = threadIdx.x; e < BC * D; e += blockDim.x) {
            const int r = e / D, c = e % D;
            const i64 key = k0 + r;
            ks[r][c] = key < tk ? to_float(k[(bh * tk + key) * D + c]) : 0.0f;
            vs[r][c] = key < tk ? to_float(v[(bh * tk + key) * D + c]) : 0.0f;
        }
        __syncthreads();
        if (active) {
#pragma unroll 1
            for (int j = 0; j < BC; ++j) {
                const i64 key = k0 + j;
                if (key >= tk || key > i + past) break;
                float s = 0.0f, dp = 0.0f;
#pragma unroll
                for (int c = 0; c < D; ++c) {
                    s += qi[c] * ks[j][c];
                    dp += doi[c] * vs[j][c];
                }
                const float p = expf(s * scale - li);
                const float ds = p * (dp - di) * scale;
#pragma unroll
                for (int c = 0; c < D; ++c) acc[c] += ds * ks[j][c];
            }
        }
        __syncthreads();
    }
    if (active) {
#pragma unroll
        for (int c = 0; c < D; ++c) dq[(bh * tq + i) * D + c] = from_float<T>(acc[c]);
    }
}

/* dK (want_dk = 1) or dV (want_dk = 0): a thread per key row, query tiles
   (q, dO, L, delta) in shared memory. */
template <typename T, int D>
__device__ void flash_backward_dkv(const T* q, const T* k, const T* v, const T* d_out, const float* lse,
                                   const float* delta, T* grad, i64 tq, i64 tk, float scale, int want_dk) {
    __shared__ float qs[BC][D];
    __shared__ float dos[BC][D];
    __shared__ float ls[BC];
    __shared__ float ds_[BC];
    const i64 bh = blockIdx.y;
    const i64 past = tk - tq;
    const i64 first = (i64)blockIdx.x * BR;
    const i64 j = first + threadIdx.x;
    const bool active = j < tk;
    /* the first query that can see key `first` */
    const i64 q_begin = first - past > 0 ? first - past : 0;
    float kj[D], vj[D], acc[D];
    if (active) {
        load_row<T, D>(k, bh * tk + j, kj);
        if (want_dk) load_row<T, D>(v, bh * tk + j, vj);
    }
#pragma unroll
    for (int c = 0; c < D; ++c) acc[c] = 0.0f;
    for (i64 q0 = q_begin - q_begin % BC; q0 < tq; q0 += BC) {
        for (int e = threadIdx.x; e < BC * D; e += blockDim.x) {
            const int r = e / D, c = e % D;
            const i64 row = q0 + r;
            qs[r][c] = row < tq ? to_float(q[(bh * tq + row) * D + c]) : 0.0f;
            dos[r][c] = row < tq ? to_float(d_out[(bh * tq + row) * D + c]) : 0.0f;
        }
        for (int r = threadIdx.x; r < BC; r += blockDim.x) {
            const i64 row = q0 + r;
            ls[r] = row < tq ? lse[bh * tq + row] : 0.0f;
            ds_[r] = row < tq ? delta[bh * tq + row] : 0.0f;
        }
        __syncthreads();
        if (active) {
#pragma unroll 1
            for (int r = 0; r < BC; ++r) {
                const i64 i = q0 + r;
                if (i >= tq) break;
                if (j > i + past) continue; /* key in this query's future */
                float s = 0.0f;
#pragma unroll
                for (int c = 0; c < D; ++c) s += qs[r][c] * kj[c];
                const float p = expf(s * scale - ls[r]);
                if (want_dk) {
                    float dp = 0.0f;
#pragma unroll
                    for (int c = 0; c < D; ++c) dp += dos[r][c] * vj[c];
                    const float dsv = p * (dp - ds_[r]) * scale;
#pragma unroll
                    for (int c = 0; c < D; ++c) acc[c] += dsv * qs[r][c];
                } else {
#pragma unroll
                    for (int c = 0; c < D; ++c) acc[c] += p * dos[r][c];
                }
            }
        }
        __syncthreads();
    }
    if (active) {
#pragma unroll
        for (int c = 0; c < D; ++c) grad[(bh * tk + j) * D + c] = from_float<T>(acc[c]);
    }
}

#define FLASH(NAME, T, D)                                                                                      \
    extern "C" __global__ void __launch_bounds__(BR) flash_forward_d##D##_##NAME(                               \
        const T* q, const T* k, const T* v, T* o, float* lse, i64 tq, i64 tk, float scale) {                    \
        flash_forward<T, D>(q, k, v, o, lse, tq, tk, scale);                                                    \
    }                                                                                                           \
    extern "C" __global__ void flash_delta_d##D##_##NAME(const T* o, const T* d_out, float* delta, i64 rows) {  \
        flash_delta<T, D>(o, d_out, delta, rows);                                                               \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(BR) flash_backward_dq_d##D##_##NAME(                           \
        const T* q, const T* k, const T* v, const T* d_out, const float* lse, const float* delta, T* dq, i64 tq, \
        i64 tk, float scale) {                                                                                  \
        flash_backward_dq<T, D>(q, k, v, d_out, lse, delta, dq, tq, tk, scale);                                 \
    }                                                                                                           \
    extern "C" __global__ void __launch_bounds__(BR) flash_backward_dkv_d##D##_##NAME(                          \
        const T* q, const T* k, const T* v, const T* d_out, const float* lse, const float* delta, T* grad,      \
        i64 tq, i64 tk, float scale, int want_dk) {                                                             \
        flash_backward_dkv<T, D>(q, k, v, d_out, lse, delta, grad, tq, tk, scale, want_dk);                     \
    }

#define FLASH_DIMS(NAME, T) FLASH(NAME, T, 32) FLASH(NAME, T, 64) FLASH(NAME, T, 128)

FLASH_DIMS(f32, float)
FLASH_DIMS(f16, f16)
FLASH_DIMS(bf16, bf16)
