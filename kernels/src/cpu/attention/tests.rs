//! The fused attention kernels against the f64 references of `attention.rs`:
//! in f64 (to ~1e-15) and in f32 at realistic sizes (to ~1e-6), causal,
//! grouped, windowed and with a KV-cache offset (tq < tk), ragged blocks
//! included; and the mask's key and query ranges against its definition.

use super::*;

fn wave(n: usize, frequency: f64, amplitude: f64) -> Vec<f64> {
    (0..n).map(|i| amplitude * (i as f64 * frequency).sin()).collect()
}

fn narrow(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Head h's `[rows, d]` block of a buffer laid out as `l`, densely, in f64.
fn head<T: Float>(x: &[T], l: HeadLayout, h: usize, rows: usize, d: usize) -> Vec<f64> {
    (0..rows).flat_map(|i| (0..d).map(move |c| x[l.start(h) + i * l.row_stride + c].to_f64().unwrap())).collect()
}

/// Largest |got − want| / (1 + |want|): relative for large values,
/// absolute for small ones.
fn worst(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).map(|(g, w)| (g - w).abs() / (1.0 + w.abs())).fold(0.0, f64::max)
}

#[test]
fn f64_forward_matches_the_reference_with_and_without_a_cache_offset() {
    // 150 keys: three query blocks, the last one ragged.
    let (d, tk) = (4, 150);
    let (k, v) = (wave(tk * d, 0.37, 1.0), wave(tk * d, 0.23, 1.0));
    for tq in [150, 70, 2, 1] {
        let q = wave(tq * d, 0.71, 1.0);
        let (mut out, mut p) = (vec![0.0; tq * d], vec![0.0; tq * tk]);
        causal_attention_forward(&q, &k, &v, 1, tq, tk, d, &mut out, &mut p);
        let (want_out, want_p) = attention_forward_reference(&q, &k, &v, tq, tk, d);
        assert!(worst(&out, &want_out) < 1e-12, "tq {tq}: O off by {}", worst(&out, &want_out));
        assert!(worst(&p, &want_p) < 1e-12, "tq {tq}: P off by {}", worst(&p, &want_p));
    }
}

#[test]
fn f64_backward_matches_the_reference() {
    // Three blocks of queries and keys (the last ragged), two heads.
    let (heads, t, d) = (2, 150, 4);
    let n = heads * t * d;
    let (q, k, v, d_out) = (wave(n, 0.71, 1.0), wave(n, 0.37, 1.0), wave(n, 0.23, 1.0), wave(n, 0.13, 1.0));
    let (mut out, mut p) = (vec![0.0; n], vec![0.0; heads * t * t]);
    causal_attention_forward(&q, &k, &v, heads, t, t, d, &mut out, &mut p);
    // The three gradients side by side in one buffer, as Q, K, V's are
    // in a packed qkv gradient; dQ in the middle to catch crossed layouts.
    let mut grads = vec![0.0; 3 * n];
    let dense = HeadLayout::dense(t, d);
    let part = |i: usize| HeadLayout { offset: i * n, ..dense };
    let inputs = [(&q[..], dense), (&k[..], dense), (&v[..], dense)];
    causal_attention_backward_in_place(
        inputs,
        &p,
        &d_out,
        dense,
        AttentionDims::causal(heads, t, t, d),
        &mut grads,
        [part(1), part(0), part(2)],
    );
    for h in 0..heads {
        let at = |x: &[f64]| head(x, dense, h, t, d);
        let (q, k, v, d_out) = (at(&q), at(&k), at(&v), at(&d_out));
        let (_, p) = attention_forward_reference(&q, &k, &v, t, t, d);
        let (dq, dk, dv) = attention_backward_reference(&q, &k, &v, &p, &d_out, t, d);
        for (what, l, want) in [("dQ", part(1), dq), ("dK", part(0), dk), ("dV", part(2), dv)] {
            let err = worst(&head(&grads, l, h, t, d), &want);
            assert!(err < 1e-10, "head {h} {what} off by {err}");
        }
    }
}

