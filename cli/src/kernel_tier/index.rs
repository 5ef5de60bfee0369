//! Kernel-tier cases for indexing: embedding, index_select and gather
//! forward (copies, so exact) and backward (gradients scattered back and
//! summed where an index repeats), against plain f64 loops.

use tensor::Tensor;

use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

/// out[o] = x[source[o]] for a map from output to input elements; the
/// backward adds each v[o] into its source.
fn lookup_reference(sources: Vec<usize>) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let out: Vec<f64> = sources.iter().map(|&i| x[i]).collect();
        let (mut g, mut gs) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        for (o, &i) in sources.iter().enumerate() {
            g[i] += r.v[o];
            gs[i] += r.v[o].abs();
        }
        Expected { out: Checked::relative(out), grads: vec![Checked::new(g, gs)] }
    }
}

pub(super) fn index_cases(b: &mut Builder, s: KernelSizes) {
    let (vocab, n) = (s.rows, s.width);
    let table = b.uniform(&[vocab, n], -1.0, 1.0);
    // 4·vocab lookups: each row is read about 4 times, some more.
    let lookups = 4 * vocab;
    let ids: Vec<i64> = (0..lookups).map(|i| ((i * 7 + i / 3) % vocab) as i64).collect();
    let most_repeats = (0..vocab).map(|r| ids.iter().filter(|&&i| i as usize == r).count()).max().unwrap_or(1);
    // A copy forward; the backward adds each row's r reads in f32, so it is
    // off by up to r·u·Σ|v| (r the most reads of one row).
    let formula = format!("exact forward; backward r·u·Σ|v|, r = {most_repeats} most reads of one row");
    let tol = bound(most_repeats as f64, formula);
    let ids_t = Tensor::from_vec(ids.clone(), [4, vocab]).unwrap();
    let sources: Vec<usize> = ids.iter().flat_map(|&i| (0..n).map(move |j| i as usize * n + j)).collect();
    let it = ids_t.clone();
    b.add(
        "embedding",
        "ids [4, vocab], repeats",
        vec![table.clone()],
        move |v| v[0].embedding(&it),
        lookup_reference(sources.clone()),
        tol.clone(),
    );
    let flat = ids_t.reshape(&[-1]);
    b.add(
        "index_select",
        "dim=0, repeats",
        vec![table.clone()],
        move |v| v[0].index_select(0, &flat),
        lookup_reference(sources),
        tol.clone(),
    );
    // Columns: every third, then column 0 again and the last.
    let mut cols: Vec<i64> = (0..n as i64).step_by(3).collect();
    cols.extend([0, n as i64 - 1]);
    let col_sources: Vec<usize> = (0..vocab).flat_map(|r| cols.iter().map(move |&c| r * n + c as usize)).collect();
    let ct = Tensor::from_vec(cols.clone(), [cols.len()]).unwrap();
    b.add(
        "index_select",
        "dim=1",
        vec![table.clone()],
        move |v| v[0].index_select(1, &ct),
        lookup_reference(col_sources),
        bound(2.0, "exact forward; backward 2·u·Σ|v| (a column read at most twice)"),
    );
    // gather along dim 1: 5 picks per row.
    let picks: Vec<i64> = (0..vocab * 5).map(|i| ((i * 131 + 17) % n) as i64).collect();
    let gather_sources: Vec<usize> = picks.iter().enumerate().map(|(o, &c)| (o / 5) * n + c as usize).collect();
    let gt = Tensor::from_vec(picks, [vocab, 5]).unwrap();
    b.add(
        "gather",
        "dim=1",
        vec![table],
        move |v| v[0].gather(1, &gt),
        lookup_reference(gather_sources),
        bound(5.0, "exact forward; backward 5·u·Σ|v| (5 picks per row)"),
    );
}
