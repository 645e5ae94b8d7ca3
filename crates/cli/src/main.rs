//! The `modicl` command line.

// The doc comments of the arguments are clap's --help text, written for a terminal: `<run>`
// and `[task]` there are literal text, not HTML or links.
#[allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]
mod args;
mod bench;
mod bench_cmd;
mod data_cmd;
mod eval_cmd;
mod html_report;
mod phase_plot;
mod probe_cmd;
mod probe_repr;
mod report;
mod sweep_cmd;
mod train_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = args::Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run(cli: args::Cli) -> anyhow::Result<()> {
    modicl_plots::also_pdf(cli.format.as_deref() == Some("pdf"));
    match cli.command {
        args::Command::Data(d) => match d.command {
            args::DataCommand::Show(a) => data_cmd::show(&a),
            args::DataCommand::Export(a) => data_cmd::export(&a),
        },
        args::Command::Train(a) => train_cmd::train(&a),
        args::Command::Eval(a) => eval_cmd::eval(&a),
        args::Command::Plot(p) => eval_cmd::plot(&p.command),
        args::Command::Sweep(s) => sweep_cmd::sweep(&s.command),
        args::Command::Bench(b) => bench_cmd::bench(&b),
        args::Command::Verify(a) => verify_cmd::verify(&a),
        args::Command::Probe(p) => probe_cmd::probe(&p.command),
        args::Command::Report(a) => html_report::report(&a),
        args::Command::Config(c) => match c.command {
            args::ConfigCommand::Show(a) => {
                print!("{}", a.resolve()?.to_toml());
                Ok(())
            }
            args::ConfigCommand::Keys => data_cmd::print_keys(),
            args::ConfigCommand::Presets => {
                for p in modicl_config::PRESETS {
                    println!("{:<10} {}", p.name, p.about);
                }
                Ok(())
            }
        },
    }
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`modicl config keys | head -1`) fails
/// and `println!` panics. Restoring the default action makes the process end quietly when
/// the reader has gone, as command-line tools do.
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid action
    // for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// 2 for bad input (a value, a key, a file the user named), 130 for a run stopped by Ctrl-C,
/// 1 for anything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<train_cmd::Interrupted>().is_some() {
            return 130;
        }
        if let Some(s) = cause.downcast_ref::<modicl_sweeps::SweepError>() {
            return if s.is_bad_input() { 2 } else { 1 };
        }
        if let Some(t) = cause.downcast_ref::<modicl_trainer::TrainError>() {
            return if t.is_bad_input() { 2 } else { 1 };
        }
        if cause.downcast_ref::<modicl_config::ConfigError>().is_some() {
            return 2;
        }
        if let Some(p) = cause.downcast_ref::<modicl_probes::ProbeError>() {
            return if p.is_bad_input() { 2 } else { 1 };
        }
        if let Some(d) = cause.downcast_ref::<modicl_data::DataError>() {
            return if d.is_bad_input() { 2 } else { 1 };
        }
        // No driver, library or GPU, a kernel that does not compile, or a backend that cannot
        // run yet: the user asked for something this machine or build cannot do.
        if cause.downcast_ref::<modicl_cuda::CudaError>().is_some() {
            return 2;
        }
    }
    1
}
