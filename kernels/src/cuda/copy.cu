/*
 * copy.cu: moving elements without looking at them.
 *
 * Copying a strided view into a dense buffer (`contiguous()`), writing one
 * tensor into a slice of another (`cat`), and filling a buffer with one
 * value do not care what the bits mean, only how wide an element is. So
 * each kernel exists once per element width: 1, 2, 4 and 8 bytes (b8 ...
 * b64), and serves every dtype of that width (i8; f16 and bf16; f32; i64).
 *
 *   copy_bN(src, src_layout, dst, dst_layout, n):
 *       dst[dst_layout(i)] = src[src_layout(i)]  for i < n
 * Both sides are layouts, so the same kernel gathers a transposed view
 * into dense memory and scatters dense memory into a narrow window of a
 * larger tensor.
 *
 *   triangle_bN(src, dst, rows, cols, diagonal, lower, n):
 *       torch.tril / torch.triu over the last two dimensions of a dense
 *       buffer: keep element (r, c) when c - r <= diagonal (lower) or
 *       c - r >= diagonal (upper), write zero bits otherwise (zero bits
 *       are 0 in every dtype).
 */

template <typename T>
__device__ void copy_strided(const T* src, StridedLayout s, T* dst, StridedLayout d, i64 n) {
    FOR_EACH_INDEX(i, n) { dst[layout_offset(d, i)] = src[layout_offset(s, i)]; }
}

template <typename T>
__device__ void fill(T* dst, T value, i64 n) {
    FOR_EACH_INDEX(i, n) { dst[i] = value; }
}

template <typename T>
__device__ void triangle(const T* src, T* dst, i64 rows, i64 cols, i64 diagonal, int lower, i64 n) {
    FOR_EACH_INDEX(i, n) {
        i64 c = i % cols;
        i64 r = (i / cols) % rows;
        bool keep = lower ? (c - r <= diagonal) : (c - r >= diagonal);
        dst[i] = keep ? src[i] : (T)0;
    }
}

#define BY_WIDTH(NAME, T)                                                                              \
    extern "C" __global__ void copy_##NAME(const T* src, StridedLayout s, T* dst, StridedLayout d, i64 n) { \
        copy_strided<T>(src, s, dst, d, n);                                                            \
    }                                                                                                  \
    extern "C" __global__ void fill_##NAME(T* dst, T value, i64 n) { fill<T>(dst, value, n); }         \
    extern "C" __global__ void triangle_##NAME(const T* src, T* dst, i64 rows, i64 cols, i64 diagonal, \
                                               int lower, i64 n) {                                    \
        triangle<T>(src, dst, rows, cols, diagonal, lower, n);                                         \
    }

BY_WIDTH(b8, unsigned char)
BY_WIDTH(b16, unsigned short)
BY_WIDTH(b32, unsigned int)
BY_WIDTH(b64, unsigned long long)
