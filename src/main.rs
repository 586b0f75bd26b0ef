use std::process::ExitCode;

use clap::Parser;
use slotgate::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => cli::serve().await,
        Command::Sandbox(args) => cli::sandbox(args).await,
        Command::Openapi => cli::openapi(),
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Token(args) => cli::token(args),
        Command::Discover => cli::discover().await,
        Command::Probe { url } => cli::probe(&url).await,
    }
}
