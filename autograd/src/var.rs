//! `Var`: a tensor that remembers how it was made, and `backward()`.
//!
//! Every op on `Var`s computes its result with the `tensor` crate and, when
//! gradients are wanted, records a node: the input `Var`s plus a small
//! backward object holding only what the op's derivative needs. The nodes
//! form a graph from the parameters to the loss.
//!
//! `loss.backward()` walks that graph once in reverse topological order
//! (every node after all the nodes that use it). Each node receives dL/d(its
//! output), asks its backward object for dL/d(each input), and *adds* those
//! into the inputs' running gradients. Adding is the whole trick: a value
//! used twice (a residual connection, a tied embedding) receives the sum of
//! both paths' gradients, which is what the chain rule says.
//!
//! A leaf (a parameter) is finished as soon as the last node that uses it
//! has run: its summed gradient goes into `.grad()` then, not when the walk
//! reaches the leaf's own place in the order, and
//! [`Var::backward_with_leaf_hook`] reports it there, which lets
//! data-parallel training send the last layers' gradients while backward
//! still works on the first ones.
//!
//! Like PyTorch, the graph is freed as backward runs (each node's saved
//! tensors are dropped once used), gradients are kept only for leaves that
//! require them, and a second backward through the same graph is an error.
//!
//! ## Two modes: plain backward and `create_graph`
//!
//! `loss.backward()` runs each node's [`BackwardOp::backward`] on plain
//! tensors: the fused kernels (softmax, layer norm, GELU, cross-entropy)
//! compute dL/d(input) in one pass from the tensors the forward saved, and
//! the gradients that come out are numbers with no history. That is all
//! training needs, and it is the fast path.
//!
//! Some uses differentiate a gradient again: a Hessian-vector product
//! (Hv = ∇(∇f · v)), a gradient penalty (loss + λ‖∂loss/∂x‖², as in
//! WGAN-GP), meta-learning. For those, [`crate::grad`] with
//! `create_graph = true` runs each node's [`BackwardOp::backward_graph`]
//! instead: the same derivative written with differentiable `Var` ops, so
//! the gradients it returns are `Var`s with a graph of their own, and a
//! second `backward()` through them gives second derivatives. The
//! differences, as in PyTorch:
//!
//! | | `loss.backward()` | `grad(&loss, &xs, true)` |
//! |---|---|---|
//! | node's derivative | `backward` (fused kernels, saved tensors) | `backward_graph` (`Var` ops on the node's input and output `Var`s) |
//! | result | added into leaves' `.grad()` (tensors) | returned as `Var`s; `.grad()` untouched |
//! | graph afterwards | freed | kept (a later `backward()` through it works) |
//! | grad mode during the pass | off for the result | on: the backward is recorded |
//!
//! `grad(.., false)` returns the plain gradients as constant `Var`s and
//! frees the graph like `backward()`. An op without `backward_graph`
//! (attention, the indexing ops) still has its fast backward; asking for
//! `create_graph` through it panics with the op's name.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tensor::{DType, Shape, Tensor};

use crate::grad_mode::is_grad_enabled;
use crate::profile::{self, Phase};

/// The derivative half of a differentiable op.
pub trait BackwardOp: Send + Sync {
    /// The op's name, for error messages and graph dumps.
    fn name(&self) -> &'static str;
    /// Given dL/d(output), returns dL/d(input) for each input in order.
    /// `needs[i]` says whether input i wants a gradient; an op may return
    /// `None` for the others and skip the work.
    fn backward(&self, grad: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>>;
    /// Adds dL/d(input `input`) into `sum`, the gradient that other uses of
    /// that input have already sent back, and returns true; or returns false
    /// (the default) and `backward` computes it on its own, to be added after.
    /// An op overrides this when writing into the sum saves a large buffer:
    /// the embedding lookup scatters its rows straight into the gradient the
    /// tied output head left in the vocabulary-sized table.
    fn backward_into(&self, _grad: &Tensor, _input: usize, _sum: &mut Tensor) -> bool {
        false
    }
    /// The same derivative as `backward`, written with differentiable `Var`
    /// ops so that it is recorded (`create_graph`; see the module doc).
    /// `grad` is dL/d(output) as a `Var` (it may carry a graph itself),
    /// `inputs` and `output` are the node's own `Var`s: the derivative is
    /// rebuilt from them rather than from the tensors saved for `backward`,
    /// so that it depends on the inputs through the graph (exp's derivative
    /// is `grad · output`, and `output` remembers it is exp(x)). Returns
    /// `None` (the default) when the op has no differentiable backward.
    fn backward_graph(&self, _grad: &Var, _inputs: &[Var], _output: &Var, _needs: &[bool]) -> Option<Vec<Option<Var>>> {
        None
    }
}

/// One recorded op: its inputs and its derivative. The op sits behind an
/// `Arc` so that a `create_graph` pass can run it while the graph stays in
/// place.
pub(crate) struct Node {
    pub(crate) inputs: Vec<Var>,
    pub(crate) op: Arc<dyn BackwardOp>,
}

impl Node {
    /// dL/d(input) for each input that `needs` one, checked against the
    /// input's shape.
    fn input_grads<'a>(&'a self, grad: &Tensor, needs: &'a [bool]) -> impl Iterator<Item = (&'a Var, Tensor)> {
        let name = self.op.name();
        let input_grads = self.op.backward(grad, needs);
        let n = self.inputs.len();
        assert_eq!(input_grads.len(), n, "{name}: backward returned {} gradients for {n} inputs", input_grads.len());
        self.inputs.iter().zip(input_grads).zip(needs).filter_map(move |((input, g), &need)| {
            let g = g.filter(|_| need)?;
            let (shape, expected) = (g.shape(), input.shape());
            assert_eq!(shape, &expected, "{name}: gradient of shape {shape} for an input of shape {expected}");
            Some((input, g))
        })
    }

