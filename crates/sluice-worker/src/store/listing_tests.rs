//! The listing's order, filters, pages and scan budget; logs kept with a finished record and
//! purged with it.

use super::*;
use crate::logs::InvocationLogs;
use crate::store::{Outcome, Store};
use std::error::Error;

type R = Result<(), Box<dyn Error>>;

fn ids(page: &ListPage) -> Vec<&str> {
    page.invocations.iter().map(|s| s.id.as_str()).collect()
}

#[test]
fn newest_first_filtered_and_paged_to_the_end() -> R {
    let dir = tempfile::tempdir()?;
    let s = Store::open(&dir.path().join("s.redb"))?;
    let mut all = Vec::new();
    for (i, f) in ["a", "b", "a", "pipeline:p", "a"].iter().enumerate() {
        let id = s.accept(f, b"null", i as u64)?.id;
        if i % 2 == 0 {
            s.finish(&id, Outcome::Failed("no".into()), 10)?;
        }
        all.push(id);
    }
    let q = |function: Option<&str>, status, before, limit| ListQuery {
        function: function.map(str::to_string),
        status,
        before,
        limit,
        ..ListQuery::default()
    };
    let page = s.list_invocations(&q(None, None, None, 10))?;
    let newest: Vec<&str> = all.iter().rev().map(String::as_str).collect();
    assert_eq!(ids(&page), newest);
    assert_eq!(page.next, None);
    let a = s.list_invocations(&q(Some("a"), None, None, 10))?;
    assert_eq!(ids(&a), [&all[4], &all[2], &all[0]]);
    let failed_a = s.list_invocations(&q(Some("a"), Some(Status::Failed), None, 10))?;
    assert_eq!(ids(&failed_a), [&all[4], &all[2], &all[0]]);
    let queued = s.list_invocations(&q(None, Some(Status::Queued), None, 10))?;
    assert_eq!(ids(&queued), [&all[3], &all[1]]);
    let p = s.list_invocations(&q(Some("pipeline:p"), None, None, 10))?;
    assert_eq!(ids(&p), [&all[3]]);
    // Pages of two: the cursor is the last id listed; the last page has none.
    let first = s.list_invocations(&q(None, None, None, 2))?;
    assert_eq!(ids(&first), [&all[4], &all[3]]);
    let before = first.next.as_deref().and_then(crate::store::parse_id);
    let second = s.list_invocations(&q(None, None, before, 2))?;
    assert_eq!(ids(&second), [&all[2], &all[1]]);
    let before = second.next.as_deref().and_then(crate::store::parse_id);
    let third = s.list_invocations(&q(None, None, before, 2))?;
    assert_eq!(ids(&third), [all[0].as_str()]);
    assert_eq!(third.next, None);
    Ok(())
}

#[test]
fn a_page_examines_a_bounded_number_of_records() -> R {
    let dir = tempfile::tempdir()?;
    let s = Store::open(&dir.path().join("s.redb"))?;
    let needle = s.accept("rare", b"1", 0)?.id;
    for i in 0..12 {
        s.accept("common", b"1", i)?;
    }
    let q = ListQuery {
        function: Some("rare".into()),
        limit: 10,
        scan_budget: 10,
        ..ListQuery::default()
    };
    let first = s.list_invocations(&q)?;
    assert!(
        first.invocations.is_empty(),
        "the budget ends the page first"
    );
    let before = first.next.as_deref().and_then(crate::store::parse_id);
    assert!(before.is_some());
    let second = s.list_invocations(&ListQuery { before, ..q })?;
    assert_eq!(ids(&second), [needle.as_str()]);
    Ok(())
}

#[test]
fn logs_are_kept_with_the_finished_record_and_purged_with_it() -> R {
    let dir = tempfile::tempdir()?;
    let s = Store::open(&dir.path().join("s.redb"))?;
    let id = s.accept("f", b"1", 0)?.id;
    assert_eq!(s.get_invocation(&id)?.and_then(|r| r.logs), None);
    let logs = InvocationLogs {
        text: "hello\n".into(),
        truncated: true,
    };
    s.finish_logged(&id, Outcome::Succeeded(b"2".to_vec()), Some(&logs), 5)?;
    assert_eq!(s.get_invocation(&id)?.and_then(|r| r.logs), Some(logs));
    assert_eq!(s.purge_finished_before(6)?, 1);
    assert_eq!(s.get_invocation(&id)?, None);
    Ok(())
}
