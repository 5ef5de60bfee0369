//! ZeRO stage 1: AdamW's moments sharded across ranks.
//!
//! AdamW keeps two moments per weight, twice the model's size again. A rank
//! needs to update only a slice of the weights if the others update the
//! rest, so each rank keeps the moments of its slice alone (memory / N),
//! and needs the averaged gradient of that slice alone:
//!
//! ```text
//! flat gradients [N·S]  every parameter's gradient flattened, in parameter
//!                       order (P values), zero-padded to N·S, S = ⌈P / N⌉
//! reduce-scatter        rank r receives Σ over ranks of [r·S, (r+1)·S), ÷ N
//! all-reduce [1 + K]    Σ of the shards' squared norms (the global norm,
//!                       for the clip) and, per parameter (K of them), how
//!                       many ranks had its gradient
//! AdamW on the shard → all_gather the updated shards → every rank's [P]
//! ```
//!
//! A reduce-scatter moves half the bytes of an all-reduce (which is a
//! reduce-scatter followed by an all-gather), and the all-gather of the
//! weights is the other half: ZeRO-1 exchanges what plain data parallelism
//! does, plus K + 1 numbers.
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

/// What [`ShardedAdamW::step`] reports.
#[derive(Clone, Copy, Debug)]
pub struct ShardedStep {
    /// The global norm of the averaged gradients, before clipping.
    pub grad_norm: f64,
    /// Bytes of gradients this rank handed to the reduce-scatter and to the
    /// all-reduce of the norm and the counts.
    pub exchanged_bytes: usize,
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

    /// One data-parallel step of AdamW at rate `lr` from `params`'
    /// gradients as backward left them on this rank (not yet averaged): the
    /// gradients are reduce-scattered so that this rank receives the mean
    /// gradient of its shard alone, clipped to the global norm `max_norm`
    /// (as [`clip_grad_norm`](autograd::optim::clip_grad_norm) would the
    /// whole), this rank updates its shard, and every rank gathers all the
    /// shards into its `params`.
    ///
    /// A parameter may have a gradient on some ranks only (an expert no
    /// token of a rank's batch chose): it counts as zeros there, and one that
    /// no rank has is left alone, as the buckets' all-reduce does.
    pub fn step(&mut self, comm: &dyn Communicator, params: &[Var], lr: f64, max_norm: f64) -> ShardedStep {
        let ranks = comm.world_size();
        let mut flat = vec![0.0f32; self.shard_len * ranks];
        let mut agreed = vec![0.0f32; 1 + params.len()];
        for (i, p) in params.iter().enumerate() {
            if let Some(g) = p.grad() {
                let start = self.offsets[i];
                flat[start..start + g.numel()].copy_from_slice(&g.to_vec::<f32>());
                agreed[1 + i] = 1.0;
            }
        }
        let mut shard_grad = vec![0.0f32; self.shard_len];
        comm.reduce_scatter_sum(&flat, &mut shard_grad);
        shard_grad.iter_mut().for_each(|g| *g /= ranks as f32);
        // The global squared norm is the sum of the shards'; the padding is
        // zeros and adds nothing.
        agreed[0] = shard_grad.iter().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>() as f32;
        comm.all_reduce_sum(&mut agreed);
        let grad_norm = f64::from(agreed[0]).sqrt();
        let holders = &agreed[1..];
        let coef = max_norm / (grad_norm + 1e-6);

        for (i, steps) in self.steps.iter_mut().enumerate() {
            *steps += u64::from(holders[i] > 0.0);
        }
        for piece in &self.pieces {
            let grad = (holders[piece.param] > 0.0).then(|| {
                let at = self.offsets[piece.param] + piece.range.start - self.shard.start;
                let grad = on_device_of(shard_grad[at..at + piece.range.len()].to_vec(), &piece.var.data());
                if coef < 1.0 {
                    grad.mul_scalar(coef)
                } else {
                    grad
                }
            });
            piece.var.set_grad(grad);
        }
        self.opt.set_learning_rate(lr);
        self.opt.step();
        let mine = self.flatten_shard(|_, piece| piece.var.data());
        let mut all = vec![0.0; self.shard_len * ranks];
        comm.all_gather(&mine, &mut all);
        for (i, p) in params.iter().enumerate() {
            if holders[i] > 0.0 {
                let value = p.data();
                let start = self.offsets[i];
                p.set_data(on_device_of(all[start..start + value.numel()].to_vec(), &value));
            }
        }
        let f32_bytes = std::mem::size_of::<f32>();
        ShardedStep { grad_norm, exchanged_bytes: (flat.len() + agreed.len()) * f32_bytes }
    }

