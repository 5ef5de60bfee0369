//! Rotary position embedding's frequencies: which angle each position
//! turns each pair of a head vector by, with the context-extension schemes
//! (`rope_scaling`) of transformers' `modeling_rope_utils.py`.
//!
//! A head vector of `head_dim` = d values holds d/2 rotating pairs (see
//! `kernels::cpu::rope` for the pairing). Pair i turns at the inverse
//! frequency inv_freqᵢ radians per position, so at position p by
//! θ = p · inv_freqᵢ. The default, for a base `theta` (rope_theta):
//!   inv_freqᵢ = 1 / theta^(2i/d),   i = 0 .. d/2
//! from one radian per token (i = 0) down to about 1/theta. The scaling
//! types stretch that for contexts longer than the model was trained on:
//! - `Linear { factor }`: positions / factor, i.e. inv_freq / factor.
//! - `Dynamic { factor, original_max }` (NTK-aware): when the sequence is
//!   longer than `original_max`, the base grows to
//!   theta · ((factor · seq_len / original_max) − (factor − 1))^(d/(d−2)),
//!   and is left alone otherwise. (`original_max` is what transformers
//!   reads from `max_position_embeddings`. transformers keeps the largest
//!   seq_len it has seen and recomputes only on growth; here the
//!   frequencies are a function of the current seq_len alone.)
//! - `Llama3 { factor, low_freq_factor, high_freq_factor, original_max }`:
//!   by wavelength λᵢ = 2π / inv_freqᵢ: short waves (λ < original_max /
//!   high_freq_factor) are kept, long waves (λ > original_max /
//!   low_freq_factor) divided by factor, and the band between interpolated
//!   smoothly with s = (original_max / λ − low) / (high − low):
//!   inv_freq · ((1 − s) / factor + s).
//! - `LongRope { short_factor, long_factor, original_max, attention_factor }`
//!   (Phi-3): each pair's frequency divided by a factor of its own,
//!   inv_freqᵢ / short_factorᵢ while the sequence fits in `original_max`
//!   tokens and inv_freqᵢ / long_factorᵢ once it is longer; and cos and sin
//!   both multiplied by `attention_factor` (√(1 + ln s / ln original_max)
//!   for a context stretched s times), which scales every q·k score over
//!   the turned part. transformers picks the set per forward call from
//!   that call's last position + 1 (`longrope_frequency_update`), as
//!   [`RopeConfig::tables`] does from offset + len: keys already in a KV
//!   cache keep the turn they were made with, as transformers' do.
//!
//! `head_dim` here is the rotated size: with partial rotary (Phi-3's
//! `partial_rotary_factor`) the first part of each head, the tables
//! `[len, rotary/2]` then narrower than the head (see `ops::rope`).
//!
//! The frequencies and angles are computed in f64 and the tables rounded
//! once to f32: [`RopeTables`] holds cos θ and sin θ `[len, d/2]` for the
//! positions offset .. offset + len (offset = tokens already in a KV
//! cache). transformers forms inv_freq and p · inv_freq in f32, so at
//! position p its angles are off from these by up to about p · 2⁻²⁴ rad;
//! both are within f32 of the exact rotation for the positions a fixture
//! checks.

use std::f64::consts::PI;

use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// transformers' `rope_scaling` / `rope_parameters["rope_type"]`.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// `default`: no scaling.
    None,
    /// `linear`: inv_freq / factor.
    Linear { factor: f64 },
    /// `dynamic`: NTK-aware base rescaling beyond `original_max` tokens.
    Dynamic { factor: f64, original_max: usize },
    /// `llama3`: wavelength bands with smooth interpolation between.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max: usize },
    /// `longrope`: a divisor per pair (`head_dim/2` of them), the short set
    /// up to `original_max` tokens and the long set beyond, and cos and sin
    /// scaled by `attention_factor`.
    LongRope { short_factor: Vec<f64>, long_factor: Vec<f64>, original_max: usize, attention_factor: f64 },
}

