//! The shim preloaded into real processes, against a fake driver: `fake_cuda.c` is compiled
//! into a `libcuda.so.1` that logs every call, `cuda_client.c` into a client that loads it the
//! way CUDA runtimes do (dlopen, dlsym by handle, cuGetProcAddress) and takes commands on stdin.
//! Both are built with the system C compiler (`cc`) under `CARGO_TARGET_TMPDIR`. The shim is the
//! `libsluice_shim.so` cargo built for this test run, found beside this test binary (in
//! `target/<profile>/deps`, where cargo puts the library's cdylib before running tests).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

struct Built {
    lib_dir: PathBuf,
    client: PathBuf,
    next_probe: PathBuf,
}

fn cc(args: &[&str]) {
    let out = Command::new("cc")
        .args(args)
        .output()
        .expect("a C compiler (cc)");
    assert!(
        out.status.success(),
        "cc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sluice-shim-fake-{}", std::process::id()));
        let lib_dir = root.join("lib");
        std::fs::create_dir_all(&lib_dir).unwrap();
        let lib = lib_dir.join("libcuda.so.1");
        let client = root.join("cuda_client");
        let src = |f: &str| here.join(f).display().to_string();
        cc(&[
            "-shared",
            "-fPIC",
            "-O1",
            "-Wl,-Bsymbolic",
            "-o",
            lib.to_str().unwrap(),
            &src("fake_cuda.c"),
        ]);
        cc(&[
            "-O1",
            "-o",
            client.to_str().unwrap(),
            &src("cuda_client.c"),
            "-ldl",
        ]);
        let next_probe = root.join("next_probe.so");
        let probe = next_probe.to_str().unwrap();
        cc(&[
            "-shared",
            "-fPIC",
            "-o",
            probe,
            &src("next_probe.c"),
            "-ldl",
        ]);
        Built {
            lib_dir,
            client,
            next_probe,
        }
    })
}

fn shim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps.to_path_buf(), deps.parent().unwrap().to_path_buf()]
        .into_iter()
        .map(|d| d.join("libsluice_shim.so"))
        .find(|p| p.exists())
        .expect("libsluice_shim.so beside the test binary (cargo builds it for the tests)")
}