    /// A full AdamW over `full`'s parameters holding every rank's moments,
    /// gathered (every rank must call this): what a checkpoint saves.
    pub fn gather(&self, comm: &dyn Communicator, full: &AdamW) -> AdamW {
        let mut gathered =
            AdamW::with_options(full.params().to_vec(), full.lr, full.betas, full.eps, full.weight_decay);
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

#[cfg(test)]
pub(super) mod tests {
    use std::sync::{Arc, Barrier, Mutex};

    use super::*;

    /// N ranks as N threads of this process: a collective puts each rank's
    /// buffer on the table, waits for all of them, and reads the table.
    pub(in crate::distributed) struct Threads {
        pub rank: usize,
        pub table: Arc<(Mutex<Vec<Vec<f32>>>, Barrier)>,
    }

    impl Threads {
        fn exchange(&self, mine: &[f32]) -> Vec<Vec<f32>> {
            let (slots, barrier) = &*self.table;
            slots.lock().unwrap()[self.rank] = mine.to_vec();
            barrier.wait();
            let all = slots.lock().unwrap().clone();
            barrier.wait();
            all
        }
    }

    impl Communicator for Threads {
        fn rank(&self) -> usize {
            self.rank
        }
        fn world_size(&self) -> usize {
            self.table.0.lock().unwrap().len()
        }
        fn local_rank(&self) -> usize {
            self.rank
        }
        fn all_reduce_sum(&self, data: &mut [f32]) {
            let all = self.exchange(data);
            for (i, x) in data.iter_mut().enumerate() {
                *x = all.iter().map(|r| r[i]).sum();
            }
        }
        fn reduce_scatter_sum(&self, all: &[f32], mine: &mut [f32]) {
            let every = self.exchange(all);
            let start = self.rank * mine.len();
            for (i, x) in mine.iter_mut().enumerate() {
                *x = every.iter().map(|r| r[start + i]).sum();
            }
        }
        fn all_gather(&self, mine: &[f32], all: &mut [f32]) {
            all.copy_from_slice(&self.exchange(mine).concat());
        }
        fn broadcast(&self, data: &mut [f32]) {
            data.copy_from_slice(&self.exchange(data)[0]);
        }
        fn broadcast_bytes(&self, data: &mut [u8]) {
            // Every byte is exact as an f32.
            let mut values: Vec<f32> = data.iter().map(|&b| b as f32).collect();
            self.broadcast(&mut values);
            data.iter_mut().zip(values).for_each(|(b, v)| *b = v as u8);
        }
        fn barrier(&self) {
            self.table.1.wait();
        }
        fn abort(&self, _code: i32) -> ! {
            panic!("abort")
        }
    }

    /// N threads, one collective: every rank's `[N·S]` buffer, and what
    /// each receives.
    fn reduce_scatter_on_threads(buffers: Vec<Vec<f32>>, shard_len: usize) -> Vec<Vec<f32>> {
        let ranks = buffers.len();
        let table = Arc::new((Mutex::new(vec![Vec::new(); ranks]), Barrier::new(ranks)));
        let threads: Vec<_> = buffers
            .into_iter()
            .enumerate()
            .map(|(rank, all)| {
                let table = table.clone();
                std::thread::spawn(move || {
                    let mut mine = vec![f32::NAN; shard_len];
                    Threads { rank, table }.reduce_scatter_sum(&all, &mut mine);
                    mine
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    /// Rank r receives the sum of every rank's slice r, and nothing of the
    /// other slices; one process receives its own buffer.
    #[test]
    fn reduce_scatter_sums_slice_r_into_rank_r() {
        // Rank q's element k is 10^q · (k + 1): each rank's digits stay
        // apart in the sums.
        let buffers: Vec<Vec<f32>> = (0..3).map(|q| (0..6).map(|k| 10f32.powi(q) * (k + 1) as f32).collect()).collect();
        let got = reduce_scatter_on_threads(buffers, 2);
        assert_eq!(got, vec![vec![111.0, 222.0], vec![333.0, 444.0], vec![555.0, 666.0]]);

        let mut mine = [0.0; 3];
        crate::distributed::SingleProcess.reduce_scatter_sum(&[1.0, 2.0, 3.0], &mut mine);
        assert_eq!(mine, [1.0, 2.0, 3.0]);
    }

    /// Two parameters of 15 and 7 weights (22 in all) over 3 ranks: shards
    /// of 8 cut the first parameter and the second.
    fn params() -> Vec<Var> {
        let a: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..7).map(|i| (i as f32 * 0.91).cos()).collect();
        vec![Var::parameter(Tensor::from_vec(a, [3, 5]).unwrap()), Var::parameter(Tensor::from_vec(b, [7]).unwrap())]
    }

    /// Rank `rank`'s gradients at `step`; the second parameter has none on
    /// any rank at step 0 and one on rank 1 alone at step 1 (a parameter
    /// only some ranks' batches reach).
    fn grads(step: usize, rank: usize) -> Vec<Option<Tensor>> {
        let g = |n: usize, k: f32| -> Vec<f32> {
            (0..n).map(|i| ((i + step) as f32 * k + rank as f32 * 0.3).sin() - 0.2).collect()
        };
        let second = match step {
            0 => false,
            1 => rank == 1,
            _ => true,
        };
        vec![
            Some(Tensor::from_vec(g(15, 0.53), [3, 5]).unwrap()),
            second.then(|| Tensor::from_vec(g(7, 1.7), [7]).unwrap()),
        ]
    }

    /// The mean of `ranks` ranks' gradients, a missing one counting as
    /// zeros, and none where no rank has one.
    fn mean_grads(step: usize, ranks: usize) -> Vec<Option<Tensor>> {
        let every: Vec<_> = (0..ranks).map(|rank| grads(step, rank)).collect();
        (0..2)
            .map(|i| {
                let present: Vec<Vec<f32>> =
                    every.iter().filter_map(|g| g[i].as_ref().map(|t| t.to_vec::<f32>())).collect();
                let dims = every.iter().find_map(|g| g[i].as_ref().map(|t| t.dims().to_vec()))?;
                let mut sum = vec![0.0f32; present[0].len()];
                present.iter().for_each(|g| sum.iter_mut().zip(g).for_each(|(s, x)| *s += x));
                Some(Tensor::from_vec(sum.into_iter().map(|s| s / ranks as f32).collect(), dims).unwrap())
            })
            .collect()
    }

    fn adamw(params: Vec<Var>) -> AdamW {
        AdamW::with_options(params, 0.01, (0.9, 0.95), 1e-8, 0.1)
    }

    fn values(params: &[Var]) -> Vec<Vec<f32>> {
        params.iter().map(|p| p.data().to_vec::<f32>()).collect()
    }

    /// Three ranks with their own gradients against one AdamW on their
    /// mean, clipped to a norm the gradients exceed: the same norms, weights
    /// and (gathered) moments. Not bit for bit: the norm is summed per shard
    /// and the shards' sums added in f32.
    #[test]
    fn sharded_adamw_steps_and_saves_like_adamw_on_the_mean_gradient() {
        const RANKS: usize = 3;
        const MAX_NORM: f64 = 1.0;
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()));
        let reference = params();
        let mut whole = adamw(reference.clone());
        let mut norms = Vec::new();
        for step in 0..3 {
            reference.iter().zip(mean_grads(step, RANKS)).for_each(|(p, g)| p.set_grad(g));
            norms.push(autograd::optim::clip_grad_norm(&reference, MAX_NORM));
            whole.step();
        }
        assert!(norms.iter().all(|&n| n > MAX_NORM), "the clip bites: {norms:?}");
        let table = Arc::new((Mutex::new(vec![Vec::new(); RANKS]), Barrier::new(RANKS)));
        let ranks: Vec<_> = (0..RANKS)
            .map(|rank| {
                let table = table.clone();
                std::thread::spawn(move || {
                    let comm = Threads { rank, table };
                    let params = params();
                    let full = adamw(params.clone());
                    let mut sharded = ShardedAdamW::new(&full, rank, RANKS);
                    assert_eq!(sharded.shard_len(), [8, 8, 6][rank]);
                    let mut norms = Vec::new();
                    for step in 0..3 {
                        params.iter().zip(grads(step, rank)).for_each(|(p, g)| p.set_grad(g));
                        norms.push(sharded.step(&comm, &params, 0.01, MAX_NORM).grad_norm);
                    }
                    let gathered = sharded.gather(&comm, &full);
                    let moments: Vec<_> = (0..2)
                        .map(|i| gathered.state(i).map(|(m, v, s)| (m.to_vec::<f32>(), v.to_vec::<f32>(), s)).unwrap())
                        .collect();
                    (values(&params), moments, norms)
                })
            })
            .collect();
        for rank in ranks {
            let (weights, moments, rank_norms) = rank.join().unwrap();
            for (x, y) in rank_norms.iter().zip(&norms) {
                assert!((x - y).abs() <= 1e-6 * y, "grad norm {x} against {y}");
            }
            for (w, w0) in weights.iter().zip(values(&reference)) {
                assert!(close(w, &w0), "every rank ends with AdamW's weights: {w:?} against {w0:?}");
            }
            for (i, (m, v, steps)) in moments.into_iter().enumerate() {
                let (m0, v0, s0) = whole.state(i).unwrap();
                assert_eq!(steps, s0, "parameter {i}'s step count");
                assert!(close(&m, &m0.to_vec::<f32>()) && close(&v, &v0.to_vec::<f32>()), "parameter {i}'s moments");
            }
        }
    }
}
