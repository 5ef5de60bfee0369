//! The matrix products of a training step, by shape.
//!
//! Almost all of a GPT's arithmetic is its linear layers. With the batch
//! flattened into M = batch·context rows, a layer with weight W `[N, K]`
//! (PyTorch's `[out, in]`) costs three GEMMs per step:
//!   forward  y  = x·Wᵀ   `[M, K]·[K, N]`, Wᵀ read through swapped strides;
//!   backward dx = dY·W   `[M, N]·[N, K]`;
//!   backward dW = dYᵀ·x  `[N, M]·[M, K]`, dYᵀ read through swapped strides;
//! each 2·M·N·K FLOPs. Per block that is the qkv projection (K = C,
//! N = 3C), the attention output (C → C), the MLP up (C → 4C) and down
//! (4C → C); once per step the tied LM head (C → V), the largest of all.
//! These shapes are what `scratchgpt bench gemm` and the matmul benchmark
//! time, so the GEMM is tuned on exactly what training runs.

use super::GPTConfig;

/// One GEMM C `[m, n]` = A `[m, k]`·B `[k, n]` and how its operands lie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// Layer and pass, e.g. `"mlp_up.dW"`.
    pub name: String,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// A is stored `[k, m]` and read transposed.
    pub a_transposed: bool,
    /// B is stored `[n, k]` and read transposed.
    pub b_transposed: bool,
    /// How many times a step runs it (once per block, or once).
    pub per_step: usize,
}

impl Product {
    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }
}

impl GPTConfig {
    /// The forward and backward GEMMs of every distinct linear layer for
    /// `rows` = batch·context tokens per step.
    pub fn linear_products(&self, rows: usize) -> Vec<Product> {
        let (c, f, l) = (self.emb_dim, self.mlp_width(), self.n_layers);
        let (q, kv) = (self.q_width(), self.kv_width());
        // The Llama family's separate q, k and v projections and SwiGLU's
        // gate and up have the same K and run side by side: each pair is
        // listed as one product of their summed widths, so the FLOPs count
        // right and the shapes stay few.
        let mlp_up = if self.model_type.is_gpt2() { f } else { 2 * f };
        let layers = [
            ("qkv", c, q + 2 * kv, l),
            ("attn_out", q, c, l),
            ("mlp_up", c, mlp_up, l),
            ("mlp_down", f, c, l),
            ("lm_head", c, self.vocab_size, 1),
        ];
        let mut products = Vec::new();
        for (layer, inputs, outputs, per_step) in layers {
            let product = |pass: &str, m, k, n, a_transposed, b_transposed| Product {
                name: format!("{layer}.{pass}"),
                m,
                k,
                n,
                a_transposed,
                b_transposed,
                per_step,
            };
            products.push(product("y", rows, inputs, outputs, false, true));
            products.push(product("dx", rows, outputs, inputs, false, false));
            products.push(product("dW", outputs, rows, inputs, true, false));
        }
        products
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_products_account_for_six_flops_per_weight() {
        let config = GPTConfig::preset("gpt2-small").unwrap();
        let rows = 256;
        let total: f64 = config.linear_products(rows).iter().map(|p| p.flops() * p.per_step as f64).sum();
        // Every weight matrix (biases, norms and wpe aside) is multiplied
        // three times per token, 2 FLOPs each.
        let (c, l, v) = (config.emb_dim, config.n_layers, config.vocab_size);
        let weights = l * 12 * c * c + v * c;
        assert_eq!(total, 6.0 * (weights * rows) as f64);
        let head = config.linear_products(rows).into_iter().find(|p| p.name == "lm_head.y").unwrap();
        assert_eq!((head.m, head.k, head.n, head.b_transposed), (256, 768, 50257, true));
    }
}
