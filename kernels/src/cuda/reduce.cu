/*
 * reduce.cu: reductions along one dimension, and of a whole tensor.
 *
 * Reducing dimension d of a tensor leaves one output per position of the
 * other dimensions; each output combines n = dims[d] inputs found at
 *   base(o) + j * stride,  j = 0 .. n-1,
 * where base(o) comes from `outer`, a layout over the output's shape with
 * the input's strides. Two kernels, picked by the host by that stride:
 *
 * - rows (stride 1, e.g. summing the last dimension): one block per output;
 *   threads stride over the row and combine with a block reduction.
 * - columns (stride > 1, e.g. a bias gradient: summing [B*T, C] over B*T):
 *   neighbouring outputs are neighbours in memory, so each thread owns one
 *   output and walks down its column, and a warp reads 32 adjacent values
 *   at a time. Long columns are cut into `chunks` so enough threads run:
 *   pass 1 writes one partial per (chunk, output), pass 2 combines the
 *   partials in chunk order.
 *
 * Sums, means and variances accumulate in double, as the CPU does, and
 * every combination happens in a fixed order, so results never depend on
 * scheduling. Ops: 0 sum  1 mean  2 max  3 min  4 argmax  5 argmin
 * 6 var (biased)  7 var (unbiased; rows kernel only). Max and min
 * propagate NaN; argmax and argmin return the first index of the extreme
 * value.
 *
 * Whole-tensor sums (`sum_all`, the loss, gradient norms) use a fixed grid
 * of SUM_ALL_BLOCKS blocks: each writes a partial over its grid-stride
 * share, then one block adds the partials in order. `squares` sums x^2.
 */

#define SUM_ALL_BLOCKS 256

struct Acc {
    double v; /* running sum, or the extreme value */
    i64 i;    /* index of the extreme value; -1 while empty */
};

__device__ __forceinline__ Acc acc_of(double v, i64 i) {
    Acc a;
    a.v = v;
    a.i = i;
    return a;
}

__device__ __forceinline__ Acc acc_empty() { return acc_of(0.0, -1); }

/* Combines two partial results. The answer does not depend on which
   indices each side covered or in which order they are combined (up to
   the rounding of sums), so any fixed tree gives reproducible results:
   max/min keep NaN, arg ops prefer the smaller index on ties. */
__device__ __forceinline__ Acc acc_combine(int op, Acc a, Acc b) {
    if (op <= 1) return acc_of(a.v + b.v, 0);
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    switch (op) {
        case 2:
            if (a.v != a.v) return a;
            if (b.v != b.v) return b;
            return b.v > a.v ? b : a;
        case 3:
            if (a.v != a.v) return a;
            if (b.v != b.v) return b;
            return b.v < a.v ? b : a;
        case 4:
            return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
        default:
            return (b.v < a.v || (b.v == a.v && b.i < a.i)) ? b : a;
    }
}

/* Block-wide combine: a shared-memory tree that halves the active threads
   each step, the same tree for every launch. */
__device__ Acc block_combine(int op, Acc a, Acc* scratch) {
    scratch[threadIdx.x] = a;
    __syncthreads();
    for (int width = blockDim.x / 2; width > 0; width /= 2) {
        if (threadIdx.x < width) scratch[threadIdx.x] = acc_combine(op, scratch[threadIdx.x], scratch[threadIdx.x + width]);
        __syncthreads();
    }
    Acc r = scratch[0];
    __syncthreads();
    return r;
}

__device__ __forceinline__ double finish(int op, Acc a, i64 n) { return op == 1 ? a.v / (double)n : a.v; }

/* One block per output; every thread gets the result for row `o`. */
template <typename T>
__device__ Acc reduce_row(const T* x, StridedLayout outer, i64 n, i64 stride, int op, i64 o, Acc* scratch) {
    const i64 base = layout_offset(outer, o);
    const int first = op >= 6 ? 0 : op; /* a variance starts with a sum */
    Acc a = acc_empty();
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) a = acc_combine(first, a, acc_of(to_double(x[base + j * stride]), j));
    a = block_combine(first, a, scratch);
    if (op < 6) return acc_of(finish(op, a, n), a.i);
    /* variance: a second pass over the row, around the mean */
    const double mean = a.v / (double)n;
    Acc sq = acc_empty();
    for (i64 j = threadIdx.x; j < n; j += blockDim.x) {
        double d = to_double(x[base + j * stride]) - mean;
        sq.v += d * d;
    }
    sq = block_combine(0, sq, scratch);
    return acc_of(sq.v / (double)(op == 7 ? n - 1 : n), 0);
}

