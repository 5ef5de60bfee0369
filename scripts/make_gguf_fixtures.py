#!/usr/bin/env python3
"""Writes `tests/fixtures/gguf_blocks.gguf`, the reference the GGUF block
formats are tested against (`tests/gguf.rs`).

Requirements: `pip install gguf numpy` (gguf 0.19, pure Python). Run from
anywhere:

    python3 scripts/make_gguf_fixtures.py

and commit the file it writes (about 12 KB). It holds:

- metadata of every GGUF value type (`test.u8` ... `test.f64`, `test.bool`,
  `test.string`, arrays of integers and of strings), which the reader must
  return as written;
- for each block format F of F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K a
  tensor `F` stored in that format, and `F.expected`, F32, the values
  `gguf.quants.dequantize` gives for it;
- `source`, F32 `[8, 32]`: the weights Q8_0 and Q4_0 were quantized from
  with `gguf.quants.quantize`, so our quantizers can be checked byte for
  byte. Its rows are edge cases: all zeros, ties at x.5 steps, one large
  negative weight, a maximum magnitude held by both signs, and random rows.

`gguf` quantizes only Q8_0 and Q4_0 (and the float types) from numpy; for
Q4_K and Q6_K, whose blocks cover 256 weights, the block bytes are random
(seeded) with the f16 super-block scales set to ordinary values, and the
package's dequantizer says what they mean.
"""

from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gguf_blocks.gguf"
rng = np.random.default_rng(20261201)


def source_rows() -> np.ndarray:
    rows = np.zeros((8, 32), dtype=np.float32)
    # row 0: all zeros (scale 0, every q 0)
    # row 1: steps that land on x.5 after scaling: max 127 → q = x exactly,
    # so x.5 values test round-half-away-from-zero (Q8_0) and Q4_0's +8.5.
    rows[1] = np.array([127.0] + [k + 0.5 for k in range(-15, 16)], dtype=np.float32)
    # row 2: one large negative weight among small ones (Q4_0's d > 0)
    rows[2] = rng.normal(0, 0.01, 32).astype(np.float32)
    rows[2][7] = -1.5
    # row 3: the largest magnitude held by +x first and -x later
    rows[3] = rng.normal(0, 0.1, 32).astype(np.float32)
    rows[3][3], rows[3][20] = 0.75, -0.75
    # rows 4-7: random weights of GPT-2's scale and larger
    for i, std in zip(range(4, 8), (0.02, 0.2, 1.0, 3.0)):
        rows[i] = rng.normal(0, std, 32).astype(np.float32)
    return rows


def crafted_k_blocks(qtype: T, n_blocks: int) -> np.ndarray:
    """Random block bytes whose f16 scales are ordinary numbers."""
    block_bytes = gguf.GGML_QUANT_SIZES[qtype][1]
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for b in range(n_blocks):
        if qtype == T.Q4_K:  # d, dmin at the start
            d = np.array([rng.uniform(0.001, 0.05), rng.uniform(0.001, 0.05)], dtype=np.float16)
            raw[b, 0:4] = d.view(np.uint8)
        elif qtype == T.Q6_K:  # d at the end
            raw[b, -2:] = np.array([rng.uniform(0.001, 0.05)], dtype=np.float16).view(np.uint8)
    return raw


def main() -> None:
    w = gguf.GGUFWriter(str(OUT), arch="test")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.15625)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "naïve ✓")
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", -2.5e-300)
    w.add_array("test.array_i32", [1, -2, 3])
    w.add_array("test.array_str", ["a", "", "ĠHello"])

    values = rng.normal(0, 0.5, (2, 32)).astype(np.float32)
    source = source_rows()
    tensors = {
        "f32": (values, T.F32),
        "f16": (values, T.F16),
        "bf16": (values, T.BF16),
        "q8_0": (source, T.Q8_0),
        "q4_0": (source, T.Q4_0),
    }
    for name, (data, qtype) in tensors.items():
        q = quantize(data, qtype)
        w.add_tensor(name, q, raw_dtype=qtype)
        w.add_tensor(f"{name}.expected", dequantize(q, qtype).astype(np.float32).reshape(data.shape))
    for name, qtype in (("q4_k", T.Q4_K), ("q6_k", T.Q6_K)):
        raw = crafted_k_blocks(qtype, 2)
        w.add_tensor(name, raw, raw_dtype=qtype)
        w.add_tensor(f"{name}.expected", dequantize(raw, qtype).astype(np.float32).reshape(2, 256))
    w.add_tensor("source", source)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
