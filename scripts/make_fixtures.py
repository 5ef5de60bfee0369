#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that `tests/torch_parity.rs` and
`tests/simple_net.rs` compare scratchgpt against.

Requirements: `pip install torch safetensors numpy` (PyTorch on the CPU is
enough). Run from anywhere:

    python3 scripts/make_fixtures.py

and commit the files it writes under `tests/fixtures/`. The script is
deterministic (fixed seeds, float32 CPU arithmetic, one thread), so running it
again rewrites byte-identical files on the same PyTorch version.

Layout: one safetensors file per op family (`unary`, `binary`, `reduce`,
`softmax`, `matmul`, `shape`, `index`, `norm`, `loss`, `attention`, `optim`) plus
`simple_net`. Inside an op-family file every case has a name (`add_row`,
`sum_dim-1`, ...) and these tensors:

    <case>.in.<i>     float32 input i (every one of them is differentiated)
    <case>.out        float32 forward output
    <case>.r          float32 random weights r, shaped like the output
    <case>.grad.<i>   float32 d/d(input i) of (out * r).sum()
    <case>.c.<name>   constants the op needs and nobody differentiates
                      (int64 indices/targets, int64 0/1 masks, float32 targets)

What each case computes is fixed by its name: the Rust test holds the same
table, name by name, and fails when either side has a case the other lacks.
The `__metadata__` has one key, `cases`: a JSON object mapping each case name
to the PyTorch expression that made it, so a reader of a fixture file can see
the op without this script. (One key only: safetensors writes metadata keys in
hash order, and a single key keeps the files byte-identical between runs.)

