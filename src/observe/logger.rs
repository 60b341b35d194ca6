//! Setting up the process's logger: `env_logger` filtered by `RUST_LOG` (default `info`),
//! writing text lines or JSON objects.

use std::io::Write;

/// How log lines are written (`--log-format`): env_logger's text lines, or one JSON object
/// per line (see `json_log`). The variants carry no doc comments of their own, which clap
/// would print as a list under the flag's one-line help.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the logger for the whole process; call it once, before anything logs.
pub fn init_logger(format: LogFormat) {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        logger.format(|out, record| {
            let timestamp = out.timestamp_micros().to_string();
            writeln!(
                out,
                "{}",
                super::json_log::json_log_line(record, &timestamp)
            )
        });
    }
    logger.init();
}
