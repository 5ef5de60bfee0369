//! Principal component analysis: the few directions along which a cloud
//! of points spreads the most, to draw a high-dimensional cloud on paper.
//!
//! Take `n` points of `C` numbers each, the rows of `X` `[n, C]`. Subtract
//! their mean `μ` `[C]` so the cloud sits at the origin: `Xc = X − μ`. The
//! covariance `S = Xcᵀ Xc / n` `[C, C]` says how the coordinates vary
//! together: for a unit direction `v`, `vᵀ S v` is the variance of the
//! points' projections `Xc v` onto it. The direction of largest variance is
//! therefore the eigenvector of `S` with the largest eigenvalue, and that
//! eigenvalue is the variance along it; the next one, orthogonal to the
//! first, is the second eigenvector, and so on. The eigenvalues add up to
//! the trace of `S`, the cloud's total variance, so each component
//! explains `λᵢ / trace(S)` of it.
//!
//! The eigenvectors come from power iteration: multiplying any start
//! vector by `S` again and again stretches it most along the top
//! eigenvector, so after normalising it converges there (as fast as
//! `λ₂/λ₁` shrinks). To find the next one, deflate: remove the found
//! directions from the iterate after every multiplication (`v ← v − Σ
//! (uᵀv) u`). A symmetric `S` maps the space orthogonal to its found
//! eigenvectors into itself, so the iteration now converges to the top
//! eigenvector of what is left, the next component; this also keeps the
//! components orthonormal where `S` has no variance left (fewer points
//! than dimensions). The variance along `v` is `vᵀ S v`. Everything is
//! computed in f64 on our tensors.

use tensor::{DType, Generator, Tensor};

/// The first `k` principal components of a set of points.
#[derive(Clone, Debug)]
pub struct Pca {
    /// The points' mean `μ`, `[1, C]` (f64).
    pub mean: Tensor,
    /// The components as rows, orthonormal, largest variance first:
    /// `[k, C]` (f64).
    pub components: Tensor,
    /// The variance of the points along each component (the eigenvalues
    /// of the covariance), descending: `[k]`.
    pub explained_variance: Vec<f64>,
    /// The total variance, `trace(S)`: the sum of all `C` eigenvalues.
    pub total_variance: f64,
}

/// Power iteration stops when the direction moves less than this.
const CONVERGED: f64 = 1e-13;
/// ... or after this many multiplications by `S`.
const MAX_ITERATIONS: usize = 20_000;
/// Variance below this share of the total is rounding error, not a
/// direction of the cloud.
const NEGLIGIBLE: f64 = 1e-12;

impl Pca {
    /// Fits `k` components to the rows of `points` `[n, C]` (any float
    /// dtype). `k` is capped at `C`; `n` must be at least 1.
    pub fn fit(points: &Tensor, k: usize) -> Pca {
        assert_eq!(points.rank(), 2, "Pca::fit: points must be [n, C], got {}", points.shape());
        let (n, c) = (points.dims()[0], points.dims()[1]);
        assert!(n > 0, "Pca::fit: no points");
        let x = points.to_dtype(DType::F64);
        let mean = x.mean(0, true); // [1, C]
        let centered = x.sub(&mean); // [n, C]
        let covariance = centered.t().matmul(&centered).div_scalar(n as f64); // [C, C]
        let total_variance = trace(&covariance);
        // A fixed seed: the same points give the same components.
        let mut gen = Generator::seed(0x5ca1ab1e);
        let mut found: Vec<Tensor> = Vec::new(); // each [C, 1]
        let mut explained_variance = Vec::new();
        for _ in 0..k.min(c) {
            let start = Tensor::randn([c, 1], &mut gen).to_dtype(DType::F64);
            let v = top_eigenvector(&covariance, start, &found, NEGLIGIBLE * total_variance);
            let lambda = v.t().matmul(&covariance).matmul(&v).item::<f64>().max(0.0);
            explained_variance.push(lambda);
            found.push(v);
        }
        let components =
            if found.is_empty() { Tensor::zeros([0, c], DType::F64) } else { Tensor::cat(&found, 1).t().contiguous() };
        Pca { mean, components, explained_variance, total_variance }
    }

    /// The coordinates of `points` `[m, C]` along the components:
    /// `(points − μ) · componentsᵀ`, `[m, k]` (f64).
    pub fn project(&self, points: &Tensor) -> Tensor {
        points.to_dtype(DType::F64).sub(&self.mean).matmul(&self.components.t())
    }

