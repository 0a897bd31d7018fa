//! The seccomp filter of every isolated sandbox, generated with `seccompiler`: a deny list
//! (EPERM) of the system calls a function has no business making — debugging other processes,
//! the kernel keyring, every mount call and the new mount API, namespaces (`setns`, `unshare`,
//! `clone` with namespace flags; `clone3`, whose flags a filter cannot read, answers ENOSYS so
//! libc falls back to `clone`), BPF, perf, kexec, modules, swap, accounting, the clocks,
//! file handles, port I/O, the kernel log, io_uring, `pidfd_getfd`, `kcmp`, personality flags
//! beyond plain Linux, terminal input injection — and everything else allowed (what Python,
//! ONNX Runtime, PyTorch and the CUDA driver use: `ioctl`, `mmap`, `futex`, threads…). Calls of
//! another architecture kill the process; on x86-64 the x32 ABI is refused with ENOSYS.

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Why no filter could be made.
#[derive(Debug, thiserror::Error)]
#[error("seccomp filter: {0}")]
pub struct SeccompError(String);

/// Namespace flags `clone` may not carry (`CLONE_NEWTIME` shares bits with the exit signal in
/// `clone`, and is caught through `unshare`).
pub(crate) const CLONE_NS_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// `personality` values allowed: plain Linux, and the query.
pub(crate) const PERSONALITY_OK: [u64; 2] = [0, 0xffff_ffff];

/// System calls refused outright with EPERM, by name (for OCI profiles) and number.
pub(crate) fn denied() -> Vec<(&'static str, i64)> {
    let mut v = vec![
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("process_madvise", libc::SYS_process_madvise),
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("open_tree", libc::SYS_open_tree),
        ("move_mount", libc::SYS_move_mount),
        ("fsopen", libc::SYS_fsopen),
        ("fsmount", libc::SYS_fsmount),
        ("fsconfig", libc::SYS_fsconfig),
        ("fspick", libc::SYS_fspick),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("reboot", libc::SYS_reboot),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("acct", libc::SYS_acct),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("adjtimex", libc::SYS_adjtimex),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("setns", libc::SYS_setns),
        ("unshare", libc::SYS_unshare),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("syslog", libc::SYS_syslog),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("kcmp", libc::SYS_kcmp),
        ("quotactl", libc::SYS_quotactl),
        ("quotactl_fd", libc::SYS_quotactl_fd),
        ("sethostname", libc::SYS_sethostname),
        ("setdomainname", libc::SYS_setdomainname),
        ("fanotify_init", libc::SYS_fanotify_init),
        ("vhangup", libc::SYS_vhangup),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        ("iopl", libc::SYS_iopl),
        ("ioperm", libc::SYS_ioperm),
        ("modify_ldt", libc::SYS_modify_ldt),
        ("uselib", libc::SYS_uselib),
        ("ustat", libc::SYS_ustat),
        ("sysfs", libc::SYS_sysfs),
        ("_sysctl", libc::SYS__sysctl),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ]);
    v
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| SeccompError(e.to_string()))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conds).map_err(|e| SeccompError(e.to_string()))
}

/// The architecture this binary runs on, as seccompiler names it; other ones are refused.
fn native_arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError(format!("no filter for {}", std::env::consts::ARCH)))
}

