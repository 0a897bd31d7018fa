//! The isolation probe as a small Rust program, for roots without Python (a container image):
//! the checks of `tests/fixtures/probe.py` that matter there. It attempts each escape and writes
//! a JSON table attempt -> `{"escaped": bool, "detail": str}` to `probe.json` beside its socket
//! (`$SLUICE_SOCKET`'s directory), then exits. Its argument is a JSON object of targets: `secret`,
//! `store`, `other_socket_dir`, `other_socket`, `port`, `tmp_mb`, `pids`. A test fixture of the
//! launcher's tests (`tests/image.rs`); it is not part of the worker.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};

fn row(escaped: bool, detail: impl Into<String>) -> Value {
    json!({"escaped": escaped, "detail": detail.into()})
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A raw result: success escapes; EPERM, EACCES and ENOSYS mean refused; any other error
/// means the call reached the kernel.
fn verdict(ret: i64) -> Value {
    if ret >= 0 {
        return row(true, "succeeded");
    }
    let e = errno();
    let refused = [libc::EPERM, libc::EACCES, libc::ENOSYS].contains(&e);
    let text = std::io::Error::from_raw_os_error(e).to_string();
    if refused {
        row(false, text)
    } else {
        row(true, format!("{text} (the call reached the kernel)"))
    }
}

fn read(path: &str) -> Value {
    match std::fs::File::open(path).and_then(|mut f| {
        let mut b = [0u8; 64];
        f.read(&mut b)
    }) {
        Ok(n) => row(true, format!("read {n} bytes")),
        Err(e) => row(false, e.to_string()),
    }
}

fn list(path: &str) -> Value {
    match std::fs::read_dir(path) {
        Ok(d) => row(true, format!("{} entries", d.count())),
        Err(e) => row(false, e.to_string()),
    }
}

fn write(path: &str) -> Value {
    match std::fs::write(path, "x") {
        Ok(()) => row(true, "written"),
        Err(e) => row(false, e.to_string()),
    }
}

fn connect_unix(path: &str) -> Value {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => row(true, "connected"),
        Err(e) => row(false, e.to_string()),
    }
}

fn connect_tcp(port: u16) -> Value {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)) {
        Ok(_) => row(true, "connected"),
        Err(e) => row(false, e.to_string()),
    }
}

/// Runs `f` in a forked child (single-threaded there); its exit code is 0 or an errno.
fn in_child(f: fn() -> i32) -> Value {
    // SAFETY: the child only makes system calls and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: _exit in the child.
        unsafe { libc::_exit(f()) };
    }
    if pid < 0 {
        return row(false, "fork failed");
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = libc::WEXITSTATUS(status);
    if code == 0 {
        row(true, "succeeded")
    } else {
        row(false, std::io::Error::from_raw_os_error(code).to_string())
    }
}

fn ptrace_child() -> Value {
    // SAFETY: the child sleeps and exits; the parent attaches, then kills and reaps it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::sleep(5);
            libc::_exit(0);
        }
        let r = libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0);
        let v = verdict(r);
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        v
    }
}

fn fill_tmp(limit_mb: u64) -> Value {
    let path = "/tmp/probe-fill";
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0;
    let result = std::fs::File::create(path).and_then(|mut f| {
        for _ in 0..limit_mb + 16 {
            f.write_all(&chunk)?;
            f.flush()?;
            written += 1;
        }
        f.sync_all()
    });
    let _ = std::fs::remove_file(path);
    let detail = match result {
        Ok(()) => format!("wrote {written} MiB"),
        Err(e) => format!("stopped after {written} MiB: {e}"),
    };
    row(written > limit_mb, detail)
}

fn threads(pids: u64) -> Value {
    let stop = std::sync::Arc::new(std::sync::Barrier::new(1));
    let mut started = Vec::new();
    for _ in 0..pids + 32 {
        let s = stop.clone();
        match std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                s.wait();
                std::thread::sleep(std::time::Duration::from_millis(300));
            }) {
            Ok(h) => started.push(h),
            Err(_) => break,
        }
    }
    let n = started.len() as u64;
    for h in started {
        let _ = h.join();
    }
    row(n >= pids, format!("{n} threads started"))
}

