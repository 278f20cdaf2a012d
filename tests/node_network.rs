//! A validator under attack on its network port: malformed frames, consensus messages without a
//! `Hello` handshake, `Hello`s that do not prove the claimed validator's key, forged and unsigned
//! messages, and floods of transactions with invalid signatures (which must not hold up
//! consensus); and peers that serve forged blocks when the validator fetches through the
//! engine's transfer (which must not keep it from an honest peer's blocks). Everything bad is
//! dropped and counted; the valid part is accepted.
#![cfg(feature = "node")]

mod common;

use common::TempDir;
use parthenon::node::config::{GenesisSpec, NodeConfig, ValidatorEntry};
use parthenon::node::consensus::{CommitCert, Digest, Message, Sign, Signable, Signed, Vote, VoteKind};
use parthenon::node::handshake;
use parthenon::node::ledger::{sign_transaction, OutPoint, Output};
use parthenon::node::net::{encode, read_frame, write_frame, Frame};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn key(i: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[i + 10; 32])
}

/// One frame read from a blocking connection (the fake validators' threads), or `None` at its
/// end or on a frame that does not decode.
fn frame(conn: &std::net::TcpStream) -> Option<Frame> {
    let mut len = [0u8; 4];
    std::io::Read::read_exact(&mut &*conn, &mut len).ok()?;
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    std::io::Read::read_exact(&mut &*conn, &mut body).ok()?;
    postcard::from_bytes(&body).ok()
}

async fn scrape(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn status(addr: std::net::SocketAddr) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).await.unwrap();
    write_frame(&mut s, &Frame::StatusRequest { at: None }).await.unwrap();
    match read_frame(&mut s).await.unwrap() {
        Some(Frame::Status(j)) => serde_json::from_str(&j).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// A validator connection to validator 0 at `addr` as validator `i`, after the handshake.
async fn hello_as(addr: std::net::SocketAddr, i: u16) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let chain = genesis().genesis().unwrap().id();
    handshake::call(&mut s, &key(i as u8), &chain, i, 0).await.unwrap();
    s
}

fn genesis() -> GenesisSpec {
    GenesisSpec { chain: "net-test".into(), wallet_seed: hex::encode([7u8; 32]), keys: 4, outputs: 1024, value: 5 }
}

/// A loopback address nothing listens on (port `port`, 1 to 3), for a validator that is not
/// running; each validator needs its own (`NodeConfig::validate`).
fn nowhere(port: u16) -> std::net::SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Starts validator 0 of four on a free loopback port; validator 1 is at `peer1`, the others
/// are not running, so validator 0 alone can never reach a quorum. Returns its address, its
/// data directory, a connection to it and its metrics address.
async fn start_validator(
    name: &str,
    peer1: std::net::SocketAddr,
) -> (std::net::SocketAddr, TempDir, TcpStream, std::net::SocketAddr) {
    start_validator_with(name, [peer1, nowhere(2), nowhere(3)]).await
}

/// [`start_validator`] with validators 1, 2 and 3 at `peers`.
async fn start_validator_with(
    name: &str,
    peers: [std::net::SocketAddr; 3],
) -> (std::net::SocketAddr, TempDir, TcpStream, std::net::SocketAddr) {
    start_validator_idle(name, peers, 60_000).await
}

/// [`start_validator_with`] closing silent clients after `client_idle_ms`.
async fn start_validator_idle(
    name: &str,
    peers: [std::net::SocketAddr; 3],
    client_idle_ms: u64,
) -> (std::net::SocketAddr, TempDir, TcpStream, std::net::SocketAddr) {
    let fetch_deadline_ms = parthenon::node::sync::FETCH_DEADLINE.as_millis() as u64;
    start_validator_deadlines(name, peers, client_idle_ms, fetch_deadline_ms).await
}

/// [`start_validator_idle`] cutting each catch-up fetch after `fetch_deadline_ms`.
async fn start_validator_deadlines(
    name: &str,
    peers: [std::net::SocketAddr; 3],
    client_idle_ms: u64,
    fetch_deadline_ms: u64,
) -> (std::net::SocketAddr, TempDir, TcpStream, std::net::SocketAddr) {
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (addr, metrics) = (free(), free());
    // Removed when the test ends, failed or not.
    let dir = TempDir::new(name);
    let validators = (0..4)
        .map(|i| ValidatorEntry {
            public_key: hex::encode(key(i).verifying_key().to_bytes()),
            stake: 1,
            address: if i == 0 { addr } else { peers[usize::from(i) - 1] },
        })
        .collect();
    let cfg = NodeConfig {
        index: 0,
        key: hex::encode(key(0).to_bytes()),
        listen: addr,
        data_dir: dir.path().to_path_buf(),
        base_timeout_ms: 60_000,
        propose_delay_ms: 0,
        max_block_txs: 100,
        validators,
        genesis: genesis(),
        metrics: Some(metrics),
        client_idle_timeout_ms: client_idle_ms,
        fetch_deadline_ms,
    };
    let engine = parthenon::Engine::builder()
        .detect_options(parthenon::detect::DetectOptions { skip_dpdk: true, ..Default::default() })
        .build()
        .unwrap();
    let node = tokio::spawn(parthenon::node::service::run(cfg, engine));
    wait_until_serving(addr, node).await;
    let s = TcpStream::connect(addr).await.expect("connect to validator 0, which answers its status");
    (addr, dir, s, metrics)
}

