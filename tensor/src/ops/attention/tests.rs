//! The fused attention op against its unfused composition (matmuls, mask,
//! softmax), and its layouts against each other: packed qkv against split
//! heads, a KV cache read where it lies, grouped heads and windows against
//! repeated K and V, soft-capped scores.

use super::{merge_heads, split_heads};
use crate::*;

#[test]
fn equals_the_unfused_composition() {
    let mut g = Generator::seed(4);
    let (b, h, t, d) = (2, 3, 5, 4);
    let q = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
    let k = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
    let v = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
    let fused = Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &v }, &AttentionOptions::new(h)).out;
    let mask = Tensor::ones([t, t], DType::F64).triu(1);
    let scores = q.matmul(&k.t()).div_scalar((d as f64).sqrt()).masked_fill(&mask, f64::NEG_INFINITY);
    let reference = scores.softmax(-1).matmul(&v);
    for (a, r) in fused.to_vec::<f64>().iter().zip(reference.to_vec::<f64>()) {
        assert!((a - r).abs() < 1e-12);
    }
}

#[test]
fn packed_qkv_equals_split_heads() {
    // 70 positions: two query blocks, the second ragged.
    let mut g = Generator::seed(9);
    let (b, t, h, d) = (2, 70, 3, 4);
    let c = h * d;
    let options = AttentionOptions::new(h);
    let qkv = Tensor::randn([b, t, 3 * c], &mut g).to_dtype(DType::F64);
    let d_out = Tensor::randn([b, t, c], &mut g).to_dtype(DType::F64);
    let packed = Tensor::attention(Qkv::Packed(&qkv), &options);
    let [q, k, v] = split_heads(&qkv, &options);
    let split = Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &v }, &options);
    assert_eq!(packed.out.to_vec::<f64>(), merge_heads(&split.out).to_vec::<f64>());
    assert_eq!(packed.saved.probs().unwrap().to_vec::<f64>(), split.saved.probs().unwrap().to_vec::<f64>());
    let d_qkv = Tensor::attention_backward(&packed.saved, &d_out).into_vec();
    assert_eq!(d_qkv.len(), 1);
    let d_heads = d_out.reshape(&[b as isize, t as isize, h as isize, d as isize]).transpose(1, 2);
    let gr = Tensor::attention_backward(&split.saved, &d_heads).into_vec();
    let want = Tensor::cat(&[merge_heads(&gr[0]), merge_heads(&gr[1]), merge_heads(&gr[2])], -1);
    assert_eq!(d_qkv[0].dims(), [b, t, 3 * c]);
    assert_eq!(d_qkv[0].to_vec::<f64>(), want.to_vec::<f64>());
}

#[test]
fn cached_keys_are_read_where_the_cache_keeps_them() {
    // Keys and values in a buffer with room for 16 positions, 11 filled
    // (a KV cache), against the same values copied dense.
    let mut g = Generator::seed(5);
    let (b, h, tq, tk, d) = (2, 3, 4, 11, 8);
    let q = Tensor::randn([b, h, tq, d], &mut g).to_dtype(DType::F64);
    let kbuf = Tensor::randn([b, h, 16, d], &mut g).to_dtype(DType::F64);
    let vbuf = Tensor::randn([b, h, 16, d], &mut g).to_dtype(DType::F64);
    let (k, v) = (kbuf.narrow(2, 0, tk), vbuf.narrow(2, 0, tk));
    let options = AttentionOptions::new(h);
    let in_place = Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &v }, &options).out;
    let (kd, vd) = (k.contiguous_copy(), v.contiguous_copy());
    let dense = Tensor::attention(Qkv::Heads { q: &q, k: &kd, v: &vd }, &options).out;
    assert_eq!(in_place.dims(), [b, h, tq, d]);
    assert_eq!(in_place.to_vec::<f64>(), dense.to_vec::<f64>());
    // The last query sees every key: its row is the plain softmax.
    let scores = q.narrow(2, tq - 1, 1).matmul(&kd.t()).div_scalar((d as f64).sqrt());
    let last = scores.softmax(-1).matmul(&vd);
    for (a, r) in in_place.narrow(2, tq - 1, 1).to_vec::<f64>().iter().zip(last.to_vec::<f64>()) {
        assert!((a - r).abs() < 1e-12, "{a} vs {r}");
    }
}