/// One client process under the shim.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Session {
    fn start(budget: Option<u64>) -> Session {
        Self::start_with(budget, &built().lib_dir)
    }

    fn start_with(budget: Option<u64>, lib_dir: &Path) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.log");
        let socket = dir.path().join("shim.sock");
        let mut cmd = Command::new(&built().client);
        cmd.env("LD_PRELOAD", shim())
            .env("LD_LIBRARY_PATH", lib_dir)
            .env("FAKE_CUDA_LOG", &log)
            .env("SLUICE_SHIM_SOCKET", &socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        match budget {
            Some(b) => cmd.env("SLUICE_SHIM_BUDGET_BYTES", b.to_string()),
            None => cmd.env_remove("SLUICE_SHIM_BUDGET_BYTES"),
        };
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Session {
            child,
            stdin,
            stdout,
            log,
            socket,
            _dir: dir,
        }
    }

    /// Sends one client command and returns its answer.
    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = String::new();
        self.stdout.read_line(&mut out).unwrap();
        out.trim().to_string()
    }

    /// Allocates with `line` and returns the pointer.
    fn alloc(&mut self, line: &str) -> String {
        let out = self.cmd(line);
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words.last(), Some(&"0"), "{line}: {out}");
        words[1].to_string()
    }

    /// One request on the control socket.
    fn control(&self, line: &str) -> String {
        let mut s = UnixStream::connect(&self.socket).expect("the shim serves its socket");
        writeln!(s, "{line}").unwrap();
        let mut out = String::new();
        BufReader::new(s).read_line(&mut out).unwrap();
        out.trim().to_string()
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn calls(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name} ");
        self.log()
            .into_iter()
            .filter(|l| l.starts_with(&prefix))
            .collect()
    }

    fn quit(mut self) -> (std::process::ExitStatus, Self) {
        writeln!(self.stdin, "quit").unwrap();
        let status = self.child.wait().unwrap();
        (status, self)
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn allocations_become_managed_and_are_counted() {
    const GIB: u64 = 1 << 30;
    let mut s = Session::start(Some(GIB));
    assert_eq!(s.cmd("init"), "rc 0");
    let first = s.alloc("alloc 4096");
    let second = s.alloc("procalloc 8192");
    let managed = s.calls("cuMemAllocManaged");
    assert_eq!(managed.len(), 2, "{managed:?}");
    assert_eq!(field(&managed[0], "bytes"), "4096");
    assert_eq!(field(&managed[1], "bytes"), "8192");
    assert!(
        managed.iter().all(|l| field(l, "flags") == "1"),
        "CU_MEM_ATTACH_GLOBAL: {managed:?}"
    );
    assert!(
        s.calls("cuMemAlloc_v2").is_empty(),
        "the device allocator was called"
    );
    assert_eq!(field(&managed[1], "ptr"), second);
    assert_eq!(
        s.cmd("info"),
        format!("free {} total {GIB} rc 0", GIB - 12288)
    );
    assert!(s
        .control("STATS")
        .starts_with("OK bytes=12288 count=2 managed_bytes=12288 budget=1073741824"));
    assert_eq!(s.cmd(&format!("free {first}")), "rc 0");
    assert_eq!(s.calls("cuMemFree_v2").len(), 1);
    assert_eq!(field(&s.calls("cuMemFree_v2")[0], "ptr"), first);
    assert!(s.control("STATS").starts_with("OK bytes=8192 count=1 "));
    assert_eq!(
        s.cmd("info"),
        format!("free {} total {GIB} rc 0", GIB - 8192)
    );
    let socket = s.socket.clone();
    let (status, _s) = s.quit();
    assert!(status.success());
    assert!(!socket.exists(), "the socket is removed at exit");
}

#[test]
fn prefetch_runs_on_the_shims_own_stream() {
    let mut s = Session::start(None);
    s.cmd("init");
    s.alloc("alloc 4096");
    s.alloc("alloc 100");
    let reply = s.control("PREFETCH host");
    assert!(reply.starts_with("OK bytes=4196 count=2 ms="), "{reply}");
    let created = s.calls("cuStreamCreate");
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(field(&created[0], "flags"), "1", "CU_STREAM_NON_BLOCKING");
    let stream = created[0].rsplit("stream=").next().unwrap().to_string();
    assert_ne!(stream, "(nil)");
    let ctx = s.calls("cuCtxCreate_v2")[0]
        .rsplit("ctx=")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        field(&created[0], "ctx"),
        ctx,
        "created in the allocation's context"
    );
    let prefetches = s.calls("cuMemPrefetchAsync");
    assert_eq!(prefetches.len(), 2);
    for p in &prefetches {
        assert_eq!(field(p, "dev"), "-1", "CU_DEVICE_CPU: {p}");
        assert_eq!(field(p, "stream"), stream, "not the shim's stream: {p}");
        assert_eq!(field(p, "ctx"), ctx);
    }
    assert!(s
        .calls("cuStreamSynchronize")
        .iter()
        .any(|l| field(l, "stream") == stream));

    assert!(s
        .control("PREFETCH device")
        .starts_with("OK bytes=4196 count=2"));
    let prefetches = s.calls("cuMemPrefetchAsync");
    assert_eq!(prefetches.len(), 4);
    assert!(prefetches[2..]
        .iter()
        .all(|p| field(p, "dev") == "0" && field(p, "stream") == stream));
    assert_eq!(
        s.calls("cuStreamCreate").len(),
        1,
        "the stream is created once"
    );

    assert_eq!(s.control("ADVISE host"), "OK bytes=4196 count=2");
    let advice = s.calls("cuMemAdvise");
    assert_eq!(advice.len(), 2);
    assert!(advice
        .iter()
        .all(|a| field(a, "advice") == "3" && field(a, "dev") == "-1"));
    assert!(s.control("EVICT all").starts_with("ERR unknown command"));
    assert!(s.quit().0.success());
}