/// Waits until the validator `node` runs answers a status request at `addr`, so that it is up
/// (its metrics listener included) and the one listening there. A node that stops instead (a
/// configuration error, a port taken by someone else) fails the test with its error, and one
/// that does not answer within 60 s fails it too, rather than the test waiting for ever.
async fn wait_until_serving(
    addr: std::net::SocketAddr,
    node: tokio::task::JoinHandle<Result<(), parthenon::node::service::NodeError>>,
) {
    let started = std::time::Instant::now();
    loop {
        if node.is_finished() {
            panic!("validator 0 stopped before it answered at {addr}: {:?}", node.await);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "validator 0 did not answer at {addr} within 60 s");
        let answered = async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            write_frame(&mut s, &Frame::StatusRequest { at: None }).await.ok()?;
            matches!(read_frame(&mut s).await.ok()?, Some(Frame::Status(_))).then_some(())
        };
        if let Ok(Some(())) = tokio::time::timeout(Duration::from_secs(2), answered).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_and_signatures_are_dropped_and_counted() {
    let genesis = genesis();
    let (addr, _dir, mut s, metrics) = start_validator("net-test", ([127, 0, 0, 1], 1).into()).await;
    let chain = genesis.genesis().unwrap().id();
    let vote_on = |chain: Digest, signer: u16, k: &ed25519_dalek::SigningKey| {
        let body = Vote { kind: VoteKind::Prepare, height: 0, view: 0, digest: Digest([1; 32]) };
        Message::Vote(Signed { body, signer, signature: Sign::sign(k, &body.signing_bytes(&chain)) })
    };
    let vote = |signer: u16, k: &ed25519_dalek::SigningKey| vote_on(chain, signer, k);
    // Consensus on a client connection (no handshake): unidentified.
    write_frame(&mut s, &Frame::Consensus(vote(1, &key(1)))).await.unwrap();
    // Malformed body.
    s.write_all(&[4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    s.flush().await.unwrap();
    let mut s = hello_as(addr, 1).await;
    // Valid: signed by validator 1.
    write_frame(&mut s, &Frame::Consensus(vote(1, &key(1)))).await.unwrap();
    // Forged: claims validator 2, signed by validator 1's key.
    write_frame(&mut s, &Frame::Consensus(vote(2, &key(1)))).await.unwrap();
    // Unknown signer.
    write_frame(&mut s, &Frame::Consensus(vote(9, &key(1)))).await.unwrap();
    // Replayed from another chain: validator 1's genuine signature, but for another genesis
    // (same validator keys).
    let other = GenesisSpec { chain: "other-net".into(), ..genesis.clone() }.genesis().unwrap().id();
    write_frame(&mut s, &Frame::Consensus(vote_on(other, 1, &key(1)))).await.unwrap();
    // Unsigned: a "decided" block without a single signature.
    write_frame(&mut s, &Frame::Consensus(Message::Decided { cert: CommitCert { votes: vec![] }, payload: vec![] }))
        .await
        .unwrap();
    // A transaction flood: 10 valid, 10 with one flipped signature bit.
    let g = genesis.genesis().unwrap().id();
    let mut txs = Vec::new();
    for j in 0..20u32 {
        let k = genesis.spend_key(j % 4).unwrap();
        let mut tx = sign_transaction(&[(OutPoint { tx: g, index: j }, &k)], vec![Output { value: 5, lock: k.lock() }]);
        if j >= 10 {
            tx.signatures[0].0[9] ^= 4;
        }
        txs.push(tx);
    }
    s.write_all(&encode(&Frame::Submit(txs))).await.unwrap();
    s.flush().await.unwrap();
    let mut st = serde_json::Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        st = status(addr).await;
        if st["net"]["bad_signatures"] == 2 && st["net"]["refused_unverified"] == 2 && st["mempool"] == 10 {
            break;
        }
    }
    assert_eq!(st["net"]["unidentified"], 1, "{st}");
    assert_eq!(st["net"]["malformed_frames"], 1, "{st}");
    assert_eq!(st["net"]["bad_signatures"], 2, "forged, signed for another chain: {st}");
    // Refused before any signature is verified: an unknown signer, a certificate without votes.
    assert_eq!(st["net"]["refused_unverified"], 2, "{st}");
    assert_eq!(st["net"]["messages_in"], 1, "{st}");
    assert_eq!(st["mempool"], 10, "exactly the validly signed transactions are admitted: {st}");
    assert_eq!(st["height"], 0, "one validator of four commits nothing alone: {st}");
    // The same counters on the Prometheus endpoint.
    let text = scrape(metrics, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for line in [
        "parthenon_dropped_frames_total{reason=\"malformed\"} 1",
        "parthenon_dropped_frames_total{reason=\"unidentified\"} 1",
        "parthenon_dropped_frames_total{reason=\"bad_signature\"} 2",
        "parthenon_dropped_frames_total{reason=\"refused_unverified\"} 2",
        "parthenon_consensus_messages_total 1",
        "parthenon_mempool_transactions 10",
        "parthenon_height 0",
        "parthenon_view_changes_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    assert!(scrape(metrics, "/other").await.starts_with("HTTP/1.1 404"));
}

/// Validator 1 (played by this test) tells validator 0 that it holds three final blocks, then
/// serves forged ones through the engine's transfer: one whose certificate is validly signed but
/// far below a quorum (refused before its signature is verified), two whose certificates carry
/// forged signatures. Validator 0 fetches all three whole (transfer checks length and digest),
/// and consensus refuses every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_blocks_served_through_transfer_are_fetched_and_refused() {
    use parthenon::transfer::{transport_for, BlockId};
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // Every connection of validator 0 starts with a `Hello`: the fake sends a challenge,
        // takes whatever proof comes and welcomes it (it is not the validator under test), and answers the
        // connection whose next frame is `FetchBlocks` (the block connection); validator 0's
        // consensus connection is let go.
        let (found, block_connection) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in fake.incoming() {
                let Ok(conn) = conn else { continue };
                let found = found.clone();
                std::thread::spawn(move || {
                    let Some(Frame::Hello { .. }) = frame(&conn) else { return };
                    let challenge = encode(&Frame::Challenge { nonce: [7; 32] });
                    std::io::Write::write_all(&mut &conn, &challenge).unwrap();
                    let Some(Frame::HelloProof { .. }) = frame(&conn) else { return };
                    std::io::Write::write_all(&mut &conn, &encode(&Frame::Welcome)).unwrap();
                    if let Some(Frame::FetchBlocks { from, .. }) = frame(&conn) {
                        let _ = found.send((conn, from));
                    }
                });
            }
        });
        // The accept loop above keeps a sender for ever: without a limit here, a validator 0
        // that never fetches would hang the test at the join below.
        let (conn, from) =
            block_connection.recv_timeout(Duration::from_secs(60)).expect("validator 0 never fetched from validator 1");
        assert_eq!(from, 0);
        let copy = transport_for(parthenon::Backend::Copy).unwrap();
        let chain = genesis().genesis().unwrap().id();
        for h in 0..3u64 {
            let payload = vec![h as u8; 64];
            let digest = Digest::of(&payload);
            let commit = |signer: u16, k: &ed25519_dalek::SigningKey| {
                let body = Vote { kind: VoteKind::Commit, height: h, view: 0, digest };
                Signed { body, signer, signature: Sign::sign(k, &body.signing_bytes(&chain)) }
            };
            let votes = if h == 0 {
                vec![commit(1, &key(1))] // genuine, but one vote of four
            } else {
                (1..4).map(|i| commit(i, &key(1))).collect() // 2 and 3 forged with 1's key
            };
            let record = postcard::to_stdvec(&(h, payload, CommitCert { votes })).unwrap();
            copy.send_bytes(&conn, BlockId(h), &record).unwrap();
        }
    });
    let (addr, _dir, _client, _) = start_validator("sync-test", fake_addr).await;
    let mut s = hello_as(addr, 1).await;
    write_frame(&mut s, &Frame::Tip(3)).await.unwrap();
    s.flush().await.unwrap();
    let mut st = serde_json::Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        st = status(addr).await;
        if st["sync"]["blocks_fetched"] == 3 && st["net"]["bad_signatures"] == 2 {
            break;
        }
    }
    assert_eq!(st["sync"]["blocks_fetched"], 3, "every block arrived whole: {st}");
    assert_eq!(st["net"]["bad_signatures"], 2, "forged certificate signatures: {st}");
    assert_eq!(st["net"]["refused_unverified"], 1, "the certificate below a quorum: {st}");
    assert_eq!(st["net"]["messages_in"], 0, "{st}");
    assert_eq!(st["height"], 0, "no forged block became final: {st}");
    // All three were fetched, so the fake validator has sent them and returned.
    server.join().expect("fake validator 1 failed (its panic is printed above)");
    // A fetch whose blocks were all refused moved nothing: validator 1's claim is dropped, so it
    // is not asked again (it would be after the retry pause, had the delivered blocks counted).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = status(addr).await;
    assert_eq!(st["sync"]["fetches"], 1, "{st}");
}

