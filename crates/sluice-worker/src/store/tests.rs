//! Unit tests of the store's operations on one open file: function CRUD, the invocation life
//! cycle and its refused transitions, recovery, retention and counts. Reopen, corruption and
//! real-crash tests live in `tests/store.rs`.

use super::*;
use crate::function::FunctionSpec;
use std::error::Error;
use std::sync::Arc;

type R = Result<(), Box<dyn Error>>;

fn open() -> Result<(tempfile::TempDir, Store), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("store.redb"))?;
    Ok((dir, store))
}

fn spec(name: &str, cmd: &str) -> Result<FunctionSpec, serde_json::Error> {
    serde_json::from_value(serde_json::json!({"name": name, "command": [cmd]}))
}

#[test]
fn functions_round_trip_replace_list_sorted_and_delete() -> R {
    let (_d, s) = open()?;
    assert_eq!(s.get_function("b")?, None);
    assert!(!s.put_function(&spec("b", "one")?)?);
    assert!(!s.put_function(&spec("a", "x")?)?);
    let mut b2 = spec("b", "two")?;
    b2.env.insert("K".into(), "V".into());
    b2.resources.gpu = true;
    assert!(s.put_function(&b2)?, "second put of b replaces");
    assert_eq!(s.get_function("b")?, Some(b2.clone()));
    let names: Vec<String> = s.list_functions()?.into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(s.delete_function("a", 1)?);
    assert!(!s.delete_function("a", 1)?);
    assert_eq!(s.list_functions()?, vec![b2]);
    Ok(())
}

#[test]
fn accept_get_round_trip_with_binary_input() -> R {
    let (_d, s) = open()?;
    let input = vec![0u8, 255, 10, 13, 0x80, b'{'];
    let rec = s.accept("f", &input, 1_000)?;
    assert_eq!(rec.status, Status::Queued);
    assert_eq!((rec.attempts, rec.accepted_ms), (0, 1_000));
    assert_eq!((rec.started_ms, rec.finished_ms), (None, None));
    assert_eq!(s.get_invocation(&rec.id)?, Some(rec.clone()));
    assert_eq!(rec.input, input);
    assert_eq!(s.get_invocation("inv-999999999999")?, None);
    assert_eq!(s.get_invocation("nonsense")?, None);
    let json = serde_json::to_value(&rec)?;
    assert_eq!(json["status"], "queued");
    Ok(())
}

#[test]
fn life_cycle_and_refused_transitions() -> R {
    let (_d, s) = open()?;
    let a = s.accept("f", b"a", 1)?.id;
    s.mark_running(&a, 2)?;
    s.mark_running(&a, 3)?; // a retry counts another attempt
    let r = s.get_invocation(&a)?.ok_or("missing")?;
    assert_eq!(
        (r.status, r.attempts, r.started_ms),
        (Status::Running, 2, Some(3))
    );
    s.finish(&a, Outcome::Succeeded(b"out".to_vec()), 4)?;
    let r = s.get_invocation(&a)?.ok_or("missing")?;
    assert_eq!(
        (r.status, r.result, r.error),
        (Status::Succeeded, Some(b"out".to_vec()), None)
    );
    assert_eq!(r.finished_ms, Some(4));

    let b = s.accept("f", b"b", 5)?.id;
    s.finish(&b, Outcome::Failed("function deleted".into()), 6)?; // straight from Queued
    let r = s.get_invocation(&b)?.ok_or("missing")?;
    assert_eq!(
        (r.status, r.error.as_deref(), r.result),
        (Status::Failed, Some("function deleted"), None)
    );

    let again = s.finish(&a, Outcome::Failed("x".into()), 7);
    assert!(matches!(
        again,
        Err(StoreError::InvalidTransition {
            from: Status::Succeeded,
            ..
        })
    ));
    let restart = s.mark_running(&b, 7);
    assert!(matches!(
        restart,
        Err(StoreError::InvalidTransition {
            from: Status::Failed,
            ..
        })
    ));
    for bad in ["inv-000000009999", "inv-1", ""] {
        assert!(matches!(
            s.mark_running(bad, 1),
            Err(StoreError::UnknownInvocation(_))
        ));
        let fin = s.finish(bad, Outcome::Failed(String::new()), 1);
        assert!(matches!(fin, Err(StoreError::UnknownInvocation(_))));
    }
    // Refused transitions changed nothing.
    assert_eq!(
        s.get_invocation(&a)?.map(|r| r.status),
        Some(Status::Succeeded)
    );
    let c = s.counts()?;
    assert_eq!((c.queued, c.running, c.succeeded, c.failed), (0, 0, 1, 1));
    Ok(())
}

#[test]
fn recover_requeues_unfinished_and_fails_exhausted() -> R {
    let (_d, s) = open()?;
    let q = s.accept("f", b"q", 10)?.id;
    let r1 = s.accept("f", b"r1", 11)?.id;
    let r3 = s.accept("f", b"r3", 12)?.id;
    let done = s.accept("f", b"d", 13)?.id;
    let q2 = s.accept("f", b"q2", 14)?.id;
    s.mark_running(&r1, 20)?;
    for t in 21..24 {
        s.mark_running(&r3, t)?;
    }
    s.mark_running(&done, 25)?;
    s.finish(&done, Outcome::Succeeded(vec![]), 26)?;

    let back = s.recover(3, 100)?;
    let ids: Vec<&str> = back.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [q.as_str(), r1.as_str(), q2.as_str()],
        "oldest first, r3 dropped"
    );
    assert!(back.iter().all(|r| r.status == Status::Queued));
    assert_eq!(back[1].attempts, 1, "attempts survive recovery");
    assert_eq!(back[1].input, b"r1");

    let failed = s.get_invocation(&r3)?.ok_or("missing")?;
    assert_eq!(
        (failed.status, failed.finished_ms),
        (Status::Failed, Some(100))
    );
    assert_eq!(
        failed.error.as_deref(),
        Some("worker restarted during execution; giving up after 3 attempts")
    );
    let c = s.counts()?;
    assert_eq!((c.queued, c.running, c.succeeded, c.failed), (3, 0, 1, 1));
    // Idempotent: a second recovery returns the same set and fails nothing more.
    assert_eq!(s.recover(3, 200)?, back);
    Ok(())
}

