//! The datagram path over DPDK `net_af_packet` between two processes in two network
//! namespaces joined by a veth pair the test creates (feature `dpdk`, needs root). The sender
//! discovers the veth MTU, then sends the contract sizes; the receiver checks them byte-exact
//! (each block carries its BLAKE3 digest, and the receiver also regenerates the expected bytes),
//! even blocks into memory and odd ones into a store.
//! Skips with one line when namespaces cannot be created. Namespaces are removed at the end.
#![cfg(feature = "dpdk")]

mod common;

use common::{pattern, TempDir};
use parthenon::dpdk::Eal;
use parthenon::transfer::datagram::{Compression, DatagramConfig, DatagramReceiver, DatagramSender};
use parthenon::transfer::dpdk::DpdkLink;
use parthenon::transfer::{BlockId, BlockStore, Expect};
use std::process::{Command, Output};
use std::time::Duration;

const SIZES: [usize; 6] = [0, 1, 4095, 4096, (1 << 20) + 7, 64 << 20];
const ROLE: &str = "PARTHENON_VETH_ROLE";
const IFACE: &str = "PARTHENON_VETH_IFACE";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Removes the namespaces (and with them the veth pair) on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

fn child(ns: &str, role: &str, iface: &str) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(["child_veth", "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(IFACE, iface)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn dpdk_af_packet_over_veth_between_namespaces() {
    let pid = std::process::id();
    let (na, nb) = (format!("pth-a-{pid}"), format!("pth-b-{pid}"));
    let (va, vb) = (format!("pva{}", pid % 100_000), format!("pvb{}", pid % 100_000));
    if let Err(e) = ip(&["netns", "add", &na]) {
        // CI installs iproute2 and runs as root: there the test must run, not skip.
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI: cannot create a network namespace: {e}");
        println!("skip: cannot create a network namespace: {e}");
        return;
    }
    let mut guard = Namespaces(vec![na.clone()]);
    ip(&["netns", "add", &nb]).unwrap();
    guard.0.push(nb.clone());
    ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]).unwrap();
    ip(&["link", "set", &va, "netns", &na]).unwrap();
    ip(&["link", "set", &vb, "netns", &nb]).unwrap();
    for (ns, v) in [(&na, &va), (&nb, &vb)] {
        ip(&["-n", ns, "link", "set", v, "up"]).unwrap();
    }
    let rx = child(&nb, "receiver", &vb);
    std::thread::sleep(Duration::from_millis(300));
    let tx = child(&na, "sender", &va);
    let tx = tx.wait_with_output().unwrap();
    let rx = rx.wait_with_output().unwrap();
    println!("--- sender ---\n{}\n--- receiver ---\n{}", text(&tx), text(&rx));
    assert!(tx.status.success() && text(&tx).contains("VETH-SENDER-OK"), "sender failed");
    assert!(rx.status.success() && text(&rx).contains("VETH-RECEIVER-OK"), "receiver failed");
    drop(guard);
}

/// Runs inside a namespace, started by the test above; does nothing when run directly.
#[test]
fn child_veth() {
    let (Ok(role), Ok(iface)) = (std::env::var(ROLE), std::env::var(IFACE)) else { return };
    let args: Vec<String> = vec![
        "--no-huge".into(),
        "-m".into(),
        "512".into(),
        "--no-pci".into(),
        "--no-shconf".into(),
        format!("--vdev=net_af_packet0,iface={iface}"),
        "--log-level=*:error".into(),
        format!("--file-prefix=parthenon-{}", std::process::id()),
    ];
    let eal = Eal::init(&args).unwrap();
    println!("ports: {:?}", eal.ports().unwrap());
    let mut link = DpdkLink::new(0, 0).unwrap();
    // The sender's first MTU probe goes to a receiver process started 300 ms before it, on a
    // possibly loaded machine: each probe waits up to 500 ms for its answer (the default 10 ms
    // would make a slow receiver a failed discovery), as in tests/transfer_dpdk_ring.rs.
    let cfg = DatagramConfig {
        compression: Compression::Off,
        resend_timeout: Duration::from_millis(30),
        max_rounds: 200,
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    if role == "receiver" {
        let mut r = DatagramReceiver::new(cfg);
        // Even blocks into memory, odd ones into a store.
        let dir = TempDir::new("veth-store");
        let store = BlockStore::open(dir.path()).unwrap();
        for (i, &n) in SIZES.iter().enumerate() {
            let expect = Expect::block(BlockId(i as u64));
            let body = if i % 2 == 0 {
                let (h, body) = r.recv_block(&mut link, &expect).unwrap();
                assert_eq!(h.length as usize, n);
                body
            } else {
                r.recv_block_to_store(&mut link, &store, &expect).unwrap().read_body().unwrap()
            };
            assert!(body == pattern(n, i as u64 + 21), "block {i} ({n} bytes) differs");
            println!("received block {i}: {n} bytes, digest ok{}", if i % 2 == 1 { ", stored" } else { "" });
        }
        drop(dir);
        r.linger(&mut link, Duration::from_millis(500)).unwrap();
        println!("receiver {:?}", link.stats());
        println!("VETH-RECEIVER-OK");
    } else {
        let s = DatagramSender::new(cfg);
        let frame = s.mtu.discover(&mut link, &cfg).unwrap();
        println!("discovered frame size {frame} on {iface}");
        assert!((1400..=1500).contains(&frame), "veth MTU 1500 should give a ~1500-byte frame, got {frame}");
        for (i, &n) in SIZES.iter().enumerate() {
            let rep = s.send_block(&mut link, BlockId(i as u64), &pattern(n, i as u64 + 21)).unwrap();
            println!("sent block {i}: {n} bytes in {} frames, {} resent", rep.frames, rep.resent);
        }
        println!("sender {:?}", link.stats());
        println!("VETH-SENDER-OK");
    }
}