/// The reference for grouped heads and windows: K and V repeated per
/// query head (transformers' `repeat_kv`), then the unfused
/// composition with the mask built from positions here.
fn repeated_kv_reference(q: &Tensor, k: &Tensor, v: &Tensor, window: Option<usize>) -> Tensor {
    let (h, hkv, tq, tk, d) = (q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3));
    let repeat = |x: &Tensor| {
        let heads: Vec<Tensor> = (0..h).map(|i| x.narrow(1, i / (h / hkv), 1)).collect();
        Tensor::cat(&heads, 1)
    };
    let hidden: Vec<f64> = (0..tq * tk)
        .map(|n| {
            let (p, j) = (n / tk + tk - tq, n % tk);
            if j > p || window.is_some_and(|w| p - j >= w) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(hidden, [tq, tk]).unwrap();
    let scores = q.matmul(&repeat(k).t()).div_scalar((d as f64).sqrt()).masked_fill(&mask, f64::NEG_INFINITY);
    scores.softmax(-1).matmul(&repeat(v))
}

fn close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}");
    for (a, r) in got.to_vec::<f64>().iter().zip(want.to_vec::<f64>()) {
        assert!((a - r).abs() < 1e-12, "{what}: {a} vs {r}");
    }
}

#[test]
fn grouped_heads_and_windows_equal_repeated_kv() {
    let mut g = Generator::seed(6);
    let (b, h, t, d) = (2, 4, 9, 3);
    for (hkv, window) in [(2, None), (1, Some(3)), (4, Some(1)), (2, Some(20))] {
        let q = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
        let k = Tensor::randn([b, hkv, t, d], &mut g).to_dtype(DType::F64);
        let v = Tensor::randn([b, hkv, t, d], &mut g).to_dtype(DType::F64);
        let mut options = AttentionOptions::new(h).with_kv_heads(hkv);
        options.window = window;
        let fused = Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &v }, &options).out;
        close(&fused, &repeated_kv_reference(&q, &k, &v, window), &format!("Hkv {hkv}, window {window:?}"));
    }
}

/// The KV-cache route: queries for the last positions against all the
/// keys give the last rows of attention over the whole sequence, with
/// grouped heads and a window, keys read from a cache-like buffer.
#[test]
fn cached_queries_equal_the_last_rows_with_grouped_heads_and_a_window() {
    let mut g = Generator::seed(7);
    let (b, h, hkv, t, d) = (2, 4, 2, 12, 4);
    for (tq, window) in [(1, Some(5)), (3, Some(4)), (3, None), (5, Some(1))] {
        let options = AttentionOptions { window, ..AttentionOptions::new(h).with_kv_heads(hkv) };
        let q = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
        let kbuf = Tensor::randn([b, hkv, 16, d], &mut g).to_dtype(DType::F64);
        let vbuf = Tensor::randn([b, hkv, 16, d], &mut g).to_dtype(DType::F64);
        let (k, v) = (kbuf.narrow(2, 0, t), vbuf.narrow(2, 0, t));
        let full = Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &v }, &options).out;
        let last_q = q.narrow(2, t - tq, tq);
        let cached = Tensor::attention(Qkv::Heads { q: &last_q, k: &k, v: &v }, &options).out;
        close(&cached, &full.narrow(2, t - tq, tq), &format!("tq {tq}, window {window:?}"));
    }
}

