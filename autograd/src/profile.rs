//! Where a training step's time goes, op by op: a recorder that is off
//! unless a benchmark switches it on (`scratchgpt bench train --ops`).
//!
//! Forward: an op computes its value *before* [`Var::from_op`] records it,
//! so the forward time charged to an op is the time since the previous op
//! was recorded (or since [`mark`]). The model does little between two ops,
//! and what it does (building a rotary table, a reshape's bookkeeping) is
//! charged to the op that follows it. Backward: each node's derivative is
//! timed on its own, and summing the gradients of a value that was used
//! more than once is its own line, `(gradient sums)`. A caller adds what
//! happens outside the graph with [`record`] (the optimizer step).
//!
//! Wall time per op is the op's time only where kernels finish before they
//! return, as on the CPU; a GPU's launches return at once, so there this
//! would time the launches, not the work.
//!
//! [`Var::from_op`]: crate::Var::from_op

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which pass an op's time was spent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Forward,
    Backward,
    /// Outside the graph: the optimizer step, zeroing gradients.
    Other,
}

/// The time one op took over the recording, in one phase.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    pub name: &'static str,
    pub phase: Phase,
    pub total: Duration,
    pub calls: usize,
}

struct Recorder {
    /// When the last forward op was recorded.
    last: Instant,
    times: BTreeMap<(&'static str, Phase), (Duration, usize)>,
}

impl Recorder {
    fn add(&mut self, name: &'static str, phase: Phase, elapsed: Duration) {
        let slot = self.times.entry((name, phase)).or_default();
        slot.0 += elapsed;
        slot.1 += 1;
    }
}

/// Read on every op, so the check costs one relaxed load when recording is off.
static ENABLED: AtomicBool = AtomicBool::new(false);
static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);

/// Starts a recording, dropping any earlier one.
pub fn start() {
    *RECORDER.lock().unwrap() = Some(Recorder { last: Instant::now(), times: BTreeMap::new() });
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether a recording is on.
pub fn is_recording() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Restarts the forward clock: the next op's forward time counts from now
/// (call it just before a forward pass, so that what came before is not
/// charged to its first op).
pub fn mark() {
    if let Some(rec) = RECORDER.lock().unwrap().as_mut() {
        rec.last = Instant::now();
    }
}

/// Adds `elapsed` to `name` in `phase`.
pub fn record(name: &'static str, phase: Phase, elapsed: Duration) {
    if let Some(rec) = RECORDER.lock().unwrap().as_mut() {
        rec.add(name, phase, elapsed);
    }
}

/// Charges the time since the last forward op to `name`'s forward.
pub(crate) fn forward_done(name: &'static str) {
    if let Some(rec) = RECORDER.lock().unwrap().as_mut() {
        let now = Instant::now();
        let elapsed = now - rec.last;
        rec.last = now;
        rec.add(name, Phase::Forward, elapsed);
    }
}

/// Ends the recording and returns what it saw, the longest first.
pub fn stop() -> Vec<OpTime> {
    ENABLED.store(false, Ordering::Relaxed);
    let Some(rec) = RECORDER.lock().unwrap().take() else { return Vec::new() };
    let mut times: Vec<OpTime> =
        rec.times.into_iter().map(|((name, phase), (total, calls))| OpTime { name, phase, total, calls }).collect();
    times.sort_by(|a, b| b.total.cmp(&a.total));
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Var;
    use tensor::Tensor;

    #[test]
    fn a_step_is_charged_to_its_ops_forward_and_backward() {
        let x = Var::parameter(Tensor::from_vec((0..12).map(|i| i as f32).collect(), [3, 4]).unwrap());
        start();
        mark();
        let y = x.exp().sum_all();
        y.backward();
        record("optimizer", Phase::Other, Duration::from_millis(1));
        let times = stop();
        // Other tests run ops at the same time, so counts are at least ours.
        let calls = |name, phase| times.iter().find(|t| t.name == name && t.phase == phase).map_or(0, |t| t.calls);
        for (name, phase) in [("exp", Phase::Forward), ("sum_all", Phase::Forward), ("exp", Phase::Backward)] {
            assert!(calls(name, phase) >= 1, "{name} {phase:?} not recorded: {times:?}");
        }
        assert!(calls("sum_all", Phase::Backward) >= 1 && calls("optimizer", Phase::Other) == 1, "{times:?}");
        // Off again: nothing is recorded.
        let _ = x.exp();
        assert!(!is_recording() && stop().is_empty());
    }
}
