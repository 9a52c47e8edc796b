//! The `verbund` binary: server, demo, importers and the API client in one command.

mod cli;
mod client;
mod demo;
mod import;
mod serve;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    match cli::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::sentence(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