#[test]
fn mask_ranges_agree_with_the_definition() {
    for (tq, tk) in [(9, 9), (4, 9), (1, 9)] {
        for window in [None, Some(1), Some(3), Some(20)] {
            let mask = CausalMask { past: tk - tq, window };
            let sees = |i: usize, j: usize| j <= i + mask.past && window.is_none_or(|w| j + w > i + mask.past);
            for i in 0..tq {
                let want: Vec<usize> = (0..tk).filter(|&j| sees(i, j)).collect();
                assert_eq!(mask.keys(i).collect::<Vec<_>>(), want, "keys of {i}, {mask:?}");
            }
            for j in 0..tk {
                let want: Vec<usize> = (0..tq).filter(|&i| sees(i, j)).collect();
                assert_eq!(mask.queries(j, tq).collect::<Vec<_>>(), want, "queries of {j}, {mask:?}");
            }
        }
    }
}

/// Grouped heads, windows and cached queries through both fused
/// kernels, against the per-head references: dK and dV of a shared
/// head are the sums of its query heads' references.
#[test]
fn f64_grouped_and_windowed_kernels_match_the_reference() {
    let (batch, n_heads, d) = (2, 4, 4);
    // Scores of a few units (amplitude-2 waves) against caps of 1.5 and
    // 3: the cap changes every row.
    for (n_kv, tq, tk, window, softcap) in [
        (2, 150, 150, Some(70), None),
        (1, 150, 150, None, None),
        (2, 70, 150, Some(5), None),
        (4, 3, 10, Some(1), None),
        (1, 150, 150, Some(70), Some(1.5)),
        (2, 70, 150, None, Some(3.0)),
    ] {
        let group = n_heads / n_kv;
        let dims = AttentionDims { heads: batch * n_heads, group, tq, tk, d, window, softcap };
        let (ql, kvl) = (HeadLayout::dense(tq, d), HeadLayout::dense(tk, d));
        let q = wave(dims.heads * tq * d, 0.71, 2.0);
        let (k, v) = (wave(dims.kv_heads() * tk * d, 0.37, 2.0), wave(dims.kv_heads() * tk * d, 0.23, 1.0));
        let d_out = wave(dims.heads * tq * d, 0.13, 1.0);
        let (mut out, mut p) = (vec![0.0; q.len()], vec![0.0; dims.heads * tq * tk]);
        causal_attention_forward_in_place(&q, ql, &k, kvl, &v, kvl, dims, &mut out, ql, &mut p);
        // dQ, dK, dV side by side, filled with garbage first: every
        // element must be written.
        let (nq, nkv) = (q.len(), k.len());
        let mut grads = vec![f64::NAN; nq + 2 * nkv];
        let gl = [ql, HeadLayout { offset: nq, ..kvl }, HeadLayout { offset: nq + nkv, ..kvl }];
        let inputs = [(&q[..], ql), (&k[..], kvl), (&v[..], kvl)];
        causal_attention_backward_in_place(inputs, &p, &d_out, ql, dims, &mut grads, gl);
        let (mut want_dk, mut want_dv) = (vec![0.0; nkv], vec![0.0; nkv]);
        let case = format!("Hkv {n_kv}, tq {tq}, tk {tk}, window {window:?}, softcap {softcap:?}");
        for h in 0..dims.heads {
            let kv = h / group;
            let (hq, hk, hv) = (head(&q, ql, h, tq, d), head(&k, kvl, kv, tk, d), head(&v, kvl, kv, tk, d));
            let (want_out, want_p) = capped_attention_forward_reference(&hq, &hk, &hv, tq, tk, d, window, softcap);
            assert!(worst(&head(&out, ql, h, tq, d), &want_out) < 1e-12, "{case}: O of head {h}");
            assert!(worst(&p[h * tq * tk..(h + 1) * tq * tk], &want_p) < 1e-12, "{case}: P of head {h}");
            let hdo = head(&d_out, ql, h, tq, d);
            let (dq, dk, dv) = capped_attention_backward_reference(&hq, &hk, &hv, &want_p, &hdo, tq, tk, d, softcap);
            assert!(worst(&head(&grads, gl[0], h, tq, d), &dq) < 1e-10, "{case}: dQ of head {h}");
            for (c, (a, b)) in dk.iter().zip(&dv).enumerate() {
                want_dk[kvl.start(kv) + c] += a;
                want_dv[kvl.start(kv) + c] += b;
            }
        }
        assert!(worst(&grads[nq..nq + nkv], &want_dk) < 1e-10, "{case}: dK");
        assert!(worst(&grads[nq + nkv..], &want_dv) < 1e-10, "{case}: dV");
    }
}

