//! Unit tests of the block store: round trips, immutability, stale temp files, withdrawals.

use super::*;

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "parthenon-store-{tag}-{}-{}",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&p);
    p
}

#[test]
fn put_get_round_trip_and_immutable() {
    let dir = temp_dir("rt");
    let s = BlockStore::open(&dir).unwrap();
    let b = s.put(BlockId(5), b"abc").unwrap();
    assert_eq!(b.len(), 3);
    let g = s.get(BlockId(5)).unwrap();
    assert_eq!(g.read_body().unwrap(), b"abc");
    g.verify().unwrap();
    assert!(matches!(s.put(BlockId(5), b"xyz"), Err(Error::Duplicate { .. })));
    assert_eq!(s.get(BlockId(5)).unwrap().read_body().unwrap(), b"abc");
    assert_eq!(s.ids().unwrap(), vec![BlockId(5)]);
    assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    assert!(matches!(s.get(BlockId(6)), Err(Error::NotFound { .. })));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unlocked_old_temps_are_removed_on_open_whatever_their_pid() {
    let dir = temp_dir("stale");
    let s = BlockStore::open(&dir).unwrap();
    let tmp = dir.join("tmp");
    // pid 4194304 is above the kernel's pid_max limit, so it never runs.
    let stale = tmp.join("0000000000000001.4194304.0.part");
    // Our own pid, as a crashed node that is pid 1 in its container finds its predecessor's
    // files: the pid is alive, the writer is not.
    let own_pid = tmp.join(format!("0000000000000002.{}.0.part", std::process::id()));
    // A writer in another PID namespace: its pid is not alive here, but it holds the lock.
    let foreign = tmp.join("0000000000000003.4194303.0.part");
    // Just created by a writer that has not locked it yet.
    let fresh = tmp.join("0000000000000004.4194302.0.part");
    // Sealed (0444) before a crash between the seal and the publication.
    let sealed = tmp.join("0000000000000005.4194301.0.part");
    // A link in tmp to an old, unlocked file elsewhere: neither is touched.
    let outside = dir.join("outside");
    let link = tmp.join("0000000000000006.4194300.0.part");
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for p in [&stale, &own_pid, &foreign, &sealed, &outside] {
        fs::write(p, "half a block").unwrap();
        File::options().write(true).open(p).unwrap().set_modified(an_hour_ago).unwrap();
    }
    fs::set_permissions(&sealed, fs::Permissions::from_mode(0o444)).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    fs::write(&fresh, b"new").unwrap();
    let held = File::options().write(true).open(&foreign).unwrap();
    try_lock(&held).unwrap();
    drop(s);
    let _s = BlockStore::open(&dir).unwrap();
    assert!(!stale.exists(), "an unlocked old temp file must go");
    assert!(!own_pid.exists(), "an unlocked old temp file must go, even with a live pid");
    assert!(!sealed.exists(), "an unlocked old sealed temp file must go");
    assert!(foreign.exists(), "a locked temp file must stay, whatever its pid");
    assert!(fresh.exists(), "a temp file younger than STALE_AFTER must stay");
    assert!(fs::symlink_metadata(&link).is_ok() && outside.exists(), "links are not followed");
    drop(held);
    fs::remove_dir_all(dir).unwrap();
}

/// A restart that reuses the pid (pid 1 in a container) restarts the sequence too: a temp
/// file its predecessor left under the old naming must not make `begin` fail.
#[test]
fn temp_names_do_not_repeat_across_incarnations() {
    let dir = temp_dir("names");
    let s = BlockStore::open(&dir).unwrap();
    let id = BlockId(7);
    let next = TEMP_SEQ.load(Ordering::Relaxed);
    for seq in next..next + 1000 {
        fs::write(dir.join("tmp").join(format!("{id}.{}.{seq}.part", std::process::id())), b"left").unwrap();
    }
    let b = s.put(id, b"body").unwrap();
    assert_eq!(b.read_body().unwrap(), b"body");
    let t = s.begin(&BlockHeader::for_body(BlockId(8), b"xy")).unwrap();
    let name = t.path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains(&format!(".{:016x}.", incarnation())), "{name}");
    drop(t);
    fs::remove_dir_all(dir).unwrap();
}

/// A failed directory fsync's error says whether the block could be taken back.
#[test]
fn a_withdrawal_says_whether_it_worked() {
    let dir = temp_dir("withdraw");
    fs::create_dir_all(&dir).unwrap();
    let eio = || std::io::Error::from_raw_os_error(libc::EIO);
    let published = dir.join("0000000000000001.blk");
    fs::write(&published, b"block").unwrap();
    let e = withdraw(&published, BlockId(1), eio()).to_string();
    assert!(e.contains("(block withdrawn)") && !published.exists(), "{e}");
    // A name that cannot be removed as a file (a directory) stays: the error must say so.
    let stuck = dir.join("0000000000000002.blk");
    fs::create_dir_all(stuck.join("x")).unwrap();
    let e = withdraw(&stuck, BlockId(2), eio()).to_string();
    assert!(e.contains("withdrawing the block failed too") && e.contains("stays visible"), "{e}");
    assert!(!e.contains("(block withdrawn)"), "{e}");
    assert!(e.contains("block 0000000000000002"), "{e}");
    fs::remove_dir_all(dir).unwrap();
}

/// A stored file whose header (its check is unkeyed, so anyone can forge one) announces a
/// length near u64::MAX is a corrupt block, named with its reason, not an overflow.
#[test]
fn a_header_announcing_a_huge_length_is_corrupt_not_an_overflow() {
    let dir = temp_dir("huge");
    let s = BlockStore::open(&dir).unwrap();
    for length in [u64::MAX, u64::MAX - HEADER_LEN as u64 + 1] {
        let h = BlockHeader { length, ..BlockHeader::for_body(BlockId(3), b"") };
        let p = s.path(BlockId(3));
        fs::write(&p, h.encode()).unwrap();
        let e = s.get(BlockId(3)).unwrap_err();
        assert!(matches!(e, Error::CorruptStore { block: BlockId(3), .. }), "{e}");
        assert!(e.to_string().contains("header says 64 + "), "{e}");
        fs::remove_file(p).unwrap();
    }
    // A temp block is never begun for such a header either.
    let h = BlockHeader { length: u64::MAX, ..BlockHeader::for_body(BlockId(4), b"") };
    assert!(matches!(s.begin(&h), Err(Error::Oversized { block: BlockId(4), max: MAX_BODY_LEN, .. })));
    assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn uncommitted_temp_is_removed() {
    let dir = temp_dir("tmp");
    let s = BlockStore::open(&dir).unwrap();
    let t = s.begin(&BlockHeader::for_body(BlockId(1), b"xy")).unwrap();
    assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 1);
    let err = t.commit().unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    assert!(!s.contains(BlockId(1)));
    fs::remove_dir_all(dir).unwrap();
}
