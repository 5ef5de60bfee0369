//! `scratchgpt bench train`: speed on synthetic data, and the helpers every
//! bench shares (`bench generate` is in `bench_generate.rs`, `bench quant`
//! in `bench_quant.rs`: every precision side by side; `bench gemm` in
//! `bench_gemm.rs`: the step's matrix products one by one).
//!
//! `train` times full optimizer steps on random token batches: zero the
//! gradients, forward, cross-entropy, backward, AdamW. FLOPs per step use
//! the usual estimate for a decoder-only transformer, 6·N per token for the
//! weight matmuls (2 forward, 4 backward) plus 12·L·T·C per token for
//! attention's two T-long products, so GFLOP/s is comparable with what
//! other trainers report. It reports the median over the timed steps.
//! Under `mpirun -np N` (the `mpi` feature) every rank steps on its own
//! batch and the gradients are averaged as in training; the report counts
//! all ranks' tokens and adds the bytes each rank all-reduced per step.
//!
//! On a GPU (`--device cuda`) the timer stops only after the GPU has
//! finished the step, `--precision bf16` runs the matrix products in bf16
//! (autocast), and the report adds MFU: the achieved FLOP/s as a fraction
//! of the GPU's dense bf16 peak ([`bf16_peak_flops`]).
//!
//! `train --ops` (CPU) also says where the step's time goes: each op's
//! forward and backward milliseconds per step and its share of the step,
//! recorded by `autograd::profile` over the timed steps.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use autograd::loss::cross_entropy;
use autograd::nn::Module;
use autograd::optim::{AdamW, Optimizer};
use gpt::model::{GPTConfig, GPTModel, PRESETS};
use serde::Serialize;
use tensor::{Generator, Tensor};

use crate::common::{human_bytes, outln, print_json};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Time training steps on random tokens.
    Train(TrainArgs),
    /// Time greedy decoding with the KV cache, batch 1.
    Generate(super::bench_generate::GenerateArgs),
    /// File size, memory, decode speed and perplexity of every precision.
    Quant(super::bench_quant::QuantArgs),
    /// GFLOP/s of every matrix product a training step runs.
    Gemm(super::bench_gemm::GemmArgs),
}

#[derive(clap::Args)]
pub struct ModelShape {
    /// A preset; the explicit sizes below override its fields.
    #[arg(long)]
    preset: Option<String>,
    #[arg(long)]
    n_layer: Option<usize>,
    #[arg(long)]
    n_embd: Option<usize>,
    #[arg(long)]
    n_head: Option<usize>,
    #[arg(long)]
    vocab_size: Option<usize>,
}

