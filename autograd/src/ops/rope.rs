//! Rotary position embedding as a differentiable op.
//!
//! The op turns each pair of a head vector by its position's angle: a
//! linear map of x with fixed coefficients, orthogonal, so the gradient is
//! the incoming one turned back by the same angle (the rotation's
//! transpose), and only x has one (the tables are constants). The backward
//! of a rotation is a rotation, so the graph backward records the same op
//! with the angles negated, and a second derivative comes for free.

use std::sync::Arc;

use tensor::{RopeTables, Tensor};

use crate::var::{BackwardOp, Var};

struct Rope {
    tables: Arc<RopeTables>,
    /// Whether this node turns by the negated angles (a backward's node).
    inverse: bool,
}

impl BackwardOp for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(turn(g, &self.tables, !self.inverse))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(rotate(g, &self.tables, !self.inverse))])
    }
}

fn turn(x: &Tensor, tables: &RopeTables, inverse: bool) -> Tensor {
    if inverse {
        Tensor::rope_backward(x, tables)
    } else {
        x.rope(tables)
    }
}

fn rotate(x: &Var, tables: &Arc<RopeTables>, inverse: bool) -> Var {
    let tables = Arc::clone(tables);
    Var::from_op(turn(&x.data(), &tables, inverse), &[x], || Rope { tables, inverse })
}

impl Var {
    /// Rotary position embedding of x `[.., T, H, D]` (a view per head of a
    /// projection's output is fine): row t of x turned by row t of
    /// `tables`, which `RopeConfig::tables(offset, T)` builds for the
    /// positions offset .. offset + T.
    pub fn rope(&self, tables: &RopeTables) -> Var {
        rotate(self, &Arc::new(tables.clone()), false)
    }
}