    /// The one special case of backward: an op may add an input's gradient
    /// straight into the sum that other uses of that input already sent
    /// back (`BackwardOp::backward_into`; the embedding lookup scatters its
    /// rows into the tied head's gradient), instead of returning a new
    /// vocabulary-sized tensor to be added. Inputs handled so are marked
    /// as no longer needing a gradient from `backward`.
    fn scatter_into_existing(&self, grad: &Tensor, needs: &mut [bool], grads: &mut HashMap<u64, Tensor>) {
        for (i, input) in self.inputs.iter().enumerate() {
            if let Some(sum) = grads.get_mut(&input.id()).filter(|_| needs[i]) {
                if self.op.backward_into(grad, i, sum) {
                    needs[i] = false;
                }
            }
        }
    }
}

/// What the clones of a `Var` share. Its fields sit behind locks, not
/// `RefCell`s: one variable has many owners at once (the model, the
/// optimizer and every graph node that used it hold the same `Arc`), any
/// of them may write (the optimizer the value, backward the gradient and
/// the node), and a model must stay `Send + Sync` to be shared between
/// threads.
struct VarInner {
    id: u64,
    data: RwLock<Tensor>,
    grad: Mutex<Option<Tensor>>,
    requires_grad: AtomicBool,
    /// The op that made this value; `None` for leaves and, after backward,
    /// for freed nodes (`is_leaf` tells the two apart).
    node: Mutex<Option<Node>>,
    is_leaf: bool,
}

