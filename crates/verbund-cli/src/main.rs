//! The `verbund` binary: server, demo, importers and the API client in one command.

mod agent;
mod cli;
mod client;
mod demo;
mod import;
mod preflight;
mod serve;
mod simulate;

use clap::Parser;

// Rendering the desired state of a whole federation allocates millions of small
// objects; mimalloc does that markedly faster than the system allocator (measured in
// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
