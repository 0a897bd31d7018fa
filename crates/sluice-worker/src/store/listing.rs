//! Listing accepted invocations a page at a time: newest first (by id, which grows with every
//! acceptance), optionally of one function and in one state. A page starts below a cursor (an
//! id) and ends after `limit` matches or after examining a budget of records ([`SCAN_BUDGET`]
//! by default), whichever
//! comes first, so one page's work is bounded however rare the matches are; the page then names
//! the cursor to go on from. Summaries leave the payloads and logs out.

use super::schema::{StoredInvocation, INVOCATIONS};
use super::types::{format_id, InvocationSummary};
use super::{Status, Store, StoreError};
use redb::ReadableDatabase;

/// Most records one page examines.
pub const SCAN_BUDGET: usize = 10_000;

/// Which invocations to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this function's (a pipeline's are stored as `pipeline:<name>`).
    pub function: Option<String>,
    /// Only those in this state.
    pub status: Option<Status>,
    /// Only those older than this id number (a page's cursor); `None`: from the newest.
    pub before: Option<u64>,
    /// Most summaries in the page.
    pub limit: usize,
    /// Most records the page examines (default [`SCAN_BUDGET`]).
    pub scan_budget: usize,
}

impl Default for ListQuery {
    /// Everything, newest first, 50 to a page.
    fn default() -> Self {
        ListQuery {
            function: None,
            status: None,
            before: None,
            limit: 50,
            scan_budget: SCAN_BUDGET,
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListPage {
    /// Newest first.
    pub invocations: Vec<InvocationSummary>,
    /// Where the next page starts (`before` = this id), or `None` when none is older.
    pub next: Option<String>,
}

impl Store {
    /// A page of the invocations `q` asks for.
    pub fn list_invocations(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        self.guarded("list_invocations", || {
            let rtx = self.db.begin_read()?;
            let t = rtx.open_table(INVOCATIONS)?;
            let range = match q.before {
                Some(before) => t.range(..before)?,
                None => t.range::<u64>(..)?,
            };
            let mut page = ListPage::default();
            let mut last = None;
            for (examined, entry) in range.rev().enumerate() {
                if page.invocations.len() >= q.limit || examined >= q.scan_budget {
                    break;
                }
                let (k, v) = entry?;
                let n = k.value();
                last = Some(n);
                let id = format_id(n);
                let stored = StoredInvocation::decode(&id, v.value())?;
                let wanted = q.function.as_ref().is_none_or(|f| *f == stored.function)
                    && q.status.is_none_or(|s| s == stored.status);
                if wanted {
                    page.invocations.push(stored.summary(id));
                }
            }
            if let Some(n) = last {
                if t.range(..n)?.next_back().is_some() {
                    page.next = Some(format_id(n));
                }
            }
            Ok(page)
        })
    }
}

#[cfg(test)]
#[path = "listing_tests.rs"]
mod tests;