/// A validator played by this test on a loopback port: it welcomes every `Hello` (it is not the
/// validator under test), keeps consensus connections open, and answers each block connection's
/// `FetchBlocks { from, .. }` with the records `serve(from)` gives, through the engine's
/// transfer, then closes it. Returns its address and how many block connections it answered.
fn fake_validator(
    serve: impl Fn(u64) -> Vec<(u64, Vec<u8>, CommitCert)> + Send + Sync + 'static,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use parthenon::transfer::{transport_for, BlockId};
    fake_validator_answering(move |conn, from| {
        let copy = transport_for(parthenon::Backend::Copy).unwrap();
        for (h, payload, cert) in serve(from) {
            let record = postcard::to_stdvec(&(h, payload, cert)).unwrap();
            if copy.send_bytes(conn, BlockId(h), &record).is_err() {
                return;
            }
        }
    })
}

/// [`fake_validator`] answering each block connection's `FetchBlocks { from, .. }` with
/// `answer(connection, from)`.
fn fake_validator_answering(
    answer: impl Fn(&std::net::TcpStream, u64) + Send + Sync + 'static,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::Ordering;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (answer, count) = (std::sync::Arc::new(answer), served.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let (answer, count) = (answer.clone(), count.clone());
            std::thread::spawn(move || {
                let Some(Frame::Hello { .. }) = frame(&conn) else { return };
                let _ = std::io::Write::write_all(&mut &conn, &encode(&Frame::Challenge { nonce: [7; 32] }));
                let Some(Frame::HelloProof { .. }) = frame(&conn) else { return };
                let _ = std::io::Write::write_all(&mut &conn, &encode(&Frame::Welcome));
                match frame(&conn) {
                    Some(Frame::FetchBlocks { from, .. }) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        answer(&conn, from);
                    }
                    // A consensus connection: read until it closes.
                    Some(_) => while frame(&conn).is_some() {},
                    None => {}
                }
            });
        }
    });
    (addr, served)
}

