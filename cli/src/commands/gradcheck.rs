//! `scratchgpt gradcheck`: the whole gradient-check suite, as a table or
//! JSON. Exit code 1 when any op fails.

use autograd::gradcheck::suite::{cases, Sizes};
use serde::Serialize;
use tensor::Generator;

use crate::common::outln;

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Seed for the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only ops whose name contains this text.
    #[arg(long)]
    filter: Option<String>,
}

#[derive(Serialize)]
struct Row {
    op: String,
    shapes: String,
    max_abs_err: f64,
    max_rel_err: f64,
    pass: bool,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let rows: Vec<Row> = cases(Sizes::default(), &mut Generator::seed(args.seed))
        .into_iter()
        .filter(|c| args.filter.as_deref().is_none_or(|f| c.op.contains(f)))
        .map(|c| {
            let r = c.check();
            Row { op: c.op, shapes: c.shapes, max_abs_err: r.max_abs_err, max_rel_err: r.max_rel_err, pass: r.pass }
        })
        .collect();
    if rows.is_empty() {
        anyhow::bail!("no op matches --filter {:?}", args.filter.unwrap_or_default());
    }
    let failed = rows.iter().filter(|r| !r.pass).count();
    if args.json {
        #[derive(Serialize)]
        struct Output<'a> {
            ops: &'a [Row],
        }
        outln!("{}", serde_json::to_string(&Output { ops: &rows })?)?;
    } else {
        let w_op = rows.iter().map(|r| r.op.len()).max().unwrap_or(2).max(2);
        let w_sh = rows.iter().map(|r| r.shapes.len()).max().unwrap_or(6).max(6);
        outln!("{:<w_op$}  {:<w_sh$}  {:>11}  {:>11}  result", "op", "shapes", "max abs err", "max rel err")?;
        for r in &rows {
            let verdict = if r.pass { "pass" } else { "FAIL" };
            outln!(
                "{:<w_op$}  {:<w_sh$}  {:>11.3e}  {:>11.3e}  {verdict}",
                r.op,
                r.shapes,
                r.max_abs_err,
                r.max_rel_err
            )?;
        }
        outln!(
            "{} checks, {} passed, {} failed (f64, eps 1e-6, atol 1e-5, rtol 1e-3)",
            rows.len(),
            rows.len() - failed,
            failed
        )?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