impl ModelShape {
    pub(crate) fn config(&self, context: usize) -> Result<GPTConfig> {
        let mut c = match &self.preset {
            Some(name) => GPTConfig::preset(name)
                .ok_or_else(|| anyhow::anyhow!("unknown preset {name:?}; choose one of {}", PRESETS.join(", ")))?,
            None => GPTConfig::preset("tiny").expect("tiny exists"),
        };
        c.n_layers = self.n_layer.unwrap_or(c.n_layers);
        c.emb_dim = self.n_embd.unwrap_or(c.emb_dim);
        c.n_heads = self.n_head.unwrap_or(c.n_heads);
        c.vocab_size = self.vocab_size.unwrap_or(c.vocab_size);
        c.context_length = c.context_length.max(context);
        c.drop_rate = 0.0;
        c.validate().map_err(|e| anyhow::anyhow!("model shape: {e}"))?;
        Ok(c)
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    shape: ModelShape,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    context: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Untimed steps first (allocations, caches).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, or bf16 (GPU: bf16 matrix products with f32 accumulation).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// GPU: attention by the fused kernel that never stores the T×T weights.
    #[arg(long)]
    flash_attention: bool,
    /// GPU: let f32 matrix products use TF32 tensor cores.
    #[arg(long)]
    tf32: bool,
    /// Under mpirun: all-reduce the gradients after backward instead of
    /// overlapping the exchange with it (to compare the two).
    #[arg(long)]
    no_overlap: bool,
    /// Under mpirun: the size of a gradient bucket in MiB (25, PyTorch's
    /// default; a small model is then one bucket, which cannot be sent
    /// before backward ends).
    #[arg(long, default_value_t = 25.0)]
    bucket_mb: f64,
    /// CPU: also time every op of the timed steps, forward and backward,
    /// and print each one's share of the step (`autograd::profile`).
    #[arg(long)]
    ops: bool,
    #[arg(long)]
    json: bool,
}

/// Dense bf16 tensor-core peak (FLOP/s) of the GPUs this project is
/// measured on, from NVIDIA's data sheets, by the name the driver reports.
pub fn bf16_peak_flops(gpu_name: &str) -> Option<f64> {
    let name = gpu_name.to_ascii_uppercase();
    let peak = if name.contains("H200") || name.contains("GH200") {
        989.4e12
    } else if name.contains("H100") && name.contains("PCIE") {
        756.0e12
    } else if name.contains("H100") && name.contains("NVL") {
        835.0e12
    } else if name.contains("H100") {
        989.4e12 // SXM ("H100 80GB HBM3")
    } else if name.contains("A100") {
        312.0e12
    } else if name.contains("L40S") {
        362.0e12
    } else if name.contains("L4") {
        121.0e12
    } else {
        return None;
    };
    Some(peak)
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The most worker threads a bench may ask for: rayon starts them all at
/// once, and far more threads than cores only measures the scheduler.
const MAX_THREADS: usize = 1024;

/// The most tokens (batch × context) one bench step or product may hold.
pub(crate) const MAX_TOKENS: usize = 1 << 20;

/// Checks `--threads`: at least 1, at most [`MAX_THREADS`].
pub(crate) fn check_threads(threads: Option<usize>) -> Result<()> {
    match threads {
        Some(n) if n == 0 || n > MAX_THREADS => bail!("--threads must be between 1 and {MAX_THREADS}, got {n}"),
        _ => Ok(()),
    }
}

pub(crate) fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    check_threads(threads)?;
    match threads {
        None => f(),
        Some(n) => rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(f),
    }
}

fn random_ids(gen: &mut Generator, vocab: usize, b: usize, t: usize) -> Tensor {
    Tensor::from_vec((0..b * t).map(|_| gen.below(vocab) as i64).collect::<Vec<_>>(), [b, t]).expect("b·t ids")
}

#[derive(Serialize)]
struct TrainReport {
    ms_per_step: f64,
    /// Every rank's tokens: N ranks each take a step of batch × context.
    tokens_per_s: f64,
    /// Processes of a data-parallel run (`mpirun -np N`), each stepping on
    /// its own batch with the gradients averaged over all (1 alone).
    ranks: usize,
    /// Bytes each rank handed to all-reduce per step: 4 per parameter plus
    /// 4 per parameter tensor (the presence counts of `distributed`'s
    /// buckets); 0 alone.
    all_reduced_bytes_per_step: usize,
    /// Whether the gradients' all-reduce ran during backward (under mpirun
    /// unless `--no-overlap`).
    overlapped: bool,
    /// Of `ms_per_step`, what the gradients' exchange added after backward
    /// (median, rank 0's): all of it when not overlapped.
    all_reduce_ms_per_step: f64,
    /// Of that, the time blocked waiting for sums still in flight when
    /// backward ended: the all-reduce time backward did not hide. (Not
    /// overlapped, the whole exchange.)
    all_reduce_wait_ms_per_step: f64,
    parameter_tensors: usize,
    gflops: f64,
    params: usize,
    threads: usize,
    device: String,
    precision: String,
    /// Achieved FLOP/s over the peak: a GPU's dense bf16 peak on record, or
    /// on the CPU the measured f32 FMA peak of the threads used.
    mfu: Option<f64>,
    /// That CPU peak in GFLOP/s (`tensor::device::cpu_peak_flops`); absent
    /// on a GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_gflops: Option<f64>,
    /// With `--ops`: each op's time per step, the largest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ops: Vec<OpShare>,
}

/// One op's part of a training step (`bench train --ops`).
#[derive(Serialize)]
struct OpShare {
    op: &'static str,
    forward_ms: f64,
    backward_ms: f64,
    /// Outside the graph: the optimizer step.
    other_ms: f64,
    /// Of the whole step, optimizer included.
    share: f64,
}

/// The recorded op times of `steps` steps as per-step shares of `step_secs`.
fn op_shares(times: &[autograd::profile::OpTime], steps: usize, step_secs: f64) -> Vec<OpShare> {
    use autograd::profile::Phase;
    let mut shares: Vec<OpShare> = Vec::new();
    for t in times {
        let ms = t.total.as_secs_f64() * 1e3 / steps as f64;
        let row = match shares.iter_mut().position(|s| s.op == t.name) {
            Some(i) => &mut shares[i],
            None => {
                shares.push(OpShare { op: t.name, forward_ms: 0.0, backward_ms: 0.0, other_ms: 0.0, share: 0.0 });
                shares.last_mut().expect("just pushed")
            }
        };
        match t.phase {
            Phase::Forward => row.forward_ms += ms,
            Phase::Backward => row.backward_ms += ms,
            Phase::Other => row.other_ms += ms,
        }
    }
    for s in &mut shares {
        s.share = (s.forward_ms + s.backward_ms + s.other_ms) / (step_secs * 1e3);
    }
    shares.sort_by(|a, b| b.share.total_cmp(&a.share));
    shares
}

pub fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Train(args) => train(args),
        BenchCommand::Generate(args) => super::bench_generate::run(args),
        BenchCommand::Quant(args) => super::bench_quant::run(args),
        BenchCommand::Gemm(args) => super::bench_gemm::run(args),
    }
}