/// Keys outside the window are never read: a decoding query with a
/// window of 16 over 200 keys, the first 184 keys and values NaN.
/// Computing any product over them would spread NaN into O or dQ.
#[test]
fn keys_outside_the_window_are_never_read() {
    let (tq, tk, d, w) = (1, 200, 8, 16);
    let dims = AttentionDims { heads: 2, group: 2, tq, tk, d, window: Some(w), softcap: None };
    let (ql, kvl) = (HeadLayout::dense(tq, d), HeadLayout::dense(tk, d));
    let q = wave(2 * tq * d, 0.71, 1.0);
    let (mut k, mut v) = (wave(tk * d, 0.37, 1.0), wave(tk * d, 0.23, 1.0));
    let (k_seen, v_seen) = (k[(tk - w) * d..].to_vec(), v[(tk - w) * d..].to_vec());
    k[..(tk - w) * d].fill(f64::NAN);
    v[..(tk - w) * d].fill(f64::NAN);
    let (mut out, mut p) = (vec![0.0; 2 * tq * d], vec![0.0; 2 * tq * tk]);
    causal_attention_forward_in_place(&q, ql, &k, kvl, &v, kvl, dims, &mut out, ql, &mut p);
    let mut grads = vec![f64::NAN; 2 * tq * d + 2 * tk * d];
    let gl = [ql, HeadLayout { offset: 2 * tq * d, ..kvl }, HeadLayout { offset: 2 * tq * d + tk * d, ..kvl }];
    let d_out = wave(2 * tq * d, 0.13, 1.0);
    causal_attention_backward_in_place([(&q, ql), (&k, kvl), (&v, kvl)], &p, &d_out, ql, dims, &mut grads, gl);
    for h in 0..2 {
        let (want, _) = attention_forward_reference(&q[h * d..(h + 1) * d], &k_seen, &v_seen, 1, w, d);
        assert!(worst(&out[h * d..(h + 1) * d], &want) < 1e-12, "head {h}: O");
    }
    assert!(grads[..2 * tq * d].iter().all(|g| g.is_finite()), "dQ read a key outside the window");
    // dK and dV of the unseen keys are exact zeros, of the seen finite.
    for part in [1, 2] {
        let rows = &grads[gl[part].offset..gl[part].offset + tk * d];
        assert!(rows[..(tk - w) * d].iter().all(|&g| g == 0.0), "part {part}: unseen keys' gradient");
        assert!(rows[(tk - w) * d..].iter().all(|g| g.is_finite()), "part {part}: seen keys' gradient");
    }
}