/// What rotary embedding needs from a model's config.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    /// The base, `rope_theta` (10,000 for Llama 2, 500,000 for Llama 3).
    pub theta: f64,
    /// The rotated size d of one head vector: even (the head's size, or
    /// its leading part with partial rotary).
    pub head_dim: usize,
    pub scaling: RopeScaling,
}

/// cos θ and sin θ for a run of positions, f32 `[len, head_dim/2]`.
#[derive(Clone, Debug)]
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
    /// The position of row 0.
    pub offset: usize,
}

impl RopeTables {
    /// How many positions the tables cover.
    pub fn len(&self) -> usize {
        self.cos.dims()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The head size the tables rotate (twice their width).
    pub fn head_dim(&self) -> usize {
        2 * self.cos.dims()[1]
    }
    /// The same tables on `device`, to build once per forward and reuse in
    /// every layer without a copy per call.
    pub fn to_device(&self, device: Device) -> Result<RopeTables> {
        Ok(RopeTables { cos: self.cos.to_device(device)?, sin: self.sin.to_device(device)?, offset: self.offset })
    }
}

impl RopeConfig {
    /// Unscaled RoPE with base `theta`.
    pub fn new(theta: f64, head_dim: usize) -> Self {
        RopeConfig { theta, head_dim, scaling: RopeScaling::None }
    }

    /// Whether the numbers make sense, as a one-line reason when not (for a
    /// config read from a file).
    pub fn check(&self) -> std::result::Result<(), String> {
        let d = self.head_dim;
        if d == 0 || d % 2 != 0 {
            return Err(format!("rope: head_dim must be even and positive, got {d}"));
        }
        if !(self.theta.is_finite() && self.theta > 0.0) {
            return Err(format!("rope: rope_theta must be positive, got {}", self.theta));
        }
        let factor_ok = |f: f64| f.is_finite() && f > 0.0;
        match &self.scaling {
            RopeScaling::None => Ok(()),
            RopeScaling::Linear { factor } if !factor_ok(*factor) => {
                Err(format!("rope: linear scaling factor must be positive, got {factor}"))
            }
            RopeScaling::Linear { .. } => Ok(()),
            RopeScaling::Dynamic { factor, original_max } => {
                if !(factor.is_finite() && *factor >= 1.0) || *original_max == 0 || d <= 2 {
                    Err(format!(
                        "rope: dynamic scaling needs factor >= 1, original_max_position_embeddings > 0 and \
                         head_dim > 2, got factor {factor}, {original_max}, head_dim {d}"
                    ))
                } else {
                    Ok(())
                }
            }
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max } => {
                if !factor_ok(*factor) || !factor_ok(*low_freq_factor) || !(high_freq_factor > low_freq_factor) {
                    Err(format!(
                        "rope: llama3 scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0, got \
                         factor {factor}, low {low_freq_factor}, high {high_freq_factor}"
                    ))
                } else if *original_max == 0 {
                    Err("rope: llama3 scaling needs original_max_position_embeddings > 0".into())
                } else {
                    Ok(())
                }
            }
            RopeScaling::LongRope { short_factor, long_factor, original_max, attention_factor } => {
                for (name, factors) in [("short_factor", short_factor), ("long_factor", long_factor)] {
                    if factors.len() != d / 2 {
                        return Err(format!(
                            "rope: longrope {name} has {} values, the rotated size {d} needs {}",
                            factors.len(),
                            d / 2
                        ));
                    }
                    if let Some(bad) = factors.iter().find(|f| !factor_ok(**f)) {
                        return Err(format!("rope: longrope {name} values must be positive, got {bad}"));
                    }
                }
                if *original_max == 0 || !factor_ok(*attention_factor) {
                    return Err(format!(
                        "rope: longrope needs original_max_position_embeddings > 0 and a positive attention_factor, \
                         got {original_max} and {attention_factor}"
                    ));
                }
                Ok(())
            }
        }
    }

    /// What cos and sin are multiplied by: longrope's `attention_factor`,
    /// else 1.
    pub fn attention_scaling(&self) -> f64 {
        match self.scaling {
            RopeScaling::LongRope { attention_factor, .. } => attention_factor,
            _ => 1.0,
        }
    }