    /// Each component's share of the total variance (0 for a cloud with
    /// no variance at all).
    pub fn explained_ratio(&self) -> Vec<f64> {
        let total = self.total_variance;
        self.explained_variance.iter().map(|&v| if total > 0.0 { v / total } else { 0.0 }).collect()
    }
}

/// The sum of a square matrix's diagonal.
fn trace(m: &Tensor) -> f64 {
    let c = m.dims()[0];
    m.to_vec::<f64>().iter().step_by(c + 1).sum()
}

/// The unit `[C, 1]` vector that power iteration on `s` reaches from
/// `start`, kept orthogonal to every vector in `found`; it stops where
/// `|S v|` falls under `negligible` (no variance left). Its sign is fixed
/// so that its largest entry is positive.
fn top_eigenvector(s: &Tensor, start: Tensor, found: &[Tensor], negligible: f64) -> Tensor {
    let mut v = normalized(orthogonalize(start, found), 0.0).expect("a random start lies outside the found span");
    for _ in 0..MAX_ITERATIONS {
        let Some(next) = normalized(orthogonalize(s.matmul(&v), found), negligible) else {
            // S v ≈ 0: no variance is left, and v (orthogonal to the found
            // components) is as good a direction as any.
            break;
        };
        let moved = next.sub(&v).sum_squares().sqrt();
        v = next;
        if moved < CONVERGED {
            break;
        }
    }
    // Once more against the found: one pass leaves rounding error of the
    // size of what it removed ("twice is enough", Kahan).
    let v = normalized(orthogonalize(v, found), 0.0).expect("a unit vector stays one");
    with_positive_largest_entry(v)
}

/// `v` minus its projections onto each (unit) vector in `found`.
fn orthogonalize(mut v: Tensor, found: &[Tensor]) -> Tensor {
    for u in found {
        let along = u.t().matmul(&v).item::<f64>();
        v = v.sub(&u.mul_scalar(along));
    }
    v
}

/// `v / |v|`, or `None` for a vector no longer than `min_norm` (or too
/// short to have a direction at all).
fn normalized(v: Tensor, min_norm: f64) -> Option<Tensor> {
    let norm = v.sum_squares().sqrt();
    (norm > min_norm.max(1e-150)).then(|| v.div_scalar(norm))
}

