//! Every tensor op on the GPU against the same op on the CPU.
//!
//! `#[ignore]`d: they need a CUDA device. Run them with
//! `scripts/gpu-check.sh` (or `cargo test --release --test cuda_ops -- --ignored`).
//! Each test computes one expression on CPU tensors and on copies of them on
//! the GPU, and compares element by element (`cuda::Tolerance`): float32
//! within 1e-5 relative plus 1e-5 absolute per √(terms summed), bfloat16
//! within its precision, integer and data-movement results exactly.

mod cuda;

use cuda::{assert_close, assert_same, gpu, nonzero, on, skip_without_gpu, uniform, Tolerance, BF16, F32};
use scratchgpt::tensor::{Attention, AttentionOptions, BinaryOp, CmpOp, DType, Device, Qkv, Tensor, UnaryOp};

/// The tolerance the GPU comparisons use is checked here, on the CPU: it
/// is per element, so a small element is held to its own size and not to
/// the largest element's.
#[test]
fn tolerances_hold_each_element_to_its_own_size() {
    // A small element off by 1e-3 next to a large one.
    let want = [1000.0, 0.01];
    assert_eq!(F32.first_rejected(&want, &[1000.0, 0.011]), Some((1, 0.01, 0.011)));
    assert_eq!(BF16.first_rejected(&want, &[1000.0, 0.025]), Some((1, 0.01, 0.025)));
    // Within atol + rtol·|want| passes; just beyond fails.
    assert!(F32.accepts(0.01, 0.01 + 1.0e-5));
    assert!(F32.accepts(1000.0, 1000.0 + 0.0099));
    assert!(!F32.accepts(1000.0, 1000.0 + 0.0101));
    assert!(!F32.accepts(0.0, 2.1e-5));
    // A sum of n terms widens only the absolute part, by √n.
    assert_eq!(F32.summing(64), Tolerance { atol: 8e-5, rtol: 1e-5 });
    assert!(!F32.summing(64).accepts(0.0, 1e-4));
    // NaN matches only NaN; an infinity only itself.
    assert!(F32.accepts(f64::NAN, f64::NAN) && !F32.accepts(1.0, f64::NAN) && !F32.accepts(f64::NAN, 1.0));
    assert!(F32.accepts(f64::INFINITY, f64::INFINITY) && !F32.accepts(f64::INFINITY, 1e30));
    // Exact comparisons reject any difference.
    assert!(!EXACT.accepts(1.0, 1.0 + 1e-12) && EXACT.accepts(-3.0, -3.0));
}

/// Exact equality: integer results, data movement, and float ops that
/// round once in the same way on both devices.
const EXACT: Tolerance = Tolerance { atol: 0.0, rtol: 0.0 };