/// The f32 kernels as a GPT block runs them: Q, K and V read from a
/// packed `[B, T, 3C]` projection, O written into `[B, T, C]`, the
/// gradients into a packed `[B, T, 3C]`, heads on a 4-thread pool; T
/// from one row to four blocks with ragged ends, D as in small and
/// GPT-2-sized heads.
#[test]
fn f32_kernels_match_the_reference_at_realistic_sizes() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    pool.install(|| {
        let (b, n_heads) = (2, 3);
        let (mut worst_out, mut worst_p, mut worst_grad) = (0.0f64, 0.0f64, 0.0f64);
        for d in [16, 64] {
            for t in [1, 7, 64, 129, 256] {
                let c = n_heads * d;
                let heads = b * n_heads;
                // Q·Kᵀ/√d of a few units, as in a trained model: peaked
                // rows and flat ones.
                let qkv = narrow(&wave(b * t * 3 * c, 0.618, 2.0));
                let d_out = narrow(&wave(b * t * c, 0.271, 1.0));
                let part = |i: usize| HeadLayout::packed(t, n_heads, d, 3 * c, i * c);
                let ol = HeadLayout::packed(t, n_heads, d, c, 0);
                let (mut out, mut p) = (vec![0.0f32; b * t * c], vec![0.0f32; heads * t * t]);
                let qkv_in = [(&qkv[..], part(0)), (&qkv[..], part(1)), (&qkv[..], part(2))];
                let [(q, ql), (k, kl), (v, vl)] = qkv_in;
                let dims = AttentionDims::causal(heads, t, t, d);
                causal_attention_forward_in_place(q, ql, k, kl, v, vl, dims, &mut out, ol, &mut p);
                let mut grads = vec![0.0f32; b * t * 3 * c];
                let gl = [part(0), part(1), part(2)];
                causal_attention_backward_in_place(qkv_in, &p, &d_out, ol, dims, &mut grads, gl);
                for h in 0..heads {
                    let [q, k, v] = [0, 1, 2].map(|i| head(&qkv, part(i), h, t, d));
                    let (want_out, want_p) = attention_forward_reference(&q, &k, &v, t, t, d);
                    let got_p: Vec<f64> = p[h * t * t..(h + 1) * t * t].iter().map(|&x| x as f64).collect();
                    worst_out = worst_out.max(worst(&head(&out, ol, h, t, d), &want_out));
                    worst_p = worst_p.max(worst(&got_p, &want_p));
                    let d_out = head(&d_out, ol, h, t, d);
                    let (dq, dk, dv) = attention_backward_reference(&q, &k, &v, &want_p, &d_out, t, d);
                    for (i, want) in [dq, dk, dv].iter().enumerate() {
                        worst_grad = worst_grad.max(worst(&head(&grads, part(i), h, t, d), want));
                    }
                }
            }
        }
        // f32 tolerances, as |got − want| / (1 + |want|): ~10× the
        // worst seen (O 7e-7, P 9e-7, gradients 2e-6).
        assert!(worst_out < 1e-5, "O off by {worst_out:e}");
        assert!(worst_p < 1e-5, "P off by {worst_p:e}");
        assert!(worst_grad < 2e-5, "dQ, dK or dV off by {worst_grad:e}");
    });
}

/// Decoding with a KV cache: a few new queries at the end of T keys.
#[test]
fn f32_cached_queries_match_the_reference() {
    let mut worst_out = 0.0f64;
    for d in [16, 64] {
        for (tq, tk) in [(1, 1), (1, 129), (7, 256), (64, 200)] {
            let heads = 3;
            let (ql, kvl) = (HeadLayout::dense(tq, d), HeadLayout::dense(tk, d));
            let q = narrow(&wave(heads * tq * d, 0.618, 2.0));
            let (k, v) = (narrow(&wave(heads * tk * d, 0.414, 2.0)), narrow(&wave(heads * tk * d, 0.173, 1.0)));
            let (mut out, mut p) = (vec![0.0f32; heads * tq * d], vec![0.0f32; heads * tq * tk]);
            causal_attention_forward(&q, &k, &v, heads, tq, tk, d, &mut out, &mut p);
            for h in 0..heads {
                let (hq, hk, hv) = (head(&q, ql, h, tq, d), head(&k, kvl, h, tk, d), head(&v, kvl, h, tk, d));
                let (want_out, _) = attention_forward_reference(&hq, &hk, &hv, tq, tk, d);
                worst_out = worst_out.max(worst(&head(&out, ql, h, tq, d), &want_out));
            }
        }
    }
    // f32 tolerance as above (worst seen 1.3e-7).
    assert!(worst_out < 1e-5, "O off by {worst_out:e}");
}
