/*
 * gemm_tiled.cu: C = A B with shared-memory tiles, the readable GEMM.
 *
 * cuBLAS does the real work (blas.rs); this kernel is here to show the
 * idea it is built on, and is tested against it. A is [m, k], B is [k, n]
 * (any strides, so transposed operands are free), C is dense [m, n]:
 *
 *   C[r][c] = sum_i A[r][i] * B[i][c]
 *
 * A naive kernel has each thread read a whole row of A and column of B
 * from global memory: 2k loads per output. Here a block of TILE x TILE
 * threads computes a TILE x TILE tile of C. It walks k in steps of TILE;
 * at each step the block loads one TILE x TILE tile of A and one of B into
 * shared memory (each thread loads one element of each), waits, and every
 * thread does TILE multiply-adds from shared memory. Each global value is
 * now read once per tile instead of once per output: TILE times fewer
 * global loads. The +1 column of padding keeps the threads of a warp on
 * different shared-memory banks when they read down a column.
 *
 *   grid = (ceil(n / TILE), ceil(m / TILE)),  block = (TILE, TILE)
 */

#define TILE 32

template <typename T>
__device__ void gemm_tiled(i64 m, i64 n, i64 k, const T* a, i64 a_offset, i64 a_row, i64 a_col, const T* b,
                           i64 b_offset, i64 b_row, i64 b_col, T* c) {
    __shared__ float as[TILE][TILE + 1];
    __shared__ float bs[TILE][TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const i64 row = (i64)blockIdx.y * TILE + ty;
    const i64 col = (i64)blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (i64 t = 0; t < k; t += TILE) {
        as[ty][tx] = (row < m && t + tx < k) ? to_float(a[a_offset + row * a_row + (t + tx) * a_col]) : 0.0f;
        bs[ty][tx] = (t + ty < k && col < n) ? to_float(b[b_offset + (t + ty) * b_row + col * b_col]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int i = 0; i < TILE; ++i) acc += as[ty][i] * bs[i][tx];
        __syncthreads();
    }
    if (row < m && col < n) c[row * n + col] = from_float<T>(acc);
}

#define GEMM_TILED(NAME, T)                                                                                    \
    extern "C" __global__ void gemm_tiled_##NAME(i64 m, i64 n, i64 k, const T* a, i64 a_offset, i64 a_row,     \
                                                 i64 a_col, const T* b, i64 b_offset, i64 b_row, i64 b_col,    \
                                                 T* c) {                                                       \
        gemm_tiled<T>(m, n, k, a, a_offset, a_row, a_col, b, b_offset, b_row, b_col, c);                       \
    }

GEMM_TILED(f32, float)
GEMM_TILED(f16, f16)
GEMM_TILED(bf16, bf16)
