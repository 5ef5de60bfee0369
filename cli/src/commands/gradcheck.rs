//! `scratchgpt gradcheck`: the gradient checks, as a table or JSON. Exit
//! code 1 when any case fails, 2 on a bad argument.
//!
//! Two tiers (`--tier`, both by default):
//! - exact: every differentiable op in f64 at sizes of five or less,
//!   each input element's gradient against central finite differences
//!   (`autograd::gradcheck::suite`);
//! - kernel: the f32 kernels training runs, at realistic sizes, forward
//!   and vector–Jacobian product against independent f64 references, each
//!   within a bound derived from f32 rounding, plus a fast finite-difference
//!   check of the f64 backward in one random direction (`crate::kernel_tier`).

use std::collections::BTreeSet;

use anyhow::bail;
use autograd::gradcheck::suite;
use autograd::GradcheckOptions;
use serde::Serialize;
use tensor::Generator;

use crate::common::outln;
use crate::kernel_tier::{self, KernelSizes};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    /// Every op in f64 at tiny sizes against finite differences.
    Exact,
    /// The f32 kernels at realistic sizes against f64 references.
    Kernel,
    /// Both.
    All,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which checks to run.
    #[arg(long, value_enum, default_value_t = Tier::All)]
    tier: Tier,
    /// Only the cases of this op, by its exact autograd name (`max` does
    /// not select `maximum`).
    #[arg(long)]
    op: Option<String>,
    /// Only cases whose "op variant" text contains this (a substring).
    #[arg(long)]
    filter: Option<String>,
    /// Seed for the random inputs and cotangents (printed with the results).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    tier: &'static str,
    op: String,
    variant: String,
    shapes: String,
    dtype: &'static str,
    max_abs_err: f64,
    max_rel_err: f64,
    /// The tolerance as a formula (kernel) or atol/rtol (exact).
    tolerance: String,
    /// The worst error over what the tolerance allowed there: pass at ≤ 1.
    err_over_tol: f64,
    /// Kernel tier: the relative error of the fast finite-difference check.
    #[serde(skip_serializing_if = "Option::is_none")]
    fd_rel_err: Option<f64>,
    pass: bool,
}