fn with_positive_largest_entry(v: Tensor) -> Tensor {
    let values = v.to_vec::<f64>();
    let largest = values.iter().copied().fold(0.0, |best: f64, x| if x.abs() > best.abs() { x } else { best });
    if largest < 0.0 {
        v.neg()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points whose covariance is known exactly: for an orthonormal basis
    /// `q₁..q_C` and variances `λᵢ`, the 2C points `μ ± √(C·λᵢ) qᵢ` have
    /// mean `μ`, and each pair adds `2·C·λᵢ qᵢqᵢᵀ` to `XcᵀXc`; over n = 2C
    /// that is `S = Σᵢ λᵢ qᵢqᵢᵀ`, whose eigenpairs are the `(λᵢ, qᵢ)`.
    fn points_with_covariance(mean: &[f64], basis: &[Vec<f64>], lambdas: &[f64]) -> Tensor {
        let c = mean.len();
        let mut rows = Vec::new();
        for (q, &lambda) in basis.iter().zip(lambdas) {
            let reach = (c as f64 * lambda).sqrt();
            for sign in [1.0, -1.0] {
                rows.extend(mean.iter().zip(q).map(|(m, qi)| m + sign * reach * qi));
            }
        }
        Tensor::from_vec(rows, [2 * c, c]).unwrap()
    }

    /// An orthonormal basis of R³ that is not the standard one: a rotation
    /// by 30° about z, then by 45° about x.
    fn rotated_basis() -> Vec<Vec<f64>> {
        let (a, b) = (30f64.to_radians(), 45f64.to_radians());
        let rz = [[a.cos(), -a.sin(), 0.0], [a.sin(), a.cos(), 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, b.cos(), -b.sin()], [0.0, b.sin(), b.cos()]];
        // Columns of rx·rz.
        (0..3).map(|j| (0..3).map(|i| (0..3).map(|k| rx[i][k] * rz[k][j]).sum()).collect()).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn finds_the_known_eigenvectors_and_eigenvalues() {
        let basis = rotated_basis();
        let lambdas = [0.5, 4.0, 1.5];
        let points = points_with_covariance(&[1.0, -2.0, 3.0], &basis, &lambdas);
        let pca = Pca::fit(&points, 3);
        // Descending: 4, 1.5, 0.5; summing to the trace, here exactly 6.
        let expected = [4.0, 1.5, 0.5];
        for (got, want) in pca.explained_variance.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{:?} vs {expected:?}", pca.explained_variance);
        }
        assert!((pca.total_variance - 6.0).abs() < 1e-9);
        let sum: f64 = pca.explained_variance.iter().sum();
        assert!(sum <= pca.total_variance + 1e-9);
        // Each component is ± the basis vector with that eigenvalue.
        let components = pca.components.to_vec2::<f64>();
        for (component, which) in components.iter().zip([1, 2, 0]) {
            assert!((dot(component, &basis[which]).abs() - 1.0).abs() < 1e-6, "{component:?} vs {:?}", basis[which]);
        }
        assert_eq!(
            pca.mean.to_vec::<f64>().iter().map(|m| (m * 1e9).round() / 1e9).collect::<Vec<_>>(),
            [1.0, -2.0, 3.0]
        );
    }

    #[test]
    fn components_are_orthonormal_and_variances_descend() {
        // A random cloud in 6-D, 40 points, with unequal spreads.
        let mut gen = Generator::seed(7);
        let scales = [3.0, 0.2, 1.0, 2.0, 0.5, 1.5];
        let rows: Vec<f64> = (0..40).flat_map(|_| scales.map(|s| s * gen.normal())).collect();
        let points = Tensor::from_vec(rows, [40, 6]).unwrap();
        let pca = Pca::fit(&points, 4);
        let q = pca.components.to_vec2::<f64>();
        assert_eq!(q.len(), 4);
        for i in 0..4 {
            for j in 0..4 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot(&q[i], &q[j]) - want).abs() < 1e-9, "q{i}·q{j} = {}", dot(&q[i], &q[j]));
            }
        }
        let v = &pca.explained_variance;
        assert!(v.windows(2).all(|w| w[0] >= w[1]), "{v:?}");
        assert!(v.iter().sum::<f64>() <= pca.total_variance + 1e-9);
        // The variance of the projections along a component is its eigenvalue.
        let projected = pca.project(&points).to_vec2::<f64>();
        for (i, lambda) in v.iter().enumerate() {
            let var = projected.iter().map(|row| row[i] * row[i]).sum::<f64>() / 40.0;
            assert!((var - lambda).abs() < 1e-6 * lambda.max(1.0), "component {i}: {var} vs {lambda}");
        }
    }

    #[test]
    fn points_on_a_line_have_one_component_and_orthonormal_rest() {
        // Five points on the line through (1, 1, 1) along (1, 2, 2)/3:
        // all the variance on the first component, none on the others.
        let ts = [-2.0, -1.0, 0.0, 1.0, 2.0];
        let rows: Vec<f64> =
            ts.iter().flat_map(|t| [1.0 + t / 3.0, 1.0 + 2.0 * t / 3.0, 1.0 + 2.0 * t / 3.0]).collect();
        let pca = Pca::fit(&Tensor::from_vec(rows, [5, 3]).unwrap(), 3);
        // Variance of t over the five points: (4 + 1 + 0 + 1 + 4) / 5 = 2.
        assert!((pca.explained_variance[0] - 2.0).abs() < 1e-6, "{:?}", pca.explained_variance);
        assert!(pca.explained_variance[1..].iter().all(|v| v.abs() < 1e-6));
        assert!((pca.explained_ratio()[0] - 1.0).abs() < 1e-6);
        let q = pca.components.to_vec2::<f64>();
        assert!((dot(&q[0], &[1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]) - 1.0).abs() < 1e-6, "{:?}", q[0]);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot(&q[i], &q[j]) - want).abs() < 1e-9);
            }
        }
        // The points project to (t, 0, 0).
        let projected =
            pca.project(&Tensor::from_vec(vec![1.0 + 1.0 / 3.0, 1.0 + 2.0 / 3.0, 1.0 + 2.0 / 3.0], [1, 3]).unwrap());
        let p = projected.to_vec::<f64>();
        assert!((p[0] - 1.0).abs() < 1e-9 && p[1].abs() < 1e-9 && p[2].abs() < 1e-9, "{p:?}");
    }
}
