//! `rollcall plan FLEET`: waves, makespan, lower bound and the risk report.

use super::{load, print_json};
use rollcall_core::plan::{PlanOptions, Severity, plan_with};
use rollcall_core::{audit::audit, report};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status of `plan --strict` when a host cannot be scheduled or misses its deadline.
const EXIT_STRICT: u8 = 3;
/// Exit status when the planner's output breaks a rule (a bug: the plan is not printed).
const EXIT_INTERNAL: u8 = 70;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The fleet file (TOML).
    fleet: PathBuf,
    /// Print the plan as JSON (schema rollcall.plan/v1, see docs/plan-schema.md).
    #[arg(long)]
    json: bool,
    /// List every wave instead of the first few per region.
    #[arg(long)]
    all_waves: bool,
    /// Also write the timeline (Gantt by region, cluster and host, with the risk report)
    /// as one self-contained HTML page to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Exit with status 3 if any host cannot be scheduled or misses its deadline.
    #[arg(long)]
    strict: bool,
    /// Improvement effort after list scheduling: 0 = none; each unit allows up to 200
    /// more passes in perturbed orders and 5,000 host placements (docs/planner.md).
    /// Default: the fleet's `[maintenance] effort`, else 1. `run` and `simulate` use the
    /// fleet's: set it there to run the plan shown here.
    #[arg(long)]
    effort: Option<u32>,
}

impl Args {
    pub fn exec(self) -> miette::Result<ExitCode> {
        let f = load(&self.fleet)?;
        let opts = match self.effort {
            Some(effort) => PlanOptions { effort },
            None => PlanOptions::of(&f),
        };
        let p = plan_with(&f, opts);
        let violations = audit(&f, &p);
        if !violations.is_empty() {
            // never print a plan that breaks a rule
            for v in &violations {
                eprintln!("internal error: plan violates: {v}");
            }
            return Ok(ExitCode::from(EXIT_INTERNAL));
        }
        if let Some(path) = &self.html {
            write_html(path, &f, &p)?;
        }
        if self.json {
            print_json(&report::plan_doc(&f, &p))?;
        } else {
            let opts = report::TextOptions {
                all_waves: self.all_waves,
            };
            print!("{}", report::render_text(&f, &p, opts));
        }
        let bad = p.risks.iter().any(|r| r.severity != Severity::Warning);
        Ok(match self.strict && bad {
            true => ExitCode::from(EXIT_STRICT),
            false => ExitCode::SUCCESS,
        })
    }
}

/// Write the timeline page for plan `p` to `path`.
fn write_html(
    path: &std::path::Path,
    f: &rollcall_core::Fleet,
    p: &rollcall_core::plan::Plan,
) -> miette::Result<()> {
    use rollcall_web::timeline::{Mode, render_page, timeline_data};
    let page = render_page(&timeline_data(f, p), Mode::Export);
    std::fs::write(path, &page)
        .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {} ({} bytes)", path.display(), page.len());
    Ok(())
}
