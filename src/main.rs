//! The `autional` binary: parses the command line and hands over to `cli`.
//!
//! Allocator: mimalloc. Under a sustained refresh load glibc's malloc let the process's
//! anonymous memory creep up (≈ 0.25 MiB/min at 7,000 refreshes/s, fragmentation across the
//! request and writer threads' arenas); with mimalloc it stays flat (`bench/RESULTS.md`, Memory).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    autional::cli::main()
}
