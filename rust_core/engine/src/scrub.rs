//! Scrubbing an LMDB data file: after records are deleted, no byte of them stays in `data.mdb`.
//!
//! LMDB never erases what it frees. A deleted record's bytes stay in the file in four places:
//! 1. **free pages**: copy-on-write leaves every page a transaction replaced on the free list
//!    (the free database, dbi 0: txnid → list of page numbers), untouched until reused;
//! 2. **the file's tail** past the last used page (pages written by a transaction that spilled
//!    and then aborted);
//! 3. **unused bytes inside live pages**: deleting a node moves the others over it but leaves the
//!    bytes between the node pointers and the nodes (`mp_lower..mp_upper`) as they were, and a
//!    page buffer LMDB recycles is not cleared, so that gap can hold old records; likewise the
//!    padding byte of an odd-sized node and the end of an overflow run past its value (LMDB
//!    overwrites a run in place with a smaller value, which can end pages before the run);
//! 4. **branch keys**: a branch page keeps a copy of the first key of each child. Deleting that
//!    key from the leaf does not update the branch, so the deleted key lives on in a live page.
//!
//! [`survey`] and [`Survey::overwrite`] overwrite 1–3 with zeros and reports 4 ([`StaleBranchKey`]), which no
//! overwrite can remove (the tree uses those bytes); `Environment::scrub` repairs 4 through LMDB
//! first (the records under such a key are deleted and put back, so their branch is rebuilt
//! with live keys), then calls this.
//!
//! ## Why overwriting and not a compacting copy
//! `mdb_env_copy2(MDB_CP_COMPACT)` writes a new file of the reachable pages, but (a) it copies
//! each page whole, gap and stale branch keys included (3 and 4 survive), and (b) a copy must
//! replace `data.mdb` under an open environment, whose map, file descriptors and reader table
//! refer to the old file: that is only safe by closing every environment of the `Store`, which
//! the running engine cannot do. Overwriting in place keeps the environment open.
//!
//! ## Why overwriting is sound (MVCC)
//! The caller (`Environment::scrub`) holds the environment's exclusive gate, so no transaction
//! of this process is open (no snapshot and no slice into the map exists), and LMDB's writer
//! lock, so no commit happens meanwhile. Readers of other processes do not exist: the data
//! directory's lock admits one Tributary process (an external `mdb_stat` during a scrub is not
//! supported; heed does not expose the handle `mdb_reader_list` needs). It has also synced the
//! environment (`mdb_env_sync(force)`), so the newest meta page (txn L) is durable:
//! - a page in the free record of txn T is unreachable from every snapshot ≥ T. The only
//!   snapshots left are L's and the previous meta page's (L−1), which reaches the pages freed
//!   by L. LMDB only falls back to L−1 when L did not reach the disk, which the sync rules out,
//!   so every free page can be zeroed. (Opening with `MDB_PREVSNAPSHOT` afterwards would find a
//!   zeroed tree, as it should: that snapshot holds the deleted records.)
//! - LMDB never reads a free page before reusing it (a reused page is built in a fresh buffer
//!   and written whole), nor the unused bytes of a live page, nor anything past the last page.
//! - Writes go through a duplicate of LMDB's own file descriptor; the map is `MAP_SHARED`, so it
//!   sees them through the page cache. A crash half-way leaves zeros only where nothing is read.
//!
//! Before writing anything the walk checks the accounting LMDB's own audit checks: every page
//! up to the last one is a meta page, reachable from the newest meta exactly once, or on the
//! free list exactly once. Anything else (or a page that does not parse) is refused as
//! corruption with nothing written.
//!
//! ## Cost
//! The walk reads every live page once (proportional to the database), and the overwrite reads
//! and writes the free pages and the tail (proportional to the free list); a page or gap that
//! is already zero is not written again, so a second scrub writes nothing. One fsync at the end.
//!
//! The layout read here is LMDB's on-disk format for 64-bit little-endian builds (the only one
//! heed builds for us); no `MDB_DUPSORT` database exists in this engine and the walk refuses
//! one (sub-pages are not parsed).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use crate::error::{EngineError, Result};

/// What a scrub found and overwrote in one environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// LMDB's page size.
    pub page_size: u64,
    /// Pages in use, meta pages and free pages included (last page number + 1).
    pub pages: u64,
    /// Pages on the free list.
    pub free_pages: u64,
    /// Free pages that held bytes, now zeros.
    pub free_pages_zeroed: u64,
    /// Live pages (or overflow runs) whose unused bytes held something, now zeros.
    pub live_pages_trimmed: u64,
    /// Bytes past the last page that held something, now zeros.
    pub tail_bytes_zeroed: u64,
    /// Every byte overwritten.
    pub bytes_zeroed: u64,
    /// Branch keys naming no live record, left in place (see the module docs, case 4).
    pub stale_branch_keys: Vec<StaleBranchKey>,
}