/// Runs `f` on CPU inputs and on their GPU copies; compares within `tol`.
fn both(what: &str, inputs: &[Tensor], tol: Tolerance, f: impl Fn(&[Tensor]) -> Tensor) {
    let device = gpu();
    let cpu = f(inputs);
    let on_gpu: Vec<Tensor> = inputs.iter().map(|t| on(t, device)).collect();
    let out = f(&on_gpu);
    assert_eq!(out.device(), device, "{what}: result left the GPU");
    if tol == EXACT {
        assert_same(what, &cpu, &out);
    } else {
        assert_close(what, &cpu, &out, tol);
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn copies_between_host_and_device_round_trip() {
    if skip_without_gpu() {
        return;
    }
    let device = gpu();
    for dtype in [DType::F32, DType::F16, DType::BF16, DType::I64, DType::I8] {
        let x = nonzero(&[3, 5, 7], 1).mul_scalar(10.0).to_dtype(dtype);
        let back = on(&x, device).to_device(Device::Cpu).unwrap();
        assert_same(&format!("round trip {dtype}"), &x, &back);
        // A strided view travels as its own elements.
        let view = x.transpose(0, 2).narrow(1, 1, 3);
        assert_same(&format!("view {dtype}"), &view.contiguous(), &on(&view, device).to_device(Device::Cpu).unwrap());
    }
    assert!(Tensor::zeros([2], DType::F64).to_device(device).is_err(), "float64 has no device storage");
}

#[test]
#[ignore = "needs a CUDA device"]
fn casts_follow_the_cpu_rules() {
    if skip_without_gpu() {
        return;
    }
    let x = nonzero(&[4, 33], 2).mul_scalar(300.0); // saturates int8, rounds halves
    let dtypes = [DType::F32, DType::F16, DType::BF16, DType::I64, DType::I8];
    for from in dtypes {
        let src = x.to_dtype(from);
        for to in dtypes {
            both(&format!("{from} → {to}"), std::slice::from_ref(&src), EXACT, |t| t[0].t().to_dtype(to));
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn unary_functions() {
    if skip_without_gpu() {
        return;
    }
    let x = nonzero(&[7, 130], 3);
    let positive = uniform(&[7, 130], 0.1, 4.0, 4);
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::GeluTanh,
        UnaryOp::GeluTanhGrad,
        UnaryOp::Square,
        UnaryOp::Recip,
        UnaryOp::Sin,
        UnaryOp::Cos,
    ];
    for op in ops {
        both(op.name(), std::slice::from_ref(&x), F32, |t| t[0].unary(op));
        both(&format!("{} transposed", op.name()), std::slice::from_ref(&x), F32, |t| t[0].t().unary(op));
        let half = x.to_dtype(DType::BF16);
        both(&format!("{} bf16", op.name()), std::slice::from_ref(&half), BF16, |t| t[0].unary(op));
    }
    for op in [UnaryOp::Log, UnaryOp::Sqrt] {
        both(op.name(), std::slice::from_ref(&positive), F32, |t| t[0].unary(op));
    }
    let ids = Tensor::from_vec((-20..20).collect::<Vec<i64>>(), [40]).unwrap();
    for op in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Relu, UnaryOp::Square] {
        both(&format!("{} int64", op.name()), std::slice::from_ref(&ids), EXACT, |t| t[0].unary(op));
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn scalar_ops_are_bit_identical() {
    if skip_without_gpu() {
        return;
    }
    let x = nonzero(&[5, 64], 5);
    both("x·c + d", std::slice::from_ref(&x), EXACT, |t| {
        t[0].mul_scalar(0.37).add_scalar(-1.25).div_scalar(3.0).sub_scalar(0.5)
    });
    both("clamp", std::slice::from_ref(&x), EXACT, |t| t[0].clamp_min(-0.3).clamp_max(0.4));
    both("powf", &[uniform(&[5, 64], 0.1, 3.0, 6)], F32, |t| t[0].powf(1.7));
    let ids = Tensor::from_vec((0..12).collect::<Vec<i64>>(), [3, 4]).unwrap();
    both("int64 scalar", std::slice::from_ref(&ids), EXACT, |t| t[0].mul_scalar(3.0).add_scalar(-7.0));
}

#[test]
#[ignore = "needs a CUDA device"]
fn binary_ops_broadcast_over_views() {
    if skip_without_gpu() {
        return;
    }
    let a = nonzero(&[4, 6, 8], 7);
    let b = nonzero(&[8], 8);
    let col = nonzero(&[6, 1], 9);
    let positive = uniform(&[4, 6, 8], 0.5, 2.0, 10);
    let reversed = nonzero(&[8, 6, 4], 47);
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum, BinaryOp::Minimum] {
        both(&format!("{} bias", op.name()), &[a.clone(), b.clone()], F32, |t| t[0].binary(&t[1], op));
        both(&format!("{} column", op.name()), &[a.clone(), col.clone()], F32, |t| t[0].binary(&t[1], op));
        // A view against a dense operand: `a.t() op a.t()` would be right
        // for sub (zeros) whatever the strides.
        both(&format!("{} transposed", op.name()), &[a.clone(), reversed.clone()], F32, |t| {
            t[0].transpose(0, 2).binary(&t[1], op)
        });
        let (ha, hb) = (a.to_dtype(DType::BF16), b.to_dtype(DType::BF16));
        both(&format!("{} bf16", op.name()), &[ha, hb], BF16, |t| t[0].binary(&t[1], op));
    }
    both("pow", &[positive.clone(), b.clone()], F32, |t| t[0].pow(&t[1]));
    let i = Tensor::from_vec((0..24).collect::<Vec<i64>>(), [4, 6]).unwrap();
    both("int64 add", std::slice::from_ref(&i), EXACT, |t| t[0].add(&t[0].t().t()).mul(&t[0]));
    // A CPU operand next to a GPU one is brought over.
    let device = gpu();
    let mixed = on(&a, device).add(&b);
    assert_close("mixed devices", &a.add(&b), &mixed, F32);
}

#[test]
#[ignore = "needs a CUDA device"]
fn comparisons_and_where() {
    if skip_without_gpu() {
        return;
    }
    let a = nonzero(&[5, 9], 11);
    let b = nonzero(&[9], 12);
    for op in [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge] {
        both(&format!("{op:?}"), &[a.clone(), b.clone()], EXACT, |t| t[0].compare(&t[1], op));
        both(&format!("{op:?} self"), std::slice::from_ref(&a), EXACT, |t| t[0].compare(&t[0], op));
    }
    both("where", &[a.clone(), b.clone()], EXACT, |t| Tensor::where_cond(&t[0].gt(&t[1]), &t[0], &t[1].expand([5, 9])));
    let mask = Tensor::ones([9, 9], DType::F32).triu(1);
    both("masked_fill", &[nonzero(&[2, 9, 9], 13), mask], EXACT, |t| t[0].masked_fill(&t[1], f64::NEG_INFINITY));
}

#[test]
#[ignore = "needs a CUDA device"]
fn reductions_along_every_dimension() {
    if skip_without_gpu() {
        return;
    }
    let x = nonzero(&[3, 40, 17], 14);
    for dim in 0..3isize {
        for keepdim in [false, true] {
            both(&format!("sum {dim}"), std::slice::from_ref(&x), F32.summing(40), |t| t[0].sum(dim, keepdim));
            both(&format!("mean {dim}"), std::slice::from_ref(&x), F32.summing(40), |t| t[0].mean(dim, keepdim));
            both(&format!("var {dim}"), std::slice::from_ref(&x), F32.summing(40), |t| t[0].var(dim, keepdim, true));
            both(&format!("max {dim}"), std::slice::from_ref(&x), EXACT, |t| t[0].max(dim, keepdim));
            both(&format!("min {dim}"), std::slice::from_ref(&x), EXACT, |t| t[0].min(dim, keepdim));
            both(&format!("argmax {dim}"), std::slice::from_ref(&x), EXACT, |t| t[0].argmax(dim, keepdim));
            both(&format!("argmin {dim}"), std::slice::from_ref(&x), EXACT, |t| t[0].argmin(dim, keepdim));
        }
        both(&format!("sum {dim} of a view"), std::slice::from_ref(&x), F32.summing(40), |t| {
            t[0].permute(&[2, 0, 1]).sum(dim, false)
        });
    }
    // Ties: argmax takes the first.
    let ties = Tensor::new([[1.0f32, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]]).unwrap();
    both("argmax ties", std::slice::from_ref(&ties), EXACT, |t| t[0].argmax(1, false));
    both("argmax ties columns", &[ties.t().contiguous()], EXACT, |t| t[0].argmax(0, false));
    // A long column (the bias-gradient shape) takes the chunked path.
    both("column sum", &[nonzero(&[4096, 24], 15)], F32.summing(4096), |t| t[0].sum(0, false));
    both("sum_all", std::slice::from_ref(&x), F32.summing(3 * 40 * 17), |t| t[0].sum_all());
    both("mean_all", std::slice::from_ref(&x), F32.summing(3 * 40 * 17), |t| t[0].mean_all());
    both("sum_to_shape", std::slice::from_ref(&x), F32.summing(3 * 17), |t| {
        t[0].sum_to_shape(&scratchgpt::tensor::Shape::from([40, 1]))
    });
    let ids = Tensor::from_vec((0..60).map(|i| (i * 7) % 11).collect::<Vec<i64>>(), [6, 10]).unwrap();
    both("int64 sum", std::slice::from_ref(&ids), EXACT, |t| t[0].sum(1, false));
    both("int64 argmax", std::slice::from_ref(&ids), EXACT, |t| t[0].argmax(0, false));
}

#[test]
#[ignore = "needs a CUDA device"]
fn softmax_and_layer_norm_forward_and_backward() {
    if skip_without_gpu() {
        return;
    }
    let x = nonzero(&[4, 7, 50], 16).mul_scalar(3.0);
    let dy = nonzero(&[4, 7, 50], 17);
    for dim in [2isize, 1] {
        both("softmax", std::slice::from_ref(&x), F32, |t| t[0].softmax(dim));
        both("log_softmax", std::slice::from_ref(&x), F32, |t| t[0].log_softmax(dim));
        both("softmax backward", &[x.softmax(dim), dy.clone()], F32.summing(50), |t| {
            Tensor::softmax_backward(&t[0], &t[1], dim)
        });
        both("log_softmax backward", &[x.log_softmax(dim), dy.clone()], F32.summing(50), |t| {
            Tensor::log_softmax_backward(&t[0], &t[1], dim)
        });
    }
    let wide = nonzero(&[3, 2000], 18).mul_scalar(5.0); // more columns than threads
    both("softmax wide", std::slice::from_ref(&wide), F32, |t| t[0].softmax(-1));
    let (g, b) = (nonzero(&[50], 19), nonzero(&[50], 20));
    let inputs = [x.clone(), g.clone(), b.clone(), dy.clone()];
    both("layer_norm y", &inputs, F32.summing(50), |t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5).y);
    both("layer_norm mean", &inputs, F32.summing(50), |t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5).mean);
    both("layer_norm rstd", &inputs, F32.summing(50), |t| t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5).rstd);
    let grads = |t: &[Tensor]| {
        let out = t[0].layer_norm(Some(&t[1]), Some(&t[2]), 1e-5);
        Tensor::layer_norm_backward(&t[0], Some(&t[1]), &out.mean, &out.rstd, &t[3])
    };
    both("layer_norm dx", &inputs, F32.summing(50), |t| grads(t).dx);
    both("layer_norm dgamma", &inputs, F32.summing(4 * 7), |t| grads(t).dgamma);
    both("layer_norm dbeta", &inputs, F32.summing(4 * 7), |t| grads(t).dbeta);
    both("layer_norm without affine", std::slice::from_ref(&x), F32.summing(50), |t| {
        t[0].layer_norm(None, None, 1e-5).y
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn matrix_products() {
    if skip_without_gpu() {
        return;
    }
    let a = nonzero(&[37, 64], 21);
    let b = nonzero(&[64, 29], 22);
    both("2-D", &[a.clone(), b.clone()], F32.summing(64), |t| t[0].matmul(&t[1]));
    both("transposed operands", &[a.clone(), b.clone()], F32.summing(64), |t| t[1].t().matmul(&t[0].t()));
    both("vector", &[a.clone(), nonzero(&[64], 23)], F32.summing(64), |t| t[0].matmul(&t[1]));
    let batch = nonzero(&[3, 4, 10, 16], 24);
    let w = nonzero(&[4, 16, 8], 25);
    both("broadcast batch", &[batch.clone(), w.clone()], F32.summing(16), |t| t[0].matmul(&t[1]));
    both("batched transposed", std::slice::from_ref(&batch), F32.summing(16), |t| t[0].matmul(&t[0].transpose(-2, -1)));
    both("shared weight", &[batch.clone(), nonzero(&[16, 5], 26)], F32.summing(16), |t| t[0].matmul(&t[1]));
    let x = nonzero(&[2, 9, 64], 27);
    let weight = nonzero(&[48, 64], 28);
    let bias = nonzero(&[48], 29);
    both("linear", &[x.clone(), weight.clone(), bias.clone()], F32.summing(64), |t| t[0].linear(&t[1], Some(&t[2])));
    both("linear without bias", &[x.clone(), weight.clone()], F32.summing(64), |t| t[0].linear(&t[1], None));
    let (ha, hb) = (a.to_dtype(DType::BF16), b.to_dtype(DType::BF16));
    both("bf16", &[ha, hb], BF16, |t| t[0].matmul(&t[1]));
    // Autocast: f32 in, bf16 products with f32 accumulation, f32 out.
    let device = gpu();
    let cast =
        scratchgpt::tensor::autocast::with_autocast(Some(DType::BF16), || on(&a, device).matmul(&on(&b, device)));
    assert_eq!(cast.dtype(), DType::F32);
    let reference = a.to_dtype(DType::BF16).to_dtype(DType::F32).matmul(&b.to_dtype(DType::BF16).to_dtype(DType::F32));
    // The same bf16 products on both sides; only the f32 summation order differs.
    assert_close("autocast", &reference, &cast, Tolerance { atol: 1e-4, rtol: 1e-4 }.summing(64));
}

#[test]
#[ignore = "needs a CUDA device"]
fn tiled_gemm_matches_cublas() {
    if skip_without_gpu() {
        return;
    }
    use scratchgpt::kernels::cuda::blas::{gemm, MatrixBatch};
    use scratchgpt::kernels::cuda::gemm_tiled::gemm_tiled;
    use scratchgpt::kernels::cuda::CudaDevice;
    gpu();
    let dev = CudaDevice::get(0).unwrap();
    for &(m, k, n) in &[(1usize, 1usize, 1usize), (33, 70, 65), (128, 256, 96)] {
        let a = nonzero(&[m, k], 30).to_vec::<f32>();
        let b = nonzero(&[k, n], 31).to_vec::<f32>();
        let (da, db) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
        let (la, lb) = (MatrixBatch::dense(m, k, 0), MatrixBatch::dense(k, n, 0));
        let tiled = gemm_tiled::<f32>(&dev, m, k, n, &da, la, &db, lb).unwrap();
        let blas = gemm::<f32, f32>(&dev, m, k, n, &da, la, &db, lb).unwrap();
        let (t, c) = (dev.download(&tiled, m * n).unwrap(), dev.download(&blas, m * n).unwrap());
        let cpu = Tensor::from_vec(a, [m, k]).unwrap().matmul(&Tensor::from_vec(b, [k, n]).unwrap()).to_vec::<f32>();
        for i in 0..m * n {
            let scale = cpu[i].abs() + 1e-3 * k as f32;
            assert!((t[i] - c[i]).abs() <= 1e-4 * scale, "{m}×{k}×{n} [{i}]: tiled {} cuBLAS {}", t[i], c[i]);
            assert!((t[i] - cpu[i]).abs() <= 1e-4 * scale, "{m}×{k}×{n} [{i}]: tiled {} cpu {}", t[i], cpu[i]);
        }
    }
}

/// Causal attention over heads-first q, k, v, by the flash kernel or not.
fn attention(x: &[Tensor], flash: bool) -> Attention {
    let options = AttentionOptions { flash, ..AttentionOptions::new(x[0].dim(1)) };
    Tensor::attention(Qkv::Heads { q: &x[0], k: &x[1], v: &x[2] }, &options)
}

/// dq, dk, dv of [`attention`] for the output gradient `x[3]`.
fn attention_grads(x: &[Tensor], flash: bool) -> Vec<Tensor> {
    Tensor::attention_backward(&attention(x, flash).saved, &x[3]).into_vec()
}

#[test]
#[ignore = "needs a CUDA device"]
fn causal_attention_both_ways() {
    if skip_without_gpu() {
        return;
    }
    let (b, h, t, d) = (2, 3, 37, 64);
    let q = nonzero(&[b, h, t, d], 32).mul_scalar(0.5);
    let k = nonzero(&[b, h, t, d], 33).mul_scalar(0.5);
    let v = nonzero(&[b, h, t, d], 34);
    let dout = nonzero(&[b, h, t, d], 35);
    let inputs = [q.clone(), k.clone(), v.clone(), dout.clone()];
    both("attention out", &inputs, F32.summing(d), |x| attention(x, false).out);
    both("attention probs", &inputs, F32.summing(d), |x| attention(x, false).saved.probs().expect("P").clone());
    for (i, name) in ["dq", "dk", "dv"].iter().enumerate() {
        both(&format!("attention {name}"), &inputs, F32.summing(d), |x| attention_grads(x, false)[i].clone());
    }
    // Decoding with a cache: 3 new queries after 37 keys.
    let q_new = q.narrow(2, t - 3, 3).contiguous();
    both("attention with a KV offset", &[q_new.clone(), k.clone(), v.clone()], F32.summing(d), |x| {
        attention(x, false).out
    });
    // A block's packed [B, T, 3C] projection in, [B, T, C] out; d[B, T, 3C] back.
    let c = h * d;
    let packed = [nonzero(&[b, t, 3 * c], 36).mul_scalar(0.5), nonzero(&[b, t, c], 37)];
    let options = AttentionOptions { flash: false, ..AttentionOptions::new(h) };
    both("packed attention out", &packed, F32.summing(d), |x| Tensor::attention(Qkv::Packed(&x[0]), &options).out);
    both("packed attention dqkv", &packed, F32.summing(d), |x| {
        let f = Tensor::attention(Qkv::Packed(&x[0]), &options);
        Tensor::attention_backward(&f.saved, &x[1]).into_vec().remove(0)
    });

    // The flash kernel against the cuBLAS path, on the GPU.
    let device = gpu();
    let g: Vec<Tensor> = inputs.iter().map(|x| on(x, device)).collect();
    let reference = attention(&g, false);
    let flash = attention(&g, true);
    assert!(flash.saved.probs().is_none(), "head size {d} takes the flash route");
    assert_close("flash out", &reference.out.to_device(Device::Cpu).unwrap(), &flash.out, F32.summing(d));
    let want = attention_grads(&g, false);
    let got = attention_grads(&g, true);
    for (i, name) in ["dq", "dk", "dv"].iter().enumerate() {
        assert_close(&format!("flash {name}"), &want[i].to_device(Device::Cpu).unwrap(), &got[i], F32.summing(d));
    }
    let cached = attention(&[on(&q_new, device), g[1].clone(), g[2].clone()], true);
    let cached_ref = attention(&[q_new, k.clone(), v], false).out;
    assert_close("flash with a KV offset", &cached_ref, &cached.out, F32.summing(d));
    // logsumexp: log Σ exp(scaled scores) is what P's rows normalise by.
    let scores = q.matmul(&k.transpose(-2, -1)).div_scalar((d as f64).sqrt());
    let mask = Tensor::ones([t, t], DType::F32).triu(1);
    let lse = scores.masked_fill(&mask, f64::NEG_INFINITY).exp().sum(-1, false).log();
    assert_close("flash logsumexp", &lse, flash.saved.logsumexp().expect("logsumexp"), F32.summing(d));
}

/// Grouped key/value heads and a sliding window on the cuBLAS route (the
/// flash kernel declines both, so a flash request must give the same
/// numbers), heads-first, cached queries, and packed with a head size that
/// is not a model width over H.
#[test]
#[ignore = "needs a CUDA device"]
fn grouped_and_windowed_attention_both_ways() {
    if skip_without_gpu() {
        return;
    }
    let (b, h, hkv, t, d) = (2, 4, 2, 70, 64);
    let q = nonzero(&[b, h, t, d], 40).mul_scalar(0.5);
    let k = nonzero(&[b, hkv, t, d], 41).mul_scalar(0.5);
    let v = nonzero(&[b, hkv, t, d], 42);
    let dout = nonzero(&[b, h, t, d], 43);
    let inputs = [q.clone(), k, v, dout];
    for (kv_heads, window) in [(hkv, Some(17)), (1, None), (hkv, None)] {
        let x: Vec<Tensor> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| if i == 1 || i == 2 { t.narrow(1, 0, kv_heads).contiguous() } else { t.clone() })
            .collect();
        for flash in [false, true] {
            let options = AttentionOptions { window, flash, ..AttentionOptions::new(h).with_kv_heads(kv_heads) };
            let run = |x: &[Tensor]| Tensor::attention(Qkv::Heads { q: &x[0], k: &x[1], v: &x[2] }, &options);
            let what = format!("Hkv {kv_heads}, window {window:?}, flash asked {flash}");
            both(&format!("{what}: out"), &x, F32.summing(d), |x| run(x).out);
            for (i, name) in ["dq", "dk", "dv"].iter().enumerate() {
                both(&format!("{what}: {name}"), &x, F32.summing(t), |x| {
                    Tensor::attention_backward(&run(x).saved, &x[3]).into_vec()[i].clone()
                });
            }
            // Three new queries after all the keys, a KV cache's shape.
            let cached = [x[0].narrow(2, t - 3, 3).contiguous(), x[1].clone(), x[2].clone()];
            both(&format!("{what}: cached"), &cached, F32.summing(d), |x| run(x).out);
        }
    }
    // Packed [B, T, (H + 2·Hkv)·D] with D = 32 (H·D = 128 over any width).
    let dp = 32;
    let packed = [nonzero(&[b, t, (h + 2 * hkv) * dp], 44).mul_scalar(0.5), nonzero(&[b, t, h * dp], 45)];
    let options = AttentionOptions { flash: false, ..AttentionOptions::new(h).with_kv_heads(hkv).with_window(9) };
    both("grouped packed out", &packed, F32.summing(dp), |x| Tensor::attention(Qkv::Packed(&x[0]), &options).out);
    both("grouped packed dqkv", &packed, F32.summing(t), |x| {
        let f = Tensor::attention(Qkv::Packed(&x[0]), &options);
        Tensor::attention_backward(&f.saved, &x[1]).into_vec().remove(0)
    });
}

#[test]
#[ignore = "needs a CUDA device"]
fn cross_entropy_forward_and_backward() {
    if skip_without_gpu() {
        return;
    }
    let (n, v) = (23, 1000);
    let logits = nonzero(&[n, v], 36).mul_scalar(4.0);
    let mut targets: Vec<i64> = (0..n as i64).map(|i| (i * 389) % v as i64).collect();
    targets[3] = -100;
    targets[17] = -100;
    let targets = Tensor::from_vec(targets, [n]).unwrap();
    let device = gpu();
    let cpu = logits.cross_entropy(&targets, -100);
    let g_logits = on(&logits, device);
    for targets_on in [Device::Cpu, device] {
        let t = on(&targets, targets_on);
        let out = g_logits.cross_entropy(&t, -100);
        assert_eq!(out.counted, cpu.counted);
        assert!((out.loss - cpu.loss).abs() <= 1e-5 * cpu.loss.abs(), "loss {} vs {}", out.loss, cpu.loss);
        assert_close("lse", &cpu.lse, &out.lse, F32);
        let scale = 1.0 / cpu.counted as f64;
        let grad_cpu = logits.cross_entropy_backward(&targets, &cpu.lse, -100, scale);
        let grad_gpu = g_logits.cross_entropy_backward(&t, &out.lse, -100, scale);
        // scale·(softmax − one-hot): softmax carries relative error only, and
        // the target's p − 1 loses at most the rounding of 1, times `scale`.
        assert_close("dlogits", &grad_cpu, &grad_gpu, Tolerance { atol: 1e-7 * scale, ..F32 });
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn indexing_and_its_deterministic_adjoints() {
    if skip_without_gpu() {
        return;
    }
    let w = nonzero(&[50, 24], 37);
    let ids = Tensor::from_vec(vec![3i64, 0, 3, 49, 7, 3, 0], [7]).unwrap();
    both("index_select rows", std::slice::from_ref(&w), EXACT, |t| t[0].index_select(0, &ids));
    both("index_select columns", std::slice::from_ref(&w), EXACT, |t| {
        t[0].index_select(1, &Tensor::new([5i64, 5, 0, 23]).unwrap())
    });
    both("embedding", std::slice::from_ref(&w), EXACT, |t| t[0].embedding(&Tensor::new([[3i64, 1], [49, 3]]).unwrap()));
    let src = nonzero(&[7, 24], 38);
    both("index_add", &[w.clone(), src.clone()], EXACT, |t| t[0].index_add(0, &ids, &t[1]));
    both("index_add dim 1", &[w.t().contiguous(), src.t().contiguous()], EXACT, |t| t[0].index_add(1, &ids, &t[1]));
    let x = nonzero(&[6, 10], 39);
    let idx = Tensor::from_vec((0..18).map(|i| (i * 7) % 10).collect::<Vec<i64>>(), [6, 3]).unwrap();
    both("gather", std::slice::from_ref(&x), EXACT, |t| t[0].gather(1, &idx));
    both("gather transposed", &[x.t().contiguous()], EXACT, |t| t[0].t().gather(1, &idx));
    let upd = nonzero(&[6, 3], 40);
    both("scatter_add", &[x.clone(), upd.clone()], EXACT, |t| t[0].scatter_add(1, &idx, &t[1]));
    let idx0 = Tensor::from_vec(vec![1i64, 1, 0, 5, 1, 1], [2, 3]).unwrap();
    both("scatter_add dim 0", &[x.clone(), nonzero(&[2, 3], 41)], EXACT, |t| t[0].scatter_add(0, &idx0, &t[1]));
    // The same bits on every run.
    let device = gpu();
    let (gw, gs) = (on(&w, device), on(&src, device));
    let first = gw.index_add(0, &ids, &gs).to_vec::<f32>();
    for _ in 0..3 {
        assert_eq!(gw.index_add(0, &ids, &gs).to_vec::<f32>(), first, "index_add is not deterministic");
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn views_cat_and_triangles() {
    if skip_without_gpu() {
        return;
    }
    let x = nonzero(&[4, 5, 6], 42);
    both("contiguous of a permutation", std::slice::from_ref(&x), EXACT, |t| t[0].permute(&[2, 0, 1]).contiguous());
    both("reshape of a transpose", std::slice::from_ref(&x), EXACT, |t| t[0].transpose(0, 1).reshape(&[-1]));
    both("narrow then contiguous", std::slice::from_ref(&x), EXACT, |t| t[0].narrow(2, 1, 4).contiguous());
    both("cat", &[x.clone(), nonzero(&[4, 2, 6], 43)], EXACT, |t| Tensor::cat(&[t[0].clone(), t[1].clone()], 1));
    both("cat views", std::slice::from_ref(&x), EXACT, |t| {
        Tensor::cat(&[t[0].transpose(0, 2), t[0].transpose(0, 2)], 0)
    });
    both("stack", std::slice::from_ref(&x), EXACT, |t| Tensor::stack(&[t[0].clone(), t[0].mul_scalar(2.0)], 1));
    both("tril", std::slice::from_ref(&x), EXACT, |t| t[0].tril(0));
    both("triu", std::slice::from_ref(&x), EXACT, |t| t[0].triu(1));
    both("triu int8", &[Tensor::ones([5, 5], DType::I8)], EXACT, |t| t[0].triu(1));
    let device = gpu();
    let z = on(&x, device).zeros_like();
    assert_eq!(z.device(), device);
    assert_same("zeros_like", &x.zeros_like(), &z);
}

#[test]
#[ignore = "needs a CUDA device"]
fn gelu_backward_fused() {
    if skip_without_gpu() {
        return;
    }
    let x = nonzero(&[9, 300], 44);
    let dy = nonzero(&[9, 300], 45);
    both("gelu backward", &[x.clone(), dy.clone()], F32, |t| t[0].gelu_backward(&t[1]));
}

#[test]
#[ignore = "needs a CUDA device"]
fn sum_of_squares_for_clipping() {
    if skip_without_gpu() {
        return;
    }
    let device = gpu();
    let g = nonzero(&[1000, 33], 46);
    let cpu: f64 = g.to_f64_vec().iter().map(|v| v * v).sum();
    let got = on(&g, device).sum_squares();
    assert!((got - cpu).abs() <= 1e-9 * cpu, "{got} vs {cpu}");
}

#[test]
#[ignore = "needs a CUDA device"]
fn attention_under_autocast_runs_in_bf16() {
    if skip_without_gpu() {
        return;
    }
    use scratchgpt::tensor::autocast::with_autocast;
    let device = gpu();
    let (b, h, t, d) = (2, 2, 33, 64);
    let x: Vec<Tensor> = (0..4).map(|i| nonzero(&[b, h, t, d], 60 + i).mul_scalar(0.5)).collect();
    let g: Vec<Tensor> = x.iter().map(|t| on(t, device)).collect();
    let reference = attention(&x, false);
    let ref_grads = attention_grads(&x, false);
    for flash in [false, true] {
        let (out, grads) = with_autocast(Some(DType::BF16), || {
            let f = attention(&g, flash);
            if !flash {
                assert_eq!(f.saved.probs().expect("P").dtype(), DType::BF16, "autocast keeps the weights in bf16");
            }
            let grads = Tensor::attention_backward(&f.saved, &g[3]).into_vec();
            (f.out, grads)
        });
        assert_eq!(out.dtype(), DType::F32);
        // bf16 inputs: a few units of 2⁻⁸ of each tensor's scale.
        assert_close(&format!("autocast out (flash {flash})"), &reference.out, &out, BF16.times(3.0));
        for (i, name) in ["dq", "dk", "dv"].iter().enumerate() {
            assert_close(&format!("autocast {name} (flash {flash})"), &ref_grads[i], &grads[i], BF16.times(3.0));
        }
    }
}

#[test]
#[ignore = "needs a CUDA device"]
fn rms_norm_forward_and_backward() {
    if skip_without_gpu() {
        return;
    }
    let (x, w, dy) = (nonzero(&[7, 300], 51), uniform(&[300], 0.5, 1.5, 52), nonzero(&[7, 300], 53));
    let inputs = [x.clone(), w, dy];
    both("rms_norm y", &inputs, F32.summing(300), |t| t[0].rms_norm(Some(&t[1]), 1e-6).y);
    both("rms_norm rstd", &inputs, F32.summing(300), |t| t[0].rms_norm(Some(&t[1]), 1e-6).rstd.to_dtype(DType::F32));
    let grads = |t: &[Tensor]| {
        let out = t[0].rms_norm(Some(&t[1]), 1e-6);
        Tensor::rms_norm_backward(&t[0], Some(&t[1]), &out.rstd, &t[2])
    };
    both("rms_norm dx", &inputs, F32.summing(300), |t| grads(t).dx);
    both("rms_norm dweight", &inputs, F32.summing(300 * 7), |t| grads(t).dweight);
    both("rms_norm without weight", std::slice::from_ref(&x), F32.summing(300), |t| t[0].rms_norm(None, 1e-6).y);
    // Per head of [B, T, H, D], a strided view.
    let heads = nonzero(&[2, 4, 5, 64], 54);
    both("rms_norm per head of a view", &[heads], F32.summing(64), |t| t[0].transpose(1, 2).rms_norm(None, 1e-6).y);
    // bf16 normalises in f32 and rounds before the weight, like the CPU.
    let (xb, wb) = (x.to_dtype(DType::BF16), uniform(&[300], 0.5, 1.5, 55).to_dtype(DType::BF16));
    both("rms_norm bf16", &[xb, wb], BF16, |t| t[0].rms_norm(Some(&t[1]), 1e-6).y);
}

#[test]
#[ignore = "needs a CUDA device"]
fn rope_forward_and_backward_on_views() {
    if skip_without_gpu() {
        return;
    }
    use scratchgpt::tensor::{RopeConfig, RopeScaling};
    let config = RopeConfig {
        theta: 500000.0,
        head_dim: 64,
        scaling: RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max: 8192 },
    };
    let tables = config.tables(37, 9);
    // [B, H, T, D] viewed as [B, T, H, D]: the GPU packs it first.
    let x = nonzero(&[2, 3, 9, 64], 61);
    both("rope", std::slice::from_ref(&x), F32, |t| t[0].transpose(1, 2).rope(&tables));
    both("rope backward", std::slice::from_ref(&x), F32, |t| Tensor::rope_backward(&t[0].transpose(1, 2), &tables));
    let on_gpu = tables.to_device(gpu()).expect("tables to the GPU");
    both("rope with GPU tables", &[x.clone()], F32, |t| t[0].transpose(1, 2).rope(&on_gpu));
    both("rope bf16", &[x.to_dtype(DType::BF16)], BF16, |t| t[0].transpose(1, 2).rope(&tables));
}

#[test]
#[ignore = "needs a CUDA device"]
fn silu_and_swiglu_fused() {
    if skip_without_gpu() {
        return;
    }
    let (g, u, dy) = (uniform(&[9, 300], -8.0, 8.0, 71), nonzero(&[9, 300], 72), nonzero(&[9, 300], 73));
    both("silu", std::slice::from_ref(&g), F32, |t| t[0].silu());
    both("silu of a view", std::slice::from_ref(&g), F32, |t| t[0].t().silu());
    both("silu backward", &[g.clone(), dy.clone()], F32, |t| t[0].silu_backward(&t[1]));
    let inputs = [g, u, dy];
    both("swiglu", &inputs, F32, |t| t[0].swiglu(&t[1]));
    both("swiglu dgate", &inputs, F32, |t| Tensor::swiglu_backward(&t[0], &t[1], &t[2]).0);
    both("swiglu dup", &inputs, F32, |t| Tensor::swiglu_backward(&t[0], &t[1], &t[2]).1);
    let half: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::BF16)).collect();
    both("swiglu bf16", &half, BF16, |t| t[0].swiglu(&t[1]));
}
