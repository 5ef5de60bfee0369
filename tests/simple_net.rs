//! The book's first network, end to end against PyTorch: Linear(10, 5) →
//! ReLU → Linear(5, 1) → Sigmoid with PyTorch's own initial weights, a fixed
//! batch of 8 and binary targets. The loss, every named parameter's gradient
//! and every parameter after one SGD(lr = 0.01) step must match what
//! PyTorch computed (`scripts/make_fixtures.py` writes
//! `tests/fixtures/simple_net.safetensors`).
//!
//! The op-by-op fixtures check each piece; this checks that the pieces
//! compose the way `torch.nn` composes them: `Linear` stores W as
//! `[out, in]` and computes x·Wᵀ + b, `Sequential` names parameters
//! `0.weight`, `2.bias`, …, BCE averages over the batch, and SGD updates in
//! place what the next forward reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};
use scratchgpt::autograd::loss::binary_cross_entropy;
use scratchgpt::autograd::nn::{Linear, Module, Relu, Sequential, Sigmoid};
use scratchgpt::autograd::optim::{Optimizer, Sgd};
use scratchgpt::autograd::Var;
use scratchgpt::tensor::{DType, Tensor};

/// Every float32 tensor in the fixture, by name.
fn load_fixture() -> BTreeMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/simple_net.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read fixture {} ({e}); generate the fixtures with `python3 scripts/make_fixtures.py` \
             (needs `pip install torch safetensors numpy`)",
            path.display()
        )
    });
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), Dtype::F32, "{name}: the simple net fixture holds only float32");
            let v: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, Tensor::from_vec(v, view.shape().to_vec()).unwrap())
        })
        .collect()
}

/// Asserts allclose(got, want) with rtol 1e-5 and an absolute floor of 1e-6
/// for entries that are (nearly) zero, such as the gradient rows of hidden
/// units ReLU switched off.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape differs from PyTorch's");
    assert_eq!(got.dtype(), DType::F32, "{what}: dtype");
    for (i, (a, b)) in got.to_f64_vec().into_iter().zip(want.to_f64_vec()).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 + 1e-5 * b.abs(),
            "{what}[{i}]: ours {a:e}, PyTorch {b:e}\nours:\n{got}\nPyTorch:\n{want}"
        );
    }
}

#[test]
fn simple_net_matches_pytorch_loss_gradients_and_sgd_step() {
    let fx = load_fixture();
    let get = |name: &str| fx.get(name).unwrap_or_else(|| panic!("simple_net.safetensors has no `{name}`")).clone();
    let param = |name: &str| Var::parameter(get(&format!("param.{name}")));

    let net = Sequential::new()
        .add(Linear::from_weights(param("0.weight"), Some(param("0.bias"))))
        .add(Relu)
        .add(Linear::from_weights(param("2.weight"), Some(param("2.bias"))))
        .add(Sigmoid);
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"], "torch.nn.Sequential's names, in its order");

    let x = Var::constant(get("x"));
    let y = Var::constant(get("y"));
    let out = net.forward(&x);
    assert_close("output", &out.data(), &get("out"));
    let loss = binary_cross_entropy(&out, &y);
    assert_close("loss", &loss.data(), &get("loss"));

    loss.backward();
    for (name, p) in net.named_parameters() {
        let grad = p.grad().unwrap_or_else(|| panic!("{name} received no gradient"));
        assert_close(&format!("{name}.grad"), &grad, &get(&format!("grad.{name}")));
    }

    let mut sgd = Sgd::new(net.parameters(), 0.01);
    sgd.step();
    for (name, p) in net.named_parameters() {
        assert_close(&format!("{name} after one SGD step"), &p.data(), &get(&format!("after.{name}")));
    }
    // The step must have moved every parameter: a no-op optimizer would
    // otherwise pass wherever lr·grad sinks below the tolerance.
    for (name, p) in net.named_parameters() {
        let before = get(&format!("param.{name}")).to_f64_vec();
        assert_ne!(p.data().to_f64_vec(), before, "{name} did not change in the SGD step");
    }

    // A second forward reads the updated weights: the loss must fall.
    let loss2 = binary_cross_entropy(&net.forward(&x), &y);
    assert!(loss2.item() < loss.item(), "loss went from {} to {} after a descent step", loss.item(), loss2.item());
}