/// A tensor in the autograd graph. Cloning shares the same variable.
#[derive(Clone)]
pub struct Var(Arc<VarInner>);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Var {
    fn make(data: Tensor, requires_grad: bool, node: Option<Node>) -> Var {
        let is_leaf = node.is_none();
        Var(Arc::new(VarInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            data: RwLock::new(data),
            grad: Mutex::new(None),
            requires_grad: AtomicBool::new(requires_grad),
            node: Mutex::new(node),
            is_leaf,
        }))
    }

    /// A leaf variable; `requires_grad` makes backward fill its `.grad()`.
    pub fn new(data: Tensor, requires_grad: bool) -> Var {
        Var::make(data, requires_grad, None)
    }

    /// A trainable leaf (`requires_grad = true`).
    pub fn parameter(data: Tensor) -> Var {
        Var::new(data, true)
    }

    /// A leaf that never receives a gradient (inputs, targets, ids).
    pub fn constant(data: Tensor) -> Var {
        Var::new(data, false)
    }

    /// The result of an op. Records a node only when gradients are enabled
    /// and some input requires one; `make_op` is called only then, so ops
    /// save nothing when nobody will differentiate.
    pub fn from_op<B: BackwardOp + 'static>(data: Tensor, inputs: &[&Var], make_op: impl FnOnce() -> B) -> Var {
        if is_grad_enabled() && inputs.iter().any(|v| v.requires_grad()) {
            let op = make_op();
            if profile::is_recording() {
                profile::forward_done(op.name());
            }
            let node = Node { inputs: inputs.iter().map(|&v| v.clone()).collect(), op: Arc::new(op) };
            Var::make(data, true, Some(node))
        } else {
            if profile::is_recording() {
                // Built only to be named alike on both paths; dropped at once.
                profile::forward_done(make_op().name());
            }
            Var::make(data, false, None)
        }
    }

    // ----- the value ---------------------------------------------------------

    /// The current value (a cheap clone of the tensor).
    pub fn data(&self) -> Tensor {
        self.0.data.read().unwrap().clone()
    }

    /// Replaces the value (for loading weights); the shape may not change.
    pub fn set_data(&self, data: Tensor) {
        let mut slot = self.0.data.write().unwrap();
        assert_eq!(slot.shape(), data.shape(), "set_data: shape {} cannot replace {}", data.shape(), slot.shape());
        *slot = data;
    }

    /// Mutates the value in place (optimizers). The tensor copies on write
    /// if a graph still holds the old value, so saved tensors never change.
    pub fn update_data<R>(&self, f: impl FnOnce(&mut Tensor) -> R) -> R {
        f(&mut self.0.data.write().unwrap())
    }

    pub fn shape(&self) -> Shape {
        self.0.data.read().unwrap().shape().clone()
    }
    pub fn dims(&self) -> Vec<usize> {
        self.0.data.read().unwrap().dims().to_vec()
    }
    pub fn dim(&self, d: isize) -> usize {
        self.0.data.read().unwrap().dim(d)
    }
    pub fn rank(&self) -> usize {
        self.0.data.read().unwrap().rank()
    }
    pub fn numel(&self) -> usize {
        self.0.data.read().unwrap().numel()
    }
    pub fn dtype(&self) -> DType {
        self.0.data.read().unwrap().dtype()
    }
    /// Where the value lives.
    pub fn device(&self) -> tensor::Device {
        self.0.data.read().unwrap().device()
    }
    /// The single value of a one-element variable, as f64.
    pub fn item(&self) -> f64 {
        self.0.data.read().unwrap().item_f64()
    }
    /// A stable identity for maps keyed by variable.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    // ----- gradients -----------------------------------------------------------

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes a leaf. Frozen parameters get no
    /// gradient and optimizers skip them.
    pub fn set_requires_grad(&self, requires_grad: bool) {
        assert!(self.0.is_leaf, "set_requires_grad: only leaves can be frozen or unfrozen");
        self.0.requires_grad.store(requires_grad, Ordering::Relaxed);
    }

    pub fn is_leaf(&self) -> bool {
        self.0.is_leaf
    }

    /// dL/d(self) accumulated by backward calls, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().unwrap().clone()
    }

    /// Replaces the stored gradient (gradient clipping rescales this way).
    pub fn set_grad(&self, grad: Option<Tensor>) {
        *self.0.grad.lock().unwrap() = grad;
    }

    /// Forgets the accumulated gradient.
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// The same value as a new leaf outside the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.data())
    }

    /// Backpropagates from a one-element value (a loss), seeding dL/dL = 1.
    pub fn backward(&self) {
        let data = self.data();
        assert_eq!(
            data.numel(),
            1,
            "backward: needs a one-element loss, got shape {} (use backward_with)",
            data.shape()
        );
        self.backward_with(data.ones_like());
    }

    /// Backpropagates a given dL/d(self) of the same shape.
    pub fn backward_with(&self, grad: Tensor) {
        self.backward_calling(grad, &mut |_| {});
    }

    /// [`Var::backward`], calling `on_leaf` with each leaf that requires a
    /// gradient right after this pass added into its `.grad()`: from then on
    /// that gradient is final for the pass, though the rest of the graph is
    /// still being differentiated. Data-parallel training starts sending a
    /// parameter's gradient to the other processes there, while backward
    /// goes on towards the first layers.
    ///
    /// Each leaf is called at most once, however many ops used it: in
    /// reverse topological order a leaf comes after every node that uses it,
    /// so by the time it is reached all their contributions are summed.
    /// Leaves the loss does not depend on are not called.
    pub fn backward_with_leaf_hook(&self, mut on_leaf: impl FnMut(&Var)) {
        let data = self.data();
        assert_eq!(data.numel(), 1, "backward: needs a one-element loss, got shape {}", data.shape());
        self.backward_calling(data.ones_like(), &mut on_leaf);
    }

    /// The one backward loop, behind `backward_with` and
    /// `backward_with_leaf_hook`.
    fn backward_calling(&self, grad: Tensor, on_leaf: &mut dyn FnMut(&Var)) {
        assert_eq!(
            grad.shape(),
            &self.shape(),
            "backward_with: gradient shape {} for a value of shape {}",
            grad.shape(),
            self.shape()
        );
        assert!(
            self.requires_grad(),
            "backward: this value does not require grad (no parameter reaches it, or it was computed under no_grad)"
        );
        let order = self.topological_order();
        let mut grads: HashMap<u64, Tensor> = HashMap::new();
        grads.insert(self.id(), grad);
        // A leaf's gradient is complete once the last node that uses it has
        // run, which may be long before the leaf's own place in the order
        // (the search reaches the last layer's weights first, so they sit at
        // the far end): it is accumulated there and then, counted down here.
        let mut uses_left = leaf_uses(&order);
        // Reverse topological order: a node runs after every node that uses
        // it, so its gradient is complete when it runs. Consuming `order`
        // drops each variable (and with it the graph) as soon as it is done.
        for var in order.into_iter().rev() {
            let Some(grad) = grads.remove(&var.id()) else {
                // No gradient reached this node; its leaves still lose a use.
                // The inputs are copied out (shared handles) so that the hook
                // runs with no node's lock held.
                let inputs = var.0.node.lock().unwrap().as_ref().map(|node| node.inputs.clone());
                if let Some(inputs) = inputs {
                    finish_used_leaves(&inputs, &mut uses_left, &mut grads, on_leaf);
                }
                continue;
            };
            if var.is_leaf() {
                // Only a leaf no node uses (the value backward started from).
                if var.requires_grad() {
                    var.accumulate_grad(grad);
                    on_leaf(&var);
                }
                continue;
            }
            let node = var.0.node.lock().unwrap().take().unwrap_or_else(|| {
                panic!("backward: trying to backward through the graph a second time (its saved values were freed)")
            });
            let mut needs: Vec<bool> = node.inputs.iter().map(Var::requires_grad).collect();
            let started = profile::is_recording().then(Instant::now);
            node.scatter_into_existing(&grad, &mut needs, &mut grads);
            let input_grads: Vec<(&Var, Tensor)> = node.input_grads(&grad, &needs).collect();
            let summing = started.map(|start| {
                profile::record(node.op.name(), Phase::Backward, start.elapsed());
                Instant::now()
            });
            for (input, g) in input_grads {
                // The chain rule's sum over paths: input.grad += g.
                match grads.entry(input.id()) {
                    Entry::Occupied(mut sum) => sum.get_mut().add_(&g),
                    Entry::Vacant(slot) => {
                        slot.insert(g);
                    }
                }
            }
            if let Some(start) = summing {
                profile::record("(gradient sums)", Phase::Backward, start.elapsed());
            }
            finish_used_leaves(&node.inputs, &mut uses_left, &mut grads, on_leaf);
        }
    }

    fn accumulate_grad(&self, grad: Tensor) {
        let mut slot = self.0.grad.lock().unwrap();
        let grad = grad.to_dtype(self.dtype());
        // A gradient lives where its value does (a backward that built a
        // constant on the host hands back a CPU tensor for a GPU value).
        let device = self.device();
        let grad = if grad.device() == device {
            grad
        } else {
            grad.to_device(device).expect("gradient to the value's device")
        };
        *slot = Some(match slot.take() {
            Some(mut old) => {
                old.add_(&grad);
                old
            }
            None => grad.contiguous(),
        });
    }

    /// The op that made this value and its inputs, left in the graph (a
    /// `create_graph` pass reads them without freeing them).
    pub(crate) fn node_parts(&self) -> Option<(Arc<dyn BackwardOp>, Vec<Var>)> {
        self.0.node.lock().unwrap().as_ref().map(|n| (n.op.clone(), n.inputs.clone()))
    }

    /// Removes the op that made this value from the graph (freeing what it
    /// saved once the caller drops it); `None` if it was freed already.
    pub(crate) fn take_node(&self) -> Option<Node> {
        self.0.node.lock().unwrap().take()
    }

    /// Every variable that reaches `self` through nodes, inputs before the
    /// ops that use them (iterative depth-first search, so deep graphs do
    /// not overflow the stack).
    pub(crate) fn topological_order(&self) -> Vec<Var> {
        let mut order = Vec::new();
        let mut visited = HashSet::new();
        // (variable, whether its inputs have been pushed already)
        let mut stack = vec![(self.clone(), false)];
        while let Some((var, expanded)) = stack.pop() {
            if expanded {
                order.push(var);
                continue;
            }
            if !visited.insert(var.id()) {
                continue;
            }
            stack.push((var.clone(), true));
            if let Some(node) = var.0.node.lock().unwrap().as_ref() {
                for input in &node.inputs {
                    if input.requires_grad() && !visited.contains(&input.id()) {
                        stack.push((input.clone(), false));
                    }
                }
            }
        }
        order
    }

    /// The name of the op that produced this value, if any.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.node.lock().unwrap().as_ref().map(|n| n.op.name())
    }

    /// The names of the ops recorded in the graph that produced this value,
    /// inputs before the ops that use them (`BackwardOp::name`; one entry per
    /// node, so an op used twice appears twice). Empty for a leaf, for a
    /// value computed without gradients, and after backward freed the graph.
    /// For graph dumps, and for checking which ops a computation recorded.
    pub fn graph_op_names(&self) -> Vec<&'static str> {
        self.topological_order().iter().filter_map(Var::op_name).collect()
    }
}

