//! Integration tests of the worker's store across process lifetimes: reopening, id uniqueness
//! across restarts, refusal of corrupt, locked and newer-schema files, and a real `kill -9`
//! crash test (the test binary re-executes itself in "child mode" as the writer to kill).

use sluice_worker::function::FunctionSpec;
use sluice_worker::store::{Outcome, Status, Store, StoreError};
use std::collections::BTreeSet;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type R = Result<(), Box<dyn Error>>;

/// Env var that turns `store_child_writer` into the crash test's writer; holds the store's path.
const CHILD_ENV: &str = "STORE_CHILD";

fn spec(name: &str) -> Result<FunctionSpec, serde_json::Error> {
    serde_json::from_value(serde_json::json!({"name": name, "command": ["/bin/true"]}))
}

#[test]
fn store_functions_and_ids_survive_reopen_and_ids_never_repeat() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/dirs/store.redb");
    let mut seen = Vec::new();
    for round in 0..3u64 {
        let s = Store::open(&path)?;
        if round == 0 {
            s.put_function(&spec("keep")?)?;
            s.put_function(&spec("gone")?)?;
            s.delete_function("gone", 1)?;
        }
        assert_eq!(s.list_functions()?, vec![spec("keep")?]);
        for i in 0..3 {
            let rec = s.accept("keep", &[round as u8, i], round)?;
            seen.push(rec.id);
        }
        if round == 1 {
            s.finish(&seen[0], Outcome::Succeeded(b"r".to_vec()), 9)?;
            s.purge_finished_before(u64::MAX)?; // ids of purged records are not reissued either
        }
    }
    let sorted: Vec<String> = seen
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        sorted, seen,
        "ids strictly increase, across reopen and purge"
    );
    assert_eq!(seen[0], "inv-000000000001");
    let s = Store::open(&path)?;
    assert_eq!(s.counts()?.queued, 8);
    assert_eq!(
        s.get_invocation(&seen[8])?.map(|r| r.input),
        Some(vec![2, 2])
    );
    Ok(())
}

/// Asserts that opening `path` fails with an error that names it (and does not panic).
fn assert_refused(path: &Path) -> Result<String, Box<dyn Error>> {
    match Store::open(path) {
        Ok(_) => Err(format!("{} opened", path.display()).into()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            Ok(msg)
        }
    }
}

#[test]
fn store_garbage_and_damaged_files_are_clear_errors() -> R {
    let dir = tempfile::tempdir()?;
    let noise: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, &[u8]); 3] = [
        ("text.redb", b"this is not a database\n"),
        ("noise.redb", &noise),
        ("zeros.redb", &[0u8; 8192]),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes)?;
        assert_refused(&path)?;
    }
    // Real stores with their header's commit slots, or their body, overwritten: refused or
    // repaired, never a panic; if one opens, every call answers Ok or Err.
    for (name, from, to) in [("slots.redb", 16, 1024), ("body.redb", 4096, usize::MAX)] {
        let path = dir.path().join(name);
        {
            let s = Store::open(&path)?;
            s.put_function(&spec("f")?)?;
            s.accept("f", &[7; 3000], 1)?;
        }
        let mut bytes = std::fs::read(&path)?;
        let end = to.min(bytes.len());
        for (i, b) in bytes.iter_mut().enumerate().take(end).skip(from) {
            *b = noise[i % noise.len()];
        }
        std::fs::write(&path, &bytes)?;
        match Store::open(&path) {
            Ok(s) => drop((s.list_functions(), s.counts(), s.recover(3, 1))),
            Err(e) => assert!(e.to_string().contains(&path.display().to_string()), "{e}"),
        }
    }
    // A directory where the file should be.
    let as_dir = dir.path().join("a-directory.redb");
    std::fs::create_dir(&as_dir)?;
    assert_refused(&as_dir)?;
    Ok(())
}

#[test]
fn store_second_open_of_an_open_file_is_refused() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let _first = Store::open(&path)?;
    assert!(matches!(Store::open(&path), Err(StoreError::Open { .. })));
    assert_refused(&path)?;
    Ok(())
}

#[test]
fn store_newer_schema_is_refused() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    drop(Store::open(&path)?);
    {
        let db = redb::Database::create(&path)?;
        let wtx = db.begin_write()?;
        wtx.open_table(redb::TableDefinition::<&str, u64>::new("meta"))?
            .insert("schema_version", 99)?;
        wtx.commit()?;
    }
    let msg = assert_refused(&path)?;
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NewerSchema {
            found: 99,
            supported: 1,
            ..
        })
    ));
    assert!(msg.contains("99"), "{msg}");
    Ok(())
}

