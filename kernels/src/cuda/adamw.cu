/*
 * adamw.cu: one AdamW step for every parameter in one launch.
 *
 * Per element, with decoupled weight decay as torch.optim.AdamW and the
 * CPU kernel (kernels/src/cpu/adamw.rs):
 *   p <- p * (1 - lr*wd)
 *   m <- b1 m + (1 - b1) g,      v <- b2 v + (1 - b2) g^2
 *   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * A GPT has ~150 parameter tensors, many of them small (biases, norms);
 * launching a kernel per tensor would spend more time launching than
 * computing. So the host describes all of them in one table and cuts them
 * into chunks of CHUNK elements; block b processes chunk b, which names
 * its tensor and its start. The per-tensor numbers (step size and bias
 * correction, which depend on that tensor's step count, and the decay
 * factor), like 1 - b1 and 1 - b2, are computed in double on the host and
 * rounded to f32, exactly as the CPU kernel converts them. Elements are independent, so the
 * result does not depend on the chunking.
 */

struct AdamWTensor {
    float* param;
    const float* grad;
    float* m;
    float* v;
    i64 len;
    float decay;      /* 1 - lr * weight_decay */
    float step_size;  /* lr / (1 - b1^t) */
    float bias2_sqrt; /* sqrt(1 - b2^t) */
    float pad;
};

struct AdamWChunk {
    i64 tensor;
    i64 start;
};

extern "C" __global__ void adamw_multi_f32(const AdamWTensor* tensors, const AdamWChunk* chunks, i64 chunk_len,
                                           float b1, float b2, float one_b1, float one_b2, float eps) {
    const AdamWChunk chunk = chunks[blockIdx.x];
    const AdamWTensor t = tensors[chunk.tensor];
    const i64 end = chunk.start + chunk_len < t.len ? chunk.start + chunk_len : t.len;
    for (i64 i = chunk.start + threadIdx.x; i < end; i += blockDim.x) {
        const float g = t.grad[i];
        float p = t.param[i] * t.decay;
        const float m = b1 * t.m[i] + one_b1 * g;
        const float v = b2 * t.v[i] + one_b2 * g * g;
        const float denom = sqrtf(v) / t.bias2_sqrt + eps;
        p = p - t.step_size * m / denom;
        t.param[i] = p;
        t.m[i] = m;
        t.v[i] = v;
    }
}
