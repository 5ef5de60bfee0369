//! Elementwise kernels (`elementwise.cu`, `gelu.cu`): unary functions,
//! tensor-scalar ops, broadcast binary ops, comparisons and `where`.
//!
//! Inputs come with layouts already broadcast to the output's shape (the
//! tensor crate does that with stride-0 dimensions); outputs are dense.
//! The op codes below are the numbers the kernels switch on.

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::{CudaFloat, DeviceElement};
use super::error::{CudaError, Result};
use super::launch::for_elements;
use super::layout::DeviceLayout;
use super::sources::{ELEMENTWISE, GELU};

/// y = f(x) and y = f(x, c); the numbers match `unary_float` in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryCode {
    Neg = 0,
    Abs = 1,
    Exp = 2,
    Log = 3,
    Sqrt = 4,
    Tanh = 5,
    Sigmoid = 6,
    Relu = 7,
    Gelu = 8,
    GeluGrad = 9,
    Square = 10,
    Recip = 11,
    Sin = 12,
    Cos = 13,
    /// x·σ(x).
    Silu = 14,
    AddScalar = 20,
    SubScalar = 21,
    MulScalar = 22,
    DivScalar = 23,
    ClampMin = 24,
    ClampMax = 25,
    Powf = 26,
}

impl UnaryCode {
    /// Whether int64 tensors have this op (the rest need floats).
    pub fn defined_for_integers(self) -> bool {
        use UnaryCode::*;
        matches!(self, Neg | Abs | Relu | Square | AddScalar | SubScalar | MulScalar | DivScalar | ClampMin | ClampMax)
    }
}

/// z = f(a, b); the numbers match `binary_float` in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryCode {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    Maximum = 4,
    Minimum = 5,
    Pow = 6,
}

impl BinaryCode {
    pub fn defined_for_integers(self) -> bool {
        !matches!(self, BinaryCode::Div | BinaryCode::Pow)
    }
}

/// a ⋛ b as an int8 mask; the numbers match `compare` in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareCode {
    Eq = 0,
    Ne = 1,
    Lt = 2,
    Le = 3,
    Gt = 4,
    Ge = 5,
}

/// `unary_<dtype>` exists for the floats and int64.
fn has_arithmetic<T: DeviceElement>(op: &str) -> Result<()> {
    match T::NAME {
        "f32" | "f16" | "bf16" | "i64" => Ok(()),
        other => Err(CudaError::Unsupported(format!("{op}: no CUDA kernel for {other} (convert first)"))),
    }
}

/// `y[i] = op(x[layout(i)], scalar)`, dense. For f32 tensors the scalar
/// should be the f32 value widened to f64, as the CPU rounds it.
pub fn unary<T: DeviceElement>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    layout: &DeviceLayout,
    op: UnaryCode,
    scalar: f64,
) -> Result<CudaSlice<T>> {
    has_arithmetic::<T>("unary")?;
    if T::NAME == "i64" && !op.defined_for_integers() {
        return Err(CudaError::Unsupported(format!("{op:?} needs a float tensor, got int64")));
    }
    let n = layout.numel();
    let mut y = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(y);
    }
    layout.check_within(x.len(), "unary")?;
    let (count, code) = (n as i64, op as i32);
    let name = format!("unary_{}", T::NAME);
    launch_kernel!(dev, ELEMENTWISE, name, for_elements(n), [x, layout, &mut y, &count, &code, &scalar])?;
    Ok(y)
}