fn selected(args: &Args, op: &str, variant: &str) -> bool {
    args.op.as_deref().is_none_or(|o| o == op)
        && args.filter.as_deref().is_none_or(|f| format!("{op} {variant}").contains(f))
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let exact = suite::cases(suite::Sizes::default(), &mut Generator::seed(args.seed));
    let kernel = kernel_tier::cases(KernelSizes::full(), &mut Generator::seed(args.seed));
    let (run_exact, run_kernel) = (args.tier != Tier::Kernel, args.tier != Tier::Exact);

    if let Some(op) = &args.op {
        let exact_ops: BTreeSet<String> = exact.iter().map(|c| c.op.clone()).collect();
        let kernel_ops: BTreeSet<String> = kernel.iter().map(|c| c.op.clone()).collect();
        let in_tier = (run_exact && exact_ops.contains(op)) || (run_kernel && kernel_ops.contains(op));
        if !in_tier {
            let known: BTreeSet<&String> = exact_ops.iter().chain(&kernel_ops).collect();
            let known = known.into_iter().map(String::as_str).collect::<Vec<_>>().join(", ");
            if exact_ops.contains(op) || kernel_ops.contains(op) {
                bail!("--op {op} has no case in the chosen --tier; ops: {known}");
            }
            bail!("unknown --op {op:?}; known ops: {known}");
        }
    }

    let mut rows = Vec::new();
    if run_exact {
        let opts = GradcheckOptions::default();
        for case in exact {
            let (op, variant) = (case.op.clone(), case.variant.clone());
            if !selected(&args, &op, &variant) {
                continue;
            }
            let r = case.check();
            let err_over_tol = r.worst.map_or(0.0, |(_, _, a, n)| (a - n).abs() / (opts.atol + opts.rtol * n.abs()));
            rows.push(Row {
                tier: "exact",
                op,
                variant,
                shapes: case.shapes,
                dtype: "f64",
                max_abs_err: r.max_abs_err,
                max_rel_err: r.max_rel_err,
                tolerance: format!("atol {:e} + rtol {:e}·|numeric|", opts.atol, opts.rtol),
                err_over_tol,
                fd_rel_err: None,
                pass: r.pass,
            });
        }
    }
    let mut formulas: Vec<(String, String)> = Vec::new();
    if run_kernel {
        for case in &kernel {
            if !selected(&args, &case.op, &case.variant) {
                continue;
            }
            let r = case.check(args.seed);
            let tolerance = format!("{} (c = {:.1})", case.bound.formula, case.bound.c);
            if !formulas.iter().any(|(op, f)| *op == case.op && *f == tolerance) {
                formulas.push((case.op.clone(), tolerance.clone()));
            }
            rows.push(Row {
                tier: "kernel",
                op: case.op.clone(),
                variant: case.variant.clone(),
                shapes: case.shapes.clone(),
                dtype: "f32",
                max_abs_err: r.max_abs_err,
                max_rel_err: r.max_rel_err,
                tolerance,
                err_over_tol: r.worst_ratio,
                fd_rel_err: Some(r.fd.max_rel_err),
                pass: r.pass,
            });
        }
    }
    if rows.is_empty() {
        bail!("no case matches --filter {:?}", args.filter.unwrap_or_default());
    }

    let failed = rows.iter().filter(|r| !r.pass).count();
    if args.json {
        #[derive(Serialize)]
        struct Output<'a> {
            seed: u64,
            checks: usize,
            failed: usize,
            cases: &'a [Row],
        }
        outln!("{}", serde_json::to_string(&Output { seed: args.seed, checks: rows.len(), failed, cases: &rows })?)?;
    } else {
        print_table(&rows, &formulas, args.seed)?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn print_table(rows: &[Row], formulas: &[(String, String)], seed: u64) -> anyhow::Result<()> {
    outln!("gradcheck, seed {seed}")?;
    let w_op = rows.iter().map(|r| r.op.len()).max().unwrap_or(2).max(2);
    let w_var = rows.iter().map(|r| r.variant.chars().count()).max().unwrap_or(7).max(7);
    let w_sh = rows.iter().map(|r| r.shapes.len()).max().unwrap_or(6).max(6);
    outln!(
        "{:<6}  {:<w_op$}  {:<w_var$}  {:<w_sh$}  dtype  {:>11}  {:>11}  {:>10}  result",
        "tier",
        "op",
        "variant",
        "shapes",
        "max abs err",
        "max rel err",
        "err/tol"
    )?;
    for r in rows {
        let verdict = if r.pass { "pass" } else { "FAIL" };
        let variant = format!("{}{}", r.variant, " ".repeat(w_var - r.variant.chars().count()));
        outln!(
            "{:<6}  {:<w_op$}  {variant}  {:<w_sh$}  {:<5}  {:>11.3e}  {:>11.3e}  {:>10.3}  {verdict}",
            r.tier,
            r.op,
            r.shapes,
            r.dtype,
            r.max_abs_err,
            r.max_rel_err,
            r.err_over_tol
        )?;
    }
    let failed = rows.iter().filter(|r| !r.pass).count();
    outln!("{} checks, {} passed, {} failed", rows.len(), rows.len() - failed, failed)?;
    if rows.iter().any(|r| r.tier == "exact") {
        outln!(
            "exact: f64, each element against central differences (eps 1e-6), |err| ≤ atol 1e-5 + rtol 1e-3·|numeric|"
        )?;
    }
    if !formulas.is_empty() {
        outln!(
            "kernel: f32 forward and input gradients (random cotangent v) against f64 references, \
             |err| ≤ c·u·scale with u = 2^-24; max rel err is over the tensor's largest value; \
             the f64 backward also passes a one-direction finite-difference check"
        )?;
        for (op, formula) in formulas {
            outln!("  {op}: {formula}")?;
        }
    }
    Ok(())
}
