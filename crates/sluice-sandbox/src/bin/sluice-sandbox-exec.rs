//! The sandbox helper on its own (`sluice-sandbox-exec __sandbox-init`): the init of unshare
//! sandboxes, for this crate's tests and for hosts that run the launcher from another program.
//! The `sluice` binary serves the same mode itself.

fn main() {
    sluice_sandbox::helper_main();
    eprintln!(
        "usage: sluice-sandbox-exec {} (started by the sandbox launcher)",
        sluice_sandbox::INIT_ARG
    );
    std::process::exit(2);
}