`optim.safetensors` holds two optimizer runs (`adamw.*`, `sgd.*`): the initial
parameter `<opt>.param.0`, the gradient fed at step t `<opt>.grad.<t>` and the
parameter after step t `<opt>.param.<t>`, t = 1..5. `simple_net.safetensors`
holds the book's net (Linear(10,5) -> ReLU -> Linear(5,1) -> Sigmoid): input
`x`, target `y`, initial parameters `param.<name>`, output `out`, BCE `loss`,
gradients `grad.<name>` and parameters after one SGD(lr=0.01) step
`after.<name>`, with torch's `named_parameters()` names (`0.weight`, ...).
"""

import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.set_num_threads(1)  # one thread: reductions sum in one fixed order
torch.use_deterministic_algorithms(True)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

# The sizes of autograd/src/gradcheck/suite.rs's default cases.
M, N, K, B = 3, 4, 5, 2

gen = torch.Generator().manual_seed(20240601)


def away_from_zero(*dims):
    """Values in ±[0.2, 1.5]: away from the kinks of relu, abs and max."""
    mag = torch.empty(dims).uniform_(0.2, 1.5, generator=gen)
    sign = torch.where(torch.rand(dims, generator=gen) < 0.5, -1.0, 1.0)
    return mag * sign


def positive(*dims):
    return torch.empty(dims).uniform_(0.5, 2.0, generator=gen)


def randn(*dims):
    return torch.randn(dims, generator=gen)


class Family:
    """Collects the cases of one fixture file."""

    def __init__(self, name, generator=None):
        self.name = name
        self.tensors = {}
        self.meta = {}
        self.gen = generator or gen

    def case(self, case, expr, fn, inputs, consts=None):
        """Runs `fn(*inputs)` and stores inputs, output, r and gradients.

        `expr` is the PyTorch expression, kept in the file's metadata.
        """
        assert case not in self.meta, f"duplicate case {case}"
        assert "." not in case, f"case names may not contain dots: {case}"
        leaves = [x.detach().clone().float().requires_grad_(True) for x in inputs]
        out = fn(*leaves)
        r = torch.randn(out.shape, generator=self.gen)
        (out * r).sum().backward()
        for i, x in enumerate(leaves):
            self.tensors[f"{case}.in.{i}"] = x.detach()
            assert x.grad is not None, f"{case}: input {i} got no gradient"
            self.tensors[f"{case}.grad.{i}"] = x.grad.detach()
        self.tensors[f"{case}.out"] = out.detach()
        self.tensors[f"{case}.r"] = r
        for name, c in (consts or {}).items():
            self.tensors[f"{case}.c.{name}"] = c
        self.meta[case] = expr

    def save(self):
        tensors = {k: v.contiguous().clone() for k, v in self.tensors.items()}
        for k, v in tensors.items():
            assert v.dtype in (torch.float32, torch.int64), f"{k}: unexpected dtype {v.dtype}"
        meta = {"cases": json.dumps(self.meta, sort_keys=True)}
        save_file(tensors, os.path.join(OUT_DIR, f"{self.name}.safetensors"), metadata=meta)
        return len(self.meta)


def unary():
    f = Family("unary")
    x = away_from_zero(M, N)
    pos = positive(M, N)
    f.case("neg", "-x", lambda x: -x, [x])
    f.case("abs", "x.abs()", torch.abs, [x])
    f.case("exp", "x.exp()", torch.exp, [x])
    f.case("tanh", "x.tanh()", torch.tanh, [x])
    f.case("sigmoid", "x.sigmoid()", torch.sigmoid, [x])
    f.case("relu", "x.relu()", torch.relu, [x])
    f.case("gelu", "F.gelu(x, approximate='tanh')", lambda x: F.gelu(x, approximate="tanh"), [x])
    # GELU's tails: tanh saturates, the gradient overshoots 1 then decays.
    wide = torch.linspace(-6.0, 6.0, 24).reshape(4, 6)
    f.case("gelu_wide", "F.gelu(x, approximate='tanh'), x in [-6, 6]", lambda x: F.gelu(x, approximate="tanh"), [wide])
    f.case("mul_scalar", "x * -2.5", lambda x: x * -2.5, [x])
    f.case("add_scalar", "x + 0.75", lambda x: x + 0.75, [x])
    f.case("square", "x ** 2", lambda x: x**2, [x])
    f.case("log", "x.log()", torch.log, [pos])
    f.case("sqrt", "x.sqrt()", torch.sqrt, [pos])
    f.case("powf", "x ** 2.5", lambda x: x**2.5, [pos])
    f.case("tanh_transposed", "x.t().tanh()", lambda x: x.t().tanh(), [away_from_zero(N, M)])
    # Exact zeros: PyTorch's relu and abs give gradient 0 there; gradcheck
    # cannot test a kink, a fixture can.
    kinks = torch.tensor([[-1.0, 0.0, 2.0], [0.0, -0.5, 0.0]])
    f.case("relu_at_zero", "x.relu(), x has exact zeros", torch.relu, [kinks])
    f.case("abs_at_zero", "x.abs(), x has exact zeros", torch.abs, [kinks])
    return f


def binary():
    f = Family("binary")
    a, b = away_from_zero(M, N), away_from_zero(M, N)
    row, col, row1 = away_from_zero(N), away_from_zero(M, 1), away_from_zero(1, N)
    at = away_from_zero(N, M)
    ops = {
        "add": lambda x, y: x + y,
        "sub": lambda x, y: x - y,
        "mul": lambda x, y: x * y,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
    }
    for name, op in ops.items():
        sym = {"add": "+", "sub": "-", "mul": "*"}.get(name)
        e = (lambda l, r: f"{l} {sym} {r}") if sym else (lambda l, r, name=name: f"torch.{name}({l}, {r})")
        f.case(f"{name}_same", e("a[3,4]", "b[3,4]"), op, [a, b])
        f.case(f"{name}_row", e("a[3,4]", "b[4]"), op, [a, row])
        f.case(f"{name}_col_row", e("a[3,1]", "b[1,4]"), op, [col, row1])
        f.case(f"{name}_transposed", e("a[4,3].t()", "b[3,4]"), lambda x, y, op=op: op(x.t(), y), [at, b])
    # Ties: PyTorch splits the gradient evenly between equal operands.
    ta = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    tb = torch.tensor([[1.0, -1.0, 0.5], [2.0, 0.25, -1.5]])
    f.case("maximum_ties", "torch.maximum(a, b), some a == b", torch.maximum, [ta, tb])
    f.case("minimum_ties", "torch.minimum(a, b), some a == b", torch.minimum, [ta, tb])
    denom, denom_row = positive(M, N), positive(N)
    f.case("div_same", "a[3,4] / b[3,4]", lambda x, y: x / y, [a, denom])
    f.case("div_row", "a[3,4] / b[4]", lambda x, y: x / y, [a, denom_row])
    f.case("div_col", "a[3,1] / b[3,4]", lambda x, y: x / y, [col, denom])
    # Both operands broadcast at once, across ranks.
    f.case("add_rank3", "a[2,1,4] + b[3,1]", lambda x, y: x + y, [away_from_zero(B, 1, N), away_from_zero(M, 1)])
    f.case("mul_rank3", "a[2,1,4] * b[3,1]", lambda x, y: x * y, [away_from_zero(B, 1, N), away_from_zero(M, 1)])
    return f


def reduce():
    f = Family("reduce")
    x3 = away_from_zero(B, M, N)
    for dim in (0, 1, -1):
        f.case(f"sum_dim{dim}", f"x.sum({dim})", lambda x, d=dim: x.sum(d), [x3])
        f.case(f"mean_dim{dim}_keepdim", f"x.mean({dim}, keepdim=True)", lambda x, d=dim: x.mean(d, keepdim=True), [x3])
        f.case(f"max_dim{dim}", f"x.max({dim}).values", lambda x, d=dim: x.max(d).values, [x3])
    f.case("max_dim1_keepdim", "x.max(1, keepdim=True).values", lambda x: x.max(1, keepdim=True).values, [x3])
    f.case("sum_all", "x.sum()", torch.sum, [x3])
    f.case("mean_all", "x.mean()", torch.mean, [x3])
    wide = away_from_zero(M, N)
    f.case("var_unbiased", "x.var(-1, unbiased=True)", lambda x: x.var(-1, unbiased=True), [wide])
    f.case(
        "var_biased_keepdim",
        "x.var(1, unbiased=False, keepdim=True)",
        lambda x: x.var(1, unbiased=False, keepdim=True),
        [wide],
    )
    f.case("var_dim0", "x.var(0)", lambda x: x.var(0), [x3])
    # Many elements: the two libraries add in different orders.
    big = torch.empty(32, 32).uniform_(0.0, 1.0, generator=gen)
    f.case("mean_all_1024", "x.mean(), x[32,32] in [0, 1)", torch.mean, [big])
    f.case("sum_dim1_1024", "x.sum(1), x[32,32] in [0, 1)", lambda x: x.sum(1), [big])
    return f


def softmax():
    f = Family("softmax")
    x3 = away_from_zero(B, M, N)
    f.case("softmax_dim-1", "x.softmax(-1)", lambda x: x.softmax(-1), [x3])
    f.case("softmax_dim1", "x.softmax(1)", lambda x: x.softmax(1), [x3])
    f.case("softmax_dim0", "x.softmax(0)", lambda x: x.softmax(0), [x3])
    f.case("log_softmax_dim-1", "x.log_softmax(-1)", lambda x: x.log_softmax(-1), [x3])
    f.case("log_softmax_dim0", "x.log_softmax(0)", lambda x: x.log_softmax(0), [x3])
    f.case("softmax_transposed", "x.t().softmax(-1)", lambda x: x.t().softmax(-1), [away_from_zero(N, M)])
    # Large logits: only a max-subtracting softmax survives these in float32.
    large = randn(M, N) * 30.0 + 100.0
    f.case("softmax_large", "x.softmax(-1), x ~ 100 ± 30", lambda x: x.softmax(-1), [large])
    f.case("log_softmax_large", "x.log_softmax(-1), x ~ 100 ± 30", lambda x: x.log_softmax(-1), [large])
    return f


def matmul():
    f = Family("matmul")
    amk, bkn = away_from_zero(M, K), away_from_zero(K, N)
    f.case("mm", "a[3,5] @ b[5,4]", torch.matmul, [amk, bkn])
    f.case(
        "mm_transposed",
        "a[5,3].t() @ b[4,5].t()",
        lambda a, b: a.t() @ b.t(),
        [away_from_zero(K, M), away_from_zero(N, K)],
    )
    f.case("vec_mat", "a[5] @ b[5,4]", torch.matmul, [away_from_zero(K), bkn])
    f.case("mat_vec", "a[3,5] @ b[5]", torch.matmul, [amk, away_from_zero(K)])
    f.case("vec_vec", "a[5] @ b[5]", torch.matmul, [away_from_zero(K), away_from_zero(K)])
    f.case("batched", "a[2,3,5] @ b[2,5,4]", torch.matmul, [away_from_zero(B, M, K), away_from_zero(B, K, N)])
    f.case(
        "broadcast_batch",
        "a[2,1,3,5] @ b[2,5,4]",
        torch.matmul,
        [away_from_zero(B, 1, M, K), away_from_zero(2, K, N)],
    )
    f.case("batched_mat", "a[2,3,5] @ b[5,4]", torch.matmul, [away_from_zero(B, M, K), bkn])
    f.case(
        "batched_transposed",
        "a[2,5,3].transpose(1, 2) @ b[2,5,4]",
        lambda a, b: a.transpose(1, 2) @ b,
        [away_from_zero(B, K, M), away_from_zero(B, K, N)],
    )
    f.case(
        "linear",
        "F.linear(x[2,3,5], w[4,5], b[4])",
        F.linear,
        [away_from_zero(B, M, K), away_from_zero(N, K), away_from_zero(N)],
    )
    return f


def shape():
    f = Family("shape")
    x3 = away_from_zero(B, M, N)
    a, b = away_from_zero(M, N), away_from_zero(M, N)
    f.case(
        "reshape",
        "x.reshape(-1, 4) * x.reshape(-1, 4)",
        lambda x: x.reshape(-1, N) * x.reshape(-1, N),
        [x3],
    )
    f.case("transpose", "x.transpose(0, 2).exp()", lambda x: x.transpose(0, 2).exp(), [x3])
    f.case("permute", "x.permute(2, 0, 1).sigmoid()", lambda x: x.permute(2, 0, 1).sigmoid(), [x3])
    f.case("narrow", "x.narrow(2, 2, 2).exp()", lambda x: x.narrow(2, N // 2, N - N // 2).exp(), [x3])
    f.case("narrow_middle", "x.narrow(1, 1, 1).exp()", lambda x: x.narrow(1, 1, 1).exp(), [x3])
    f.case("expand", "x[3,1].expand(3, 4).tanh()", lambda x: x.expand(M, N).tanh(), [away_from_zero(M, 1)])
    f.case(
        "squeeze_unsqueeze",
        "x[3,1].squeeze(1).unsqueeze(0).exp()",
        lambda x: x.squeeze(1).unsqueeze(0).exp(),
        [away_from_zero(M, 1)],
    )
    f.case("contiguous", "x[4,3].t().contiguous().exp()", lambda x: x.t().contiguous().exp(), [away_from_zero(N, M)])
    f.case(
        "cat",
        "torch.cat([a[3,4], b[3,5]], 1).tanh()",
        lambda x, y: torch.cat([x, y], 1).tanh(),
        [a, away_from_zero(M, K)],
    )
    f.case("cat_dim0", "torch.cat([a[3,4], b[3,4]], 0).tanh()", lambda x, y: torch.cat([x, y], 0).tanh(), [a, b])
    f.case("stack", "torch.stack([a, b], 1).tanh()", lambda x, y: torch.stack([x, y], 1).tanh(), [a, b])
    return f


def index():
    f = Family("index")
    a = away_from_zero(M, N)
    row = away_from_zero(N)
    rows = torch.tensor([(i * 7) % M for i in range(M + 2)])
    f.case(
        "index_select_dim0",
        "x.index_select(0, idx).tanh(), idx repeats rows",
        lambda x: x.index_select(0, rows).tanh(),
        [a],
        {"idx": rows},
    )
    cols = torch.tensor([N - 1, 0, N - 1])
    f.case(
        "index_select_dim1",
        "x.index_select(1, idx).exp()",
        lambda x: x.index_select(1, cols).exp(),
        [a],
        {"idx": cols},
    )
    ids = torch.tensor([(i * 5) % M for i in range(B * 3)]).reshape(B, 3)
    f.case("embedding", "F.embedding(ids[2,3], w).tanh()", lambda w: F.embedding(ids, w).tanh(), [a], {"ids": ids})
    gidx = torch.tensor([(i * 3) % N for i in range(M * 2)]).reshape(M, 2)
    f.case("gather_dim1", "x.gather(1, idx).exp()", lambda x: x.gather(1, gidx).exp(), [a], {"idx": gidx})
    gidx0 = torch.tensor([[2, 0, 1, 2], [0, 0, 2, 1]])
    f.case("gather_dim0", "x.gather(0, idx).exp()", lambda x: x.gather(0, gidx0).exp(), [a], {"idx": gidx0})
    mask = (randn(M, N) > 0).long()
    f.case(
        "where",
        "torch.where(mask, a[3,4], b[4])",
        lambda x, y: torch.where(mask.bool(), x, y),
        [a, row],
        {"mask": mask},
    )
    causal = torch.ones(M, N).triu(1).long()
    f.case(
        "masked_fill",
        "x.masked_fill(triu(1), -3).exp()",
        lambda x: x.masked_fill(causal.bool(), -3.0).exp(),
        [a],
        {"mask": causal},
    )
    return f


def norm():
    f = Family("norm")
    x3 = away_from_zero(B, M, N)
    gamma, beta = away_from_zero(N), away_from_zero(N)
    f.case(
        "layer_norm",
        "F.layer_norm(x, [4], g, b, eps=1e-5)",
        lambda x, g, b: F.layer_norm(x, (N,), g, b, eps=1e-5),
        [x3, gamma, beta],
    )
    f.case("layer_norm_no_affine", "F.layer_norm(x, [4], eps=1e-5)", lambda x: F.layer_norm(x, (N,), eps=1e-5), [x3])
    wide = randn(M, 16) * 2.0 + 0.5
    g16, b16 = randn(16), randn(16)
    f.case(
        "layer_norm_wide",
        "F.layer_norm(x[3,16], [16], g, b, eps=1e-5)",
        lambda x, g, b: F.layer_norm(x, (16,), g, b, eps=1e-5),
        [wide, g16, b16],
    )
    f.case(
        "layer_norm_transposed",
        "F.layer_norm(x[4,3].t(), [4], g, b, eps=1e-5)",
        lambda x, g, b: F.layer_norm(x.t(), (N,), g, b, eps=1e-5),
        [away_from_zero(N, M), gamma, beta],
    )
    return f


def causal_attention(q, k, v, window=None):
    """Grouped-query attention as transformers' eager path computes it: K and V
    repeated per query head (`repeat_kv` = repeat_interleave on the head dim),
    then softmax(q k^T / sqrt(D)) over the keys that query position p sees,
    j <= p and, with a sliding window, j > p - window (masking_utils'
    `sliding_window_overlay`). Queries are the last Tq of the Tk positions."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    tq, tk = q.shape[2], k.shape[2]
    p = torch.arange(tk - tq, tk)[:, None]
    j = torch.arange(tk)[None, :]
    hidden = j > p
    if window is not None:
        hidden = hidden | (j <= p - window)
    scores = (q @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5
    return scores.masked_fill(hidden, float("-inf")).softmax(-1) @ v


def attention():
    # Its own generator, so adding these cases left the other files as they were.
    own = torch.Generator().manual_seed(20250101)
    rand = lambda *dims: torch.randn(dims, generator=own)
    f = Family("attention", generator=own)
    h, t, d = 4, 5, 4
    f.case(
        "gqa_window",
        "causal_attention(q[1,4,5,4], k[1,2,5,4], v[1,2,5,4], window=3)",
        lambda q, k, v: causal_attention(q, k, v, window=3),
        [rand(1, h, t, d), rand(1, 2, t, d), rand(1, 2, t, d)],
    )
    f.case(
        "mqa",
        "causal_attention(q[1,4,5,4], k[1,1,5,4], v[1,1,5,4])",
        causal_attention,
        [rand(1, h, t, d), rand(1, 1, t, d), rand(1, 1, t, d)],
    )
    f.case(
        "gqa_cached_window",
        "causal_attention(q[1,4,2,4] (the last 2 of 5 positions), k[1,2,5,4], v[1,2,5,4], window=3)",
        lambda q, k, v: causal_attention(q, k, v, window=3),
        [rand(1, h, 2, d), rand(1, 2, t, d), rand(1, 2, t, d)],
    )

    def packed(qkv):
        # [B, T, (H + 2 Hkv) D]: Q, then K, then V; output [B, T, H D].
        hkv, dd = 2, 3
        q, k, v = qkv.split([h * dd, hkv * dd, hkv * dd], dim=-1)
        heads = lambda x: x.unflatten(-1, (-1, dd)).transpose(1, 2)
        return causal_attention(heads(q), heads(k), heads(v), window=2).transpose(1, 2).flatten(2)

    f.case(
        "packed_gqa_window",
        "causal_attention of qkv[1,5,24] split as 4 query heads, 2 key and 2 value heads of 3, window=2",
        packed,
        [rand(1, t, (h + 4) * 3)],
    )
    return f


def loss():
    f = Family("loss")
    classes = N
    logits = away_from_zero(B * M, classes) * 2.0
    targets = torch.tensor([-100 if i == 1 else (i * 3) % classes for i in range(B * M)])
    f.case(
        "cross_entropy_ignore",
        "F.cross_entropy(z[6,4], t) with t[1] = -100",
        lambda z: F.cross_entropy(z, targets, ignore_index=-100),
        [logits],
        {"targets": targets},
    )
    logits3 = away_from_zero(B, M, classes) * 2.0
    t2 = targets.reshape(B, M)
    f.case(
        "cross_entropy_btc",
        "F.cross_entropy(z[2,3,4].reshape(-1, 4), t[2,3].reshape(-1)) with one -100",
        lambda z: F.cross_entropy(z.reshape(-1, classes), t2.reshape(-1), ignore_index=-100),
        [logits3],
        {"targets": t2},
    )
    tall = torch.tensor([i % 7 for i in range(8)])
    f.case(
        "cross_entropy_many_classes",
        "F.cross_entropy(z[8,7] * 3, t)",
        lambda z: F.cross_entropy(z, tall),
        [randn(8, 7) * 3.0],
        {"targets": tall},
    )
    probs = torch.empty(M, N).uniform_(0.1, 0.9, generator=gen)
    labels = (randn(M, N) >= 0).float()
    labels[0, 0] = 0.3  # a soft label
    f.case(
        "binary_cross_entropy",
        "F.binary_cross_entropy(p, t)",
        lambda p: F.binary_cross_entropy(p, labels),
        [probs],
        {"targets": labels},
    )
    a, b = away_from_zero(M, N), away_from_zero(M, N)
    f.case("mse_loss", "F.mse_loss(a, b), both differentiated", F.mse_loss, [a, b])
    return f


def optim():
    """Five steps of AdamW and of SGD with momentum on fixed gradients."""
    tensors = {}
    steps = 5
    runs = {
        "adamw": lambda p: torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
        "sgd": lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01),
    }
    for name, make in runs.items():
        p = randn(M, N).requires_grad_(True)
        opt = make(p)
        tensors[f"{name}.param.0"] = p.detach().clone()
        for t in range(1, steps + 1):
            g = randn(M, N)
            p.grad = g.clone()
            opt.step()
            tensors[f"{name}.grad.{t}"] = g
            tensors[f"{name}.param.{t}"] = p.detach().clone()
    cases = {
        "adamw": "torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1), 5 steps",
        "sgd": "torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01), 5 steps",
    }
    meta = {"cases": json.dumps(cases, sort_keys=True)}
    save_file(tensors, os.path.join(OUT_DIR, "optim.safetensors"), metadata=meta)