#[test]
fn purge_removes_only_finished_before_cutoff() -> R {
    let (_d, s) = open()?;
    let mut ids = Vec::new();
    for i in 0..10u64 {
        let id = s.accept("f", b"in", i)?.id;
        let outcome = if i.is_multiple_of(2) {
            Outcome::Succeeded(vec![1])
        } else {
            Outcome::Failed("e".into())
        };
        s.finish(&id, outcome, 100 + i)?;
        ids.push(id);
    }
    let open_one = s.accept("f", b"q", 0)?.id;
    assert_eq!(s.purge_finished_before(100)?, 0);
    assert_eq!(s.purge_finished_before(105)?, 5, "finished at 100..=104");
    assert_eq!(s.get_invocation(&ids[4])?, None);
    assert!(s.get_invocation(&ids[5])?.is_some());
    assert_eq!(s.purge_finished_before(u64::MAX)?, 5);
    assert!(
        s.get_invocation(&open_one)?.is_some(),
        "unfinished ones are never purged"
    );
    let c = s.counts()?;
    assert_eq!((c.queued, c.succeeded, c.failed), (1, 0, 0));
    Ok(())
}

#[test]
fn purge_spans_several_batches() -> R {
    let (_d, s) = open()?;
    // Finished records are written without one commit each to keep the test fast.
    let n = 2 * 1024 + 3;
    let wtx = s.db.begin_write()?;
    {
        let mut failed = wtx.open_table(schema::FAILED)?;
        let mut invs = wtx.open_table(schema::INVOCATIONS)?;
        for i in 1..=n {
            failed.insert((7u64, i), ())?;
            invs.insert(i, b"{}".as_slice())?;
        }
    }
    wtx.commit()?;
    assert_eq!(s.purge_finished_before(8)?, n as usize);
    assert_eq!(s.counts()?, StoreCounts::default());
    Ok(())
}

#[test]
fn counts_track_every_state_and_concurrent_accepts_get_unique_ids() -> R {
    let (_d, s) = open()?;
    s.put_function(&spec("f", "x")?)?;
    let s = Arc::new(s);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || -> Result<Vec<String>, StoreError> {
                (0..5)
                    .map(|i| s.accept("f", b"", t * 10 + i).map(|r| r.id))
                    .collect()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.join().map_err(|_| "thread panicked")??);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    s.mark_running(&ids[0], 1)?;
    s.mark_running(&ids[1], 1)?;
    s.finish(&ids[1], Outcome::Succeeded(vec![]), 2)?;
    s.finish(&ids[2], Outcome::Failed("e".into()), 2)?;
    let want = StoreCounts {
        functions: 1,
        queued: 17,
        running: 1,
        succeeded: 1,
        failed: 1,
    };
    assert_eq!(s.counts()?, want);
    Ok(())
}

#[test]
fn deleting_a_function_fails_its_queued_invocations_only() -> R {
    let (_d, s) = open()?;
    s.put_function(&spec("f", "x")?)?;
    let queued = s.accept("f", b"1", 1)?;
    let running = s.accept("f", b"2", 2)?;
    let other = s.accept("g", b"3", 3)?;
    s.mark_running(&running.id, 4)?;
    assert!(s.delete_function("f", 5)?);
    let q = s
        .get_invocation(&queued.id)?
        .ok_or("queued record missing")?;
    assert_eq!((q.status, q.finished_ms), (Status::Failed, Some(5)));
    assert!(q.error.is_some_and(|e| e.contains("deleted")));
    let r = s
        .get_invocation(&running.id)?
        .ok_or("running record missing")?;
    assert_eq!(
        r.status,
        Status::Running,
        "a started one finishes on its own"
    );
    let o = s.get_invocation(&other.id)?.ok_or("other record missing")?;
    assert_eq!(o.status, Status::Queued);
    let back: Vec<String> = s.recover(3, 6)?.into_iter().map(|r| r.id).collect();
    assert_eq!(
        back,
        [running.id, other.id],
        "the deleted function's queued one is not re-run"
    );
    Ok(())
}

#[test]
fn an_empty_file_is_refused_not_taken_for_an_empty_store() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    std::fs::write(&path, b"")?;
    let err = Store::open(&path).err().ok_or("a 0-byte store opened")?;
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Empty { .. }), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("move it aside"),
        "{msg}"
    );
    assert_eq!(std::fs::metadata(&path)?.len(), 0, "left untouched");
    Ok(())
}

#[test]
fn a_damaged_function_record_is_reported_by_name() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    {
        let s = Store::open(&path)?;
        s.put_function(&spec("good", "x")?)?;
    }
    {
        let db = redb::Database::create(&path)?;
        let wtx = db.begin_write()?;
        wtx.open_table(super::schema::FUNCTIONS)?
            .insert("bad", b"{not json".as_slice())?;
        wtx.commit()?;
    }
    let s = Store::open(&path)?;
    let (good, bad) = s.load_functions()?;
    assert_eq!(good, vec![spec("good", "x")?]);
    assert_eq!(bad.len(), 1);
    assert!(bad[0].to_string().contains("\"bad\""), "{}", bad[0]);
    let err = s.get_function("bad").err().ok_or("damage read as absent")?;
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    Ok(())
}
