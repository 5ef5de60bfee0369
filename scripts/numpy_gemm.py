"""The OpenBLAS side of scripts/gemm-vs-openblas.sh: reads the JSON that
`scratchgpt bench gemm --json` printed (a list of products with m, k, n and
which operand is stored transposed) on standard input, times numpy's matmul
on the same shapes and layouts, and prints the same list with its own
`ms` and `gflops`.

    scratchgpt bench gemm --json | python3 scripts/numpy_gemm.py --threads 2

The thread count must be set before numpy loads OpenBLAS, hence the
environment variables below. Needs `pip install numpy`.
"""

import argparse
import json
import os
import statistics
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--repeats", type=int, default=5)
args = parser.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

try:
    import numpy as np
except ImportError:
    sys.exit("needs numpy: pip install numpy")


def operand(rng, rows, cols, transposed):
    # A transposed operand is stored [cols, rows] and read through .T, which
    # numpy hands to BLAS as a transpose flag, not a copy.
    if transposed:
        return rng.standard_normal((cols, rows), dtype=np.float32).T
    return rng.standard_normal((rows, cols), dtype=np.float32)


rng = np.random.default_rng(0)
out = []
for p in json.load(sys.stdin):
    a = operand(rng, p["m"], p["k"], p["a_transposed"])
    b = operand(rng, p["k"], p["n"], p["b_transposed"])
    a @ b  # untimed: first-touch page faults, OpenBLAS buffers
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        c = a @ b
        times.append(time.perf_counter() - start)
        del c
    secs = statistics.median(times)
    flops = 2.0 * p["m"] * p["k"] * p["n"]
    out.append({**p, "ms": secs * 1e3, "gflops": flops / secs / 1e9})
print(json.dumps(out))
