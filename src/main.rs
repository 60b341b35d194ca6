//! The `wsecho` command. Everything, flag parsing included, is in the library (`cli`), where
//! the tests and the generated completions and manual page reach the same definitions.

fn main() -> std::process::ExitCode {
    wsecho::cli::main()
}
