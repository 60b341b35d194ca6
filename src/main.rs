//! The `wsecho` command: parse flags, set up logging, bind, and serve until SIGINT/SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use log::info;

/// A WebSocket echo and test server: connect with ws://HOST:PORT, or open http://HOST:PORT/
/// in a browser for the bundled client page.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Address or name to listen on (every address it resolves to); `0.0.0.0` or `::` to
    /// accept clients from other machines.
    #[arg(long, help_heading = "Listening", default_value = "localhost")]
    host: String,

    /// Port to listen on; 0 picks a free one (the log says which).
    #[arg(long, help_heading = "Listening", env = "PORT", default_value_t = 8080)]
    port: u16,

    /// Worker threads, each serving its share of the connections in turn; 1 runs everything
    /// on one thread. Default: one per CPU this process may run on.
    #[arg(
        long,
        help_heading = "Listening",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    threads: Option<u16>,

    /// Log lines as `text`, or `json`: one object per line with `ts`, `level`, `target`,
    /// `msg` and `peer`, `room`, `path`, `code` where they apply. `RUST_LOG` sets the level.
    #[arg(long, help_heading = "Observability", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(flatten)]
    config: wsecho::Config,
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = cli.config.check() {
        eprintln!("wsecho: {error}");
        return ExitCode::FAILURE;
    }
    wsecho::return_large_buffers_to_the_system();
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if cli.log_format == LogFormat::Json {
        logger.format(|out, record| {
            let timestamp = out.timestamp_micros().to_string();
            writeln!(out, "{}", wsecho::json_log_line(record, &timestamp))
        });
    }
    logger.init();

    let threads = cli
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    // The runtime that accepts is worker 0; see `Workers` for why each worker is a
    // single-threaded runtime.
    let runtime = wsecho::Workers::runtime();
    let (runtime, workers) =
        match runtime.and_then(|runtime| Ok((runtime, wsecho::Workers::start(threads)?))) {
            Ok(started) => started,
            Err(error) => {
                eprintln!("wsecho: cannot start the runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
    if let Err(error) = wsecho::raise_open_files_limit(cli.config.max_connections) {
        log::warn!("cannot read the open-files limit: {error}");
    }
    // Before anything listens: a bad certificate or key is a start-up error.
    let tls = match wsecho::Tls::load(&cli.config, &cli.host) {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("wsecho: {error}");
            return ExitCode::FAILURE;
        }
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    runtime.block_on(async {
        let listeners = match wsecho::bind(&cli.host, cli.port).await {
            Ok(listeners) => listeners,
            Err(error) => {
                eprintln!("wsecho: {error}");
                return ExitCode::FAILURE;
            }
        };
        for listener in &listeners {
            if let Ok(address) = listener.local_addr() {
                info!("listening on {scheme}://{address}");
            }
        }
        info!("serving on {} worker thread(s)", workers.count());
        if let Some(tls) = &tls {
            tokio::spawn(wsecho::reload_on_hangup(tls.clone(), cli.config.clone()));
        }
        let workers = std::sync::Arc::new(workers);
        wsecho::serve_on(workers, listeners, cli.config, tls, wsecho::terminated()).await;
        ExitCode::SUCCESS
    })
}
