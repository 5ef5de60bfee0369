//! Making tensors: constants, ranges, identity, random draws, and tensors
//! from Rust literals (`tensor![[1., 2.], [3., 4.]]`).

use crate::backend;
use crate::dtype::{DType, Element};
use crate::error::{Result, TensorError};
use crate::random::Generator;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::Device;

impl Tensor {
    /// Every element equal to `value` (converted to `dtype`), on the CPU.
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        Tensor::full_on(shape, value, dtype, Device::Cpu)
    }
    /// Every element equal to `value` (converted to `dtype`), made on
    /// `device` (no host buffer is made and copied for a GPU).
    pub fn full_on(shape: impl Into<Shape>, value: f64, dtype: DType, device: Device) -> Tensor {
        backend::on(device).full(shape.into(), value, dtype, device)
    }
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }
    /// Zeros made on `device`.
    pub fn zeros_on(shape: impl Into<Shape>, dtype: DType, device: Device) -> Tensor {
        Tensor::full_on(shape, 0.0, dtype, device)
    }
    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }
    /// Zeros of this tensor's shape and dtype, on its device.
    pub fn zeros_like(&self) -> Tensor {
        self.full_like(0.0)
    }
    pub fn ones_like(&self) -> Tensor {
        self.full_like(1.0)
    }
    pub fn full_like(&self, value: f64) -> Tensor {
        Tensor::full_on(self.shape().clone(), value, self.dtype(), self.device())
    }

    /// `start, start+1, …, end-1` as int64 (as `torch.arange(start, end)`).
    pub fn arange(start: i64, end: i64) -> Tensor {
        let data: Vec<i64> = (start..end).collect();
        let n = data.len();
        Tensor::from_contiguous(data, [n])
    }

    /// `start, start+step, …` up to (excluding) `end`, in a float dtype.
    pub fn arange_step(start: f64, end: f64, step: f64, dtype: DType) -> Tensor {
        assert!(step != 0.0, "arange_step: step must not be zero");
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let data: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_contiguous(data, [n]).to_dtype(dtype)
    }

    /// The n×n identity matrix.
    pub fn eye(n: usize, dtype: DType) -> Tensor {
        let mut data = vec![0.0f64; n * n];
        (0..n).for_each(|i| data[i * n + i] = 1.0);
        Tensor::from_contiguous(data, [n, n]).to_dtype(dtype)
    }

    /// Uniform in [0, 1) as float32 (`torch.rand`).
    pub fn rand(shape: impl Into<Shape>, gen: &mut Generator) -> Tensor {
        Tensor::uniform(shape, 0.0, 1.0, DType::F32, gen)
    }

    /// Standard normal as float32 (`torch.randn`).
    pub fn randn(shape: impl Into<Shape>, gen: &mut Generator) -> Tensor {
        Tensor::normal(shape, 0.0, 1.0, DType::F32, gen)
    }

    /// Uniform in [low, high).
    pub fn uniform(shape: impl Into<Shape>, low: f64, high: f64, dtype: DType, gen: &mut Generator) -> Tensor {
        let shape = shape.into();
        let data: Vec<f64> = (0..shape.numel()).map(|_| low + (high - low) * gen.uniform()).collect();
        Tensor::from_contiguous(data, shape).to_dtype(dtype)
    }

    /// Normal with the given mean and standard deviation.
    pub fn normal(shape: impl Into<Shape>, mean: f64, std: f64, dtype: DType, gen: &mut Generator) -> Tensor {
        let shape = shape.into();
        let data: Vec<f64> = (0..shape.numel()).map(|_| mean + std * gen.normal()).collect();
        Tensor::from_contiguous(data, shape).to_dtype(dtype)
    }

    pub fn rand_like(&self, gen: &mut Generator) -> Tensor {
        Tensor::uniform(self.shape().clone(), 0.0, 1.0, self.dtype(), gen)
    }
    pub fn randn_like(&self, gen: &mut Generator) -> Tensor {
        Tensor::normal(self.shape().clone(), 0.0, 1.0, self.dtype(), gen)
    }

    /// A tensor from nested arrays, `Vec`s or a scalar, with PyTorch's default
    /// dtypes: Rust float literals (f64) and f32 give float32, integers give
    /// int64. Errors on ragged nesting.
    pub fn new<A: NdData>(data: A) -> Result<Tensor> {
        Tensor::new_as(data, A::DEFAULT_DTYPE)
    }

    /// Like [`Tensor::new`] but in a chosen dtype; the values go straight to
    /// it (a float64 tensor keeps every digit of the literal).
    pub fn new_as<A: NdData>(data: A, dtype: DType) -> Result<Tensor> {
        let mut shape = Vec::new();
        data.shape_into(&mut shape);
        let mut values = Vec::with_capacity(shape.iter().product());
        data.flatten_into(&shape, 0, &mut values)?;
        let shape = Shape(shape);
        if A::DEFAULT_DTYPE == DType::I64 && dtype == DType::I64 {
            // Integers keep all 64 bits rather than passing through f64.
            let ints: Vec<i64> = values.iter().map(|v| v.int).collect();
            return Ok(Tensor::from_contiguous(ints, shape));
        }
        let floats: Vec<f64> = values.iter().map(|v| v.float).collect();
        Ok(crate::with_type!(dtype, T => {
            Tensor::from_contiguous(floats.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>(), shape)
        }))
    }
}

