//! Catch-up: which peer a validator that fell behind fetches final blocks from, one fetch at a
//! time, each ended by its deadline; what a fetch's result does to the peer's standing (see the
//! module docs of [`super`] and [`crate::node::sync`]).

use super::*;

impl Node {
    /// `peer` showed (a `Tip`, or a signed message for a later height) that it is at `height`:
    /// remember the claim, and if that is above us fetch from it, at once unless its last fetch
    /// was fruitless (then from the best peer after [`FETCH_RETRY`]: a peer cannot take the
    /// fetch back by claiming again).
    pub(super) fn ahead(&mut self, peer: ValidatorIndex, height: u64) {
        if let Some(t) = self.tips.get_mut(usize::from(peer)) {
            *t = (*t).max(height);
        }
        if height > self.store.height() {
            if self.fruitless.get(usize::from(peer)).is_some_and(Option::is_none) {
                self.fetch(peer);
            } else {
                self.retry_later();
            }
        }
    }

    /// Fetch `id`, from `peer`, that started at height `from`, when `peer` claimed height
    /// `claimed`, ended. A fetch other than the one in flight (one given up for lost, see
    /// [`Node::fetch`]) changes nothing. Its `Decided` blocks were queued on the same channel
    /// before this event, so consensus has taken or refused each of them, and our height says
    /// what the fetch was worth: delivered blocks count only if they moved the height (a peer can deliver
    /// well-formed blocks that consensus refuses).
    ///
    /// The fetch was *fruitful* when it delivered blocks, every one of them moved our height,
    /// and it delivered what the peer claimed (up to [`MAX_FETCH`]; an honest peer serves every
    /// final block it has, and it had the blocks it claimed). Then, if the answer was full and
    /// the peer still claims more, the next request goes to it at once.
    ///
    /// Otherwise (nothing delivered, a block refused, less than claimed, or a failure) the fetch
    /// was *fruitless*: the peer's claim is dropped (it is not asked again until it claims
    /// again) and the peer is marked until a fetch from it is fruitful. One exception: a fetch
    /// that failed (its deadline, say: large blocks on a slow link) after it moved our height
    /// keeps the peer's claim; the peer is marked all the same, so the next fetch goes to an
    /// unmarked peer claiming more if there is one, else back to it after [`FETCH_RETRY`]. A marked peer is fetched
    /// from only when no unmarked peer claims a height above ours, and never at once on a
    /// claim ([`Node::ahead`]). So a peer that claims blocks it does not serve, or serves blocks
    /// that are not final, cannot keep a lagging validator from its honest peers.
    ///
    /// Then, while some peer's claim is above our height, another fetch starts after
    /// [`FETCH_RETRY`] ([`Node::fetch_from_best`]).
    pub(super) fn fetch_done(
        &mut self,
        id: u64,
        peer: ValidatorIndex,
        from: u64,
        claimed: u64,
        result: Result<u64, String>,
    ) {
        if self.fetching.is_none_or(|(current, _)| current != id) {
            tracing::debug!(peer, id, "a fetch given up for lost ended");
            return;
        }
        self.fetching = None;
        let ours = self.store.height();
        let FetchJudgement { fruitful, full, keep_claim } = judge(&result, from, ours, claimed);
        match &result {
            Ok(n) if !fruitful => tracing::debug!(peer, delivered = n, ours, from, claimed, "fruitless fetch"),
            Err(e) => tracing::warn!(peer, error = %e, applied = ours.saturating_sub(from), "fetch stopped"),
            Ok(_) => {}
        }
        self.mark(peer, fruitful);
        if !fruitful && !keep_claim {
            self.forget_claim(peer);
        } else if full && self.tips.get(usize::from(peer)).is_some_and(|&t| t > ours) {
            return self.fetch(peer);
        }
        if self.tips.iter().any(|&t| t > ours) {
            self.retry_later();
        }
    }

    /// Records whether the last fetch from `peer` was fruitful (see `Node::fetch_done`).
    pub(super) fn mark(&mut self, peer: ValidatorIndex, fruitful: bool) {
        if let Some(f) = self.fruitless.get_mut(usize::from(peer)) {
            *f = if fruitful { None } else { Some(Instant::now()) };
        }
    }

