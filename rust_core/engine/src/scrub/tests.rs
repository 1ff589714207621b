//! Real LMDB files in a temporary directory: deleted records are written with a canary, the
//! test first sees the canary in `data.mdb` (so it can fail), then sees none after a scrub.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use heed::types::Bytes;
use heed::Database;
use proptest::prelude::*;

use crate::config::EngineConfig;
use crate::store::{Environment, Store};

type Records = BTreeMap<Vec<u8>, Vec<u8>>;
/// A value and the token it repeats.
type Token = (String, Vec<u8>);

fn open(dir: &Path) -> Store {
    Store::open(&EngineConfig {
        map_size: 1 << 22,
        ..EngineConfig::new(dir)
    })
    .unwrap()
}

fn data_file(dir: &Path, env: &str) -> Vec<u8> {
    std::fs::read(dir.join(env).join("data.mdb")).unwrap()
}

fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// A marker no other byte of the file can spell.
fn canary() -> String {
    format!("canary-{}", uuid::Uuid::new_v4().simple())
}

/// Small records and, every tenth, one big enough for a run of overflow pages. Keys start
/// with the record's number, so two sets interleave in the same leaves and branches.
fn records(tag: &str, count: usize) -> Records {
    (0..count)
        .map(|i| {
            let repeat = if i % 10 == 0 { 400 } else { 3 };
            (format!("{i:04}-{tag}").into_bytes(), tag.repeat(repeat).into_bytes())
        })
        .collect()
}

fn put_all(env: &Environment, db: Database<Bytes, Bytes>, records: &Records) {
    env.write_with_growth(|txn| {
        for (key, value) in records {
            db.put(txn, key, value)?;
        }
        Ok(())
    })
    .unwrap();
}

fn delete_all(env: &Environment, db: Database<Bytes, Bytes>, records: &Records) {
    env.write_with_growth(|txn| {
        for key in records.keys() {
            assert!(db.delete(txn, key)?);
        }
        Ok(())
    })
    .unwrap();
}

fn read_all(env: &Environment, db: Database<Bytes, Bytes>) -> Records {
    let txn = env.read().unwrap();
    db.iter(&txn.txn)
        .unwrap()
        .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

fn union(a: &Records, b: &Records) -> Records {
    a.iter().chain(b).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn scrub_leaves_no_byte_of_deleted_records_and_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let canary = canary();
    let kept = records("kept-record", 300);
    let deleted = records(&canary, 300);
    let later = records("written-after-the-scrub", 50);
    {
        let store = open(dir.path());
        let db = store.index_dbs.identifiers;
        put_all(&store.index, db, &kept);
        put_all(&store.index, db, &deleted);
        delete_all(&store.index, db, &deleted);
        let before = data_file(dir.path(), "index");
        assert!(
            occurrences(&before, canary.as_bytes()) > 0,
            "deleted bytes are in the file before a scrub"
        );

        let report = store.index.scrub().unwrap();
        assert!(report.free_pages_zeroed > 0 && report.bytes_zeroed > 0, "{report:?}");
        assert!(report.stale_branch_keys.is_empty(), "{report:?}");
        let after = data_file(dir.path(), "index");
        assert_eq!(before.len(), after.len());
        assert_eq!(occurrences(&after, canary.as_bytes()), 0);
        assert_eq!(occurrences(&after, &canary.as_bytes()["canary-".len()..]), 0);
        assert_eq!(read_all(&store.index, db), kept);

        // The environment still works, and a second scrub finds nothing of the canary.
        put_all(&store.index, db, &later);
        assert_eq!(read_all(&store.index, db), union(&kept, &later));
        store.index.scrub().unwrap();
        assert_eq!(occurrences(&data_file(dir.path(), "index"), canary.as_bytes()), 0);
    }
    let store = open(dir.path());
    assert_eq!(
        read_all(&store.index, store.index_dbs.identifiers),
        union(&kept, &later)
    );
}

#[test]
fn scrub_all_scrubs_the_log_index_and_delivery_environments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let envs: [(&str, &Environment, Database<Bytes, Bytes>); 3] = [
        ("log", &store.log, store.log_dbs.tokens),
        ("index", &store.index, store.index_dbs.identifiers),
        ("delivery", &store.delivery, store.delivery_dbs.dead_letters),
    ];
    let kept = records("kept-record", 100);
    let canaries: Vec<String> = envs.iter().map(|_| canary()).collect();
    for ((name, env, db), canary) in envs.iter().zip(&canaries) {
        let deleted = records(canary, 100);
        put_all(env, *db, &kept);
        put_all(env, *db, &deleted);
        delete_all(env, *db, &deleted);
        assert!(
            occurrences(&data_file(dir.path(), name), canary.as_bytes()) > 0,
            "{name}"
        );
    }
    let report = store.scrub_all().unwrap();
    assert!(report.log.bytes_zeroed > 0 && report.index.bytes_zeroed > 0 && report.delivery.bytes_zeroed > 0);
    for ((name, env, db), canary) in envs.iter().zip(&canaries) {
        assert_eq!(
            occurrences(&data_file(dir.path(), name), canary.as_bytes()),
            0,
            "{name}"
        );
        assert_eq!(read_all(env, *db), kept, "{name}");
    }
}