/// The final block at height 0: an empty block of validator 1, with the commits of validators 1,
/// 2 and 3.
fn final_block0() -> (u64, Vec<u8>, CommitCert) {
    use parthenon::node::ledger::Block;
    let chain = genesis().genesis().unwrap().id();
    let block0 = Block { height: 0, parent: chain, proposer: 1, transactions: vec![] }.encode();
    let digest = Digest::of(&block0);
    let votes = (1..4u16)
        .map(|i| {
            let body = Vote { kind: VoteKind::Commit, height: 0, view: 0, digest };
            Signed { body, signer: i, signature: Sign::sign(&key(i as u8), &body.signing_bytes(&chain)) }
        })
        .collect();
    (0, block0, CommitCert { votes })
}

/// Finding: a catch-up fetch had no deadline, only a 10 s timeout per read, so a peer that sent
/// a byte every few seconds held the one fetch (its blocking thread and block buffer) for ever,
/// and a lagging validator fetched from no one else until it gave that fetch up as lost after
/// 60 s (and then started another beside it). Here validator 1 claims a block and answers the
/// fetch with the header of a 16 MiB block, then a byte of its body every 200 ms; validator 2
/// claims the same block once validator 0 is fetching from validator 1. Validator 0 (fetch
/// deadline 2 s) cuts the fetch at its deadline and shuts its connection, marks validator 1 (not
/// asked again), and gets the block from validator 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_trickling_a_fetch_loses_it_at_its_deadline() {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};
    let open_for: Arc<Mutex<Option<Duration>>> = Arc::default();
    let trickled = open_for.clone();
    let (trickler, trickler_fetches) = fake_validator_answering(move |conn, from| {
        use parthenon::transfer::{BlockHeader, BlockId};
        // A 16 MiB block (which the fetcher makes room for), then its body a byte at a time.
        let header = BlockHeader { id: BlockId(from), length: 16 << 20, digest: parthenon::transfer::Digest([0; 32]) };
        let started = std::time::Instant::now();
        let _ = std::io::Write::write_all(&mut &*conn, &header.encode());
        while std::io::Write::write_all(&mut &*conn, &[0]).is_ok() && started.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(200));
        }
        *trickled.lock().unwrap() = Some(started.elapsed());
    });
    let genuine = final_block0();
    let (honest, honest_fetches) =
        fake_validator(move |from| if from == 0 { vec![genuine.clone()] } else { Vec::new() });
    let (addr, _dir, _client, _) =
        start_validator_deadlines("sync-trickle", [trickler, honest, nowhere(3)], 60_000, 2_000).await;
    let started = std::time::Instant::now();
    let mut s1 = hello_as(addr, 1).await;
    write_frame(&mut s1, &Frame::Tip(1)).await.unwrap();
    while trickler_fetches.load(Ordering::Relaxed) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "validator 0 never fetched from validator 1");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fetch_started = std::time::Instant::now();
    let mut s2 = hello_as(addr, 2).await;
    write_frame(&mut s2, &Frame::Tip(1)).await.unwrap();
    // Generous bounds: the deadline is 2 s, and the retry pause 1 s.
    let mut st = serde_json::Value::Null;
    while fetch_started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        st = status(addr).await;
        if st["height"] == 1 {
            break;
        }
    }
    assert_eq!(st["height"], 1, "the honest peer's block, after the trickled fetch: {st}");
    assert!(fetch_started.elapsed() >= Duration::from_secs(2), "the trickled fetch ended before its deadline");
    assert_eq!(st["sync"]["fetch_deadlines"], 1, "{st}");
    assert_eq!(honest_fetches.load(Ordering::Relaxed), 1);
    // Validator 0 shut the trickled connection down: the trickler's writes failed.
    while open_for.lock().unwrap().is_none() {
        assert!(fetch_started.elapsed() < Duration::from_secs(60), "the trickled connection stays open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Marked, its claim dropped: validator 1 is not asked again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(trickler_fetches.load(Ordering::Relaxed), 1);
    assert_eq!(status(addr).await["height"], 1);
}

/// Finding: a Byzantine validator that claims a far height and answers every fetch with a full
/// answer of blocks consensus refuses kept the one fetch slot forever (a full answer was asked
/// again at once, and a peer claiming more was tried first), so a lagging validator never
/// fetched from its honest peers. Here validator 1 claims `u64::MAX` (and claims it again every
/// 100 ms) and answers with `MAX_FETCH` blocks without a certificate; validator 2 claims one
/// block and serves it, final (commits of validators 1, 2 and 3). Validator 0 must get it from
/// validator 2, and ask validator 1 at most about once per retry pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_refused_blocks_does_not_keep_the_fetch() {
    use parthenon::node::sync::MAX_FETCH;
    use std::sync::atomic::Ordering;
    let forged = |from: u64| (from..from + MAX_FETCH).map(|h| (h, Vec::new(), CommitCert { votes: vec![] })).collect();
    let (byzantine, byzantine_fetches) = fake_validator(forged);
    let genuine = final_block0();
    let (honest, honest_fetches) =
        fake_validator(move |from| if from == 0 { vec![genuine.clone()] } else { Vec::new() });
    let (addr, _dir, _client, _) = start_validator_with("sync-byzantine", [byzantine, honest, nowhere(3)]).await;
    let started = std::time::Instant::now();
    let mut claims = hello_as(addr, 1).await;
    write_frame(&mut claims, &Frame::Tip(u64::MAX)).await.unwrap();
    // Validator 2 claims its block once validator 0 is busy with validator 1.
    while byzantine_fetches.load(Ordering::Relaxed) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "validator 0 never fetched from validator 1");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut s2 = hello_as(addr, 2).await;
    write_frame(&mut s2, &Frame::Tip(1)).await.unwrap();
    let mut st = serde_json::Value::Null;
    for _ in 0..100 {
        write_frame(&mut claims, &Frame::Tip(u64::MAX)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        st = status(addr).await;
        if st["height"] == 1 {
            break;
        }
    }
    assert_eq!(st["height"], 1, "the honest peer's block: {st}");
    assert!(honest_fetches.load(Ordering::Relaxed) >= 1);
    // Validator 1 keeps claiming: it is asked again, but only after a retry pause each time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = byzantine_fetches.load(Ordering::Relaxed);
    let bound = started.elapsed().as_secs() + 2;
    assert!(asked <= bound, "validator 1 was asked {asked} times in {:?}", started.elapsed());
    assert_eq!(status(addr).await["height"], 1);
}