    /// Sends [`Event::RetryFetch`] after [`FETCH_RETRY`], unless one is on its way.
    pub(super) fn retry_later(&mut self) {
        if self.retry_pending {
            return;
        }
        self.retry_pending = true;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FETCH_RETRY).await;
            let _ = tx.send(Event::RetryFetch).await;
        });
    }

    pub(super) fn forget_claim(&mut self, peer: ValidatorIndex) {
        let ours = self.store.height();
        if let Some(t) = self.tips.get_mut(usize::from(peer)) {
            *t = (*t).min(ours);
        }
    }

    /// Fetches from a peer whose claim is above our height, if any: of the peers whose last
    /// fetch was not fruitless the one claiming the most, else the one whose fruitless fetch is
    /// the oldest (so those take turns).
    pub(super) fn fetch_from_best(&mut self) {
        let ours = self.store.height();
        let best = (0..=ValidatorIndex::MAX)
            .zip(self.tips.iter().zip(&self.fruitless))
            .filter(|(_, (&t, _))| t > ours)
            .min_by_key(|(_, (&t, f))| match f {
                None => (false, std::cmp::Reverse(t), None),
                Some(at) => (true, std::cmp::Reverse(0), Some(*at)),
            });
        if let Some((peer, _)) = best {
            self.fetch(peer);
        }
    }

    /// Starts fetching the final blocks we miss from `peer` through the engine's transfer,
    /// unless a fetch is in flight: a block connection on which this validator proves its
    /// identity first, so the peer serves it in the slot it keeps for it
    /// ([`crate::node::sync`]). Blocks reach consensus as `Decided` messages, in order.
    ///
    /// The whole fetch, connect and handshake included, ends by its deadline
    /// ([`NodeConfig::fetch_deadline_ms`]): then its connection is shut down, its blocking
    /// thread awaited, and it fails ([`BlockServer::fetch_until`]), so its `FetchDone` comes
    /// just after the deadline and the peer is marked. A fetch still not done [`IO_TIMEOUT`]
    /// after its deadline (its task lost) is given up: the next one may start, and its own
    /// `FetchDone`, should it come, is ignored ([`Node::fetch_done`]).
    pub(super) fn fetch(&mut self, peer: ValidatorIndex) {
        let lost = self.fetch_deadline.saturating_add(IO_TIMEOUT);
        if peer == self.core.me() || self.fetching.is_some_and(|(_, t)| t.elapsed() < lost) {
            return;
        }
        let Some(addr) = self.addrs.get(usize::from(peer)).copied() else { return };
        let id = self.fetches;
        self.fetches += 1;
        self.fetching = Some((id, Instant::now()));
        let deadline = tokio::time::Instant::now() + self.fetch_deadline;
        let claimed = self.tips.get(usize::from(peer)).copied().unwrap_or(0);
        let (from, server, tx, identity) =
            (self.store.height(), self.server.clone(), self.tx.clone(), self.identity.clone());
        tokio::spawn(async move {
            let io = |what: &'static str| move |source| SyncError::Io { what, source };
            let opened = async {
                let mut s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
                    .await
                    .map_err(|_| SyncError::Io { what: "connect", source: std::io::ErrorKind::TimedOut.into() })?
                    .map_err(io("connect"))?;
                let _ = s.set_nodelay(true);
                handshake::call(&mut s, &identity.key, &identity.chain, identity.me, peer).await?;
                s.into_std().map_err(io("connection"))
            };
            let opened = tokio::time::timeout_at(deadline, opened).await.unwrap_or(Err(SyncError::Deadline));
            let result = match opened {
                Ok(s) => {
                    let blocks = tx.clone();
                    server
                        .clone()
                        .fetch_until(s, addr, from, deadline, move |_, payload, cert| {
                            blocks.blocking_send(Event::Peer(peer, Message::Decided { cert, payload })).is_ok()
                        })
                        .await
                }
                Err(e) => Err(server.fetch_failed(addr, from, e)),
            };
            let result = result.map_err(|e| e.to_string());
            let _ = tx.send(Event::FetchDone { id, peer, from, claimed, result }).await;
        });
    }
}

/// What a fetch that ended was worth ([`Node::fetch_done`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct FetchJudgement {
    /// It delivered what the peer claimed (or a full answer), every block moving our height.
    pub(super) fruitful: bool,
    /// A full answer ([`MAX_FETCH`] blocks): the peer may have more.
    pub(super) full: bool,
    /// Fruitless, but the peer keeps its claim: the fetch failed after it moved our height.
    pub(super) keep_claim: bool,
}

/// Judges a fetch that started at height `from`, when its peer claimed `claimed`, ended with
/// `result` (blocks delivered, or why it failed), our height now `ours`.
pub(super) fn judge(result: &Result<u64, String>, from: u64, ours: u64, claimed: u64) -> FetchJudgement {
    let applied = ours.saturating_sub(from);
    match *result {
        Ok(n) if n > 0 && applied >= n && (n >= MAX_FETCH || from.saturating_add(n) >= claimed) => {
            FetchJudgement { fruitful: true, full: n >= MAX_FETCH, keep_claim: false }
        }
        Ok(_) => FetchJudgement { fruitful: false, full: false, keep_claim: false },
        Err(_) => FetchJudgement { fruitful: false, full: false, keep_claim: applied > 0 },
    }
}
