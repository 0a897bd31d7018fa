//! `sluice`: the one user-facing binary. Each subcommand lives in `cmd/` and only turns
//! command-line input into calls on the library crates.

mod cmd;

use clap::{Parser, Subcommand};

/// Sluice: a serverless runtime for GPU functions and GPU microservice pipelines.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a trace through the scheduling policies on a simulated device model.
    Sim(cmd::sim::SimArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => cmd::sim::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping causes whose text the message already holds.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