/// The next frame on `s`, or `None` if it closes, fails or stays silent past the handshake timeout.
async fn next(s: &mut TcpStream) -> Option<Frame> {
    let wait = handshake::HANDSHAKE_TIMEOUT + Duration::from_secs(2);
    tokio::time::timeout(wait, read_frame(s)).await.ok().and_then(Result::ok).flatten()
}

/// The challenge validator 0 answers a `Hello` with.
async fn challenge(s: &mut TcpStream) -> handshake::Nonce {
    match next(s).await {
        Some(Frame::Challenge { nonce }) => nonce,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

/// Whether validator 0 closes `s` (after at most its challenge) before the handshake timeout.
async fn closed(s: &mut TcpStream) -> bool {
    let wait = handshake::HANDSHAKE_TIMEOUT + Duration::from_secs(2);
    let read = async {
        loop {
            match read_frame(s).await {
                Ok(Some(Frame::Challenge { .. })) => continue,
                Ok(Some(_)) => return false,
                Ok(None) | Err(_) => return true,
            }
        }
    };
    tokio::time::timeout(wait, read).await.unwrap_or(false)
}

/// Whoever reaches a validator's port cannot speak for another validator: a `Hello` counts only
/// with a proof of the claimed validator's key, made for this chain, this validator and this
/// connection's challenge. Each connection below is refused and closed, and what it sent after
/// its `Hello` never reaches consensus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_without_proof_of_the_validator_key_is_refused() {
    let (addr, _dir, _client, metrics) = start_validator("hello-test", ([127, 0, 0, 1], 1).into()).await;
    let chain = genesis().genesis().unwrap().id();
    let body = Vote { kind: VoteKind::Prepare, height: 0, view: 0, digest: Digest([1; 32]) };
    let vote = Message::Vote(Signed { body, signer: 1, signature: Sign::sign(&key(1), &body.signing_bytes(&chain)) });
    let connect = || async { TcpStream::connect(addr).await.unwrap() };
    // What each connection sends after its `Hello` (and proof): a `Tip` that would start a fetch,
    // validator 1's genuine vote.
    let mut after_hello = encode(&Frame::Tip(3));
    after_hello.extend(encode(&Frame::Consensus(vote)));

    // Says `Hello` and nothing more: refused after the handshake timeout (checked last).
    let mut silent = connect().await;
    write_frame(&mut silent, &Frame::Hello { validator: 2 }).await.unwrap();

    // The spoof the node used to accept: `Hello` as validator 1, then frames, no proof.
    let mut spoof = connect().await;
    write_frame(&mut spoof, &Frame::Hello { validator: 1 }).await.unwrap();
    spoof.write_all(&after_hello).await.unwrap();
    assert!(closed(&mut spoof).await, "a Hello without proof is refused");

    // Validator 1's key claiming to be validator 2.
    let mut s = connect().await;
    write_frame(&mut s, &Frame::Hello { validator: 2 }).await.unwrap();
    let nonce = challenge(&mut s).await;
    let signature = handshake::prove(&key(1), &chain, 2, 0, &nonce);
    write_frame(&mut s, &Frame::HelloProof { signature }).await.unwrap();
    s.write_all(&after_hello).await.unwrap();
    assert!(closed(&mut s).await, "a proof by another key is refused");
    // The caller learns it: no `Welcome`, the connection closed.
    let mut s = connect().await;
    let refused = handshake::call(&mut s, &key(1), &chain, 2, 0).await;
    assert!(matches!(refused, Err(handshake::HandshakeError::Refused)), "{refused:?}");

    // Validator 1's genuine proof, but made for validator 2 (relayed).
    let mut s = connect().await;
    write_frame(&mut s, &Frame::Hello { validator: 1 }).await.unwrap();
    let nonce = challenge(&mut s).await;
    let signature = handshake::prove(&key(1), &chain, 1, 2, &nonce);
    write_frame(&mut s, &Frame::HelloProof { signature }).await.unwrap();
    s.write_all(&after_hello).await.unwrap();
    assert!(closed(&mut s).await, "a proof for another validator is refused");

    // Validator 1's genuine proof for another chain.
    let other = GenesisSpec { chain: "other-net".into(), ..genesis() }.genesis().unwrap().id();
    let mut s = connect().await;
    let refused = handshake::call(&mut s, &key(1), &other, 1, 0).await;
    assert!(matches!(refused, Err(handshake::HandshakeError::Refused)), "another chain: {refused:?}");

    // Its own index and an index outside the set: refused without a challenge.
    for validator in [0, 4] {
        let mut s = connect().await;
        write_frame(&mut s, &Frame::Hello { validator }).await.unwrap();
        assert!(next(&mut s).await.is_none(), "Hello from validator {validator} is refused at once");
    }

    // A completed handshake, then a second `Hello`.
    let mut s = hello_as(addr, 1).await;
    write_frame(&mut s, &Frame::Hello { validator: 1 }).await.unwrap();
    s.write_all(&after_hello).await.unwrap();
    assert!(closed(&mut s).await, "a second Hello closes the connection");

    assert!(closed(&mut silent).await, "no proof within the handshake timeout");
    let mut st = serde_json::Value::Null;
    for _ in 0..100 {
        st = status(addr).await;
        if st["net"]["refused_hellos"] == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(st["net"]["refused_hellos"], 9, "{st}");
    assert_eq!(st["net"]["messages_in"], 0, "nothing was attributed to a validator: {st}");
    assert_eq!(st["sync"]["fetches"], 0, "no spoofed Tip started a fetch: {st}");
    let text = scrape(metrics, "/metrics").await;
    assert!(text.lines().any(|l| l == "parthenon_refused_hellos_total 9"), "{text}");
}

/// Finding: client submissions shared the consensus task's queue, so a flood of `Submit` frames
/// (each transaction costing a signature verification) held up every vote and proposal queued
/// behind it. A client here queues 64 frames of `MAX_SUBMIT_TXS` transactions with invalid
/// signatures (transaction `i` of a frame spending genuine output `i`: none conflicts with
/// another, so only verification refuses them, 1,024 per frame); once the validator has checked the first, a
/// validator's vote arrives. It must be taken long before the flood is through (it was taken
/// after all of it). The vote is watched through the metrics endpoint, which reads the node's
/// counters directly: a status request waits in the client queue behind up to 16 submissions,
/// so how many signatures the ledger checked is read once, after the vote was seen, and bounded
/// with room for that queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_flood_does_not_hold_up_consensus() {
    use parthenon::node::consensus::Signature;
    use parthenon::node::ledger::app::MAX_SUBMIT_TXS;
    use parthenon::node::ledger::{Lock, Transaction};
    const FRAMES: usize = 64;
    let (addr, _dir, mut flood, metrics) = start_validator("submit-flood", ([127, 0, 0, 1], 1).into()).await;
    let g = genesis().genesis().unwrap().id();
    let mut bytes = Vec::new();
    for f in 0..FRAMES {
        let txs = (0..MAX_SUBMIT_TXS)
            .map(|i| {
                let mut lock = [0u8; 32];
                lock[..8].copy_from_slice(&((f * MAX_SUBMIT_TXS + i) as u64).to_le_bytes());
                Transaction {
                    inputs: vec![OutPoint { tx: g, index: i as u32 }],
                    outputs: vec![Output { value: 1, lock: Lock::Ed25519(lock) }],
                    signatures: vec![Signature([0; 64])],
                }
            })
            .collect();
        bytes.extend(encode(&Frame::Submit(txs)));
    }
    let writer = tokio::spawn(async move {
        flood.write_all(&bytes).await.unwrap();
        flood.flush().await.unwrap();
        flood
    });
    let total = (FRAMES * MAX_SUBMIT_TXS) as u64;
    let mut st = status(addr).await;
    for _ in 0..1000 {
        if st["ledger_signatures_verified"].as_u64().unwrap() >= MAX_SUBMIT_TXS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        st = status(addr).await;
    }
    let chain = genesis().genesis().unwrap().id();
    let body = Vote { kind: VoteKind::Prepare, height: 0, view: 0, digest: Digest([1; 32]) };
    let vote = Message::Vote(Signed { body, signer: 1, signature: Sign::sign(&key(1), &body.signing_bytes(&chain)) });
    let mut s = hello_as(addr, 1).await;
    write_frame(&mut s, &Frame::Consensus(vote)).await.unwrap();
    let mut taken = false;
    for _ in 0..4000 {
        if scrape(metrics, "/metrics").await.lines().any(|l| l == "parthenon_consensus_messages_total 1") {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(taken, "the vote was never taken");
    let verified = status(addr).await["ledger_signatures_verified"].as_u64().unwrap();
    // Taken after about one more submission (each is checked whole); this status request then
    // waited behind at most 17 more (the queue and the one in hand), the wait for the first
    // 1,024 before the vote about as many: about 36 of 64 at worst, against all 64 before.
    assert!(verified <= total * 3 / 4, "the vote waited for {verified} of the flood's {total} signatures");
    // The flood is checked all the same, each transaction refused.
    let _flood = writer.await.unwrap();
    for _ in 0..2000 {
        st = status(addr).await;
        if st["ledger_signatures_verified"] == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(st["ledger_signatures_verified"], total, "{st}");
    assert_eq!(st["mempool"], 0, "{st}");
}

/// Finding: connections were unlimited and a connection that never sent a frame stayed open
/// forever, so ~1000 idle connections used up a validator's file descriptors (its next block
/// file failed to open and it stopped). Strangers (here from 127.0.0.2, which is no validator's
/// address) now get at most `MAX_CLIENT_CONNECTIONS`: the ones beyond are closed at once, and
/// every idle one after the handshake timeout. Meanwhile a validator (from its configured
/// address, 127.0.0.1) still connects and proves its key, and a client can ask for status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_strangers_cannot_use_up_a_validators_connections() {
    use parthenon::node::peer::MAX_CLIENT_CONNECTIONS;
    use tokio::io::AsyncReadExt;
    let (addr, _dir, client, metrics) = start_validator("conn-limit", ([127, 0, 0, 1], 1).into()).await;
    drop(client);
    let stranger = || async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(([127, 0, 0, 2], 0).into()).unwrap();
        s.connect(addr).await.unwrap()
    };
    // Closed by the validator within `within` (EOF or reset), or still open.
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 1];
        matches!(tokio::time::timeout(within, s.read(&mut b)).await, Ok(Ok(0) | Err(_)))
    }
    let started = std::time::Instant::now();
    let mut idle = Vec::new();
    for _ in 0..MAX_CLIENT_CONNECTIONS {
        idle.push(stranger().await);
    }
    // Beyond the limit: closed at once.
    for _ in 0..10 {
        let mut s = stranger().await;
        assert!(closed_within(&mut s, Duration::from_secs(2)).await, "a connection beyond the limit stays open");
    }
    // A validator still gets in, proves its key, and may stay quiet after that.
    let mut v1 = hello_as(addr, 1).await;
    // A client from a validator's address gets a slot too.
    assert_eq!(status(addr).await["height"], 0);
    // Every idle stranger is closed after the handshake timeout, not before.
    for s in &mut idle {
        assert!(
            closed_within(s, handshake::HANDSHAKE_TIMEOUT + Duration::from_secs(3)).await,
            "an idle connection stays open"
        );
    }
    assert!(started.elapsed() >= handshake::HANDSHAKE_TIMEOUT);
    assert!(!closed_within(&mut v1, Duration::from_secs(1)).await, "the validator's connection was closed");
    drop(idle);
    // Their slots are free again.
    let mut s = stranger().await;
    write_frame(&mut s, &Frame::StatusRequest { at: None }).await.unwrap();
    assert!(matches!(read_frame(&mut s).await, Ok(Some(Frame::Status(_)))));
    let text = scrape(metrics, "/metrics").await;
    for line in [
        "parthenon_connections_closed_total{reason=\"no_slot\"} 10".to_string(),
        format!("parthenon_connections_closed_total{{reason=\"idle\"}} {MAX_CLIENT_CONNECTIONS}"),
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
}

/// Finding: only the first frame was timed, so a stranger could hold a client slot for ever with
/// one malformed frame (four zero bytes) and silence, or a trickle of malformed frames. A client
/// that has not subscribed is closed when it sends no well-formed frame for the client idle
/// timeout (2 s here); one that keeps sending frames, and a subscriber, stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_a_busy_one_and_a_subscriber_are_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let peers = [nowhere(1), nowhere(2), nowhere(3)];
    let (addr, _dir, first, metrics) = start_validator_idle("client-idle", peers, 2_000).await;
    drop(first);
    async fn open_after(s: &mut TcpStream, wait: Duration) -> bool {
        let mut b = [0u8; 1];
        tokio::time::timeout(wait, s.read(&mut b)).await.is_err()
    }
    // One malformed frame, then malformed frames every 500 ms: closed all the same.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    trickle.write_all(&[0, 0, 0, 0]).await.unwrap();
    // A client that asks for its status every 500 ms, and a subscriber that says nothing more.
    let mut busy = TcpStream::connect(addr).await.unwrap();
    write_frame(&mut busy, &Frame::StatusRequest { at: None }).await.unwrap();
    assert!(matches!(read_frame(&mut busy).await, Ok(Some(Frame::Status(_)))));
    let mut subscriber = TcpStream::connect(addr).await.unwrap();
    write_frame(&mut subscriber, &Frame::Subscribe).await.unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = trickle.write_all(&[0, 0, 0, 0]).await;
        write_frame(&mut busy, &Frame::StatusRequest { at: None }).await.unwrap();
        assert!(matches!(read_frame(&mut busy).await, Ok(Some(Frame::Status(_)))), "the busy client was closed");
    }
    assert!(!open_after(&mut trickle, Duration::from_millis(100)).await, "malformed frames held the slot");
    assert!(open_after(&mut subscriber, Duration::from_millis(100)).await, "the subscriber was closed");
    let text = scrape(metrics, "/metrics").await;
    let line = "parthenon_connections_closed_total{reason=\"idle\"} 1";
    assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
}