/// One literal value, kept both ways so integers stay exact.
#[derive(Clone, Copy)]
pub struct Literal {
    float: f64,
    int: i64,
}

/// Data `Tensor::new` accepts: scalars, arrays, `Vec`s and slices of them.
pub trait NdData {
    const DEFAULT_DTYPE: DType;
    /// Appends this value's shape, read along its first elements.
    fn shape_into(&self, shape: &mut Vec<usize>);
    /// Appends the values, checking every sub-array against `shape[depth..]`.
    fn flatten_into(&self, shape: &[usize], depth: usize, out: &mut Vec<Literal>) -> Result<()>;
}

macro_rules! nd_scalar {
    ($t:ty, $dtype:ident) => {
        impl NdData for $t {
            const DEFAULT_DTYPE: DType = DType::$dtype;
            fn shape_into(&self, _: &mut Vec<usize>) {}
            fn flatten_into(&self, shape: &[usize], depth: usize, out: &mut Vec<Literal>) -> Result<()> {
                if depth != shape.len() {
                    return Err(TensorError::Ragged(format!(
                        "a scalar where shape {:?} expects more dimensions",
                        shape
                    )));
                }
                out.push(Literal { float: *self as f64, int: *self as i64 });
                Ok(())
            }
        }
    };
}
nd_scalar!(f64, F32);
nd_scalar!(f32, F32);
nd_scalar!(i64, I64);
nd_scalar!(i32, I64);
nd_scalar!(usize, I64);
nd_scalar!(u8, I64);
nd_scalar!(i8, I64);

impl NdData for bool {
    const DEFAULT_DTYPE: DType = DType::I8;
    fn shape_into(&self, _: &mut Vec<usize>) {}
    fn flatten_into(&self, shape: &[usize], depth: usize, out: &mut Vec<Literal>) -> Result<()> {
        if depth != shape.len() {
            return Err(TensorError::Ragged(format!("a scalar where shape {:?} expects more dimensions", shape)));
        }
        out.push(Literal { float: *self as u8 as f64, int: *self as i64 });
        Ok(())
    }
}

fn flatten_seq<A: NdData>(items: &[A], shape: &[usize], depth: usize, out: &mut Vec<Literal>) -> Result<()> {
    if depth >= shape.len() || shape[depth] != items.len() {
        let want = shape.get(depth).map_or("a scalar".to_string(), |d| format!("{d} elements"));
        return Err(TensorError::Ragged(format!(
            "a list of {} elements at depth {depth} where {want} were expected",
            items.len()
        )));
    }
    items.iter().try_for_each(|item| item.flatten_into(shape, depth + 1, out))
}

