//! The `wsecho` command: parse flags, set up logging, and run the server until SIGINT or
//! SIGTERM. Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;

/// A WebSocket echo and test server: connect with ws://HOST:PORT, or open http://HOST:PORT/
/// in a browser for the bundled client page.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    listening: wsecho::Listening,

    /// Log lines as `text`, or `json`: one object per line with `ts`, `level`, `target`,
    /// `msg` and `peer`, `room`, `path`, `code` where they apply. `RUST_LOG` sets the level.
    #[arg(long, help_heading = "Observability", value_enum, default_value_t)]
    log_format: wsecho::LogFormat,

    #[command(flatten)]
    config: wsecho::Config,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.config.check() {
        eprintln!("wsecho: {error}");
        return ExitCode::FAILURE;
    }
    wsecho::return_large_buffers_to_the_system();
    wsecho::init_logger(cli.log_format);
    match wsecho::run(&cli.listening, cli.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsecho: {error}");
            ExitCode::FAILURE
        }
    }
}
