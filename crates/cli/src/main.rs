//! The `modicl` command line.

mod args;
mod bench_cmd;
mod data_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
    match cli.command {
        args::Command::Data(d) => match d.command {
            args::DataCommand::Show(a) => data_cmd::show(&a),
            args::DataCommand::Export(a) => data_cmd::export(&a),
        },
        args::Command::Bench(b) => bench_cmd::bench(&b),
        args::Command::Config(c) => match c.command {
            args::ConfigCommand::Show(a) => {
                print!("{}", a.resolve()?.to_toml());
                Ok(())
            }
            args::ConfigCommand::Keys => {
                data_cmd::print_keys();
                Ok(())
            }
        },
    }
}

/// 2 for bad input (a value, a key, a file the user named), 1 for anything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<modicl_config::ConfigError>().is_some() {
            return 2;
        }
        if let Some(d) = cause.downcast_ref::<modicl_data::DataError>() {
            return if d.is_bad_input() { 2 } else { 1 };
        }
    }
    1
}
