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

    /// Two parameters of 15 and 7 weights (22 in all) over 3 ranks: shards
    /// of 8 cut the first parameter and the second.
    fn params() -> Vec<Var> {
        let a: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..7).map(|i| (i as f32 * 0.91).cos()).collect();
        vec![Var::parameter(Tensor::from_vec(a, [3, 5]).unwrap()), Var::parameter(Tensor::from_vec(b, [7]).unwrap())]
    }

    fn grads(step: usize) -> Vec<Tensor> {
        let g = |n: usize, k: f32| -> Vec<f32> { (0..n).map(|i| ((i + step) as f32 * k).sin() - 0.2).collect() };
        vec![Tensor::from_vec(g(15, 0.53), [3, 5]).unwrap(), Tensor::from_vec(g(7, 1.7), [7]).unwrap()]
    }

    fn adamw(params: Vec<Var>) -> AdamW {
        AdamW::with_options(params, 0.01, (0.9, 0.95), 1e-8, 0.1)
    }

    fn values(params: &[Var]) -> Vec<Vec<f32>> {
        params.iter().map(|p| p.data().to_vec::<f32>()).collect()
    }

    #[test]
    fn sharded_adamw_steps_and_saves_like_adamw() {
        const RANKS: usize = 3;
        let reference = params();
        let mut whole = adamw(reference.clone());
        for step in 0..3 {
            reference.iter().zip(grads(step)).for_each(|(p, g)| p.set_grad(Some(g)));
            whole.step();
        }
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
                    for step in 0..3 {
                        params.iter().zip(grads(step)).for_each(|(p, g)| p.set_grad(Some(g)));
                        sharded.step(&comm, &params, 0.01);
                    }
                    let gathered = sharded.gather(&comm, &full);
                    let moments: Vec<_> = (0..2)
                        .map(|i| gathered.state(i).map(|(m, v, s)| (m.to_vec::<f32>(), v.to_vec::<f32>(), s)).unwrap())
                        .collect();
                    (values(&params), moments)
                })
            })
            .collect();
        for rank in ranks {
            let (weights, moments) = rank.join().unwrap();
            assert_eq!(weights, values(&reference), "every rank ends with AdamW's weights");
            for (i, (m, v, steps)) in moments.into_iter().enumerate() {
                let (m0, v0, s0) = whole.state(i).unwrap();
                assert_eq!((m, v, steps), (m0.to_vec::<f32>(), v0.to_vec::<f32>(), s0), "parameter {i}'s moments");
            }
        }
    }
}
