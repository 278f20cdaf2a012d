//! DPDK probe (feature `dpdk`): the EAL starts with the configured arguments and lists its ports.
//! The EAL started here stays up for the transfer backend (it can start once per process).

use super::Probe;
use serde::{Deserialize, Serialize};

/// What the DPDK probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpdkInfo {
    /// The EAL arguments it started with.
    pub eal_args: Vec<String>,
    /// Ethernet ports the EAL probed.
    pub ports: Vec<DpdkPort>,
}

/// One DPDK ethdev port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpdkPort {
    /// Port id.
    pub id: u16,
    /// Device name, e.g. "net_ring0".
    pub name: String,
    /// Driver, e.g. "net_ring".
    pub driver: String,
    /// MAC address, "02:00:00:00:00:00" form.
    pub mac: String,
    /// MTU in bytes.
    pub mtu: u16,
}

#[cfg(not(feature = "dpdk"))]
pub(super) fn probe(_args: &[String]) -> Probe<DpdkInfo> {
    Probe::unavailable("built without feature `dpdk`")
}

#[cfg(feature = "dpdk")]
pub(super) fn probe(args: &[String]) -> Probe<DpdkInfo> {
    use crate::dpdk::{DpdkError, Eal};
    let eal = match Eal::init(args) {
        Ok(e) => e,
        Err(DpdkError::EalInit { args, reason, errno }) => {
            return Probe::Unavailable { reason: format!("rte_eal_init({args}): {reason}"), errno: Some(errno) }
        }
        Err(e) => return Probe::unavailable(e.to_string()),
    };
    let ports = match eal.ports() {
        Ok(p) => p,
        Err(e) => return Probe::unavailable(e.to_string()),
    };
    if ports.is_empty() {
        return Probe::unavailable(format!("EAL started with `{}` but found no ethernet port", eal.args().join(" ")));
    }
    Probe::Available(DpdkInfo {
        eal_args: eal.args().to_vec(),
        ports: ports
            .into_iter()
            .map(|p| DpdkPort {
                id: p.id,
                name: p.name,
                driver: p.driver,
                mac: p.mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
                mtu: p.mtu,
            })
            .collect(),
    })
}