/// `out[i] = op(a[la(i)], b[lb(i)])`, dense; both layouts have the output's
/// shape (broadcast dimensions have stride 0).
pub fn binary<T: DeviceElement>(
    dev: &CudaDevice,
    a: &CudaSlice<T>,
    la: &DeviceLayout,
    b: &CudaSlice<T>,
    lb: &DeviceLayout,
    op: BinaryCode,
) -> Result<CudaSlice<T>> {
    has_arithmetic::<T>("binary")?;
    if T::NAME == "i64" && !op.defined_for_integers() {
        return Err(CudaError::Unsupported(format!("{op:?}: not defined for int64 tensors")));
    }
    let n = la.numel();
    assert_eq!(n, lb.numel(), "binary: operand layouts differ in size");
    let mut out = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(out);
    }
    la.check_within(a.len(), "binary lhs")?;
    lb.check_within(b.len(), "binary rhs")?;
    let (count, code) = (n as i64, op as i32);
    let name = format!("binary_{}", T::NAME);
    launch_kernel!(dev, ELEMENTWISE, name, for_elements(n), [a, la, b, lb, &mut out, &count, &code])?;
    Ok(out)
}

/// `out[i] = a[la(i)] ⋛ b[lb(i)]` as 0/1 int8.
pub fn compare<T: DeviceElement>(
    dev: &CudaDevice,
    a: &CudaSlice<T>,
    la: &DeviceLayout,
    b: &CudaSlice<T>,
    lb: &DeviceLayout,
    op: CompareCode,
) -> Result<CudaSlice<i8>> {
    let n = la.numel();
    assert_eq!(n, lb.numel(), "compare: operand layouts differ in size");
    let mut out = dev.alloc::<i8>(n)?;
    if n == 0 {
        return Ok(out);
    }
    la.check_within(a.len(), "compare lhs")?;
    lb.check_within(b.len(), "compare rhs")?;
    let (count, code) = (n as i64, op as i32);
    let name = format!("compare_{}", T::NAME);
    launch_kernel!(dev, ELEMENTWISE, name, for_elements(n), [a, la, b, lb, &mut out, &count, &code])?;
    Ok(out)
}

/// `out[i] = mask[lm(i)] != 0 ? a[la(i)] : b[lb(i)]`.
#[allow(clippy::too_many_arguments)]
pub fn where_cond<T: DeviceElement>(
    dev: &CudaDevice,
    mask: &CudaSlice<i8>,
    lm: &DeviceLayout,
    a: &CudaSlice<T>,
    la: &DeviceLayout,
    b: &CudaSlice<T>,
    lb: &DeviceLayout,
) -> Result<CudaSlice<T>> {
    let n = lm.numel();
    assert!(n == la.numel() && n == lb.numel(), "where: layouts differ in size");
    let mut out = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(out);
    }
    lm.check_within(mask.len(), "where mask")?;
    la.check_within(a.len(), "where lhs")?;
    lb.check_within(b.len(), "where rhs")?;
    let count = n as i64;
    let name = format!("where_{}", T::NAME);
    launch_kernel!(dev, ELEMENTWISE, name, for_elements(n), [mask, lm, a, la, b, lb, &mut out, &count])?;
    Ok(out)
}

/// GELU (tanh approximation) of the first `n` elements of a dense buffer.
pub fn gelu_forward<T: CudaFloat>(dev: &CudaDevice, x: &CudaSlice<T>, n: usize) -> Result<CudaSlice<T>> {
    let mut y = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(y);
    }
    assert!(x.len() >= n, "gelu: buffer of {} for {n} elements", x.len());
    let count = n as i64;
    let name = format!("gelu_forward_{}", T::NAME);
    launch_kernel!(dev, GELU, name, for_elements(n), [x, &mut y, &count])?;
    Ok(y)
}

/// dx = dy · gelu'(x), dense buffers of `n` elements.
pub fn gelu_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    n: usize,
) -> Result<CudaSlice<T>> {
    let mut dx = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(dx);
    }
    assert!(x.len() >= n && dy.len() >= n, "gelu backward: buffers shorter than {n}");
    let count = n as i64;
    let name = format!("gelu_backward_{}", T::NAME);
    launch_kernel!(dev, GELU, name, for_elements(n), [x, dy, &mut dx, &count])?;
    Ok(dx)
}