/// A reader whose snapshot still holds the deleted records keeps seeing them whole: the scrub
/// waits for it (its snapshot is never overwritten under it), then removes them.
#[test]
fn scrub_waits_for_a_reader_that_can_still_see_the_deleted_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let db = store.index_dbs.identifiers;
    let canary = canary();
    let kept = records("kept-record", 100);
    let deleted = records(&canary, 100);
    put_all(&store.index, db, &kept);
    put_all(&store.index, db, &deleted);
    let everything = union(&kept, &deleted);

    let (to_reader, reader_inbox) = mpsc::channel::<()>();
    let (reader_says, from_reader) = mpsc::channel::<bool>();
    let (scrub_says, scrub_done) = mpsc::channel();
    std::thread::scope(|scope| {
        let (store, everything) = (&store, &everything);
        scope.spawn(move || {
            let txn = store.index.read().unwrap();
            let snapshot = |txn: &crate::store::ReadTxn<'_>| -> Records {
                db.iter(&txn.txn)
                    .unwrap()
                    .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
                    .collect()
            };
            reader_says.send(snapshot(&txn) == *everything).unwrap();
            // Deletion and scrub happen now; the snapshot must still read whole.
            reader_inbox.recv().unwrap();
            reader_says.send(snapshot(&txn) == *everything).unwrap();
            reader_inbox.recv().unwrap();
        });
        assert!(from_reader.recv().unwrap());
        delete_all(&store.index, db, &deleted);
        scope.spawn(move || scrub_says.send(store.index.scrub()).unwrap());
        assert!(
            scrub_done.recv_timeout(Duration::from_millis(300)).is_err(),
            "the scrub must wait for the reader"
        );
        to_reader.send(()).unwrap();
        assert!(
            from_reader.recv().unwrap(),
            "the reader's snapshot is intact while the scrub waits"
        );
        assert!(scrub_done.try_recv().is_err());
        to_reader.send(()).unwrap();
        let report = scrub_done.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
        assert!(report.bytes_zeroed > 0);
    });
    assert_eq!(occurrences(&data_file(dir.path(), "index"), canary.as_bytes()), 0);
    assert_eq!(read_all(&store.index, db), kept);
}

#[test]
fn a_second_scrub_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let db = store.index_dbs.identifiers;
    let deleted = records(&canary(), 100);
    put_all(&store.index, db, &records("kept-record", 100));
    put_all(&store.index, db, &deleted);
    delete_all(&store.index, db, &deleted);
    assert!(store.index.scrub().unwrap().bytes_zeroed > 0);
    let again = store.index.scrub().unwrap();
    assert_eq!(again.bytes_zeroed, 0, "{again:?}");
    assert!(again.free_pages > 0);
}

/// One step of the random history: put (a value of `size` bytes) or delete `key`.
#[derive(Clone, Debug)]
enum Step {
    Put { key: u16, size: usize },
    Delete { key: u16 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u16..400, prop_oneof![1usize..200, 200usize..3000, 5000usize..20_000])
            .prop_map(|(key, size)| Step::Put { key, size }),
        2 => (0u16..400).prop_map(|key| Step::Delete { key }),
    ]
}

/// A value every byte of which says which put wrote it: `<` + run + put number + `>` repeated
/// (no other value can contain that 12-byte token).
fn value(run: &str, put: usize, size: usize) -> (String, Vec<u8>) {
    let token = format!("<{run}{put:05}>");
    (token.clone(), token.repeat(size / token.len() + 1).into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// After random puts, overwrites and deletes in several transactions, a scrub leaves every
    /// remaining record as it was and no byte of a value that was deleted or overwritten.
    #[test]
    fn after_random_histories_scrub_keeps_live_records_and_no_dead_value(
        steps in proptest::collection::vec(step(), 1..300),
        per_txn in 1usize..40,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let db = store.index_dbs.identifiers;
        let run = format!("{:05}", rand_run());
        let mut model: BTreeMap<Vec<u8>, Token> = BTreeMap::new();
        let mut dead = Vec::new();
        for (n, chunk) in steps.chunks(per_txn).enumerate() {
            // The transaction's writes, applied to the model once it commits (a transaction
            // that fills the map is retried).
            let writes: Vec<(Vec<u8>, Option<Token>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, step)| match *step {
                    Step::Put { key, size } => (format!("key-{key:03}").into_bytes(), Some(value(&run, n * per_txn + i, size))),
                    Step::Delete { key } => (format!("key-{key:03}").into_bytes(), None),
                })
                .collect();
            store.index.write_with_growth(|txn| {
                for (key, write) in &writes {
                    match write {
                        Some((_, bytes)) => db.put(txn, key, bytes)?,
                        None => {
                            db.delete(txn, key)?;
                        }
                    }
                }
                Ok(())
            }).unwrap();
            for (key, write) in writes {
                let old = match write {
                    Some(new) => model.insert(key, new),
                    None => model.remove(&key),
                };
                dead.extend(old.map(|(token, _)| token));
            }
        }
        let report = store.index.scrub().unwrap();
        prop_assert!(report.stale_branch_keys.is_empty(), "{:?}", report.stale_branch_keys);
        let expected: Records = model.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect();
        prop_assert!(read_all(&store.index, db) == expected, "the remaining records differ");
        let file = data_file(dir.path(), "index");
        for token in &dead {
            prop_assert_eq!(occurrences(&file, token.as_bytes()), 0, "{} survives", token);
        }
    }
}

/// A number for one run, so that the tokens of one proptest case are not another's.
fn rand_run() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32 % 100_000
}
