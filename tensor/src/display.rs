//! Printing tensors the way PyTorch does, so examples read like the book:
//! `tensor([[1., 2.],\n        [3., 4.]])`, four decimals when values are not
//! whole, scientific notation when magnitudes span more than 1000×, and the
//! dtype named when it is not the default for its kind.

use std::fmt;

use crate::dtype::DType;
use crate::tensor::Tensor;

/// Above this many elements only the edges (3 per side) are printed.
const SUMMARIZE_ABOVE: usize = 1000;
const EDGE: usize = 3;

enum Style {
    Int,
    /// Whole floats: `1.`, `-3.`
    WholeFloat,
    Fixed,
    Sci,
}

fn choose_style(dtype: DType, values: &[f64]) -> Style {
    if !dtype.is_float() {
        return Style::Int;
    }
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let nonzero: Vec<f64> = finite.iter().map(|v| v.abs()).filter(|&v| v > 0.0).collect();
    let max = nonzero.iter().copied().fold(0.0f64, f64::max);
    let min = nonzero.iter().copied().fold(f64::INFINITY, f64::min);
    if finite.iter().all(|v| v.fract() == 0.0) {
        return if max > 1e8 { Style::Sci } else { Style::WholeFloat };
    }
    if !nonzero.is_empty() && (max / min > 1000.0 || max > 1e8) {
        Style::Sci
    } else {
        Style::Fixed
    }
}

fn format_value(v: f64, style: &Style) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    match style {
        Style::Int => format!("{}", v as i64),
        Style::WholeFloat => format!("{v:.0}."),
        Style::Fixed => format!("{v:.4}"),
        Style::Sci => {
            let s = format!("{v:.4e}");
            // Rust prints `1.0000e5`; PyTorch prints `1.0000e+05`.
            let (mantissa, exp) = s.split_once('e').unwrap();
            let e: i32 = exp.parse().unwrap();
            format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
        }
    }
}

/// Indices shown along a dimension of size n.
fn shown(n: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && n > 2 * EDGE {
        (0..EDGE).map(Some).chain([None]).chain((n - EDGE..n).map(Some)).collect()
    } else {
        (0..n).map(Some).collect()
    }
}

fn write_nested(
    out: &mut String,
    strs: &[String],
    dims: &[usize],
    base: usize,
    depth: usize,
    indent: usize,
    width: usize,
    summarize: bool,
) {
    if dims.is_empty() {
        out.push_str(&format!("{:>width$}", strs[base]));
        return;
    }
    let stride: usize = dims[1..].iter().product();
    out.push('[');
    let items = shown(dims[0], summarize);
    for (k, i) in items.iter().enumerate() {
        if k > 0 {
            out.push(',');
            if dims.len() == 1 {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(dims.len() - 1));
                out.push_str(&" ".repeat(indent + depth + 1));
            }
        }
        match i {
            Some(i) => write_nested(out, strs, &dims[1..], base + i * stride, depth + 1, indent, width, summarize),
            // PyTorch pads the ellipsis of a row like one more element.
            None => out.push_str(if dims.len() == 1 { " ..." } else { "..." }),
        }
    }
    out.push(']');
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.to_f64_vec();
        let style = choose_style(self.dtype(), &values);
        let strs: Vec<String> = values.iter().map(|&v| format_value(v, &style)).collect();
        let summarize = values.len() > SUMMARIZE_ABOVE;
        let width = strs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut body = String::new();
        if self.numel() == 0 {
            body.push_str("[]");
        } else {
            write_nested(&mut body, &strs, self.dims(), 0, 0, "tensor(".len(), width, summarize);
        }
        let default = matches!(self.dtype(), DType::F32 | DType::I64);
        if default {
            write!(f, "tensor({body})")
        } else {
            let name = match self.dtype() {
                DType::I8 => "int8",
                d => d.name(),
            };
            write!(f, "tensor({body}, dtype=torch.{name})")
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor[{}, {}, {}] ", self.shape(), self.dtype(), self.device())?;
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn prints_like_pytorch() {
        assert_eq!(Tensor::new([[1.0, 2.0], [3.0, 4.0]]).unwrap().to_string(), "tensor([[1., 2.],\n        [3., 4.]])");
        assert_eq!(Tensor::new([1, 2, 3]).unwrap().to_string(), "tensor([1, 2, 3])");
        assert_eq!(Tensor::new([0.1, -2.5]).unwrap().to_string(), "tensor([ 0.1000, -2.5000])");
        assert_eq!(Tensor::new(3.5).unwrap().to_string(), "tensor(3.5000)");
        assert_eq!(Tensor::new([1.0, 1e5 + 0.5]).unwrap().to_string(), "tensor([1.0000e+00, 1.0000e+05])");
        assert_eq!(Tensor::new_as([1.0], DType::F64).unwrap().to_string(), "tensor([1.], dtype=torch.float64)");
        let big = Tensor::arange(0, 2000).to_string();
        assert_eq!(big, "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
    }
}
