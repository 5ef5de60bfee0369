//! Gradients as `Var`s, and through them second derivatives:
//! `grad(output, inputs, create_graph)`, PyTorch's `torch.autograd.grad`.
//!
//! `loss.backward()` adds plain tensors into the leaves' `.grad()`. `grad`
//! instead *returns* d(output)/d(input) for the inputs asked for, as `Var`s,
//! and leaves every `.grad()` alone. With `create_graph = true` it walks the
//! graph the same way (reverse topological order, gradients of reused values
//! summed) but asks each node for [`BackwardOp::backward_graph`], the
//! derivative written with `Var` ops, and records those ops. The returned
//! gradients are then functions of the inputs like any other `Var`:
//!
//! ```text
//! g  = grad(f(x), [x], create_graph = true)   // ∇f(x), a Var with a graph
//! s  = (g · v).sum()                           // ∇f(x) · v
//! s.backward()                                 // x.grad = ∇(∇f · v) = H v
//! ```
//!
//! That is a Hessian-vector product for the price of two backward passes,
//! without ever forming the n×n Hessian; a gradient penalty
//! (loss + λ‖∂loss/∂x‖²) is the same pattern with the squared norm of g
//! added to the loss.
//!
//! Only the nodes on a path from an asked-for input to `output` are
//! differentiated, so an op off that path (an embedding lookup of constant
//! ids, say) never needs a `backward_graph`. With `create_graph` the graph is
//! kept (PyTorch's `retain_graph` defaults to `create_graph`): the gradient
//! refers to it, and `loss.backward()` may still run through it afterwards.
//!
//! There is no `create_graph` form of `backward()`: storing a gradient that
//! depends on a parameter inside that same parameter would make a reference
//! cycle (PyTorch warns about exactly this); `grad` hands the `Var` to the
//! caller instead.

use std::collections::{HashMap, HashSet};

use crate::grad_mode::GradModeGuard;
use crate::var::{BackwardOp, Var};

/// d(output)/d(input) for each of `inputs`, for a one-element `output` (a
/// loss). With `create_graph` the gradients carry a graph and can be
/// differentiated again. An input that `output` does not depend on gets
/// zeros (PyTorch's `materialize_grads`).
pub fn grad(output: &Var, inputs: &[Var], create_graph: bool) -> Vec<Var> {
    assert_eq!(
        output.numel(),
        1,
        "grad: needs a one-element output, got shape {} (use grad_with and a grad_output)",
        output.shape()
    );
    let seed = Var::constant(output.data().ones_like());
    grad_with(output, &seed, inputs, create_graph)
}

/// The vector-Jacobian product grad_outputᵀ · d(output)/d(input) for each
/// of `inputs`. `grad_output` has `output`'s shape; it may itself carry a
/// graph, and with `create_graph` the result is differentiable in it too.
pub fn grad_with(output: &Var, grad_output: &Var, inputs: &[Var], create_graph: bool) -> Vec<Var> {
    assert_eq!(
        grad_output.shape(),
        output.shape(),
        "grad_with: grad_output of shape {} for an output of shape {}",
        grad_output.shape(),
        output.shape()
    );
    assert!(
        output.requires_grad(),
        "grad: the output does not require grad (no input reaches it, or it was computed under no_grad)"
    );
    // Record the backward's own ops exactly when asked to.
    let _mode = GradModeGuard::set(create_graph);
    let order = output.topological_order();
    let wanted: HashSet<u64> = inputs.iter().map(Var::id).collect();
    let leads_to_wanted = leads_to(&order, &wanted);

    let mut grads: HashMap<u64, Var> = HashMap::new();
    grads.insert(output.id(), grad_output.clone());
    let mut found: HashMap<u64, Var> = HashMap::new();
    // Reverse topological order: a variable's gradient is complete when it
    // is reached.
    for var in order.into_iter().rev() {
        let Some(g) = grads.remove(&var.id()) else { continue };
        if wanted.contains(&var.id()) {
            found.insert(var.id(), g.clone());
        }
        if var.is_leaf() {
            continue;
        }
        // A recorded backward leaves the graph in place; a plain one frees
        // each node as it goes, as `backward()` does.
        let node = if create_graph { var.node_parts() } else { var.take_node().map(|node| (node.op, node.inputs)) };
        let (op, node_inputs) = node.unwrap_or_else(|| {
            panic!("grad: trying to backward through the graph a second time (its saved values were freed)")
        });
        let needs: Vec<bool> =
            node_inputs.iter().map(|input| input.requires_grad() && leads_to_wanted.contains(&input.id())).collect();
        if !needs.contains(&true) {
            continue;
        }
        let input_grads = input_grads(op.as_ref(), &g, &node_inputs, &var, &needs, create_graph);
        for ((input, g), need) in node_inputs.iter().zip(input_grads).zip(&needs) {
            let Some(g) = g.filter(|_| *need) else { continue };
            let (shape, expected) = (g.shape(), input.shape());
            assert_eq!(shape, expected, "{}: gradient of shape {shape} for an input of shape {expected}", op.name());
            // The chain rule's sum over paths, as a recorded add when the
            // backward is being recorded.
            let sum = match grads.remove(&input.id()) {
                Some(sum) => sum.add(&g),
                None => g,
            };
            grads.insert(input.id(), sum);
        }
    }
    inputs.iter().map(|x| found.get(&x.id()).cloned().unwrap_or_else(|| Var::constant(x.data().zeros_like()))).collect()
}

/// One node's dL/d(input)s: the recorded `backward_graph` under
/// `create_graph`, the fast tensor `backward` otherwise.
fn input_grads(
    op: &dyn BackwardOp,
    grad: &Var,
    inputs: &[Var],
    output: &Var,
    needs: &[bool],
    create_graph: bool,
) -> Vec<Option<Var>> {
    let grads = if create_graph {
        op.backward_graph(grad, inputs, output, needs).unwrap_or_else(|| {
            panic!(
                "grad(create_graph = true): `{}` has no differentiable backward, so gradients through it cannot be \
                 differentiated again",
                op.name()
            )
        })
    } else {
        op.backward(&grad.data(), needs).into_iter().map(|g| g.map(Var::constant)).collect()
    };
    let (got, n) = (grads.len(), inputs.len());
    assert_eq!(got, n, "{}: backward returned {got} gradients for {n} inputs", op.name());
    grads
}

/// The ids in `order` (inputs before the ops that use them) from which one
/// of `wanted` can be reached by following node inputs: only those need a
/// gradient.
fn leads_to(order: &[Var], wanted: &HashSet<u64>) -> HashSet<u64> {
    let mut leads = HashSet::new();
    for var in order {
        let through_inputs =
            var.node_parts().is_some_and(|(_, inputs)| inputs.iter().any(|input| leads.contains(&input.id())));
        if wanted.contains(&var.id()) || through_inputs {
            leads.insert(var.id());
        }
    }
    leads
}
