//! The `homeward` command.

/// mimalloc recycles the megabyte-sized block buffers of the data path instead
/// of returning them to the kernel and faulting fresh pages in for the next
/// block, which cut the system time of a full sync (see ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    homeward::cli::main()
}