#[test]
fn pitched_async_and_legacy_allocations() {
    let mut s = Session::start(None);
    s.cmd("init");
    assert!(s.cmd("pitch 1000 3 4").contains(" pitch 1024 rc 0"));
    let ptr = s.alloc("async 100");
    s.alloc("procalloc11 50");
    s.alloc("legacy 64");
    let managed: Vec<String> = s
        .calls("cuMemAllocManaged")
        .iter()
        .map(|l| field(l, "bytes").to_string())
        .collect();
    assert_eq!(managed, ["3072", "100", "50"]);
    assert!(s.calls("cuMemAllocPitch_v2").is_empty() && s.calls("cuMemAllocAsync_ptsz").is_empty());
    assert_eq!(
        s.calls("cuMemAlloc").len(),
        1,
        "the 32-bit call goes to the driver"
    );
    assert_eq!(
        s.control("STATS"),
        "OK bytes=3286 count=4 managed_bytes=3222 budget=none"
    );

    assert_eq!(s.cmd(&format!("freeasync_ptsz {ptr}")), "rc 0");
    assert!(s.calls("cuMemFreeAsync_ptsz").is_empty());
    let syncs = s.calls("cuStreamSynchronize");
    assert_eq!(
        field(syncs.last().unwrap(), "stream"),
        "0x2",
        "the per-thread stream"
    );
    assert_eq!(field(s.calls("cuMemFree_v2").last().unwrap(), "ptr"), ptr);
    assert!(s.control("STATS").starts_with("OK bytes=3186 count=3 "));
    assert!(
        s.control("PREFETCH device")
            .starts_with("OK bytes=3122 count=2"),
        "legacy memory is not prefetched"
    );
    assert_eq!(
        s.cmd("info"),
        format!("free {} total {} rc 0", 6u64 << 30, 8u64 << 30)
    );
    assert!(s.quit().0.success());
}

#[test]
fn an_unused_shim_leaves_no_trace() {
    let s = Session::start(Some(1 << 20));
    let (status, s) = s.quit();
    assert!(status.success());
    assert!(s.log().is_empty(), "{:?}", s.log());
    assert!(!s.socket.exists());

    // CUDA initialised but nothing allocated: no control socket either.
    let mut s = Session::start(None);
    s.cmd("init");
    assert!(!s.socket.exists());
    assert!(s.calls("cuMemAllocManaged").is_empty());
    assert!(s.quit().0.success());

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("shim.sock");
    for argv in [
        &["true"][..],
        &["sh", "-c", "echo hi"],
        &["python3", "-c", "import ctypes; print('hi')"],
    ] {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .env("LD_PRELOAD", shim())
            .env("SLUICE_SHIM_SOCKET", &socket)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!socket.exists());
    }
}

#[test]
fn without_libcuda_processes_run_unchanged() {
    let empty = tempfile::tempdir().unwrap();
    let mut s = Session::start_with(Some(1 << 20), empty.path());
    // Without a driver the client says so at once and exits without reading its commands, so
    // nothing is written to it (that would race its exit and could fail with a broken pipe).
    let mut out = String::new();
    s.stdout.read_line(&mut out).unwrap();
    assert_eq!(out.trim(), "nolib");
    assert!(s.child.wait().unwrap().success());
    assert!(!s.socket.exists());
}

#[test]
fn rtld_next_keeps_its_meaning_behind_the_shims_dlsym() {
    let preload = format!("{} {}", shim().display(), built().next_probe.display());
    let out = Command::new("python3")
        .args(["-c", "import os; print(os.getppid())"])
        .env("LD_PRELOAD", preload)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ppid: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(ppid, i64::from(std::process::id()));
}

#[test]
fn the_workers_client_drives_the_real_shim() {
    use sluice_policy::memory::Location;
    use sluice_worker::devices::shim::ShimControl;
    let mut s = Session::start(Some(1 << 30));
    s.cmd("init");
    s.alloc("alloc 1000");
    s.alloc("alloc 24");
    let control = ShimControl::new(s.socket.clone(), std::time::Duration::from_secs(10));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stats = control.stats().await.unwrap();
        assert_eq!(
            (stats.bytes, stats.count, stats.budget),
            (1024, 2, Some(1 << 30))
        );
        let moved = control.prefetch(Location::Host).await.unwrap();
        assert_eq!((moved.bytes, moved.count), (1024, 2));
        assert!(moved.ms.is_some());
        assert_eq!(control.advise(Location::Device).await.unwrap().count, 2);
    });
    assert_eq!(s.calls("cuMemPrefetchAsync").len(), 2);
    assert!(s.quit().0.success());
}