/// For each leaf that requires a gradient, how many times the nodes of
/// `order` take it as an input (twice for `x·x`).
fn leaf_uses(order: &[Var]) -> HashMap<u64, usize> {
    let mut uses = HashMap::new();
    for var in order {
        if let Some(node) = var.0.node.lock().unwrap().as_ref() {
            for input in node.inputs.iter().filter(|i| i.is_leaf() && i.requires_grad()) {
                *uses.entry(input.id()).or_insert(0) += 1;
            }
        }
    }
    uses
}

/// A node that took `inputs` is done: each leaf among them has one use
/// fewer left, and a leaf with none left has its complete gradient, which
/// is added into its `.grad()` and handed to `on_leaf`.
fn finish_used_leaves(
    inputs: &[Var],
    uses_left: &mut HashMap<u64, usize>,
    grads: &mut HashMap<u64, Tensor>,
    on_leaf: &mut dyn FnMut(&Var),
) {
    for input in inputs {
        let Some(left) = uses_left.get_mut(&input.id()) else { continue };
        *left -= 1;
        if *left == 0 {
            if let Some(grad) = grads.remove(&input.id()) {
                input.accumulate_grad(grad);
                on_leaf(input);
            }
        }
    }
}

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let data = self.data();
        match self.op_name() {
            Some(op) => write!(f, "{data} (grad_fn={op})"),
            None if self.requires_grad() => write!(f, "{data} (requires_grad=True)"),
            None => write!(f, "{data}"),
        }
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var#{} {:?}", self.id(), self.data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(v: f64, requires_grad: bool) -> Var {
        Var::new(Tensor::new_as(v, DType::F64).unwrap(), requires_grad)
    }

    /// loss = (x·w + x)·u: `x` is used by two ops, one of them deep in the
    /// graph; `unused` does not reach the loss; `c` is a constant. The hook
    /// sees each of x, w, u once, each time with its final gradient (x's
    /// carries both paths, and the 1 left by an earlier backward), and
    /// neither `unused` nor `c`.
    #[test]
    fn the_leaf_hook_sees_each_leaf_once_with_its_final_gradient() {
        let (x, w, u, unused) = (scalar(3.0, true), scalar(5.0, true), scalar(2.0, true), scalar(7.0, true));
        let c = scalar(1.0, false);
        x.mul_scalar(1.0).backward(); // dx = 1 already, before this pass
        let loss = x.mul(&w).add(&x).mul(&u).add(&c);
        let mut seen: Vec<(u64, f64)> = Vec::new();
        loss.backward_with_leaf_hook(|leaf| seen.push((leaf.id(), leaf.grad().unwrap().item_f64())));
        // dL/dx = (w + 1)·u = 12, plus the earlier 1; dL/dw = x·u; dL/du = x·w + x.
        let mut want = vec![(x.id(), 13.0), (w.id(), 6.0), (u.id(), 18.0)];
        seen.sort_by_key(|s| s.0);
        want.sort_by_key(|s| s.0);
        assert_eq!(seen, want);
        assert!(unused.grad().is_none());
    }

    /// The hook is called while backward is still running: u, used by the
    /// last op, is reached before the matmul chain below it is done.
    #[test]
    fn the_leaf_hook_runs_before_the_deeper_leaves_have_gradients() {
        let (x, w, u) = (scalar(3.0, true), scalar(5.0, true), scalar(2.0, true));
        let loss = x.mul(&w).exp().mul(&u);
        let mut deeper_done_when_u_called = None;
        loss.backward_with_leaf_hook(|leaf| {
            if leaf.id() == u.id() {
                deeper_done_when_u_called = Some(x.grad().is_some() || w.grad().is_some());
            }
        });
        assert_eq!(deeper_done_when_u_called, Some(false));
        assert!(x.grad().is_some() && w.grad().is_some());
    }
}
