//! ZeRO stage 1: AdamW's moments sharded across ranks.
//!
//! AdamW keeps two moments per weight, twice the model's size again. Every
//! rank holds the full averaged gradient after the all-reduce, but needs to
//! update only a slice of the weights if the others update the rest, so
//! each rank keeps the moments of its slice alone (memory / N):
//!
//! ```text
//! flat parameters [P]   (every parameter flattened, in parameter order)
//! rank r's shard        [r·S, (r+1)·S), S = ⌈P / N⌉ (the last one shorter)
//! step: AdamW on the shard → all_gather the updated shards → every rank's [P]
//! ```
//!
//! A shard cuts parameters where it will, so it is held as *pieces*: for
//! each parameter it overlaps, a 1-D `Var` with that range of the weights.
//! A plain [`AdamW`] updates the pieces; AdamW works element by element
//! (decoupled weight decay is the same for every weight here), so updating
//! the pieces is updating the whole, sliced.
//!
//! Checkpoints hold the full moments (gathered from the shards), so a run
//! saved with ZeRO resumes without it and the other way round.

use std::ops::Range;

use autograd::optim::{AdamW, Optimizer};
use autograd::Var;
use tensor::Tensor;

use super::buckets::on_device_of;
use super::Communicator;

/// The part of one parameter that falls into this rank's shard.
struct Piece {
    param: usize,
    /// The elements of the flattened parameter this piece holds.
    range: Range<usize>,
    var: Var,
}

/// AdamW over this rank's shard of the flattened parameters.
pub struct ShardedAdamW {
    /// Where each parameter starts in the flat vector.
    offsets: Vec<usize>,
    /// Elements per shard (S); the flat vector is padded to N·S.
    shard_len: usize,
    /// This rank's elements of the flat vector.
    shard: Range<usize>,
    pieces: Vec<Piece>,
    opt: AdamW,
    /// AdamW's step count of every parameter (bias correction), kept for all
    /// parameters so a checkpoint can be written whole.
    steps: Vec<u64>,
}

impl ShardedAdamW {
    /// Takes over `full`'s hyper-parameters and the slice of its moments
    /// (empty for a fresh run, restored from a checkpoint for a resumed one)
    /// that belongs to rank `rank` of `ranks`.
    pub fn new(full: &AdamW, rank: usize, ranks: usize) -> ShardedAdamW {
        let params = full.params();
        let mut offsets = Vec::with_capacity(params.len());
        let mut total = 0;
        for p in params {
            offsets.push(total);
            total += p.data().numel();
        }
        let shard_len = total.div_ceil(ranks);
        let shard = (rank * shard_len).min(total)..((rank + 1) * shard_len).min(total);
        let mut pieces = Vec::new();
        let mut piece_state = Vec::new();
        for (i, p) in params.iter().enumerate() {
            let (start, end) = (offsets[i], offsets[i] + p.data().numel());
            if end <= shard.start || start >= shard.end {
                continue;
            }
            let range = shard.start.max(start) - start..shard.end.min(end) - start;
            let slice = |t: &Tensor| slice_of(t, range.clone());
            piece_state.push(full.state(i).map(|(m, v, step)| (slice(m), slice(v), step)));
            pieces.push(Piece { param: i, var: Var::parameter(slice(&p.data())), range });
        }
        let vars = pieces.iter().map(|piece| piece.var.clone()).collect();
        let mut opt = AdamW::with_options(vars, full.lr, full.betas, full.eps, full.weight_decay);
        for (k, state) in piece_state.into_iter().enumerate() {
            if let Some((m, v, step)) = state {
                opt.set_state(k, m, v, step);
            }
        }
        let steps = (0..params.len()).map(|i| full.state(i).map_or(0, |s| s.2)).collect();
        ShardedAdamW { offsets, shard_len, shard, pieces, opt, steps }
    }

    /// Elements of optimizer state this rank holds per moment (for reports).
    pub fn shard_len(&self) -> usize {
        self.shard.len()
    }

    /// One AdamW step at rate `lr` from `params`' gradients (already averaged
    /// over the ranks and clipped): this rank updates its shard, then every
    /// rank gathers all the shards into its `params`.
    pub fn step(&mut self, comm: &dyn Communicator, params: &[Var], lr: f64) {
        for (i, p) in params.iter().enumerate() {
            self.steps[i] += u64::from(p.grad().is_some());
        }
        for piece in &self.pieces {
            let grad = params[piece.param].grad().map(|g| slice_of(&g, piece.range.clone()));
            piece.var.set_grad(grad);
        }
        self.opt.set_learning_rate(lr);
        self.opt.step();
        let mine = self.flatten_shard(|_, piece| piece.var.data());
        let mut all = vec![0.0; self.shard_len * comm.world_size()];
        comm.all_gather(&mine, &mut all);
        for (i, p) in params.iter().enumerate() {
            if p.grad().is_some() {
                let value = p.data();
                let start = self.offsets[i];
                p.set_data(on_device_of(all[start..start + value.numel()].to_vec(), &value));
            }
        }
    }

    /// A full AdamW over `full`'s parameters holding every rank's moments,
    /// gathered (every rank must call this): what a checkpoint saves.
    pub fn gather(&self, comm: &dyn Communicator, full: &AdamW) -> AdamW {
        let mut gathered = AdamW::with_options(full.params().to_vec(), full.lr, full.betas, full.eps, full.weight_decay);
        let zeros = |piece: &Piece| Tensor::zeros([piece.range.len()], tensor::DType::F32);
        let moment = |which: usize| {
            let mine = self.flatten_shard(|k, piece| {
                self.opt.state(k).map_or_else(|| zeros(piece), |(m, v, _)| [m, v][which].clone())
            });
            let mut all = vec![0.0; self.shard_len * comm.world_size()];
            comm.all_gather(&mine, &mut all);
            all
        };
        let (m_all, v_all) = (moment(0), moment(1));
        for (i, p) in full.params().iter().enumerate() {
            if self.steps[i] == 0 {
                continue;
            }
            let value = p.data();
            let at = self.offsets[i]..self.offsets[i] + value.numel();
            let (m, v) = (on_device_of(m_all[at.clone()].to_vec(), &value), on_device_of(v_all[at].to_vec(), &value));
            gathered.set_state(i, m, v, self.steps[i]);
        }
        gathered
    }

    /// This rank's shard as one `[S]` buffer, from each piece's tensor
    /// (`tensor_of` gets the piece's index among this rank's pieces).
    fn flatten_shard(&self, tensor_of: impl Fn(usize, &Piece) -> Tensor) -> Vec<f32> {
        let mut flat = vec![0.0; self.shard_len];
        for (k, piece) in self.pieces.iter().enumerate() {
            let at = self.offsets[piece.param] + piece.range.start - self.shard.start;
            let values = tensor_of(k, piece).to_vec::<f32>();
            flat[at..at + values.len()].copy_from_slice(&values);
        }
        flat
    }
}

/// Elements `range` of `t` flattened, as a 1-D tensor on `t`'s device.
fn slice_of(t: &Tensor, range: Range<usize>) -> Tensor {
    let values = t.to_vec::<f32>()[range].to_vec();
    let len = values.len();
    Tensor::from_vec(values, [len]).expect("a slice").to_device(t.device()).expect("the tensor's device")
}
