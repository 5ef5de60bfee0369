//! Kernel-tier cases for the matrix products (`matmul`, transposed
//! operands, batched, `linear` with a bias) at sizes that cross the GEMM's
//! ragged tiles, its K blocks and its threshold for threads, against
//! `kernels::cpu::gemm::gemm_reference` in f64; each product's bound is
//! u times the sum of |aₖ·bₖ| it adds.

use autograd::ops::linear::linear;
use kernels::cpu::gemm::{gemm_reference, GemmShape, Strided};

use super::rows::transpose;
use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

/// One dense operand as the GEMM reference reads it: row-major `[rows,
/// cols]`, or the transpose of a stored `[cols, rows]`.
fn operand(offset: usize, rows: usize, cols: usize, transposed: bool) -> Strided {
    if transposed {
        Strided::row_major(offset, rows).transposed()
    } else {
        Strided::row_major(offset, cols)
    }
}

fn abs(x: &[f64]) -> Vec<f64> {
    x.iter().map(|x| x.abs()).collect()
}

/// C = A·B for `batch` products (an operand with `batch_a` = 1 is shared),
/// A `[m, k]` stored as given or transposed, likewise B, and the VJP
/// dA = v·Bᵀ, dB = Aᵀ·v, all by `gemm_reference`. Run again on |A|, |B|,
/// |v| it gives each element's Σ|aₖbₖ|, the scale of its rounding error.
#[derive(Clone, Copy)]
struct Product {
    batch: usize,
    shared_b: bool,
    shape: GemmShape,
    a_t: bool,
    b_t: bool,
}

impl Product {
    fn forward_backward(self, a: &[f64], b: &[f64], v: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let GemmShape { m, k, n } = self.shape;
        let (mut c, mut da, mut db) = (Vec::new(), Vec::new(), vec![0.0; b.len()]);
        for e in 0..self.batch {
            let (ao, bo) = (e * m * k, if self.shared_b { 0 } else { e * k * n });
            let (sa, sb) = (operand(ao, m, k, self.a_t), operand(bo, k, n, self.b_t));
            let sv = Strided::row_major(e * m * n, n);
            c.extend(gemm_reference(self.shape, a, sa, b, sb));
            // dA [m, k] = v [m, n] · Bᵀ [n, k], laid out as A is stored.
            let da_e = gemm_reference(GemmShape { m, k: n, n: k }, v, sv, b, sb.transposed());
            da.extend(if self.a_t { transpose(&da_e, m, k) } else { da_e });
            // dB [k, n] = Aᵀ [k, m] · v [m, n], summed over a shared B.
            let db_e = gemm_reference(GemmShape { m: k, k: m, n }, a, sa.transposed(), v, sv);
            let db_e = if self.b_t { transpose(&db_e, k, n) } else { db_e };
            for (d, x) in db[bo..bo + k * n].iter_mut().zip(db_e) {
                *d += x;
            }
        }
        (c, da, db)
    }

    fn reference(self, bias: bool) -> impl Fn(&ReferenceInput) -> Expected {
        move |r: &ReferenceInput| {
            let (mut c, da, db) = self.forward_backward(&r.xs[0], &r.xs[1], r.v);
            let (mut cs, das, dbs) = self.forward_backward(&abs(&r.xs[0]), &abs(&r.xs[1]), &abs(r.v));
            let mut grads = vec![Checked::new(da, das), Checked::new(db, dbs)];
            if bias {
                let n = self.shape.n;
                let bias = &r.xs[2];
                let (mut dbias, mut dbias_s) = (vec![0.0; n], vec![0.0; n]);
                for (i, (c, cs)) in c.iter_mut().zip(cs.iter_mut()).enumerate() {
                    *c += bias[i % n];
                    *cs += bias[i % n].abs();
                    dbias[i % n] += r.v[i];
                    dbias_s[i % n] += r.v[i].abs();
                }
                grads.push(Checked::new(dbias, dbias_s));
            }
            Expected { out: Checked::new(c, cs), grads }
        }
    }
}

pub(super) fn matmul_cases(b: &mut Builder, s: KernelSizes) {
    let (m, k, n) = (s.rows, s.inner, s.width);
    // A dot product of length K in f32 (FMA chains, K cut in blocks) is off
    // by at most ~K·u·Σ|aₖbₖ| in the worst case; rounding errors of random
    // sign grow like √K, which is the realistic bound used here, with K the
    // longest contraction of the forward and the two backward products.
    let longest = m.max(k).max(n) as f64;
    let formula = format!("2·√K·u·Σ|aₖbₖ| per element, K = longest contraction = {}", m.max(k).max(n));
    let tol = bound(2.0 * longest.sqrt(), formula);
    let shape = GemmShape { m, k, n };
    let plain = Product { batch: 1, shared_b: false, shape, a_t: false, b_t: false };
    let (a, w) = (b.uniform(&[m, k], -1.0, 1.0), b.uniform(&[k, n], -1.0, 1.0));
    b.add("matmul", "plain", vec![a.clone(), w.clone()], |v| v[0].matmul(&v[1]), plain.reference(false), tol.clone());
    let (at, wt) = (b.uniform(&[k, m], -1.0, 1.0), b.uniform(&[n, k], -1.0, 1.0));
    let both_t = Product { a_t: true, b_t: true, ..plain };
    b.add(
        "matmul",
        "transposed operands",
        vec![at, wt.clone()],
        |v| v[0].t().matmul(&v[1].t()),
        both_t.reference(false),
        tol.clone(),
    );
    // Batched: three products, split across threads by batch entry.
    let bm = m / 3 + 1;
    let batched = Product { batch: 3, shape: GemmShape { m: bm, k, n }, ..plain };
    let (ab, wb) = (b.uniform(&[3, bm, k], -1.0, 1.0), b.uniform(&[3, k, n], -1.0, 1.0));
    b.add("matmul", "batched", vec![ab.clone(), wb], |v| v[0].matmul(&v[1]), batched.reference(false), tol.clone());
    // A linear layer: x [3, bm, k] · Wᵀ (W stored [n, k]) + bias, the
    // weight shared by the batch, as in a model.
    let linear_product = Product { batch: 3, shared_b: true, shape: GemmShape { m: bm, k, n }, a_t: false, b_t: true };
    let bias = b.uniform(&[n], -1.0, 1.0);
    b.add(
        "linear",
        "bias, batched input",
        vec![ab, wt.clone(), bias],
        |v| linear(&v[0], &v[1], Some(&v[2])),
        linear_product.reference(true),
        tol.clone(),
    );
    // One row against W [n, k]: a decode step, the matrix-vector kernel.
    let row = Product { batch: 1, shared_b: true, shape: GemmShape { m: 1, k, n }, a_t: false, b_t: true };
    let x = b.uniform(&[1, k], -1.0, 1.0);
    b.add("linear", "one row (matrix-vector)", vec![x, wt], |v| linear(&v[0], &v[1], None), row.reference(false), tol);
}