fn train(args: TrainArgs) -> Result<i32> {
    if args.ops && args.device != "cpu" {
        bail!("--ops times ops on the CPU; a GPU's launches return before the work is done");
    }
    // Under mpirun, every rank steps and the gradients are averaged as in
    // `train` (GPU ranks each on their own GPU, summing with NCCL); alone,
    // `comm` is a single process and nothing is exchanged.
    let comm = gpt::distributed::launch().map_err(anyhow::Error::msg)?;
    let device_name = super::train::rank_device(&*comm, &args.device);
    let comm = match super::train::with_nccl_on_gpus(comm, &device_name) {
        Ok(comm) => comm,
        Err(None) => return Ok(2),
        Err(Some(e)) => return Err(e),
    };
    let device = crate::common::device(&device_name)?;
    crate::common::set_precision(&args.precision, device)?;
    if (args.flash_attention || args.tf32) && !device.is_cuda() {
        bail!("--flash-attention and --tf32 need --device cuda");
    }
    tensor::ops::attention::set_flash(args.flash_attention);
    tensor::device::set_tf32(args.tf32);
    if !(args.bucket_mb.is_finite() && args.bucket_mb > 0.0) {
        bail!("--bucket-mb must be a positive number of MiB, got {}", args.bucket_mb);
    }
    if args.batch_size == 0 || args.context == 0 || args.steps == 0 {
        bail!("--batch-size, --context and --steps must be at least 1");
    }
    if args.batch_size.checked_mul(args.context).is_none_or(|n| n > MAX_TOKENS) {
        bail!("--batch-size × --context must be at most {MAX_TOKENS} tokens");
    }
    args.warmup.checked_add(args.steps).context("--warmup + --steps is too large")?;
    let config = args.shape.config(args.context)?;
    let ranks = comm.world_size();
    let report = if ranks > 1 {
        // MPI is called from this thread alone (it was started so): the
        // threads become rayon's global pool rather than a pool that would
        // run the steps on one of its workers.
        check_threads(args.threads)?;
        if let Some(n) = args.threads {
            rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
        }
        timed_steps(&args, &config, device, Some(&*comm))?
    } else {
        with_threads(args.threads, || timed_steps(&args, &config, device, None))?
    };
    if !comm.is_root() {
        return Ok(0);
    }
    if !device.is_cuda() && ranks == 1 {
        // Kept for `info --train-tokens`, which turns FLOPs into time.
        crate::train_speed::record(report.gflops, report.threads);
    }
    if args.json {
        print_json(&report)?;
    } else {
        let place = if device.is_cuda() {
            let mfu = report.mfu.map_or("MFU unknown (no bf16 peak on record for this GPU)".to_string(), |m| {
                format!("MFU {:.1}% of the bf16 peak", m * 100.0)
            });
            format!("on {} ({}), {mfu}", report.device, report.precision)
        } else {
            let threads = match report.threads {
                1 => "1 thread".to_string(),
                n => format!("{n} threads"),
            };
            match (report.mfu, report.peak_gflops) {
                (Some(mfu), Some(peak)) => {
                    format!("on {threads}, {:.0}% of their measured FMA peak ({peak:.0} GFLOP/s)", mfu * 100.0)
                }
                _ => format!("on {threads}"),
            }
        };
        outln!(
            "{} parameters, batch {}×{}: {:.1} ms/step, {:.0} tokens/s, {:.1} GFLOP/s {place}",
            report.params,
            args.batch_size,
            args.context,
            report.ms_per_step,
            report.tokens_per_s,
            report.gflops,
        )?;
        if ranks > 1 {
            outln!(
                "{ranks} ranks: tokens/s and GFLOP/s count all of them; {} all-reduced per rank per step, {}",
                human_bytes(report.all_reduced_bytes_per_step as u64),
                if report.overlapped {
                    format!(
                        "during backward: {:.1} ms after it, {:.1} ms of them waiting for the sums",
                        report.all_reduce_ms_per_step, report.all_reduce_wait_ms_per_step
                    )
                } else {
                    format!("after backward, in {:.1} ms", report.all_reduce_ms_per_step)
                }
            )?;
        }
        if !report.ops.is_empty() {
            outln!("{:<18} {:>11} {:>11} {:>9} {:>7}", "op", "forward ms", "backward ms", "other ms", "share")?;
            for s in &report.ops {
                let (f, b, o, share) = (s.forward_ms, s.backward_ms, s.other_ms, 100.0 * s.share);
                outln!("{:<18} {f:>11.2} {b:>11.2} {o:>9.2} {share:>6.1}%", s.op)?;
            }
            let covered: f64 = report.ops.iter().map(|s| s.share).sum();
            outln!("(the rest of the step, {:.1}%, is the graph's bookkeeping)", 100.0 * (1.0 - covered).max(0.0))?;
        }
    }
    Ok(0)
}

