/*
 * index.cu: picking by integer index, and the scatters that undo it,
 * without float atomics.
 *
 * select_rows: out[i, :] = src[ids[i], :] for a dense [rows, width] src.
 *   An embedding lookup (wte[ids]) is this with width = C. One thread per
 *   output element; ids were checked against the row count on the host.
 *
 * index_add_rows: the adjoint, out[v, :] += sum of src[k, :] over every k
 *   with ids[k] == v (the embedding's backward: a token seen twice gets
 *   both gradients). Adding from many threads into the same row would need
 *   atomics, and float atomics add in whatever order threads arrive, so
 *   the bits would change from run to run. Instead the host groups the
 *   positions by id (a counting sort of the ids, which it has anyway):
 *     groups      : the distinct ids v
 *     group_start : where each group's positions begin in `positions`
 *     positions   : k values, grouped by id, increasing within a group
 *   and the kernel runs one block per distinct id, its threads across the
 *   row, each adding its column's contributions in increasing k, exactly
 *   the CPU's order. Rows no id names are left untouched.
 *
 * gather: out[p] = x[walk(p) + idx[p] * stride_d] (torch.gather), where
 *   `walk` is a layout over the index's shape with the input's strides and
 *   a stride of 0 along the gathered dimension d.
 *
 * scatter_add: the adjoint of gather. One thread per element of the dense
 *   output (shape `out_shape`): it scans the index along d at its own
 *   position in the other dimensions and adds every src value whose index
 *   names its coordinate, in increasing order along d (the CPU's order).
 *   Deterministic, at the cost of reading the index column once per output.
 *
 * Accumulation rounds to the storage type after every addition, as the
 * CPU does, so results match it bit for bit.
 */

template <typename T>
__device__ void select_rows(const T* src, const i64* ids, i64 width, T* out, i64 n) {
    FOR_EACH_INDEX(i, n) {
        const i64 r = i / width, c = i - r * width;
        out[i] = src[ids[r] * width + c];
    }
}

template <typename T>
__device__ void index_add_rows(T* out, const T* src, i64 width, const i64* groups, const i64* group_start,
                               const i64* positions) {
    const i64 g = blockIdx.x;
    const i64 row = groups[g];
    const i64 begin = group_start[g], end = group_start[g + 1];
    for (i64 c = threadIdx.x; c < width; c += blockDim.x) {
        T acc = out[row * width + c];
        for (i64 p = begin; p < end; ++p) acc = from_double<T>(to_double(acc) + to_double(src[positions[p] * width + c]));
        out[row * width + c] = acc;
    }
}

template <typename T>
__device__ void gather(const T* x, StridedLayout walk, const i64* idx, i64 stride_d, T* out, i64 n) {
    FOR_EACH_INDEX(p, n) { out[p] = x[layout_offset(walk, p) + idx[p] * stride_d]; }
}

/* out_shape: the output's dims (dense); index_shape: the index's dims
   (index and src are dense with that shape); d: the scattered dim. */
template <typename T>
__device__ void scatter_add(T* out, StridedLayout out_shape, const i64* idx, const T* src, StridedLayout index_shape,
                            int d, i64 n) {
    FOR_EACH_INDEX(o, n) {
        /* coordinates of o in the output, and its offset in index/src with coordinate d = 0 */
        i64 rest = o, base = 0, stride = 1, stride_d = 0, coord_d = 0;
        bool inside = true;
        for (int k = out_shape.rank - 1; k >= 0; --k) {
            const i64 c = rest % out_shape.dims[k];
            rest /= out_shape.dims[k];
            if (k == d) {
                coord_d = c;
                stride_d = stride;
            } else {
                if (c >= index_shape.dims[k]) inside = false;
                base += c * stride;
            }
            stride *= index_shape.dims[k];
        }
        if (!inside) continue;
        T acc = out[o];
        for (i64 i = 0; i < index_shape.dims[d]; ++i) {
            const i64 p = base + i * stride_d;
            if (idx[p] == coord_d) acc = from_double<T>(to_double(acc) + to_double(src[p]));
        }
        out[o] = acc;
    }
}

#define INDEX(NAME, T)                                                                                       \
    extern "C" __global__ void select_rows_##NAME(const T* src, const i64* ids, i64 width, T* out, i64 n) {  \
        select_rows<T>(src, ids, width, out, n);                                                             \
    }                                                                                                        \
    extern "C" __global__ void index_add_rows_##NAME(T* out, const T* src, i64 width, const i64* groups,     \
                                                     const i64* group_start, const i64* positions) {         \
        index_add_rows<T>(out, src, width, groups, group_start, positions);                                  \
    }                                                                                                        \
    extern "C" __global__ void gather_##NAME(const T* x, StridedLayout walk, const i64* idx, i64 stride_d,   \
                                             T* out, i64 n) {                                                \
        gather<T>(x, walk, idx, stride_d, out, n);                                                           \
    }                                                                                                        \
    extern "C" __global__ void scatter_add_##NAME(T* out, StridedLayout out_shape, const i64* idx,           \
                                                  const T* src, StridedLayout index_shape, int d, i64 n) {   \
        scatter_add<T>(out, out_shape, idx, src, index_shape, d, n);                                         \
    }

INDEX(f32, float)
INDEX(f16, f16)
INDEX(bf16, bf16)
INDEX(i64, i64)
INDEX(i8, i8)
