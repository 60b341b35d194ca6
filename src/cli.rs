//! The command line: the flags, the `completions` and `man` subcommands generated from the
//! same definitions, and turning every mistake into one line on stderr.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::Config;
use crate::observe::logger::{LogFormat, init_logger};
use crate::server::{Listening, run};

/// A WebSocket echo and test server: connect with ws://HOST:PORT, or open http://HOST:PORT/
/// in a browser for the bundled client page.
#[derive(Parser)]
#[command(name = "wsecho", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(flatten)]
    listening: Listening,

    /// Log lines as `text`, or `json`: one object per line with `ts`, `level`, `target`,
    /// `msg` and `peer`, `room`, `path`, `code` where they apply. `RUST_LOG` sets the level.
    #[arg(long, help_heading = "Observability", value_enum, default_value_t)]
    log_format: LogFormat,

    /// Lines a second the log writes about clients at most (connects, joins, leaves,
    /// refusals, page requests), after a burst of ten seconds' worth; the lines left out are
    /// counted in one `WARN` line a second. 0: no limit.
    #[arg(
        long,
        help_heading = "Observability",
        value_name = "LINES",
        default_value_t = 100
    )]
    client_log_rate: u32,

    #[command(flatten)]
    config: Config,

    #[command(subcommand)]
    command: Option<Command>,
}

/// What the binary can do besides serving.
#[derive(Subcommand)]
enum Command {
    /// Print a completion script for SHELL to stdout, e.g. `wsecho completions bash >
    /// ~/.local/share/bash-completion/completions/wsecho`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `wsecho man > wsecho.1 && man ./wsecho.1`.
    Man,
}

/// Runs the binary: parses the command line, then serves (or prints what a subcommand asks
/// for). Every error before serving is one line on stderr, `wsecho: ...`, naming the flag
/// or variable and what it accepts.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version: clap prints them to stdout.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("wsecho: {}", one_line(&error.to_string()));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "wsecho", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Man) => {
            let mut page = Vec::new();
            let rendered = clap_mangen::Man::new(Cli::command()).render(&mut page);
            if rendered
                .and_then(|()| std::io::stdout().write_all(&page))
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            return ExitCode::SUCCESS;
        }
        None => {}
    }
    if let Err(error) = cli.config.check() {
        eprintln!("wsecho: {error}");
        return ExitCode::FAILURE;
    }
    crate::limits::budget::return_large_buffers_to_the_system();
    init_logger(cli.log_format, cli.client_log_rate);
    match run(&cli.listening, cli.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wsecho: {error}");
            ExitCode::FAILURE
        }
    }
}

/// clap's error as one line: what is wrong and what would be accepted (`[possible values:
/// ...]`, a `tip:`), without the `error: ` label and the usage that follows.
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .filter(|line| !line.is_empty())
        .collect();
    let mut joined = String::new();
    for part in parts {
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(part);
    }
    let joined = joined.strip_prefix("error: ").unwrap_or(&joined);
    format!("{joined} (see wsecho --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_clap_error_becomes_its_first_line() {
        assert_eq!(
            one_line(
                "error: invalid value 'x' for '--port <PORT>': bad\n\nFor more, try '--help'.\n"
            ),
            "invalid value 'x' for '--port <PORT>': bad (see wsecho --help)"
        );
        assert_eq!(
            one_line(
                "error: invalid value 'shout' for '--mode <MODE>'\n  [possible values: echo, raw]\n\n\
                 Usage: wsecho [OPTIONS]\n"
            ),
            "invalid value 'shout' for '--mode <MODE>'; [possible values: echo, raw] (see wsecho --help)"
        );
    }
}