/// A branch key that is no longer the first key of its child: the key of a deleted record
/// (or of one moved away) kept as a separator. The records in `from..to` are its child's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleBranchKey {
    /// The named database.
    pub database: Vec<u8>,
    pub from: Vec<u8>,
    /// `None`: up to the end of the database.
    pub to: Option<Vec<u8>>,
}

/// The reports of a whole `Store`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreScrubReport {
    pub log: ScrubReport,
    pub index: ScrubReport,
    pub delivery: ScrubReport,
}

impl StoreScrubReport {
    pub fn bytes_zeroed(&self) -> u64 {
        self.log.bytes_zeroed + self.index.bytes_zeroed + self.delivery.bytes_zeroed
    }
}

// LMDB's on-disk layout (mdb.c, 64-bit): page header, meta, database record, node.
const PAGE_HEADER: usize = 16;
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_LEAF2: u16 = 0x20;
const P_SUBP: u16 = 0x40;
const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;
const F_DUPDATA: u16 = 0x04;
const NODE_HEADER: usize = 8;
const DB_RECORD: usize = 48;
const DB_ROOT: usize = 40;
const META_MAGIC: u32 = 0xBEEF_C0DE;
const META_FREE_DB: usize = PAGE_HEADER + 24;
const META_MAIN_DB: usize = META_FREE_DB + DB_RECORD;
const META_LAST_PAGE: usize = META_MAIN_DB + DB_RECORD;
const META_TXNID: usize = META_LAST_PAGE + 8;
const NO_PAGE: u64 = u64::MAX;
/// Pages read or written in one go while overwriting.
const CHUNK_PAGES: u64 = 64;

/// The walk of a data file, ready to overwrite: see [`survey`].
pub struct Survey<'a>(Walk<'a>);

/// Walks LMDB's data file `file` from its newest meta page and checks that every page is
/// accounted for, writing nothing. The caller guarantees what the module docs require: no
/// transaction open but its own idle write transaction, the newest meta durable, and that
/// `last_page` and `last_txnid` are `mdb_env_info`'s.
pub fn survey(file: &File, page_size: u64, last_page: u64, last_txnid: u64) -> Result<Survey<'_>> {
    if !cfg!(all(target_pointer_width = "64", target_endian = "little")) {
        return Err(EngineError::Storage(
            "scrubbing reads LMDB's 64-bit little-endian layout only".into(),
        ));
    }
    let file = DataFile::new(file, page_size)?;
    let mut walk = Walk::new(file, last_page)?;
    let (free_root, main_root) = walk.newest_meta(last_txnid)?;
    walk.tree(free_root, Tree::Free, None)?;
    walk.tree(main_root, Tree::Main, None)?;
    walk.account_free_pages()?;
    Ok(Survey(walk))
}

impl Survey<'_> {
    /// Branch keys naming no live record (case 4 of the module docs).
    pub fn stale_branch_keys(&self) -> &[StaleBranchKey] {
        &self.0.stale
    }

    /// Overwrites with zeros what no snapshot can reach (cases 1–3), then syncs the file.
    pub fn overwrite(self) -> Result<ScrubReport> {
        self.0.overwrite()
    }
}

struct DataFile<'a> {
    file: &'a File,
    len: u64,
    page_size: u64,
}

impl<'a> DataFile<'a> {
    fn new(file: &'a File, page_size: u64) -> Result<Self> {
        let len = file.metadata().map_err(io_error)?.len();
        if !(4096..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(corrupt(format!("page size {page_size}")));
        }
        Ok(Self { file, len, page_size })
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if offset + len as u64 > self.len {
            return Err(corrupt(format!("bytes {offset}+{len} lie past the end of the file")));
        }
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset).map_err(io_error)?;
        Ok(buf)
    }

    fn page(&self, pgno: u64) -> Result<Vec<u8>> {
        self.read(pgno * self.page_size, self.page_size as usize)
    }

    fn zero(&self, range: Range<u64>) -> Result<u64> {
        let zeros = vec![0; (range.end - range.start) as usize];
        self.file.write_all_at(&zeros, range.start).map_err(io_error)?;
        Ok(range.end - range.start)
    }
}

