//! Every packed format on every instruction set against the scalar
//! reference (bit for bit) and against decode-then-multiply (to float
//! tolerance).

use super::*;

/// A tiny deterministic generator (xorshift64*), enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Owned buffers for one random matrix of each format.
struct Owned {
    format: &'static str,
    rows: usize,
    cols: usize,
    floats: Vec<f32>,
    halves: Vec<u16>,
    bytes: Vec<i8>,
    packed: Vec<u8>,
    f32_scales: Vec<f32>,
    f16_scales: Vec<u16>,
}

impl Owned {
    fn random(format: &'static str, rows: usize, cols: usize, rng: &mut Rng) -> Owned {
        let n = rows * cols;
        let mut o = Owned {
            format,
            rows,
            cols,
            floats: vec![],
            halves: vec![],
            bytes: vec![],
            packed: vec![],
            f32_scales: vec![],
            f16_scales: vec![],
        };
        match format {
            "f32" => o.floats = (0..n).map(|_| rng.uniform()).collect(),
            // f16 with exponents 5..=20 (about 2^-10 to 2^5), random sign and mantissa.
            "f16" => o.halves = (0..n).map(|_| random_f16(rng, 5, 20)).collect(),
            "bf16" => o.halves = (0..n).map(|_| (rng.uniform().to_bits() >> 16) as u16).collect(),
            "int8" => {
                o.bytes = (0..n).map(|_| ((rng.next() % 255) as i16 - 127) as i8).collect();
                o.f32_scales = (0..rows).map(|_| rng.uniform().abs() * 0.01).collect();
            }
            "int4" => {
                o.packed =
                    (0..n / 2).map(|_| (1 + rng.next() % 15) as u8 | ((1 + rng.next() % 15) as u8) << 4).collect();
                o.f16_scales = (0..n / INT4_GROUP).map(|_| random_f16(rng, 3, 14) & 0x7fff).collect();
            }
            _ => unreachable!(),
        }
        o
    }

    fn matrix(&self) -> PackedMatrix<'_> {
        let weights = match self.format {
            "f32" => PackedWeights::F32(&self.floats),
            "f16" => PackedWeights::F16(&self.halves),
            "bf16" => PackedWeights::BF16(&self.halves),
            "int8" => PackedWeights::Int8 { values: &self.bytes, scales: &self.f32_scales },
            _ => PackedWeights::Int4 { packed: &self.packed, scales: &self.f16_scales },
        };
        PackedMatrix::new(self.rows, self.cols, weights)
    }
}

fn random_f16(rng: &mut Rng, min_exp: u64, max_exp: u64) -> u16 {
    let sign = (rng.next() & 1) << 15;
    let exp = min_exp + rng.next() % (max_exp - min_exp + 1);
    (sign | exp << 10 | (rng.next() & 0x3ff)) as u16
}

const FORMATS: [&str; 5] = ["f32", "f16", "bf16", "int8", "int4"];

#[test]
fn every_isa_gives_the_scalar_bits() {
    let mut rng = Rng(7);
    for format in FORMATS {
        for cols in [32, 64, 96, 768, 3072, 7, 45, 100] {
            if format == "int4" && cols % INT4_GROUP != 0 {
                continue;
            }
            let owned = Owned::random(format, 3, cols, &mut rng);
            let w = owned.matrix();
            let x: Vec<f32> = (0..cols).map(|_| rng.uniform()).collect();
            for row in 0..3 {
                let reference = w.row_dot(Isa::Scalar, row, &x);
                for isa in Isa::available() {
                    let got = w.row_dot(isa, row, &x);
                    assert_eq!(
                        got.to_bits(),
                        reference.to_bits(),
                        "{format} cols {cols} {isa:?}: {got} vs {reference}"
                    );
                }
            }
        }
    }
}

/// Decode every row, multiply in f64: the reference the kernels must meet.
fn decode_then_multiply(w: &PackedMatrix, x: &[f64], m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut row = vec![0.0f32; w.cols];
    let (mut y, mut magnitude) = (vec![0.0f64; m * w.rows], vec![0.0f64; m * w.rows]);
    for n in 0..w.rows {
        w.dequantize_row(n, &mut row);
        for i in 0..m {
            let xr = &x[i * w.cols..(i + 1) * w.cols];
            y[i * w.rows + n] = xr.iter().zip(&row).map(|(&a, &b)| a * b as f64).sum();
            magnitude[i * w.rows + n] = xr.iter().zip(&row).map(|(&a, &b)| (a * b as f64).abs()).sum();
        }
    }
    (y, magnitude)
}