/// Finding: a client that stops reading kept the frames queued for it (up to 4096) for as long
/// as it kept its connection open: the node's writer waited in `write_frame` forever. Here a
/// client with a small receive buffer asks for thousands of status reports and reads none: once
/// a report waits past `WRITE_TIMEOUT` the node closes the connection (what it had sent is
/// still there to read, then the end of the stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_closed() {
    use parthenon::node::peer::WRITE_TIMEOUT;
    use tokio::io::AsyncReadExt;
    let (addr, _dir, client, _metrics) = start_validator("slow-reader", ([127, 0, 0, 1], 1).into()).await;
    drop(client);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let requests: Vec<u8> = (0..20_000).flat_map(|_| encode(&Frame::StatusRequest { at: None })).collect();
    s.write_all(&requests).await.unwrap();
    let mut st = serde_json::Value::Null;
    for _ in 0..(WRITE_TIMEOUT.as_secs() * 4 + 40) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        st = status(addr).await;
        if st["net"]["write_timeouts"] == 1 {
            break;
        }
    }
    assert_eq!(st["net"]["write_timeouts"], 1, "{st}");
    // Closed: what was sent before can be read, then the stream ends.
    let mut sink = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    assert!(matches!(drained, Ok(Ok(_)) | Ok(Err(_))), "the connection stays open");
}