/// Child mode of the crash test (a no-op in a normal run): registers a function, then accepts
/// invocations (starting and finishing some) as fast as it can, printing each acknowledged
/// step, until the parent kills it.
#[test]
fn store_child_writer() -> R {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return Ok(());
    };
    let store = Store::open(Path::new(&path))?;
    let mut out = std::io::stdout().lock();
    store.put_function(&spec("crashy")?)?;
    writeln!(out, "FN crashy")?;
    out.flush()?;
    let deadline = Instant::now() + Duration::from_secs(20); // never outlive a dead parent long
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        let id = store
            .accept("crashy", format!("payload-{i}").as_bytes(), i)?
            .id;
        writeln!(out, "ACK {id}")?;
        out.flush()?;
        if i.is_multiple_of(3) {
            store.mark_running(&id, i)?;
            writeln!(out, "RUN {id}")?;
            out.flush()?;
        }
        if i.is_multiple_of(5) {
            store.finish(&id, Outcome::Succeeded(id.as_bytes().to_vec()), i)?;
            writeln!(out, "DONE {id}")?;
            out.flush()?;
        }
        i += 1;
    }
    Ok(())
}

/// What the killed children acknowledged on stdout.
#[derive(Default)]
struct Acked {
    functions: BTreeSet<String>,
    accepted: Vec<String>,
    running: BTreeSet<String>,
    done: BTreeSet<String>,
}

/// Runs one child writer on `path`, SIGKILLs it after 50 acknowledged accepts, and records every
/// complete line it printed (including those still in the pipe when it died).
fn crash_once(path: &Path, acked: &mut Acked) -> R {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "store_child_writer", "--nocapture"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut reader = BufReader::new(stdout);
    let (mut line, mut this_round, mut killed) = (String::new(), 0, false);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let Some(complete) = line.strip_suffix('\n') else {
            break; // cut off mid-line by the kill: not an acknowledgement
        };
        match complete.split_once(' ') {
            Some(("FN", name)) => drop(acked.functions.insert(name.to_string())),
            Some(("ACK", id)) => {
                acked.accepted.push(id.to_string());
                this_round += 1;
            }
            Some(("RUN", id)) => drop(acked.running.insert(id.to_string())),
            Some(("DONE", id)) => drop(acked.done.insert(id.to_string())),
            _ => {} // libtest's own output
        }
        if this_round >= 50 && !killed {
            child.kill()?; // SIGKILL; keep reading what was already acknowledged
            killed = true;
        }
    }
    let status = child.wait()?;
    if !killed {
        return Err(format!(
            "child writer exited on its own ({status}) after {this_round} accepts"
        )
        .into());
    }
    Ok(())
}

#[test]
fn store_acknowledged_writes_survive_kill_9() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("crash.redb");
    let mut acked = Acked::default();
    for _ in 0..3 {
        crash_once(&path, &mut acked)?; // later rounds open a file left by a kill
    }
    assert!(acked.accepted.len() >= 150);
    let store = Store::open(&path)?;
    for name in &acked.functions {
        assert!(store.get_function(name)?.is_some(), "function {name} lost");
    }
    for id in &acked.accepted {
        let rec = store
            .get_invocation(id)?
            .ok_or(format!("acknowledged {id} lost"))?;
        assert_eq!(rec.function, "crashy");
        if acked.running.contains(id) {
            assert!(rec.attempts >= 1, "{id}: start lost");
        }
        if acked.done.contains(id) {
            assert_eq!(rec.status, Status::Succeeded, "{id}: finish lost");
            assert_eq!(rec.result.as_deref(), Some(id.as_bytes()));
        }
    }
    let unique: BTreeSet<&String> = acked.accepted.iter().collect();
    assert_eq!(
        unique.len(),
        acked.accepted.len(),
        "an id was reissued after a crash"
    );

    // Recovery accounts for every acknowledged invocation: requeued or finished, none vanished.
    let requeued: BTreeSet<String> = store.recover(1, 0)?.into_iter().map(|r| r.id).collect();
    for id in &acked.accepted {
        let rec = store
            .get_invocation(id)?
            .ok_or(format!("{id} lost in recovery"))?;
        assert!(
            requeued.contains(id) || rec.status.is_finished(),
            "{id} vanished"
        );
    }
    let c = store.counts()?;
    assert_eq!(c.running, 0);
    assert!(c.queued + c.succeeded + c.failed >= acked.accepted.len() as u64);
    Ok(())
}