/// What each page of the file is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Page {
    Unaccounted,
    Meta,
    Live,
    Free,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tree {
    /// The free database: txnid → page numbers.
    Free,
    /// The main database: name → database record.
    Main,
    /// A named database (index into `Walk::names`).
    Named(usize),
}

struct Walk<'a> {
    file: DataFile<'a>,
    pages: Vec<Page>,
    free: Vec<u64>,
    names: Vec<Vec<u8>>,
    /// Unused bytes of live pages that are not zero, and how many pages they lie in.
    unused: Vec<Range<u64>>,
    trimmed: u64,
    stale: Vec<StaleBranchKey>,
}

impl<'a> Walk<'a> {
    fn new(file: DataFile<'a>, last_page: u64) -> Result<Self> {
        let count = usize::try_from(last_page + 1).map_err(|_| corrupt(format!("last page {last_page}")))?;
        if count < 2 {
            return Err(corrupt(format!("last page {last_page}")));
        }
        let mut pages = vec![Page::Unaccounted; count];
        pages[0] = Page::Meta;
        pages[1] = Page::Meta;
        Ok(Self {
            file,
            pages,
            free: Vec::new(),
            names: Vec::new(),
            unused: Vec::new(),
            trimmed: 0,
            stale: Vec::new(),
        })
    }

    /// The roots of the free and main databases in the newest meta page, checked against what
    /// LMDB says it is.
    fn newest_meta(&self, last_txnid: u64) -> Result<(u64, u64)> {
        let metas = [self.file.page(0)?, self.file.page(1)?];
        let newest = metas.iter().max_by_key(|m| u64_at(m, META_TXNID)).expect("two metas");
        if u32_at(newest, PAGE_HEADER) != META_MAGIC {
            return Err(corrupt("no LMDB meta page".into()));
        }
        let (txnid, last_page) = (u64_at(newest, META_TXNID), u64_at(newest, META_LAST_PAGE));
        if txnid != last_txnid || last_page + 1 != self.pages.len() as u64 {
            return Err(corrupt(format!(
                "the newest meta (txn {txnid}, last page {last_page}) is not the environment's (txn \
                 {last_txnid}, last page {})",
                self.pages.len() - 1
            )));
        }
        if u32_at(newest, META_FREE_DB) as u64 != self.file.page_size {
            return Err(corrupt("the meta page's page size is not the environment's".into()));
        }
        Ok((
            u64_at(newest, META_FREE_DB + DB_ROOT),
            u64_at(newest, META_MAIN_DB + DB_ROOT),
        ))
    }

    /// Marks `count` pages from `first` as live or free; each must be unaccounted until now.
    fn claim(&mut self, first: u64, count: u64, what: Page) -> Result<()> {
        for pgno in first..first.saturating_add(count) {
            match self.pages.get_mut(pgno as usize) {
                Some(page @ Page::Unaccounted) => *page = what,
                Some(_) => return Err(corrupt(format!("page {pgno} is reached twice"))),
                None => return Err(corrupt(format!("page {pgno} lies past the last page"))),
            }
        }
        Ok(())
    }

    /// Notes the bytes `range` of `bytes`, which lie at `base` in the file, as unused; returns
    /// whether any of them is not zero.
    fn unused_bytes(&mut self, base: u64, range: Range<usize>, bytes: &[u8]) -> bool {
        let dirty = bytes[range.clone()].iter().any(|&b| b != 0);
        if dirty {
            self.unused.push(base + range.start as u64..base + range.end as u64);
        }
        dirty
    }