fn table(t: &Value) -> BTreeMap<String, Value> {
    let s = |k: &str| t[k].as_str().unwrap_or("/nonexistent").to_string();
    let port = t["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(9);
    let tmp_mb = t["tmp_mb"].as_u64().unwrap_or(64);
    let pids = t["pids"].as_u64().unwrap_or(64);
    let mut rows = BTreeMap::new();
    let mut add = |k: &str, v: Value| {
        rows.insert(k.to_string(), v);
    };
    add("read /etc/shadow", read("/etc/shadow"));
    add(
        "read a 0600 root file beside the worker config",
        read(&s("secret")),
    );
    add("read the worker's store", read(&s("store")));
    add(
        "list another sandbox's socket directory",
        list(&s("other_socket_dir")),
    );
    add(
        "connect to another sandbox's socket",
        connect_unix(&s("other_socket")),
    );
    add(
        "connect to the worker's TCP port on 127.0.0.1",
        connect_tcp(port),
    );
    add("ptrace a process", ptrace_child());
    add("mount a file system", {
        let _ = std::fs::create_dir_all("/tmp/probe-mnt");
        // SAFETY: constant NUL-terminated strings.
        verdict(i64::from(unsafe {
            libc::mount(
                c"none".as_ptr(),
                c"/tmp/probe-mnt".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        }))
    });
    add(
        "unshare a user namespace",
        in_child(|| {
            // SAFETY: unshare in a single-threaded child.
            if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
                0
            } else {
                errno()
            }
        }),
    );
    add(
        "read /proc/1/root/etc/shadow",
        read("/proc/1/root/etc/shadow"),
    );
    add(
        "write /proc/sys/kernel/hostname",
        write("/proc/sys/kernel/hostname"),
    );
    add("write /proc/sysrq-trigger", write("/proc/sysrq-trigger"));
    add(
        "write /sys/kernel/uevent_helper",
        write("/sys/kernel/uevent_helper"),
    );
    add("write /etc/probe", write("/etc/probe"));
    add("write /usr/probe", write("/usr/probe"));
    add("write /probe", write("/probe"));
    add(
        "write into the image's files",
        write("/usr/local/bin/probe-written"),
    );
    add(&format!("fill /tmp beyond {tmp_mb} MiB"), fill_tmp(tmp_mb));
    add(&format!("start more than {pids} threads"), threads(pids));
    // SAFETY: klogctl and sethostname with valid (empty or constant) buffers.
    add(
        "read the kernel log (syslog)",
        verdict(i64::from(unsafe {
            libc::klogctl(3, std::ptr::null_mut(), 0)
        })),
    );
    // SAFETY: as above.
    add(
        "set the hostname",
        verdict(i64::from(unsafe { libc::sethostname(c"x".as_ptr(), 1) })),
    );
    for (name, nr) in [
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("kexec_load", libc::SYS_kexec_load),
        ("keyctl", libc::SYS_keyctl),
        ("init_module", libc::SYS_init_module),
        ("pivot_root", libc::SYS_pivot_root),
        ("open_tree", libc::SYS_open_tree),
        ("fsopen", libc::SYS_fsopen),
        ("setns", libc::SYS_setns),
    ] {
        // SAFETY: dummy arguments; the call is expected to be refused.
        let r = unsafe { libc::syscall(nr, 0, 0, 0, 0, 0) };
        add(&format!("system call {name} (dummy arguments)"), verdict(r));
    }
    rows
}

fn main() {
    let targets: Value = std::env::args()
        .nth(1)
        .and_then(|a| serde_json::from_str(&a).ok())
        .unwrap_or(Value::Null);
    let rows = table(&targets);
    let socket = std::env::var("SLUICE_SOCKET").unwrap_or_else(|_| "/run/sluice/x".into());
    let out = std::path::Path::new(&socket).with_file_name("probe.json");
    let text = serde_json::to_string_pretty(&rows).unwrap_or_default();
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}