/// Closed by the validator within `within` (end of stream or reset), or still open.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    matches!(tokio::time::timeout(within, s.read(&mut b)).await, Ok(Ok(0) | Err(_)))
}

/// Whether the metrics at `metrics` show `line` within 20 s.
async fn metric_shows(metrics: std::net::SocketAddr, line: &str) -> bool {
    for _ in 0..200 {
        if scrape(metrics, "/metrics").await.lines().any(|l| l == line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Finding: nothing limited how many connections one validator could authenticate. A Byzantine
/// validator took its address's slots, then every client slot, each connection identified and
/// so free of any idle timeout (and allowed 64 MiB frames). Now each validator index has
/// `CONNECTIONS_PER_VALIDATOR` permits, wherever its connections come from: one more is closed
/// right after its handshake and counted, from the validator's address and from any other, while
/// the open ones and other validators are unaffected, and a closed one frees its permit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_cannot_open_more_than_its_connections() {
    use parthenon::node::peer::CONNECTIONS_PER_VALIDATOR;
    let (addr, _dir, client, metrics) = start_validator("validator-limit", ([127, 0, 0, 1], 1).into()).await;
    drop(client);
    let mut open = Vec::new();
    for _ in 0..CONNECTIONS_PER_VALIDATOR {
        open.push(hello_as(addr, 1).await);
    }
    // One more from its address: welcomed (the proof is good), then closed.
    let mut extra = hello_as(addr, 1).await;
    assert!(closed_within(&mut extra, Duration::from_secs(5)).await, "a connection beyond the limit stays open");
    // From another address, in a client slot: the limit is the validator's, not the address's.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 2], 0).into()).unwrap();
    let mut elsewhere = socket.connect(addr).await.unwrap();
    let chain = genesis().genesis().unwrap().id();
    handshake::call(&mut elsewhere, &key(1), &chain, 1, 0).await.unwrap();
    assert!(closed_within(&mut elsewhere, Duration::from_secs(5)).await, "a connection from elsewhere stays open");
    let line = "parthenon_connections_closed_total{reason=\"validator_limit\"} 2";
    assert!(metric_shows(metrics, line).await, "missing `{line}`");
    // Validator 2 still gets in; validator 1's first connections stay open.
    let mut v2 = hello_as(addr, 2).await;
    assert!(!closed_within(&mut v2, Duration::from_millis(500)).await, "validator 2 was closed");
    for s in &mut open {
        assert!(!closed_within(s, Duration::from_millis(100)).await, "a connection within the limit was closed");
    }
    // Closing one frees its permit (once the validator has seen it close).
    drop(open.pop());
    let mut reopened = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut s = hello_as(addr, 1).await;
        if !closed_within(&mut s, Duration::from_millis(500)).await {
            reopened = true;
            break;
        }
    }
    assert!(reopened, "the permit of a closed connection was not freed");
}

/// Finding: once a connection had proved a validator's key, a frame whose length prefix had
/// arrived could take for ever: a Byzantine validator sent `64 << 20` and 64 MiB - 1 bytes on
/// each of its connections and stopped, pinning the memory and the connections. Every frame's
/// body must now arrive within its deadline (`frame_deadline`: `FRAME_TIMEOUT` plus its length
/// at `MIN_FRAME_RATE`), on a validator's connection too; here a small frame stops after 10 of
/// its 1000 bytes and the connection is closed, not before its deadline, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_frame_closes_even_a_validators_connection() {
    use parthenon::node::net::{frame_deadline, FRAME_TIMEOUT};
    let (addr, _dir, client, metrics) = start_validator("stalled-frame", ([127, 0, 0, 1], 1).into()).await;
    drop(client);
    let mut s = hello_as(addr, 1).await;
    write_frame(&mut s, &Frame::Tip(0)).await.unwrap();
    let started = std::time::Instant::now();
    s.write_all(&1000u32.to_le_bytes()).await.unwrap();
    s.write_all(&[0; 10]).await.unwrap();
    s.flush().await.unwrap();
    let wait = frame_deadline(1000) + Duration::from_secs(15);
    assert!(closed_within(&mut s, wait).await, "a stalled frame kept the connection open past {wait:?}");
    assert!(started.elapsed() >= FRAME_TIMEOUT, "closed before the frame's deadline: {:?}", started.elapsed());
    let line = "parthenon_connections_closed_total{reason=\"stalled_frame\"} 1";
    assert!(metric_shows(metrics, line).await, "missing `{line}`");
}