#[test]
fn matmul_equals_decode_then_multiply() {
    let mut rng = Rng(11);
    for format in FORMATS {
        // One row (the decode GEMV), a few, and a tall block (tiled GEMM),
        // with enough weights to take the parallel paths.
        for (m, rows, cols) in [(1, 300, 256), (1, 5, 64), (3, 37, 96), (17, 700, 128)] {
            let owned = Owned::random(format, rows, cols, &mut rng);
            let w = owned.matrix();
            let x: Vec<f32> = (0..m * cols).map(|_| rng.uniform()).collect();
            // Against int8 or int4 weights the input is rounded to 8 bits
            // (`int_dot`), by the matrix-vector products and the tiled GEMM.
            let multiplied: Vec<f64> = if w.multiplies_in_integers() {
                x.chunks(cols).flat_map(|row| int_dot::QuantizedRow::new(row).dequantized()).collect()
            } else {
                x.iter().map(|&v| v as f64).collect()
            };
            let (expected, magnitude) = decode_then_multiply(&w, &multiplied, m);
            for isa in Isa::available() {
                let mut y = vec![f32::NAN; m * rows];
                matmul_with(isa, &x, m, &w, &mut y);
                for (i, ((&got, &want), &mag)) in y.iter().zip(&expected).zip(&magnitude).enumerate() {
                    // f32 sums of `cols` terms: a few ulps of the magnitude.
                    let tol = 1e-6 * mag * (cols as f64).sqrt() + 1e-30;
                    assert!(
                        (got as f64 - want).abs() <= tol,
                        "{format} m {m} [{rows}, {cols}] {isa:?} out {i}: {got} vs {want} (tol {tol})"
                    );
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    let mut rng = Rng(3);
    let owned = Owned::random("int4", 2048, 512, &mut rng);
    let w = owned.matrix();
    let x: Vec<f32> = (0..4 * 512).map(|_| rng.uniform()).collect();
    let run = |threads: usize, m: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut y = vec![0.0f32; m * 2048];
        pool.install(|| matmul(&x[..m * 512], m, &w, &mut y));
        y
    };
    for m in [1, 4] {
        assert_eq!(run(1, m), run(3, m), "m = {m}");
    }
}

#[test]
fn decoding_matches_the_documented_formulas() {
    let q: Vec<i8> = (0..32).map(|i| (i % 15) as i8 - 7).collect();
    let packed = int4::pack_group(&q);
    let scales = [0x3800u16]; // f16 0.5
    let w = PackedMatrix::new(1, 32, PackedWeights::Int4 { packed: &packed, scales: &scales });
    let mut out = vec![0.0; 32];
    w.dequantize_row(0, &mut out);
    assert_eq!(out, q.iter().map(|&v| v as f32 * 0.5).collect::<Vec<_>>());

    let bytes = [-127i8, 0, 5, 127];
    let w = PackedMatrix::new(1, 4, PackedWeights::Int8 { values: &bytes, scales: &[0.25] });
    let mut out = vec![0.0; 4];
    w.dequantize_row(0, &mut out);
    assert_eq!(out, vec![-31.75, 0.0, 1.25, 31.75]);
}

/// Random inputs with the cases quantization must get right: a block of
/// zeros, one large value among small ones, and lengths that end inside a
/// chunk or a block.
fn awkward_input(rng: &mut Rng, cols: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..cols).map(|_| rng.uniform()).collect();
    if cols >= 64 {
        x[32..64].fill(0.0);
    }
    if cols > 3 {
        x[3] = 40.0;
    }
    x
}

#[test]
fn every_integer_path_gives_the_scalar_bits() {
    let mut rng = Rng(19);
    let paths = int_dot::IntPath::available();
    for format in ["int8", "int4"] {
        for cols in [32, 64, 96, 160, 768, 3072, 7, 45, 100, 129] {
            if format == "int4" && cols % INT4_GROUP != 0 {
                continue;
            }
            let owned = Owned::random(format, 3, cols, &mut rng);
            let w = owned.matrix();
            let x = int_dot::QuantizedRow::new(&awkward_input(&mut rng, cols));
            for row in 0..3 {
                let reference = w.row_dot_quantized(int_dot::IntPath::Scalar, row, &x);
                for &path in &paths {
                    let got = w.row_dot_quantized(path, row, &x);
                    assert_eq!(
                        got.to_bits(),
                        reference.to_bits(),
                        "{format} cols {cols} {path:?}: {got} vs {reference}"
                    );
                }
            }
        }
    }
}

#[test]
fn integer_dot_products_equal_the_quantized_input_times_the_weights() {
    let mut rng = Rng(23);
    for format in ["int8", "int4"] {
        for cols in [32, 96, 768, 45] {
            if format == "int4" && cols % INT4_GROUP != 0 {
                continue;
            }
            let owned = Owned::random(format, 4, cols, &mut rng);
            let w = owned.matrix();
            let input = awkward_input(&mut rng, cols);
            let x = int_dot::QuantizedRow::new(&input);
            let (expected, magnitude) = decode_then_multiply(&w, &x.dequantized(), 1);
            let (exact, _) = decode_then_multiply(&w, &input.iter().map(|&v| v as f64).collect::<Vec<_>>(), 1);
            for row in 0..4 {
                let got = w.row_dot_quantized(int_dot::IntPath::for_isa(Isa::detect()), row, &x) as f64;
                let tol = 1e-6 * magnitude[row] * (cols as f64).sqrt() + 1e-30;
                assert!((got - expected[row]).abs() <= tol, "{format} {cols} row {row}: {got} vs {}", expected[row]);
                // And the 8-bit input costs at most half a step of its
                // block's scale per element: Σ |w_j|·s_b(j) / 2.
                let mut weights = vec![0.0f32; cols];
                w.dequantize_row(row, &mut weights);
                let step_error: f64 = weights
                    .iter()
                    .enumerate()
                    .map(|(j, &wj)| wj.abs() as f64 * x.block_scales[j / INT4_GROUP] as f64 / 2.0)
                    .sum();
                assert!(
                    (got - exact[row]).abs() <= step_error * (1.0 + 1e-6) + tol,
                    "{format} {cols} row {row}: {got} vs f32 {} (bound {step_error})",
                    exact[row]
                );
            }
        }
    }
}

#[test]
fn quantizing_a_row_keeps_each_value_within_half_a_step() {
    let mut rng = Rng(29);
    let x = awkward_input(&mut rng, 100);
    let q = int_dot::QuantizedRow::new(&x);
    assert_eq!(q.values.len(), 128, "padded to whole chunks of 64");
    assert_eq!(q.block_scales[1], 0.0, "a block of zeros has scale 0");
    assert_eq!(q.block_scales[0], 40.0 / 127.0, "the largest value sets the scale");
    assert_eq!(q.values[3], 127);
    for (j, (&v, back)) in x.iter().zip(q.dequantized()).enumerate() {
        let scale = q.block_scales[j / INT4_GROUP] as f64;
        assert!((v as f64 - back).abs() <= scale / 2.0 * (1.0 + 1e-6), "element {j}: {v} vs {back}");
    }
    assert!(q.values[100..].iter().all(|&p| p == 0) && q.block_scales[4..].iter().all(|&s| s == 0.0));
    // int4's offsets: 8 · the sum of each lane's four values.
    let lane_3: i32 = q.values[12..16].iter().map(|&p| p as i32).sum();
    assert_eq!(q.lane_offsets[3], 8 * lane_3);
}

#[test]
fn a_nan_in_the_input_reaches_the_output() {
    let mut x = vec![0.5f32; 64];
    x[40] = f32::NAN;
    let q = int_dot::QuantizedRow::new(&x);
    let bytes = vec![1i8; 64];
    let w = PackedMatrix::new(1, 64, PackedWeights::Int8 { values: &bytes, scales: &[1.0] });
    for path in int_dot::IntPath::available() {
        assert!(w.row_dot_quantized(path, 0, &q).is_nan(), "{path:?}");
    }
}

/// A row's groups: 16 blocks while they last, then 8, 4, 2, a last single
/// block padded to 2.
#[test]
fn rows_are_cut_into_groups_of_whole_blocks() {
    let sizes = |k| int_tiled::Groups::new(k).sizes;
    assert_eq!(sizes(768), vec![16, 8]);
    assert_eq!(sizes(576), vec![16, 2]);
    assert_eq!(sizes(3072), vec![16; 6]);
    assert_eq!(sizes(160), vec![4, 2]);
    assert_eq!(sizes(45), vec![2]);
    assert_eq!(sizes(1), vec![2]);
    assert_eq!(int_tiled::Groups::new(160).padded, 6 * 32);
}

/// A prompt of M rows against int8 or int4 weights (the integer tiled
/// path) gives bit for bit `prompt_dot_plain`'s outputs, on every integer
/// path and instruction set, with 1 or 2 threads. Shapes: blocks of rows
/// and weight rows that end part-way (M and N not multiples of 4), K that
/// ends inside a chunk or a block, groups of 16, 8, 4 and 2 blocks, and
/// products large enough to be split over threads.
#[test]
fn a_prompt_block_gives_the_plain_orders_bits() {
    let mut rng = Rng(31);
    let pools: Vec<rayon::ThreadPool> =
        [1, 2].iter().map(|&t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap()).collect();
    let shapes = [
        ("int8", 37, 45),
        ("int8", 71, 131),
        ("int8", 9, 768),
        ("int8", 6, 32),
        ("int4", 37, 160),
        ("int4", 67, 576),
        ("int4", 9, 768),
        ("int4", 6, 32),
    ];
    for (format, rows, cols) in shapes {
        let owned = Owned::random(format, rows, cols, &mut rng);
        let w = owned.matrix();
        for m in [9, 17, 130] {
            let x: Vec<f32> = (0..m).flat_map(|_| awkward_input(&mut rng, cols)).collect();
            let quantized: Vec<_> = x.chunks_exact(cols).map(int_dot::QuantizedRow::new).collect();
            let mut plain = vec![0.0f32; m * rows];
            for (i, xr) in quantized.iter().enumerate() {
                for n in 0..rows {
                    plain[i * rows + n] = int_tiled::prompt_dot_plain(&w, n, xr);
                }
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            for path in int_dot::IntPath::available() {
                for pool in &pools {
                    let mut block = vec![f32::NAN; m * rows];
                    pool.install(|| int_tiled::matmul(path, &w, &quantized, &mut block));
                    assert_eq!(bits(&block), bits(&plain), "{format} m {m} [{rows}, {cols}] {path:?}");
                }
            }
            // The public route, past the rows that go one gemv each.
            for isa in Isa::available() {
                if m > w.gemv_max_rows() {
                    let mut block = vec![f32::NAN; m * rows];
                    matmul_with(isa, &x, m, &w, &mut block);
                    assert_eq!(bits(&block), bits(&plain), "{format} m {m} [{rows}, {cols}] {isa:?}");
                }
            }
        }
    }
}

/// The prompt order is the exact sum Σ s·q·p up to float rounding, and it
/// is decoding's order (`int_dot`) bit for bit when a row is one group of
/// two blocks.
#[test]
fn the_prompt_order_is_the_exact_sum_rounded() {
    let mut rng = Rng(5);
    for (format, rows, cols) in
        [("int8", 13, 45), ("int8", 13, 64), ("int4", 13, 64), ("int8", 13, 800), ("int4", 13, 800)]
    {
        let owned = Owned::random(format, rows, cols, &mut rng);
        let w = owned.matrix();
        let x = int_dot::QuantizedRow::new(&awkward_input(&mut rng, cols));
        let exact_x = x.dequantized();
        let mut decoded = vec![0.0f32; cols];
        for n in 0..rows {
            let got = int_tiled::prompt_dot_plain(&w, n, &x);
            w.dequantize_row(n, &mut decoded);
            let exact: f64 = decoded.iter().zip(&exact_x).map(|(&d, &p)| d as f64 * p).sum();
            let magnitude: f64 = decoded.iter().zip(&exact_x).map(|(&d, &p)| (d as f64 * p).abs()).sum();
            assert!((got as f64 - exact).abs() <= 1e-5 * magnitude + 1e-30, "{format} row {n}: {got} vs {exact}");
            if cols <= 64 {
                let decode_order = w.row_dot_quantized(int_dot::IntPath::Scalar, n, &x);
                assert_eq!(got.to_bits(), decode_order.to_bits(), "{format} row {n}: {got} vs {decode_order}");
            }
        }
    }
}

/// A NaN in one input row of a prompt reaches that row's outputs (as in
/// decoding), on every integer path, and no other row's.
#[test]
fn a_nan_in_a_prompt_row_reaches_its_outputs_only() {
    let mut rng = Rng(23);
    for (format, cols) in [("int8", 96), ("int4", 96)] {
        let owned = Owned::random(format, 7, cols, &mut rng);
        let w = owned.matrix();
        let mut x: Vec<f32> = (0..5).flat_map(|_| awkward_input(&mut rng, cols)).collect();
        x[2 * cols + 70] = f32::NAN;
        let quantized: Vec<_> = x.chunks_exact(cols).map(int_dot::QuantizedRow::new).collect();
        for path in int_dot::IntPath::available() {
            let mut y = vec![0.0f32; 5 * 7];
            int_tiled::matmul(path, &w, &quantized, &mut y);
            for (i, row) in y.chunks_exact(7).enumerate() {
                assert!(row.iter().all(|v| v.is_nan() == (i == 2)), "{format} {path:?} row {i}: {row:?}");
            }
        }
    }
}

#[test]
fn a_block_of_rows_gives_each_rows_own_bits() {
    let mut rng = Rng(37);
    for format in FORMATS {
        for (rows, cols) in [(1, 64), (3, 96), (5, 768), (9, 45), (8, 100), (13, 160)] {
            if format == "int4" && cols % INT4_GROUP != 0 {
                continue;
            }
            let owned = Owned::random(format, rows, cols, &mut rng);
            let w = owned.matrix();
            let input = awkward_input(&mut rng, cols);
            let x = int_dot::QuantizedRow::new(&input);
            for first in [0, 1.min(rows - 1)] {
                let mut block = vec![f32::NAN; rows - first];
                if w.multiplies_in_integers() {
                    for path in int_dot::IntPath::available() {
                        w.rows_dot_quantized(path, first, &x, &mut block);
                        for (i, got) in block.iter().enumerate() {
                            let alone = w.row_dot_quantized(path, first + i, &x);
                            let at = first + i;
                            assert_eq!(got.to_bits(), alone.to_bits(), "{format} {rows}×{cols} {path:?} row {at}");
                        }
                    }
                } else {
                    for isa in Isa::available() {
                        w.rows_dot(isa, first, &input, &mut block);
                        for (i, got) in block.iter().enumerate() {
                            let alone = w.row_dot(isa, first + i, &input);
                            assert_eq!(
                                got.to_bits(),
                                alone.to_bits(),
                                "{format} {rows}×{cols} {isa:?} row {}",
                                first + i
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_threaded_matrix_vector_product_gives_each_rows_bits() {
    let mut rng = Rng(41);
    // 2^18 weights and more take the threaded path.
    let (rows, cols) = (515, 576);
    for format in FORMATS {
        let owned = Owned::random(format, rows, cols, &mut rng);
        let w = owned.matrix();
        let input: Vec<f32> = (0..cols).map(|_| rng.uniform()).collect();
        let quantized = int_dot::QuantizedRow::new(&input);
        for isa in Isa::available() {
            let mut y = vec![f32::NAN; rows];
            gemv::gemv(isa, &w, &input, &mut y);
            for (n, got) in y.iter().enumerate() {
                let alone = if w.multiplies_in_integers() {
                    w.row_dot_quantized(int_dot::IntPath::for_isa(isa), n, &quantized)
                } else {
                    w.row_dot(isa, n, &input)
                };
                assert_eq!(got.to_bits(), alone.to_bits(), "{format} {isa:?} row {n}");
            }
        }
    }
}

#[test]
fn several_matrices_of_one_input_give_each_ones_own_bits() {
    let mut rng = Rng(43);
    let cols = 576;
    // A layer's q, k and v in mixed formats (a plain f32 one, one empty),
    // threaded together (640 rows of 576 weights, over 2^18) or not (the
    // first two alone).
    let shapes = [("f16", 360), ("int4", 96), ("int8", 96), ("bf16", 48), ("f32", 40), ("int4", 0)];
    let owned: Vec<Owned> = shapes.iter().map(|&(format, rows)| Owned::random(format, rows, cols, &mut rng)).collect();
    let matrices: Vec<PackedMatrix> = owned.iter().map(Owned::matrix).collect();
    // m = 3: f32 takes the tiles (from 2 rows); m = 8: f16 and bf16 too,
    // int8 and int4 still the vector path.
    for (m, count) in [(1, 6), (1, 2), (3, 6), (8, 6)] {
        let x: Vec<f32> = (0..m * cols).map(|_| rng.uniform()).collect();
        for isa in Isa::available() {
            let mut outputs: Vec<Vec<f32>> = matrices[..count].iter().map(|w| vec![f32::NAN; m * w.rows]).collect();
            let mut products: Vec<_> =
                matrices.iter().zip(outputs.iter_mut()).map(|(w, y)| (w, y.as_mut_slice())).collect();
            matmul_shared_input_with(isa, &x, m, &mut products);
            for (w, got) in matrices.iter().zip(&outputs) {
                let mut alone = vec![f32::NAN; m * w.rows];
                matmul_with(isa, &x, m, w, &mut alone);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(got), bits(&alone), "{isa:?} m = {m}, {count} matrices, {} rows", w.rows);
            }
        }
    }
}

#[test]
fn quantizing_a_row_gives_the_portable_bits_on_every_isa() {
    let mut rng = Rng(47);
    for cols in [1, 31, 32, 37, 64, 576, 1000] {
        let mut x: Vec<f32> = (0..cols).map(|_| rng.uniform() * 8.0).collect();
        // Ties: 127 is the largest, so k/2 lands exactly on a half step.
        for (j, v) in x.iter_mut().enumerate().skip(1).take(30) {
            *v = (j as f32 - 15.0) / 2.0;
        }
        if cols > 1 {
            x[0] = 127.0;
        }
        // A block of zeros, one with a NaN, one with an infinity, one of
        // subnormals.
        let specials: [&dyn Fn(usize) -> f32; 4] = [
            &|_| 0.0,
            &|j| if j == 5 { f32::NAN } else { 1.0 },
            &|j| if j == 9 { f32::NEG_INFINITY } else { -2.0 },
            &|j| f32::from_bits(1 + j as u32),
        ];
        for (b, special) in specials.iter().enumerate() {
            let start = 32 * (b + 1);
            for j in start..(start + 32).min(cols) {
                x[j] = special(j - start);
            }
        }
        let quantize = |isa: Isa| {
            let (mut values, mut scales) = (vec![0i8; cols], Vec::new());
            int_dot::quantize_blocks_with(isa, &x, &mut values, &mut scales);
            (values, scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>())
        };
        let portable = quantize(Isa::Scalar);
        assert_eq!(portable.1.len(), cols.div_ceil(32));
        for isa in Isa::available() {
            assert_eq!(quantize(isa), portable, "{isa:?}, {cols} values");
        }
    }
}

#[test]
fn rounding_to_8_bits_is_rounding_half_away_from_zero() {
    let below_half = 0.5f32 - f32::EPSILON / 4.0;
    let mut cases: Vec<f32> = (-520..=520).map(|k| k as f32 / 4.0).collect();
    cases.extend([
        below_half,
        -below_half,
        1.5 - f32::EPSILON,
        126.5,
        -126.5,
        127.49,
        1e9,
        -1e9,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ]);
    for p in cases {
        assert_eq!(int_dot::round_to_i8(p), p.round().clamp(-127.0, 127.0) as i8, "{p}");
    }
    assert_eq!(int_dot::round_to_i8(f32::NAN), 0);
}

#[test]
fn a_row_quantized_for_tiles_has_the_same_values_and_no_lane_data() {
    let mut rng = Rng(43);
    let x = awkward_input(&mut rng, 100);
    let (full, tiles) = (int_dot::QuantizedRow::new(&x), int_dot::QuantizedRow::for_tiles(&x));
    assert_eq!((&full.values, &full.block_scales, full.cols), (&tiles.values, &tiles.block_scales, tiles.cols));
    assert!(full.has_lane_data() && !tiles.has_lane_data());
    let bytes = vec![1i8; 100];
    let w = PackedMatrix::new(1, 100, PackedWeights::Int8 { values: &bytes, scales: &[1.0] });
    let refused = std::panic::catch_unwind(|| w.row_dot_quantized(int_dot::IntPath::Scalar, 0, &tiles));
    assert!(refused.is_err(), "a decode kernel must refuse a row without lane data");
}