template <typename T>
__device__ void reduce_rows_values(const T* x, StridedLayout outer, i64 n, i64 stride, T* out, int op) {
    __shared__ Acc scratch[1024];
    Acc a = reduce_row(x, outer, n, stride, op, blockIdx.x, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = from_double<T>(a.v);
}

template <typename T>
__device__ void reduce_rows_indices(const T* x, StridedLayout outer, i64 n, i64 stride, i64* out, int op) {
    __shared__ Acc scratch[1024];
    Acc a = reduce_row(x, outer, n, stride, op, blockIdx.x, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = a.i;
}

/* Columns, pass 1: thread (o, chunk) combines j in [chunk*per, (chunk+1)*per). */
template <typename T>
__device__ void reduce_cols_partial(const T* x, StridedLayout outer, i64 outputs, i64 n, i64 stride, i64 per,
                                    int op, Acc* partial) {
    const i64 o = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 chunk = blockIdx.y;
    if (o >= outputs) return;
    const i64 base = layout_offset(outer, o);
    const i64 start = chunk * per;
    const i64 end = start + per < n ? start + per : n;
    Acc a = acc_empty();
    for (i64 j = start; j < end; ++j) a = acc_combine(op, a, acc_of(to_double(x[base + j * stride]), j));
    partial[chunk * outputs + o] = a;
}

/* Columns, pass 2: combine the chunks of output o in chunk order. */
template <typename T>
__device__ void reduce_cols_final(const Acc* partial, i64 outputs, i64 chunks, i64 n, int op, T* values,
                                  i64* indices) {
    FOR_EACH_INDEX(o, outputs) {
        Acc a = acc_empty();
        for (i64 c = 0; c < chunks; ++c) a = acc_combine(op, a, partial[c * outputs + o]);
        if (values) values[o] = from_double<T>(finish(op, a, n));
        if (indices) indices[o] = a.i;
    }
}

template <typename T>
__device__ void sum_all_partial(const T* x, StridedLayout lx, i64 n, int squares, double* partial) {
    __shared__ double scratch[32];
    double s = 0.0;
    FOR_EACH_INDEX(i, n) {
        double v = to_double(x[layout_offset(lx, i)]);
        s += squares ? v * v : v;
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* One block: adds `count` partials in a fixed order, scales, stores T. */
template <typename T>
__device__ void sum_all_final(const double* partial, int count, double scale, T* out) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = from_double<T>(s * scale);
}

#define REDUCE(NAME, T)                                                                                      \
    extern "C" __global__ void reduce_rows_##NAME(const T* x, StridedLayout outer, i64 n, i64 stride, T* out, \
                                                  int op) {                                                  \
        reduce_rows_values<T>(x, outer, n, stride, out, op);                                                 \
    }                                                                                                        \
    extern "C" __global__ void arg_reduce_rows_##NAME(const T* x, StridedLayout outer, i64 n, i64 stride,    \
                                                      i64* out, int op) {                                    \
        reduce_rows_indices<T>(x, outer, n, stride, out, op);                                                \
    }                                                                                                        \
    extern "C" __global__ void reduce_cols_partial_##NAME(const T* x, StridedLayout outer, i64 outputs, i64 n, \
                                                          i64 stride, i64 per, int op, Acc* partial) {       \
        reduce_cols_partial<T>(x, outer, outputs, n, stride, per, op, partial);                              \
    }                                                                                                        \
    extern "C" __global__ void reduce_cols_final_##NAME(const Acc* partial, i64 outputs, i64 chunks, i64 n,  \
                                                        int op, T* values, i64* indices) {                   \
        reduce_cols_final<T>(partial, outputs, chunks, n, op, values, indices);                              \
    }                                                                                                        \
    extern "C" __global__ void sum_all_partial_##NAME(const T* x, StridedLayout lx, i64 n, int squares,       \
                                                      double* partial) {                                     \
        sum_all_partial<T>(x, lx, n, squares, partial);                                                      \
    }                                                                                                        \
    extern "C" __global__ void sum_all_final_##NAME(const double* partial, int count, double scale, T* out) { \
        sum_all_final<T>(partial, count, scale, out);                                                        \
    }

REDUCE(f32, float)
REDUCE(f16, f16)
REDUCE(bf16, bf16)
REDUCE(i64, i64)
REDUCE(i8, i8)
REDUCE(f64, double)