def simple_net():
    """The book's net, one BCE loss and one SGD step."""
    torch.manual_seed(123)
    net = torch.nn.Sequential(
        torch.nn.Linear(10, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 1),
        torch.nn.Sigmoid(),
    )
    x = torch.randn(8, 10)
    y = (torch.rand(8, 1) > 0.5).float()
    tensors = {"x": x, "y": y}
    for name, p in net.named_parameters():
        tensors[f"param.{name}"] = p.detach().clone()
    out = net(x)
    loss = F.binary_cross_entropy(out, y)
    loss.backward()
    tensors["out"] = out.detach()
    tensors["loss"] = loss.detach()
    for name, p in net.named_parameters():
        tensors[f"grad.{name}"] = p.grad.detach().clone()
    torch.optim.SGD(net.parameters(), lr=0.01).step()
    for name, p in net.named_parameters():
        tensors[f"after.{name}"] = p.detach().clone()
    meta = {"cases": json.dumps({"simple_net": "Linear(10,5) ReLU Linear(5,1) Sigmoid; BCE; SGD(lr=0.01)"})}
    save_file(tensors, os.path.join(OUT_DIR, "simple_net.safetensors"), metadata=meta)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    total = 0
    for make in (unary, binary, reduce, softmax, matmul, shape, index, norm, loss, attention):
        total += make().save()
    optim()
    simple_net()
    size = sum(os.path.getsize(os.path.join(OUT_DIR, n)) for n in os.listdir(OUT_DIR))
    print(f"wrote {total} op cases, optimizer runs and the simple net to tests/fixtures/ ({size} bytes)")


if __name__ == "__main__":
    main()