/// Finding: a connection whose `Subscribe` the node ignored (`MAX_SUBSCRIBERS` subscribed
/// already) counted as subscribed all the same: it got no notices, so it never met the write
/// timeout, and it was exempt from the idle timeout, holding its slot for ever. The connection
/// now learns whether it was taken; one that was not is a client like any other, closed when
/// idle. Here `MAX_SUBSCRIBERS + 1` connections subscribe (client idle timeout 2 s): exactly
/// one is closed as idle, the subscribers stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscriber_is_closed_when_idle() {
    use parthenon::node::service::MAX_SUBSCRIBERS;
    let peers = [nowhere(1), nowhere(2), nowhere(3)];
    let (addr, _dir, first, metrics) = start_validator_idle("subscriber-limit", peers, 2_000).await;
    drop(first);
    let mut subscribers = Vec::new();
    for _ in 0..=MAX_SUBSCRIBERS {
        let mut s = TcpStream::connect(addr).await.unwrap();
        write_frame(&mut s, &Frame::Subscribe).await.unwrap();
        subscribers.push(s);
    }
    let line = "parthenon_connections_closed_total{reason=\"idle\"} 1";
    assert!(metric_shows(metrics, line).await, "missing `{line}`: the refused subscriber was not closed");
    // Another idle period: the subscribers taken are not timed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let checks: Vec<_> = subscribers
        .into_iter()
        .map(|mut s| tokio::spawn(async move { closed_within(&mut s, Duration::from_secs(1)).await }))
        .collect();
    let mut closed = 0;
    for c in checks {
        closed += usize::from(c.await.unwrap());
    }
    assert_eq!(closed, 1, "of {} subscriptions", MAX_SUBSCRIBERS + 1);
    assert!(metric_shows(metrics, line).await, "missing `{line}`");
}