    /// Walks the subtree at `pgno` and returns its first key. `upper` bounds its keys (the next
    /// branch key above it), for the stale-key report.
    fn tree(&mut self, pgno: u64, tree: Tree, upper: Option<&[u8]>) -> Result<Vec<u8>> {
        if pgno == NO_PAGE {
            return Ok(Vec::new());
        }
        let page = self.file.page(pgno)?;
        self.claim(pgno, 1, Page::Live)?;
        let flags = u16_at(&page, 10);
        if u64_at(&page, 0) != pgno {
            return Err(corrupt(format!("page {pgno} says it is page {}", u64_at(&page, 0))));
        }
        if flags & (P_LEAF2 | P_SUBP) != 0 {
            return Err(EngineError::Storage(
                "scrubbing does not support MDB_DUPSORT databases".into(),
            ));
        }
        let branch = match flags & (P_BRANCH | P_LEAF | P_OVERFLOW) {
            P_BRANCH => true,
            P_LEAF => false,
            _ => {
                return Err(corrupt(format!(
                    "page {pgno} is not a branch or leaf (flags {flags:#x})"
                )))
            }
        };
        let size = page.len();
        let (lower, upper_free) = (u16_at(&page, 12) as usize, u16_at(&page, 14) as usize);
        if lower < PAGE_HEADER || lower > upper_free || upper_free > size || !(lower - PAGE_HEADER).is_multiple_of(2) {
            return Err(corrupt(format!("page {pgno}: bounds {lower}..{upper_free}")));
        }
        let count = (lower - PAGE_HEADER) / 2;
        let mut used = Vec::with_capacity(count + 1);
        used.push(0..lower);
        let mut first_key = Vec::new();
        let nodes: Vec<(usize, u16, u16, u64, Range<usize>)> = (0..count)
            .map(|i| {
                let at = u16_at(&page, PAGE_HEADER + 2 * i) as usize;
                if at < upper_free || at + NODE_HEADER > size {
                    return Err(corrupt(format!("page {pgno}: node {i} at {at}")));
                }
                let size_or_page = u16_at(&page, at) as u64 | (u16_at(&page, at + 2) as u64) << 16;
                let (node_flags, key_len) = (u16_at(&page, at + 4), u16_at(&page, at + 6));
                let key = at + NODE_HEADER..at + NODE_HEADER + key_len as usize;
                if key.end > size {
                    return Err(corrupt(format!("page {pgno}: key of node {i} past the page")));
                }
                Ok((at, node_flags, key_len, size_or_page, key))
            })
            .collect::<Result<_>>()?;
        for (i, (at, node_flags, _, size_or_page, key)) in nodes.iter().cloned().enumerate() {
            if branch {
                used.push(at..key.end);
                let child = size_or_page | (node_flags as u64) << 32;
                let next = nodes.get(i + 1).map(|n| &page[n.4.clone()]).or(upper);
                let child_first = self.tree(child, tree, next)?;
                if i == 0 {
                    first_key = child_first;
                } else if page[key.clone()] != child_first[..] {
                    if let Tree::Named(name) = tree {
                        self.stale.push(StaleBranchKey {
                            database: self.names[name].clone(),
                            from: page[key.clone()].to_vec(),
                            to: next.map(<[u8]>::to_vec),
                        });
                    }
                }
                continue;
            }
            if node_flags & F_DUPDATA != 0 {
                return Err(EngineError::Storage(
                    "scrubbing does not support MDB_DUPSORT databases".into(),
                ));
            }
            if i == 0 {
                first_key = page[key.clone()].to_vec();
            }
            let value_len = size_or_page as usize;
            let value = if node_flags & F_BIGDATA != 0 {
                if key.end + 8 > size {
                    return Err(corrupt(format!("page {pgno}: node {i} past the page")));
                }
                used.push(at..key.end + 8);
                self.overflow(u64_at(&page, key.end), value_len, tree == Tree::Free)?
            } else {
                if key.end + value_len > size {
                    return Err(corrupt(format!("page {pgno}: node {i} past the page")));
                }
                used.push(at..key.end + value_len);
                page[key.end..key.end + value_len].to_vec()
            };
            match tree {
                Tree::Free => self.free_record(&page[key], &value)?,
                Tree::Main if node_flags & F_SUBDATA != 0 => {
                    if value.len() != DB_RECORD {
                        return Err(corrupt(format!(
                            "page {pgno}: database record of {} bytes",
                            value.len()
                        )));
                    }
                    self.names.push(page[key].to_vec());
                    self.tree(u64_at(&value, DB_ROOT), Tree::Named(self.names.len() - 1), None)?;
                }
                Tree::Main | Tree::Named(_) => {}
            }
        }
        used.sort_by_key(|r| r.start);
        let mut end = 0;
        let mut dirty = false;
        let base = pgno * self.file.page_size;
        for range in used.into_iter().chain(std::iter::once(size..size)) {
            if range.start > end {
                dirty |= self.unused_bytes(base, end..range.start, &page);
            }
            end = end.max(range.end);
        }
        self.trimmed += u64::from(dirty);
        Ok(first_key)
    }

