//! The `phone-agent` binary.

fn main() -> std::process::ExitCode {
    phone_agent::cli::main()
}