impl<A: NdData, const N: usize> NdData for [A; N] {
    const DEFAULT_DTYPE: DType = A::DEFAULT_DTYPE;
    fn shape_into(&self, shape: &mut Vec<usize>) {
        shape.push(N);
        if let Some(first) = self.first() {
            first.shape_into(shape);
        }
    }
    fn flatten_into(&self, shape: &[usize], depth: usize, out: &mut Vec<Literal>) -> Result<()> {
        flatten_seq(self, shape, depth, out)
    }
}

impl<A: NdData> NdData for Vec<A> {
    const DEFAULT_DTYPE: DType = A::DEFAULT_DTYPE;
    fn shape_into(&self, shape: &mut Vec<usize>) {
        shape.push(self.len());
        if let Some(first) = self.first() {
            first.shape_into(shape);
        }
    }
    fn flatten_into(&self, shape: &[usize], depth: usize, out: &mut Vec<Literal>) -> Result<()> {
        flatten_seq(self, shape, depth, out)
    }
}

impl<A: NdData> NdData for &[A] {
    const DEFAULT_DTYPE: DType = A::DEFAULT_DTYPE;
    fn shape_into(&self, shape: &mut Vec<usize>) {
        shape.push(self.len());
        if let Some(first) = self.first() {
            first.shape_into(shape);
        }
    }
    fn flatten_into(&self, shape: &[usize], depth: usize, out: &mut Vec<Literal>) -> Result<()> {
        flatten_seq(self, shape, depth, out)
    }
}

/// `tensor![[1., 2.], [3., 4.]]` is float32, `tensor![1, 2, 3]` int64, as
/// `torch.tensor` would make them; `tensor!([1., 2.]; F64)` picks a dtype.
/// Panics on ragged input (use `Tensor::new` for a `Result`).
#[macro_export]
macro_rules! tensor {
    ($data:expr; $dtype:ident) => {
        $crate::Tensor::new_as($data, $crate::DType::$dtype).expect("tensor!: ragged data")
    };
    ($($data:tt)*) => {
        $crate::Tensor::new([$($data)*]).expect("tensor!: ragged data")
    };
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn literals_take_pytorch_default_dtypes() {
        let f = Tensor::new([[1.0, 2.0], [3.0, 4.0]]).unwrap();
        assert_eq!(f.dtype(), DType::F32);
        assert_eq!(f.dims(), &[2, 2]);
        let i = Tensor::new([1, 2, 3]).unwrap();
        assert_eq!(i.dtype(), DType::I64);
        assert_eq!(i.to_vec::<i64>(), vec![1, 2, 3]);
        let d = Tensor::new_as([0.1, 0.2], DType::F64).unwrap();
        assert_eq!(d.to_vec::<f64>(), vec![0.1, 0.2]);
        assert!(Tensor::new(vec![vec![1.0], vec![2.0, 3.0]]).is_err());
        assert_eq!(Tensor::new(3.5).unwrap().rank(), 0);
    }

    #[test]
    fn from_vec_checks_the_length() {
        let err = Tensor::from_vec(vec![1.0f32; 5], [2, 3]).unwrap_err();
        assert_eq!(err.to_string(), "data has 5 elements but shape [2, 3] needs 6");
    }

    #[test]
    fn seeded_draws_repeat() {
        let a = Tensor::randn([3, 4], &mut Generator::seed(7));
        let b = Tensor::randn([3, 4], &mut Generator::seed(7));
        assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
        let u = Tensor::uniform([1000], -2.0, 3.0, DType::F64, &mut Generator::seed(1)).to_vec::<f64>();
        assert!(u.iter().all(|&x| (-2.0..3.0).contains(&x)));
    }
}