/// The filter's rules: syscall number → conditions under which it is refused.
fn rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|(_, n)| (n, Vec::new())).collect();
    let ns = CLONE_NS_FLAGS
        .iter()
        .map(|&f| rule(vec![cond(0, SeccompCmpOp::MaskedEq(f), f)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, ns);
    let odd = PERSONALITY_OK
        .iter()
        .map(|&p| cond(0, SeccompCmpOp::Ne, p))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_personality, vec![rule(odd)?]);
    // The request numbers' type differs between libcs; on Linux they fit 32 bits.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let tty: [u64; 2] = [libc::TIOCSTI as u64, libc::TIOCLINUX as u64];
    let tty = tty
        .iter()
        .map(|&req| rule(vec![cond(1, SeccompCmpOp::MaskedEq(0xffff_ffff), req)?]))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_ioctl, tty);
    Ok(rules)
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The compiled filter (classic BPF), ready for `seccomp(2)` or bubblewrap's `--seccomp`.
pub fn program() -> Result<BpfProgram, SeccompError> {
    let arch = native_arch()?;
    let filter = SeccompFilter::new(
        rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| SeccompError(e.to_string()))?;
    let mut prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError(e.to_string()))?;
    // Before seccompiler's rules (after its architecture check, three instructions that no
    // jump crosses): `clone3` answers ENOSYS, and on x86-64 so does the whole x32 ABI, whose
    // call numbers a list of x86-64 numbers would miss.
    let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let mut prefix = vec![
        stmt(BPF_LD_W_ABS, 0),
        jump(BPF_JMP_JEQ_K, libc::SYS_clone3 as u32, 0, 1),
        stmt(BPF_RET_K, enosys),
    ];
    if arch == TargetArch::x86_64 {
        prefix.push(jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
        prefix.push(stmt(BPF_RET_K, enosys));
    }
    let at = 3.min(prog.len());
    prog.splice(at..at, prefix);
    Ok(prog)
}

/// The program as the raw `struct sock_filter` array bubblewrap reads from `--seccomp FD`.
pub fn to_bytes(prog: &[sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * 8);
    for f in prog {
        out.extend_from_slice(&f.code.to_ne_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_ne_bytes());
    }
    out
}

/// Installs the filter on the calling thread (which must have set `no_new_privs` or hold
/// `CAP_SYS_ADMIN`); every thread and process it starts afterwards inherits it.
pub fn apply(prog: &[sock_filter]) -> Result<(), SeccompError> {
    seccompiler::apply_filter(prog).map_err(|e| SeccompError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_serialises_to_eight_bytes_an_instruction() {
        let prog = program().expect("filter");
        assert!(prog.len() > denied().len(), "{}", prog.len());
        assert!(prog.len() < 4096, "within BPF_MAXINSNS");
        assert_eq!(to_bytes(&prog).len(), prog.len() * 8);
        // seccompiler's architecture check comes first, then the ENOSYS prefix.
        assert_eq!(prog[3], stmt(BPF_LD_W_ABS, 0));
        assert_eq!(prog[4].k, libc::SYS_clone3 as u32);
    }

    /// In a child process (so the test runner keeps its freedom): with the filter on, the
    /// denied calls fail with EPERM, clone3 with ENOSYS, and ordinary work still runs.
    #[test]
    fn denied_calls_fail_and_threads_still_start() {
        let prog = program().expect("filter");
        // SAFETY: fork in a test; the child only makes raw system calls and exits with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let code = child_checks(&prog);
            // SAFETY: _exit never returns and is async-signal-safe.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "failed check number");
    }

    fn child_checks(prog: &[sock_filter]) -> i32 {
        // SAFETY: prctl with constant arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 10;
        }
        if apply(prog).is_err() {
            return 11;
        }
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: each call below passes constant or null arguments and only reads errno.
        unsafe {
            if libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) != -1
                || errno() != libc::EPERM
            {
                return 1;
            }
            if libc::unshare(libc::CLONE_NEWUSER) != -1 || errno() != libc::EPERM {
                return 2;
            }
            if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno() != libc::ENOSYS {
                return 3;
            }
            let ns_clone = libc::CLONE_NEWUSER as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
            if libc::syscall(libc::SYS_clone, ns_clone, 0, 0, 0, 0) != -1 || errno() != libc::EPERM
            {
                return 4;
            }
            if libc::personality(0x0040_0000) != -1 || errno() != libc::EPERM {
                return 5;
            }
            if libc::personality(0xffff_ffff) == -1 {
                return 6;
            }
            #[cfg(target_arch = "x86_64")]
            if libc::syscall(X32_SYSCALL_BIT as libc::c_long | libc::SYS_getpid) != -1
                || errno() != libc::ENOSYS
            {
                return 7;
            }
        }
        match std::thread::spawn(|| 41 + 1).join() {
            Ok(42) => 0,
            _ => 8,
        }
    }
}
