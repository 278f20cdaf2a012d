use super::*;
use crate::node::config::GenesisSpec;
use crate::node::consensus::{
    CommitCert, Digest, ProposalHeader, Sign, Signable, Signature, Signed, SignedVote, Validator, ValidatorSet,
    ViewChange, ViewChangeBody, Vote, VoteKind,
};
use crate::node::ledger::Genesis;
use ed25519_dalek::SigningKey;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 10; 32])
}

/// Validator 0 of four, its core at `height` (its store empty), without a network: frames
/// for validator `i` land in the `i - 1`th receiver.
/// The genesis every node here starts from (a store refuses to reopen with another).
fn genesis() -> Genesis {
    let spec = GenesisSpec {
        chain: "service-test".into(),
        wallet_seed: hex::encode([7u8; 32]),
        keys: 4,
        outputs: 4,
        value: 5,
    };
    spec.genesis().unwrap()
}

fn node(name: &str, height: u64) -> (Node, Vec<mpsc::Receiver<Arc<Vec<u8>>>>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("parthenon-service-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let genesis = genesis();
    let validators = (0..4).map(|i| Validator { public_key: key(i).verifying_key().to_bytes(), stake: 1 });
    let set = ValidatorSet::new(validators.collect()).unwrap();
    let engine = Engine::new().unwrap();
    let (store, rec) = Store::open(&dir, &genesis).unwrap();
    let ledger = Ledger::from_parts(engine.clone(), rec.utxo, rec.height, rec.tip);
    let config = cs::Config { chain: genesis.id(), ..cs::Config::default() };
    let core = Core::restore(set, 0, Box::new(key(0)), config, Default::default(), height);
    let server = Arc::new(BlockServer::new(store.blocks().clone(), rec.height, engine.transport().unwrap()));
    let (mut peers, mut inboxes) = (vec![None], Vec::new());
    for _ in 1..4 {
        let (p, inbox) = mpsc::channel(16);
        peers.push(Some(p));
        inboxes.push(inbox);
    }
    let node = Node {
        core,
        app: LedgerApp::new(ledger, 0, 100, 1000),
        store,
        engine,
        peers,
        addrs: vec![([127, 0, 0, 1], 1).into(); 4],
        tx: mpsc::channel(16).0,
        counters: Arc::default(),
        server,
        gauges: Arc::default(),
        fetching: None,
        fetches: 0,
        fetch_deadline: Duration::from_secs(1),
        identity: Arc::new(Identity { key: key(0), chain: genesis.id(), me: 0 }),
        tips: vec![0; 4],
        fruitless: vec![None; 4],
        retry_pending: false,
        subscribers: Vec::new(),
        subscriber_backlog: SUBSCRIBER_BACKLOG,
        evidence: 0,
        recovered_height: 0,
    };
    (node, inboxes, dir)
}

/// A vote of `signer`, genuinely signed, or with a garbage signature.
fn vote(node: &Node, kind: VoteKind, height: u64, digest: Digest, signer: u16, genuine: bool) -> SignedVote {
    let body = Vote { kind, height, view: 0, digest };
    let signature = match genuine {
        true => Sign::sign(&key(signer as u8), &body.signing_bytes(&node.core.config().chain)),
        false => Signature([0x55; 64]),
    };
    Signed { body, signer, signature }
}

/// `Decided` at `height` with the commits of `signers` for one payload.
fn decided(node: &Node, height: u64, signers: &[u16], genuine: bool) -> Message {
    let payload = format!("block {height}").into_bytes();
    let votes =
        signers.iter().map(|&s| vote(node, VoteKind::Commit, height, Digest::of(&payload), s, genuine)).collect();
    Message::Decided { cert: CommitCert { votes }, payload }
}

/// The `Tip` frames queued for a peer.
fn tips(inbox: &mut mpsc::Receiver<Arc<Vec<u8>>>) -> Vec<u64> {
    let mut out = Vec::new();
    while let Ok(f) = inbox.try_recv() {
        if let Ok(Frame::Tip(h)) = postcard::from_bytes(&f[4..]) {
            out.push(h);
        }
    }
    out
}

/// Finding: every message that passed the shape and view checks had all its signatures
/// verified, also those the core drops anyway: proposals, votes and `Decided` below its
/// height, and `Decided` whose certificate holds less than a quorum (one validator could
/// send certificates of garbage signatures from distinct validators, each costing a
/// verification per vote). Those are now refused with no signature in the batch; what the
/// core can act on is still verified.
#[test]
fn messages_the_core_would_drop_are_refused_unverified() {
    let (node, _inboxes, dir) = node("refused", 3);
    let d = Digest([1; 32]);
    let header =
        Signed { body: ProposalHeader { height: 2, view: 0, digest: d }, signer: 2, signature: Signature([0x55; 64]) };
    let prepares = |height, signers: &[u16]| {
        let payload = format!("block {height}").into_bytes();
        let votes = signers.iter().map(|&s| vote(&node, VoteKind::Prepare, height, Digest::of(&payload), s, false));
        Message::Decided { cert: CommitCert { votes: votes.collect() }, payload }
    };
    let mut mixed = decided(&node, 3, &[1, 2, 3], false);
    if let Message::Decided { cert, .. } = &mut mixed {
        cert.votes[2].body.digest = d;
    }
    let refused = [
        (Message::Vote(vote(&node, VoteKind::Prepare, 1, d, 1, false)), Verdict::Lagging),
        (Message::Proposal { header, payload: vec![], justification: vec![] }, Verdict::Lagging),
        (decided(&node, 1, &[1, 2, 3], false), Verdict::Lagging),
        (decided(&node, 3, &[1, 2], false), Verdict::Refused),
        (decided(&node, 9, &[1], false), Verdict::Refused),
        (prepares(3, &[1, 2, 3]), Verdict::Refused),
        (mixed, Verdict::Refused),
    ];
    let events: Vec<Event> = refused.iter().map(|(m, _)| Event::Peer(1, m.clone())).collect();
    let (verdicts, batch, _) = node.batch_messages(&events);
    assert_eq!(verdicts, refused.iter().map(|(_, v)| *v).collect::<Vec<_>>());
    assert!(batch.is_empty(), "{} signatures to verify", batch.len());

    // What the core may act on is verified: garbage signatures are caught there, genuine
    // ones pass.
    let vc = ViewChange {
        signed: Signed {
            body: ViewChangeBody { height: 1, new_view: 1, prepared: None, last_vote: None },
            signer: 1,
            signature: Signature([0x55; 64]),
        },
        payloads: vec![],
    };
    let verified = [
        (Message::Vote(vote(&node, VoteKind::Prepare, 3, d, 1, false)), Verdict::BadSignature),
        (Message::ViewChange(vc), Verdict::BadSignature),
        (decided(&node, 3, &[1, 2, 3], false), Verdict::BadSignature),
        (Message::Vote(vote(&node, VoteKind::Prepare, 3, d, 1, true)), Verdict::Ok),
        (Message::Vote(vote(&node, VoteKind::Prepare, 4, d, 2, true)), Verdict::Ok),
        (decided(&node, 3, &[1, 2, 3], true), Verdict::Ok),
        (decided(&node, 5, &[0, 2, 3], true), Verdict::Ok),
        (prepares(3, &[0, 1, 2, 3]), Verdict::BadSignature),
    ];
    let events: Vec<Event> = verified.iter().map(|(m, _)| Event::Peer(1, m.clone())).collect();
    assert_eq!(node.batch_messages(&events).1.len(), 1 + 1 + 3 + 1 + 1 + 3 + 3 + 4);
    assert_eq!(node.verify_messages(&events), verified.iter().map(|(_, v)| *v).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A message below our height refused unverified still tells its sender our tip (the core's
/// `Behind`), once per height it shows, as when such messages were verified and fed in.
#[test]
fn a_lagging_sender_is_still_told_our_tip() {
    let (mut node, mut inboxes, dir) = node("lagging", 3);
    let (_tx, mut rx) = mpsc::channel(1);
    let d = Digest([1; 32]);
    let garbage = |node: &Node, height| Message::Vote(vote(node, VoteKind::Prepare, height, d, 1, false));
    node.round(Event::Peer(1, garbage(&node, 1)), &mut rx);
    assert_eq!(tips(&mut inboxes[0]), vec![0], "told our tip");
    node.round(Event::Peer(1, garbage(&node, 1)), &mut rx);
    node.round(Event::Peer(1, decided(&node, 0, &[1, 2, 3], false)), &mut rx);
    assert_eq!(tips(&mut inboxes[0]), Vec::<u64>::new(), "not again for a height it showed, or a lower one");
    node.round(Event::Peer(1, decided(&node, 2, &[1, 2, 3], false)), &mut rx);
    assert_eq!(tips(&mut inboxes[0]), vec![0], "told again for a higher height");
    node.round(Event::Peer(2, garbage(&node, 2)), &mut rx);
    assert_eq!(tips(&mut inboxes[1]), vec![0], "each sender for itself");
    assert_eq!(node.counters.refused_unverified.load(Ordering::Relaxed), 5);
    assert_eq!(node.counters.bad_signatures.load(Ordering::Relaxed), 0);
    assert_eq!(node.counters.messages_in.load(Ordering::Relaxed), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// At most one fetch runs: none starts while one is in flight, unless that one is older than
/// its deadline and [`IO_TIMEOUT`] (given up for lost); and the lost one's end, should it
/// come, neither ends the fetch in flight nor judges its peer.
#[tokio::test]
async fn a_fetch_given_up_for_lost_changes_nothing() {
    let (mut node, _inboxes, dir) = node("lost-fetch", 0);
    node.tips[1] = 5;
    node.tips[2] = 5;
    node.fetch(1);
    assert_eq!((node.fetches, node.fetching.map(|(id, _)| id)), (1, Some(0)));
    node.fetch(2);
    assert_eq!(node.fetches, 1, "a second fetch started beside the first");
    let lost = node.fetch_deadline + IO_TIMEOUT + Duration::from_secs(1);
    node.fetching = Some((0, Instant::now().checked_sub(lost).unwrap()));
    node.fetch(2);
    assert_eq!((node.fetches, node.fetching.map(|(id, _)| id)), (2, Some(1)), "the lost fetch is given up");
    node.fetch_done(0, 1, 0, 5, Err("lost".into()));
    assert_eq!(node.fetching.map(|(id, _)| id), Some(1), "the lost fetch's end ended the next one");
    assert_eq!((node.fruitless[1], node.tips[1]), (None, 5), "the lost fetch's peer was judged");
    node.fetch_done(1, 2, 0, 5, Err("failed".into()));
    assert_eq!(node.fetching, None);
    assert!(node.fruitless[2].is_some(), "the fetch in flight's peer is marked");
    assert_eq!(node.tips[2], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding: a fetch cut by its deadline was fruitless whatever it delivered, so an honest peer
/// serving large blocks on a slow link lost its claim after every fetch and catch-up stalled.
/// A failed fetch that moved our height keeps the claim (still marked); one that moved nothing,
/// or refused blocks, does not.
#[test]
fn a_failed_fetch_that_moved_our_height_keeps_its_claim() {
    use super::catch_up::{judge, FetchJudgement};
    let deadline = Err("deadline".to_string());
    let j = |r: &Result<u64, String>, from, ours, claimed| judge(r, from, ours, claimed);
    assert_eq!(j(&deadline, 10, 13, 500), FetchJudgement { fruitful: false, full: false, keep_claim: true });
    assert_eq!(j(&deadline, 10, 10, 500), FetchJudgement { fruitful: false, full: false, keep_claim: false });
    assert_eq!(j(&Ok(3), 10, 13, 13), FetchJudgement { fruitful: true, full: false, keep_claim: false });
    assert_eq!(j(&Ok(MAX_FETCH), 0, MAX_FETCH, 900), FetchJudgement { fruitful: true, full: true, keep_claim: false });
    // Delivered but refused (our height did not move that far), or less than claimed: fruitless.
    assert_eq!(j(&Ok(3), 10, 11, 13), FetchJudgement { fruitful: false, full: false, keep_claim: false });
    assert_eq!(j(&Ok(3), 10, 13, 20), FetchJudgement { fruitful: false, full: false, keep_claim: false });
}

/// Decides a block of `txs` transactions at `height` (its notice carries `txs` ids).
fn decide(node: &mut Node, height: u64, txs: u32) {
    use crate::node::ledger::{Lock, OutPoint, Output};
    let transactions = (0..txs)
        .map(|i| Transaction {
            inputs: vec![OutPoint { tx: Digest([1; 32]), index: height as u32 * txs + i }],
            outputs: vec![Output { value: 1, lock: Lock::Ed25519([2; 32]) }],
            signatures: vec![],
        })
        .collect();
    let payload = Block { height, parent: Digest::default(), proposer: 0, transactions }.encode();
    node.effect(Effect::Decide { height, payload, cert: CommitCert { votes: vec![] } });
}

/// Finding: a subscriber whose queue was full was only unsubscribed: its connection stayed
/// open, and its writer kept every notice queued (each its own copy of the block's ids, up to
/// 4096 of them), writing one per `WRITE_TIMEOUT` to a reader just fast enough, for hours. Now
/// a notice that finds the queue full (here: over a 16 KiB backlog, with small socket buffers)
/// closes the connection at once: the client reads what was sent, then the end of the stream;
/// its queue is dropped and no more notices are queued for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_closed() {
    use crate::node::net::{read_frame, write_frame, FrameError};
    use crate::node::peer::connection;
    let (mut node, _inboxes, dir) = node("lagging-subscriber", 0);
    node.subscriber_backlog = 16 << 10;
    let (tx, mut events) = mpsc::channel(16);
    let (submits, _submitted) = mpsc::channel(16);
    let verifier = Verifier {
        engine: node.engine.clone(),
        set: Arc::new(node.core.validators().clone()),
        chain: node.identity.chain,
        me: 0,
    };
    let inbound = Arc::new(Inbound {
        tx,
        submits,
        counters: node.counters.clone(),
        server: node.server.clone(),
        verifier,
        slots: Slots::new([]),
        client_idle: Duration::from_secs(60),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = socket.connect(listener.local_addr().unwrap()).await.unwrap();
    let (stream, remote) = listener.accept().await.unwrap();
    // Small kernel buffers at both ends: a few notices fill them.
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::SndBuf, &4096).unwrap();
    let slot = Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().unwrap();
    tokio::spawn(connection(stream, remote, inbound, slot));
    write_frame(&mut client, &Frame::Subscribe).await.unwrap();
    let Some(Event::Subscribe(queue, taken)) = events.recv().await else { panic!("no subscription") };
    let (_tx, mut rx) = mpsc::channel(1);
    node.round(Event::Subscribe(queue.clone(), taken), &mut rx);
    assert_eq!(node.subscribers.len(), 1);
    // Notices of 32 ids (1 KiB) until the subscriber is dropped.
    let mut height = 0;
    while !node.subscribers.is_empty() {
        assert!(height < 1000, "still subscribed after {height} notices");
        decide(&mut node, height, 32);
        height += 1;
        tokio::task::yield_now().await;
    }
    assert_eq!(node.counters.lagging_subscribers.load(Ordering::Relaxed), 1);
    // The connection is closed: what was written can be read, in order, then the stream ends
    // (perhaps in a frame: the writer stops at once).
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut heights = Vec::new();
        loop {
            match read_frame(&mut client).await {
                Ok(Some(Frame::Committed { height, txids })) => {
                    assert_eq!(txids.len(), 32);
                    heights.push(height);
                }
                // The end of the stream, between frames or in one (closed mid-write).
                Ok(None) => return heights,
                Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return heights,
                other => panic!("{other:?}"),
            }
        }
    });
    let heights = read.await.expect("the connection stays open");
    // The notice of the decision that found the queue full was never queued (heights below
    // `height - 1` were): at least one queued notice must have been dropped unwritten.
    assert!(heights.len() < height as usize - 1, "every queued notice was written: {heights:?}");
    assert_eq!(heights, (0..heights.len() as u64).collect::<Vec<_>>());
    assert!(queue.is_closed(), "its queue is kept");
    decide(&mut node, height, 32);
    assert!(node.subscribers.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding: the status mapped an index it could not read (a corrupt entry) to `null`, the same
/// as a height not final yet, so a corrupt index looked like a validator behind. The error is
/// now reported (`digest_at_error`, `chain_hash_at_error`).
#[test]
fn status_reports_an_index_it_cannot_read() {
    use redb::TableDefinition;
    let (mut node, _inboxes, dir) = node("status-corrupt", 0);
    decide(&mut node, 0, 1);
    decide(&mut node, 1, 1);
    let status = |node: &Node, at| serde_json::from_str::<serde_json::Value>(&node.status(Some(at))).unwrap();
    let final_block = status(&node, 0);
    assert!(final_block["digest_at"].is_string() && final_block["chain_hash_at"].is_string(), "{final_block}");
    assert!(final_block["digest_at_error"].is_null() && final_block["chain_hash_at_error"].is_null());
    let not_final = status(&node, 2);
    for k in ["digest_at", "digest_at_error", "chain_hash_at", "chain_hash_at_error"] {
        assert!(not_final[k].is_null(), "{k}: {not_final}");
    }
    // Block 0's index entry made garbage and its chain hash removed, with the store closed (the
    // store's tables, by name); reopening reads neither.
    let genesis = genesis();
    let spare = dir.with_extension("spare");
    node.store = Store::open(&spare, &genesis).unwrap().0;
    {
        let db = redb::Database::open(dir.join("index.redb")).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut blocks = w.open_table(TableDefinition::<u64, &[u8]>::new("blocks")).unwrap();
            blocks.insert(0, [0xff].as_slice()).unwrap();
            let mut chain = w.open_table(TableDefinition::<u64, &[u8]>::new("chain_hash")).unwrap();
            assert!(chain.remove(0).unwrap().is_some());
        }
        w.commit().unwrap();
    }
    node.store = Store::open(&dir, &genesis).unwrap().0;
    let corrupt = status(&node, 0);
    assert!(corrupt["digest_at"].is_null() && corrupt["chain_hash_at"].is_null(), "{corrupt}");
    let error = |k: &str| corrupt[k].as_str().unwrap_or_default().to_string();
    assert!(error("digest_at_error").contains("corrupt: index entry 0"), "{corrupt}");
    assert!(error("chain_hash_at_error").contains("corrupt: chain hash 0 missing"), "{corrupt}");
    assert!(status(&node, 1)["digest_at"].is_string(), "block 1 is still readable");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spare);
}