/// Packed `[B, T, (H + 2·Hkv)·D]` with a head size that is not a model
/// width over H (Qwen3's shape in small): the same numbers as the
/// heads-first route, output `[B, T, H·D]`, gradients in place.
#[test]
fn packed_grouped_qkv_equals_split_heads() {
    let mut g = Generator::seed(8);
    let (b, t, h, hkv, d) = (2, 70, 4, 2, 5);
    let options = AttentionOptions::new(h).with_kv_heads(hkv).with_window(33);
    let qkv = Tensor::randn([b, t, (h + 2 * hkv) * d], &mut g).to_dtype(DType::F64);
    let d_out = Tensor::randn([b, t, h * d], &mut g).to_dtype(DType::F64);
    let packed = Tensor::attention(Qkv::Packed(&qkv), &options);
    let [q, k, v] = split_heads(&qkv, &options);
    assert_eq!((q.dims(), k.dims()), (&[b, h, t, d][..], &[b, hkv, t, d][..]));
    let split = Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &v }, &options);
    assert_eq!(packed.out.dims(), [b, t, h * d]);
    assert_eq!(packed.out.to_vec::<f64>(), merge_heads(&split.out).to_vec::<f64>());
    let d_qkv = Tensor::attention_backward(&packed.saved, &d_out).into_vec().remove(0);
    let d_heads = d_out.reshape(&[b as isize, t as isize, h as isize, d as isize]).transpose(1, 2);
    let gr = Tensor::attention_backward(&split.saved, &d_heads).into_vec();
    assert_eq!(gr[1].dims(), [b, hkv, t, d]);
    let want = Tensor::cat(&[merge_heads(&gr[0]), merge_heads(&gr[1]), merge_heads(&gr[2])], -1);
    assert_eq!(d_qkv.to_vec::<f64>(), want.to_vec::<f64>());
}

/// Soft-capped scores, against the unfused composition cap · tanh(S / cap)
/// before the mask: values and gradients of the packed route.
#[test]
fn softcapped_scores_equal_the_composition() {
    let mut g = Generator::seed(10);
    let (b, h, hkv, t, d, cap) = (2, 4, 2, 7, 3, 0.8);
    let options = AttentionOptions::new(h).with_kv_heads(hkv).with_window(4).with_softcap(cap);
    let qkv = Tensor::randn([b, t, (h + 2 * hkv) * d], &mut g).to_dtype(DType::F64).mul_scalar(2.0);
    let fused = Tensor::attention(Qkv::Packed(&qkv), &options).out;
    let [q, k, v] = split_heads(&qkv, &options);
    let repeat = |x: &Tensor| Tensor::cat(&(0..h).map(|i| x.narrow(1, i / (h / hkv), 1)).collect::<Vec<_>>(), 1);
    let hidden: Vec<f64> = (0..t * t).map(|n| if n % t > n / t || n / t - n % t >= 4 { 1.0 } else { 0.0 }).collect();
    let mask = Tensor::from_vec(hidden, [t, t]).unwrap();
    let scores = q.matmul(&repeat(&k).t()).div_scalar((d as f64).sqrt());
    let capped = scores.div_scalar(cap).tanh().mul_scalar(cap).masked_fill(&mask, f64::NEG_INFINITY);
    close(&fused, &merge_heads(&capped.softmax(-1).matmul(&repeat(&v))), "softcap");
}

#[test]
#[should_panic(expected = "4 query heads cannot be shared evenly among 3 key/value heads")]
fn query_heads_must_divide_among_kv_heads() {
    let q = Tensor::zeros([1, 4, 2, 2], DType::F64);
    let k = Tensor::zeros([1, 3, 2, 2], DType::F64);
    Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &k }, &AttentionOptions::new(4).with_kv_heads(3));
}

#[test]
#[should_panic(expected = "a sliding window must hold at least one key")]
fn a_window_is_not_empty() {
    let q = Tensor::zeros([1, 2, 2, 2], DType::F64);
    Tensor::attention(Qkv::Heads { q: &q, k: &q, v: &q }, &AttentionOptions::new(2).with_window(0));
}

#[test]
#[should_panic(expected = "has 3 heads, the options say 2")]
fn heads_must_match_the_options() {
    let q = Tensor::zeros([1, 3, 4, 2], DType::F64);
    Tensor::attention(Qkv::Heads { q: &q, k: &q, v: &q }, &AttentionOptions::new(2));
}