/// Warm-up and timed steps of `args`' model on random tokens; with `comm`
/// (a data-parallel run) each step averages the gradients over the ranks.
fn timed_steps(
    args: &TrainArgs,
    config: &GPTConfig,
    device: tensor::Device,
    comm: Option<&dyn gpt::distributed::Communicator>,
) -> Result<TrainReport> {
    let ranks = comm.map_or(1, |c| c.world_size());
    let mut gen = Generator::seed(0);
    let mut model = GPTModel::new(config.clone(), &mut gen);
    model.train();
    model.to_device(device)?;
    let mut opt = AdamW::with_options(model.parameters(), 1e-4, (0.9, 0.95), 1e-8, 0.1);
    if let Some(comm) = comm {
        gpt::distributed::broadcast_parameters(comm, opt.params());
        // Each rank its own batches.
        gen = Generator::seed(1 + comm.rank() as u64);
    }
    let (b, t) = (args.batch_size, args.context);
    let overlapped = comm.is_some_and(|c| !args.no_overlap && c.sums_in_background() && !c.reduces_on_device());
    let bucket_bytes = (args.bucket_mb * (1 << 20) as f64) as usize;
    let mut times = Vec::new();
    let (mut exchange_times, mut wait_times, mut exchanged) = (Vec::new(), Vec::new(), 0);
    for i in 0..args.warmup + args.steps {
        let x = random_ids(&mut gen, config.vocab_size, b, t);
        let y = random_ids(&mut gen, config.vocab_size, b, t);
        let profiling = args.ops && i >= args.warmup;
        if profiling && i == args.warmup {
            autograd::profile::start();
        }
        let start = Instant::now();
        opt.zero_grad();
        autograd::profile::mark();
        let loss = cross_entropy(&model.forward(&x), &y);
        match comm {
            Some(comm) if overlapped => {
                let exchange =
                    gpt::distributed::backward_averaging_gradients_in(comm, opt.params(), &loss, bucket_bytes);
                exchanged = exchange.exchanged_bytes;
                if i >= args.warmup {
                    exchange_times.push(exchange.after_backward.as_secs_f64());
                    wait_times.push(exchange.wait.as_secs_f64());
                }
            }
            Some(comm) => {
                loss.backward();
                let exchanging = Instant::now();
                exchanged = gpt::distributed::all_reduce_mean_gradients_in(comm, opt.params(), bucket_bytes);
                if i >= args.warmup {
                    // Not overlapped, all of the exchange is waited for.
                    let took = exchanging.elapsed().as_secs_f64();
                    exchange_times.push(took);
                    wait_times.push(took);
                }
            }
            None => loss.backward(),
        }
        let stepping = Instant::now();
        opt.step();
        if profiling {
            autograd::profile::record("AdamW step", autograd::profile::Phase::Other, stepping.elapsed());
        }
        device.synchronize()?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let ops = if args.ops {
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        op_shares(&autograd::profile::stop(), args.steps, mean)
    } else {
        Vec::new()
    };
    let secs = median(times);
    let n = model.num_parameters();
    let tokens = (b * t * ranks) as f64;
    let flops = tokens * config.train_flops_per_token(t);
    let name = device.name()?;
    // The CPU's peak is measured on the same threads, after the steps.
    let cpu_peak = if device.is_cuda() { None } else { tensor::device::cpu_peak_flops() };
    let peak = if device.is_cuda() { bf16_peak_flops(&name) } else { cpu_peak };
    // Every rank ran on its own threads: N times the peak.
    let mfu = peak.map(|peak| flops / secs / (peak * ranks as f64));
    Ok(TrainReport {
        ms_per_step: secs * 1e3,
        tokens_per_s: tokens / secs,
        ranks,
        all_reduced_bytes_per_step: exchanged,
        overlapped,
        all_reduce_ms_per_step: if exchange_times.is_empty() { 0.0 } else { median(exchange_times) * 1e3 },
        all_reduce_wait_ms_per_step: if wait_times.is_empty() { 0.0 } else { median(wait_times) * 1e3 },
        parameter_tensors: opt.params().len(),
        gflops: flops / secs / 1e9,
        params: n,
        threads: rayon::current_num_threads(),
        device: name,
        precision: args.precision.clone(),
        mfu,
        peak_gflops: cpu_peak.map(|peak| peak / 1e9),
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_peaks_by_gpu_name() {
        assert_eq!(bf16_peak_flops("NVIDIA H100 80GB HBM3"), Some(989.4e12));
        assert_eq!(bf16_peak_flops("NVIDIA H100 PCIe"), Some(756.0e12));
        assert_eq!(bf16_peak_flops("NVIDIA H200"), Some(989.4e12));
        assert_eq!(bf16_peak_flops("NVIDIA A100-SXM4-80GB"), Some(312.0e12));
        assert_eq!(bf16_peak_flops("NVIDIA L4"), Some(121.0e12));
        assert_eq!(bf16_peak_flops("Some future GPU"), None);
    }
}
