//! Setting up the process's logger: `env_logger` filtered by `RUST_LOG` (default `info`),
//! writing text lines or JSON objects, with lines about clients rate-limited.

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

/// Installs the logger for the whole process; call it once, before anything logs. Lines
/// about clients are written at most `client_rate` a second (see `log_rate`; 0: no limit).
pub fn init_logger(format: LogFormat, client_rate: u32) {
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
    let logger = logger.build();
    let level = logger.filter();
    super::log_rate::install(
        super::log_rate::RateLimited::new(logger, client_rate),
        level,
    );
}