    /// The unscaled inverse frequencies for base `theta`: 1 / theta^(2i/d).
    fn base_inv_freq(&self, theta: f64) -> Vec<f64> {
        let d = self.head_dim as f64;
        (0..self.head_dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / d)).collect()
    }

    /// inv_freq `[head_dim/2]` for a sequence of `seq_len` tokens (only
    /// `Dynamic` looks at seq_len: the last position plus one).
    pub fn inv_freq(&self, seq_len: usize) -> Vec<f64> {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        match self.scaling {
            RopeScaling::None => self.base_inv_freq(self.theta),
            RopeScaling::Linear { factor } => self.base_inv_freq(self.theta).into_iter().map(|f| f / factor).collect(),
            RopeScaling::LongRope { ref short_factor, ref long_factor, original_max, .. } => {
                let factors = if seq_len > original_max { long_factor } else { short_factor };
                self.base_inv_freq(self.theta).into_iter().zip(factors).map(|(f, s)| f / s).collect()
            }
            RopeScaling::Dynamic { factor, original_max } => {
                let seq = seq_len.max(original_max) as f64;
                let d = self.head_dim as f64;
                let base = self.theta * ((factor * seq / original_max as f64) - (factor - 1.0)).powf(d / (d - 2.0));
                self.base_inv_freq(base)
            }
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max } => {
                let old = original_max as f64;
                let (low_freq_wavelen, high_freq_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                self.base_inv_freq(self.theta)
                    .into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * PI / f;
                        if wavelen < high_freq_wavelen {
                            f
                        } else if wavelen > low_freq_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }

    /// cos and sin of p · inv_freq for p in offset .. offset + len, times
    /// the attention scaling, on the CPU (`RopeTables::to_device` moves
    /// them). The frequencies are those of a sequence of offset + len
    /// tokens.
    pub fn tables(&self, offset: usize, len: usize) -> RopeTables {
        let inv_freq = self.inv_freq(offset + len);
        let scale = self.attention_scaling();
        let half = inv_freq.len();
        let (mut cos, mut sin) = (Vec::with_capacity(len * half), Vec::with_capacity(len * half));
        for p in offset..offset + len {
            for f in &inv_freq {
                let (s, c) = (p as f64 * f).sin_cos();
                cos.push((c * scale) as f32);
                sin.push((s * scale) as f32);
            }
        }
        RopeTables {
            cos: Tensor::from_vec(cos, [len, half]).expect("len × half values"),
            sin: Tensor::from_vec(sin, [len, half]).expect("len × half values"),
            offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_frequencies_fall_from_one_to_about_one_over_theta() {
        let f = RopeConfig::new(10000.0, 8).inv_freq(1);
        assert_eq!(f, vec![1.0, 0.1, 0.01, 0.001]);
    }

    #[test]
    fn linear_divides_and_dynamic_waits_for_long_sequences() {
        let base = RopeConfig::new(10000.0, 64);
        let linear = RopeConfig { scaling: RopeScaling::Linear { factor: 4.0 }, ..base.clone() };
        for (a, b) in linear.inv_freq(10).iter().zip(base.inv_freq(10)) {
            assert_eq!(*a, b / 4.0);
        }
        let dynamic = RopeConfig { scaling: RopeScaling::Dynamic { factor: 2.0, original_max: 128 }, ..base.clone() };
        assert_eq!(dynamic.inv_freq(100), base.inv_freq(100));
        assert_eq!(dynamic.inv_freq(128), base.inv_freq(128));
        // At 256 tokens: base · (2·256/128 − 1)^(64/62) = 10000 · 3^(32/31).
        let want = RopeConfig::new(10000.0 * 3f64.powf(64.0 / 62.0), 64).inv_freq(0);
        assert_eq!(dynamic.inv_freq(256), want);
        assert!(dynamic.inv_freq(256)[1] < base.inv_freq(256)[1]);
    }

    /// Llama 3.1's settings (factor 8, low 1, high 4, 8192 positions, theta
    /// 500,000, d = 128): waves shorter than 2048 tokens unchanged, longer
    /// than 8192 divided by 8, the band between interpolated (values from
    /// transformers' `_compute_llama3_parameters`, in f32).
    #[test]
    fn llama3_keeps_short_waves_and_stretches_long_ones() {
        let base = RopeConfig::new(500000.0, 128);
        let c = RopeConfig {
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max: 8192,
            },
            ..base.clone()
        };
        let (f, b) = (c.inv_freq(1), base.inv_freq(1));
        for i in 0..64 {
            let wavelen = 2.0 * PI / b[i];
            if wavelen < 2048.0 {
                assert_eq!(f[i], b[i]);
            } else if wavelen > 8192.0 {
                assert_eq!(f[i], b[i] / 8.0);
            } else {
                assert!(f[i] < b[i] && f[i] > b[i] / 8.0, "pair {i} interpolates");
            }
        }
        // transformers (f32): inv_freq[40] = 3.4281024e-05 (long, divided),
        // [30] = 1.3718937e-03 (wavelength 2948: interpolated), [20] =
        // 1.6560441e-02 (short, kept).
        for (i, want) in [(40, 3.428_102_4e-5), (30, 1.371_893_7e-3), (20, 1.656_044_1e-2)] {
            assert!((f[i] - want).abs() < 2e-6 * want, "inv_freq[{i}] = {:e}, transformers {want:e}", f[i]);
        }
    }

    /// Each pair divided by its own factor, short up to 4 tokens and long
    /// from 5, and the tables scaled by the attention factor.
    #[test]
    fn longrope_switches_factor_sets_past_the_original_length() {
        let base = RopeConfig::new(10000.0, 4);
        let c = RopeConfig {
            scaling: RopeScaling::LongRope {
                short_factor: vec![1.0, 2.0],
                long_factor: vec![3.0, 5.0],
                original_max: 4,
                attention_factor: 1.5,
            },
            ..base.clone()
        };
        let b = base.inv_freq(1);
        assert_eq!(c.inv_freq(4), vec![b[0], b[1] / 2.0]);
        assert_eq!(c.inv_freq(5), vec![b[0] / 3.0, b[1] / 5.0]);
        // Position 1 of a 2-token run: short; of a 5-token run: long.
        let (short, long) = (c.tables(0, 2), c.tables(0, 5));
        assert_eq!(short.cos.to_vec::<f32>()[2], (1f64.cos() * 1.5) as f32);
        assert_eq!(long.sin.to_vec::<f32>()[3], ((b[1] / 5.0).sin() * 1.5) as f32);
        let wrong = RopeConfig {
            scaling: RopeScaling::LongRope {
                short_factor: vec![1.0],
                long_factor: vec![1.0, 1.0],
                original_max: 4,
                attention_factor: 1.0,
            },
            ..base
        };
        assert!(wrong.check().unwrap_err().contains("short_factor has 1 values"));
    }

    #[test]
    fn tables_hold_the_angles_of_their_positions() {
        let c = RopeConfig::new(10000.0, 4);
        let t = c.tables(3, 2);
        assert_eq!((t.len(), t.head_dim(), t.offset), (2, 4, 3));
        let cos = t.cos.to_vec::<f32>();
        let sin = t.sin.to_vec::<f32>();
        // Row 0 is position 3: angles 3 and 0.03; row 1 is position 4.
        assert_eq!(cos[0], 3f64.cos() as f32);
        assert_eq!(sin[1], 0.03f64.sin() as f32);
        assert_eq!(cos[2], 4f64.cos() as f32);
    }

    #[test]
    fn bad_settings_are_reported_in_one_line() {
        let odd = RopeConfig::new(10000.0, 7);
        assert!(odd.check().unwrap_err().contains("even"));
        let flat = RopeConfig {
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 4.0,
                high_freq_factor: 4.0,
                original_max: 8192,
            },
            ..RopeConfig::new(10000.0, 8)
        };
        assert!(flat.check().unwrap_err().contains("high_freq_factor"));
        assert!(RopeConfig::new(-1.0, 8).check().is_err());
    }
}
