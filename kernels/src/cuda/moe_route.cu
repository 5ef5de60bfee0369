/*
 * moe_route.cu: a mixture of experts' routing, done where the
 * probabilities are.
 *
 * A routed layer turns each of N tokens' router probabilities (a row of
 * probs [N, E]) into the k experts it goes to, then groups the tokens by
 * expert so that each expert can run one product over only its rows. Done
 * on the host, that copies the whole N x E matrix out of GPU memory for
 * every layer and waits for the GPU to finish first. Here the choice and
 * the grouping stay on the device, and only E + 1 numbers come back: each
 * expert's start in the grouped lists, which the host needs to size the
 * expert's product.
 *
 * Outputs, the same as kernels/src/cpu/moe_route.rs computes:
 *   chosen    [N, k]   each token's experts, most probable first; equal
 *                      probabilities in index order (a stable sort)
 *   offsets   [E + 1]  expert e's entries are [offsets[e], offsets[e+1])
 *   tokens    [N k]    per expert, the tokens routed to it, in token order
 *   positions [N k]    beside each, token * k + slot: where its weight
 *                      sits among the N k chosen weights
 *
 * Four launches:
 *   1. moe_top_k:          one block per token. Expert j's rank in its row
 *                          is the number of experts that sort before it
 *                          (larger, or equal with a lower index); the k
 *                          experts of rank < k write themselves to slot
 *                          rank. No sort, and the ties come out as a stable
 *                          sort leaves them.
 *   2. moe_expert_counts:  one block per expert counts its entries in
 *                          chosen, into offsets[e + 1].
 *   3. moe_expert_offsets: one thread turns the counts into starts (a
 *                          prefix sum over E numbers).
 *   4. moe_group_by_expert: one block per expert walks chosen in order, a
 *                          block-wide chunk at a time, and writes each
 *                          entry it owns at its start plus the number of
 *                          its entries before it (a stable compaction: a
 *                          warp ballot ranks the matches inside a warp,
 *                          the warps' totals rank the warps).
 * Each step is a pure function of its input, so the result is the same
 * bits on every run (no atomics).
 *
 * Probabilities are compared as f64 under the total order of Rust's
 * f64::total_cmp, which the CPU's sort uses: widening f32, f16 or bf16 to
 * f64 is exact, so both sides see the same keys.
 */

/* The most experts a row may hold (the keys sit in shared memory). */
#define MAX_EXPERTS 4096

/* f64::total_cmp as an integer comparison: the bits as a signed integer,
   with the magnitude bits of negative values flipped. */
__device__ __forceinline__ i64 total_order_key(double x) {
    const i64 bits = __double_as_longlong(x);
    return bits ^ (i64)(((unsigned long long)(bits >> 63)) >> 1);
}

template <typename T>
__device__ void moe_top_k(const T* probs, i64 e, i64 k, i64* chosen) {
    __shared__ i64 keys[MAX_EXPERTS];
    const i64 token = blockIdx.x;
    for (i64 j = threadIdx.x; j < e; j += blockDim.x) keys[j] = total_order_key(to_double(probs[token * e + j]));
    __syncthreads();
    for (i64 j = threadIdx.x; j < e; j += blockDim.x) {
        i64 rank = 0;
        for (i64 i = 0; i < e; i++) rank += keys[i] > keys[j] || (keys[i] == keys[j] && i < j);
        if (rank < k) chosen[token * k + rank] = j;
    }
}

/* offsets[expert + 1] = how often `expert` appears among the `total` ids. */
extern "C" __global__ void moe_expert_counts(const i64* chosen, i64 total, i64* offsets) {
    const i64 expert = blockIdx.x;
    i64 count = 0;
    for (i64 base = 0; base < total; base += blockDim.x) {
        const i64 i = base + threadIdx.x;
        count += __syncthreads_count(i < total && chosen[i] == expert);
    }
    if (threadIdx.x == 0) offsets[expert + 1] = count;
}

/* Counts in offsets[1..=e] to starts, offsets[0] = 0 (one thread). */
extern "C" __global__ void moe_expert_offsets(i64* offsets, i64 e) {
    offsets[0] = 0;
    for (i64 i = 1; i <= e; i++) offsets[i] += offsets[i - 1];
}

/* blockDim.x must be a multiple of 32 (whole warps vote). */
extern "C" __global__ void moe_group_by_expert(const i64* chosen, i64 total, i64 k, const i64* offsets, i64* tokens,
                                               i64* positions) {
    __shared__ int warp_matches[32];
    const i64 expert = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    i64 next = offsets[expert]; /* where this chunk's first match goes */
    for (i64 base = 0; base < total; base += blockDim.x) {
        const i64 i = base + threadIdx.x;
        const bool match = i < total && chosen[i] == expert;
        const unsigned votes = __ballot_sync(0xffffffffu, match);
        if (lane == 0) warp_matches[warp] = __popc(votes);
        __syncthreads();
        int before = __popc(votes & ((1u << lane) - 1u));
        for (int w = 0; w < warp; w++) before += warp_matches[w];
        if (match) {
            tokens[next + before] = i / k;
            positions[next + before] = i;
        }
        /* Also the barrier before warp_matches is written again. */
        next += __syncthreads_count(match);
    }
}

#define MOE_ROUTE(NAME, T)                                                                     \
    extern "C" __global__ void moe_top_k_##NAME(const T* probs, i64 e, i64 k, i64* chosen) { \
        moe_top_k<T>(probs, e, k, chosen);                                                     \
    }

MOE_ROUTE(f32, float)
MOE_ROUTE(f16, f16)
MOE_ROUTE(bf16, bf16)