    /// Claims the overflow run at `pgno` holding a value of `len` bytes, notes the unused end of
    /// its last page, and returns the value if `read` (the free database's lists only).
    fn overflow(&mut self, pgno: u64, len: usize, read: bool) -> Result<Vec<u8>> {
        let head = self.file.page(pgno)?;
        let pages = u32_at(&head, 12) as u64;
        if u64_at(&head, 0) != pgno || u16_at(&head, 10) & P_OVERFLOW == 0 || pages == 0 {
            return Err(corrupt(format!("page {pgno} is not an overflow page")));
        }
        let run_len = pages * self.file.page_size;
        if (PAGE_HEADER + len) as u64 > run_len {
            return Err(corrupt(format!("a value of {len} bytes in {pages} overflow pages")));
        }
        self.claim(pgno, pages, Page::Live)?;
        let base = pgno * self.file.page_size;
        // LMDB may keep a smaller value in a run it overwrites in place (even one small enough
        // for a leaf): everything after the value, over as many pages as it takes, is unused.
        let value_end = (PAGE_HEADER + len) as u64;
        let unused = self.file.read(base + value_end, (run_len - value_end) as usize)?;
        if self.unused_bytes(base + value_end, 0..unused.len(), &unused) {
            self.trimmed += 1;
        }
        if read {
            self.file.read(base + PAGE_HEADER as u64, len)
        } else {
            Ok(Vec::new())
        }
    }

    /// A record of the free database: txnid → [count, page numbers…] (native size_t).
    fn free_record(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() != 8 || value.len() < 8 || !value.len().is_multiple_of(8) {
            return Err(corrupt("a free-list record that is not a txnid and a page list".into()));
        }
        let count = u64_at(value, 0) as usize;
        if value.len() < 8 * (count + 1) {
            return Err(corrupt("a free-list record shorter than its count".into()));
        }
        self.free.extend((1..=count).map(|i| u64_at(value, 8 * i)));
        Ok(())
    }

    /// Every page of the file must now be a meta page, live, or free.
    fn account_free_pages(&mut self) -> Result<()> {
        let mut free = std::mem::take(&mut self.free);
        free.sort_unstable();
        for &pgno in &free {
            self.claim(pgno, 1, Page::Free)?;
        }
        self.free = free;
        match self.pages.iter().position(|&p| p == Page::Unaccounted) {
            Some(pgno) => Err(corrupt(format!("page {pgno} is neither reachable nor free"))),
            None => Ok(()),
        }
    }

    /// Zeroes the unused bytes of live pages, the free pages and the tail; then syncs.
    fn overwrite(self) -> Result<ScrubReport> {
        let file = &self.file;
        let page_size = file.page_size;
        let mut report = ScrubReport {
            page_size,
            pages: self.pages.len() as u64,
            free_pages: self.free.len() as u64,
            live_pages_trimmed: self.trimmed,
            stale_branch_keys: self.stale,
            ..ScrubReport::default()
        };
        for range in self.unused {
            report.bytes_zeroed += file.zero(range)?;
        }
        // Free pages, a run of consecutive ones at a time.
        let mut i = 0;
        while i < self.free.len() {
            let first = self.free[i];
            if first * page_size >= file.len {
                // LMDB's file may end before its last pages when they were freed unwritten.
                break;
            }
            let mut count = 1;
            while i + (count as usize) < self.free.len()
                && self.free[i + count as usize] == first + count
                && count < CHUNK_PAGES
                && (first + count + 1) * page_size <= file.len
            {
                count += 1;
            }
            let bytes = file.read(first * page_size, (count * page_size) as usize)?;
            for (n, page) in bytes.chunks(page_size as usize).enumerate() {
                if page.iter().any(|&b| b != 0) {
                    let at = (first + n as u64) * page_size;
                    report.bytes_zeroed += file.zero(at..at + page_size)?;
                    report.free_pages_zeroed += 1;
                }
            }
            i += count as usize;
        }
        // The tail: past the last page up to the end of the file.
        let mut at = report.pages * page_size;
        while at < file.len {
            let len = (file.len - at).min(CHUNK_PAGES * page_size);
            if file.read(at, len as usize)?.iter().any(|&b| b != 0) {
                let zeroed = file.zero(at..at + len)?;
                report.tail_bytes_zeroed += zeroed;
                report.bytes_zeroed += zeroed;
            }
            at += len;
        }
        if report.bytes_zeroed > 0 {
            file.file.sync_data().map_err(io_error)?;
        }
        Ok(report)
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn corrupt(what: String) -> EngineError {
    EngineError::Storage(format!(
        "scrub refused, nothing written: the data file is not as expected ({what})"
    ))
}

fn io_error(err: std::io::Error) -> EngineError {
    EngineError::Storage(format!("scrub: {err}"))
}

#[cfg(test)]
mod tests;
