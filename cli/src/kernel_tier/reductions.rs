//! Kernel-tier cases for the reductions (sum, mean, max, min along a dim,
//! kept or dropped, and over everything): x seen as `[outer, n, inner]`
//! around the reduced dim, each lane of n summed or searched in f64.

use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

/// x `[outer, n, inner]` reduced along the middle: calls `row` with the n
/// values of each (outer, inner) pair, in order, and where to write.
fn for_each_lane(dims: [usize; 3], mut row: impl FnMut(usize, Vec<usize>)) {
    let [outer, n, inner] = dims;
    for o in 0..outer {
        for i in 0..inner {
            row(o * inner + i, (0..n).map(|j| (o * n + j) * inner + i).collect());
        }
    }
}

/// The three dims of x `[d0, d1, d2]` seen as `[outer, n, inner]` around `dim`.
fn around(dims: &[usize], dim: usize) -> [usize; 3] {
    [dims[..dim].iter().product(), dims[dim], dims[dim + 1..].iter().product()]
}

#[derive(Clone, Copy)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Var,
}

fn reduction_reference(dims: [usize; 3], kind: Reduction) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let n = dims[1] as f64;
        let outputs = dims[0] * dims[2];
        let (mut y, mut ys) = (vec![0.0; outputs], vec![0.0; outputs]);
        let (mut g, mut gs) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        for_each_lane(dims, |o, idx| {
            let v = r.v[o];
            match kind {
                Reduction::Sum | Reduction::Mean => {
                    let div = if matches!(kind, Reduction::Mean) { n } else { 1.0 };
                    y[o] = idx.iter().map(|&i| x[i]).sum::<f64>() / div;
                    ys[o] = idx.iter().map(|&i| x[i].abs()).sum::<f64>() / div;
                    for &i in &idx {
                        g[i] = v / div;
                        gs[i] = (v / div).abs();
                    }
                }
                Reduction::Max => {
                    // The first largest takes the gradient (ties are
                    // improbable in random data).
                    let best = idx.iter().copied().fold(idx[0], |b, i| if x[i] > x[b] { i } else { b });
                    y[o] = x[best];
                    ys[o] = x[best].abs();
                    g[best] = v;
                    gs[best] = v.abs();
                }
                Reduction::Var => {
                    let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / n;
                    y[o] = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / (n - 1.0);
                    ys[o] = y[o];
                    let mean_abs = mean.abs();
                    for &i in &idx {
                        g[i] = v * 2.0 * (x[i] - mean) / (n - 1.0);
                        gs[i] = (v * 2.0 * (x[i].abs() + mean_abs) / (n - 1.0)).abs();
                    }
                }
            }
        });
        Expected { out: Checked::new(y, ys), grads: vec![Checked::new(g, gs)] }
    }
}

pub(super) fn reduction_cases(b: &mut Builder, s: KernelSizes) {
    let dims = [4, s.rows, s.width];
    let x = b.away_from_zero(&dims);
    let spread_out = b.distinct(&dims);
    // Sums and means add in f64 and round once (u·Σ|x|); max copies an
    // element; var's backward 2(x − mean)/(n − 1) takes a few roundings.
    let sum_formula = "2·u·Σ|x| (added in f64, rounded once); backward 2·u·|v|/n";
    for dim in 0..3 {
        let d = dim as isize;
        let lanes = around(&dims, dim);
        let xs = x.clone();
        b.add(
            "sum",
            format!("dim={dim}"),
            vec![xs.clone()],
            move |v| v[0].sum(d, false),
            reduction_reference(lanes, Reduction::Sum),
            bound(2.0, sum_formula),
        );
        b.add(
            "mean",
            format!("dim={dim}, keepdim"),
            vec![xs.clone()],
            move |v| v[0].mean(d, true),
            reduction_reference(lanes, Reduction::Mean),
            bound(2.0, sum_formula),
        );
        b.add(
            "max",
            format!("dim={dim}"),
            vec![spread_out.clone()],
            move |v| v[0].max(d, false),
            reduction_reference(lanes, Reduction::Max),
            bound(1.0, "exact (a copy); backward exact"),
        );
    }
    for dim in [0usize, 2] {
        let d = dim as isize;
        b.add(
            "var",
            format!("dim={dim}, unbiased"),
            vec![x.clone()],
            move |v| v[0].var(d, false, true),
            reduction_reference(around(&dims, dim), Reduction::Var),
            bound(8.0, "8·u·var; backward 8·u·|v|·2(|x| + |mean|)/(n−1)"),
        );
    }
    let all = [1, x.numel(), 1];
    b.add(
        "sum_all",
        "all elements",
        vec![x.clone()],
        |v| v[0].sum_all(),
        reduction_reference(all, Reduction::Sum),
        bound(2.0, sum_formula),
    );
    b.add(
        "mean_all",
        "all elements",
        vec![x.clone()],
        |v| v[0].mean_all(),
        reduction_reference(all, Reduction::Mean),
        bound(2.0, sum_formula),
    );
}
