//! Who may start a call, and who may speak inside one: the security gate in front of
//! everything that costs money. An INVITE is admitted only from the registrar's
//! address or an allow-listed one (SIP scanners get 403 and never reach media or an
//! agent), and only while there is room (486 Busy Here otherwise).
//!
//! A call counts against `max_calls` from its ACK, not its INVITE: a forged INVITE
//! from the PBX's address is never ACKed, so it only ever holds one of the few
//! *pending* places (un-ACKed answers have their own bound) and only until its call
//! task gives up waiting. Every admitted call holds a [`Slot`] that gives its place
//! back exactly once, whichever way the call ends (drop included).
//!
//! Sans-IO: the router asks, the call's slot reports.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// 403: not the PBX.
    Forbidden,
    /// 486: the configured limit of concurrent calls is reached.
    Busy,
}

impl Admission {
    pub fn status(self) -> Option<u16> {
        match self {
            Admission::Admit => None,
            Admission::Forbidden => Some(403),
            Admission::Busy => Some(486),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallGate {
    registrar: IpAddr,
    allow: Vec<IpAddr>,
    max_calls: usize,
    max_pending: usize,
    active: usize,
    pending: usize,
    /// Addresses of live dialogs' remote targets (their Contact), counted per dialog.
    peers: HashMap<IpAddr, usize>,
}

impl CallGate {
    /// `max_calls` established calls, and as many answered-but-not-ACKed ones.
    pub fn new(registrar: IpAddr, allow: Vec<IpAddr>, max_calls: usize) -> CallGate {
        CallGate {
            registrar,
            allow,
            max_calls,
            max_pending: max_calls.max(1),
            active: 0,
            pending: 0,
            peers: HashMap::new(),
        }
    }

    /// The registrar or an allow-listed address: may start calls.
    pub fn may_call(&self, source: IpAddr) -> bool {
        source == self.registrar || self.allow.contains(&source)
    }

    /// May send us anything at all: the registrar, the allow list, or a live
    /// dialog's remote target.
    pub fn is_trusted(&self, source: IpAddr) -> bool {
        self.may_call(source) || self.peers.contains_key(&source)
    }

    /// Decide on a new INVITE from `source`; an admitted call is pending until
    /// [`CallGate::acked`], and holds its place until [`CallGate::released`].
    pub fn admit(&mut self, source: IpAddr) -> Admission {
        if !self.may_call(source) {
            return Admission::Forbidden;
        }
        if self.active >= self.max_calls || self.pending >= self.max_pending {
            return Admission::Busy;
        }
        self.pending += 1;
        Admission::Admit
    }

    /// A pending call got its ACK: it now counts against `max_calls`. False when the
    /// limit was reached meanwhile (other pending calls were ACKed first): the call
    /// stays pending and its owner must end it.
    pub fn acked(&mut self) -> bool {
        if self.active >= self.max_calls {
            return false;
        }
        self.pending = self.pending.saturating_sub(1);
        self.active += 1;
        true
    }

    /// A call gave its place back: `was_acked` says which count it was in.
    pub fn released(&mut self, was_acked: bool) {
        let n = if was_acked { &mut self.active } else { &mut self.pending };
        *n = n.saturating_sub(1);
    }

    /// The registrar's address changed (the PBX host was resolved again).
    pub fn set_registrar(&mut self, registrar: IpAddr) {
        self.registrar = registrar;
    }

    fn add_peer(&mut self, ip: IpAddr) {
        *self.peers.entry(ip).or_insert(0) += 1;
    }

    fn remove_peer(&mut self, ip: IpAddr) {
        if let Some(n) = self.peers.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.peers.remove(&ip);
            }
        }
    }

    /// Established calls.
    #[cfg(test)]
    pub fn active(&self) -> usize {
        self.active
    }

    /// Answered calls still waiting for their ACK.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending
    }
}

const PENDING: u8 = 0;
const ACTIVE: u8 = 1;
const RELEASED: u8 = 2;

/// One admitted call's place at the gate, and the addresses its dialog may speak
/// from. Given back exactly once: [`Slot::release`] or drop, whichever comes first.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Mutex<CallGate>>,
    state: AtomicU8,
    /// Where the INVITE came from and the remote target (Contact) when it is an IP.
    routes: [Option<IpAddr>; 2],
}

impl Slot {
    /// Ask `gate` for a place for an INVITE from `source` whose Contact is at
    /// `remote_target`.
    pub fn admit(
        gate: &Arc<Mutex<CallGate>>,
        source: IpAddr,
        remote_target: Option<IpAddr>,
    ) -> Result<Slot, Admission> {
        let mut g = gate.lock().map_err(|_| Admission::Busy)?;
        match g.admit(source) {
            Admission::Admit => {}
            refused => return Err(refused),
        }
        let remote_target = remote_target.filter(|t| *t != source);
        if let Some(t) = remote_target {
            g.add_peer(t);
        }
        Ok(Slot { gate: gate.clone(), state: AtomicU8::new(PENDING), routes: [Some(source), remote_target] })
    }

    /// The call's ACK came. False when it no longer fits under `max_calls` (or was
    /// already released): the owner ends it.
    pub fn acked(&self) -> bool {
        match self.state.load(Ordering::Acquire) {
            ACTIVE => true,
            RELEASED => false,
            _ => {
                let Ok(mut g) = self.gate.lock() else { return false };
                // Under the gate's lock: a concurrent release sees one state or the other.
                if self.state.load(Ordering::Acquire) != PENDING || !g.acked() {
                    return false;
                }
                self.state.store(ACTIVE, Ordering::Release);
                true
            }
        }
    }

    /// Answered (or about to be) and still waiting for the ACK.
    pub fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }

    /// Give the place back (idempotent).
    pub fn release(&self) {
        let Ok(mut g) = self.gate.lock() else { return };
        match self.state.swap(RELEASED, Ordering::AcqRel) {
            RELEASED => return,
            was => g.released(was == ACTIVE),
        }
        if let Some(t) = self.routes[1] {
            g.remove_peer(t);
        }
    }

    /// May `source` send requests inside this call's dialog?
    pub fn route_allows(&self, source: IpAddr) -> bool {
        self.routes.contains(&Some(source)) || self.gate.lock().is_ok_and(|g| g.may_call(source))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn shared(max: usize) -> Arc<Mutex<CallGate>> {
        Arc::new(Mutex::new(CallGate::new(ip("127.0.0.1"), vec![ip("127.0.0.5")], max)))
    }

    fn counts(g: &Arc<Mutex<CallGate>>) -> (usize, usize) {
        let g = g.lock().expect("gate");
        (g.pending(), g.active())
    }

    #[test]
    fn only_the_pbx_and_the_allow_list_get_in() {
        let mut g = CallGate::new(ip("127.0.0.1"), vec![ip("127.0.0.5")], 10);
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Admit);
        assert_eq!(g.admit(ip("127.0.0.5")), Admission::Admit);
        assert_eq!(g.admit(ip("127.0.0.9")), Admission::Forbidden);
        assert_eq!(g.admit(ip("::1")), Admission::Forbidden);
        assert_eq!(g.pending(), 2, "refused calls do not count");
        g.set_registrar(ip("127.0.0.9"));
        assert_eq!(g.admit(ip("127.0.0.9")), Admission::Admit);
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Forbidden, "the old address is forgotten");
    }

    #[test]
    fn the_limit_gives_busy_and_frees_up() {
        let mut g = CallGate::new(ip("127.0.0.1"), vec![], 2);
        for _ in 0..2 {
            assert_eq!(g.admit(ip("127.0.0.1")), Admission::Admit);
            assert!(g.acked());
        }
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Busy);
        assert_eq!(Admission::Busy.status(), Some(486));
        g.released(true);
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Admit);
        for _ in 0..4 {
            g.released(true);
            g.released(false);
        }
        assert_eq!((g.pending(), g.active()), (0, 0), "never below zero");
    }

    #[test]
    fn unacked_calls_have_their_own_bound_and_never_fill_the_call_limit() {
        let gate = shared(2);
        // Two forged INVITEs fill the pending places: a third waits (486)...
        let forged: Vec<Slot> =
            (0..2).map(|_| Slot::admit(&gate, ip("127.0.0.1"), None).expect("admitted")).collect();
        assert_eq!(counts(&gate), (2, 0));
        assert_eq!(Slot::admit(&gate, ip("127.0.0.1"), None).err(), Some(Admission::Busy));
        // ...until their call tasks give up: dropping a slot gives the place back.
        drop(forged);
        assert_eq!(counts(&gate), (0, 0));
        let a = Slot::admit(&gate, ip("127.0.0.1"), None).expect("admitted");
        let b = Slot::admit(&gate, ip("127.0.0.1"), None).expect("admitted");
        assert!(a.acked() && b.acked());
        assert!(a.acked(), "a second ACK (re-INVITE) changes nothing");
        assert_eq!(counts(&gate), (0, 2));
        // Established calls at the limit: busy, however few are pending.
        assert_eq!(Slot::admit(&gate, ip("127.0.0.1"), None).err(), Some(Admission::Busy));
        a.release();
        a.release();
        drop(a);
        assert_eq!(counts(&gate), (0, 1), "released once, whatever the number of calls");
        drop(b);
        assert_eq!(counts(&gate), (0, 0));
    }

    #[test]
    fn an_ack_over_the_limit_is_refused_and_still_released_once() {
        let gate = shared(1);
        let a = Slot::admit(&gate, ip("127.0.0.1"), None).expect("admitted");
        // max_pending is 1 too: a second pending call only after a's ACK.
        assert_eq!(Slot::admit(&gate, ip("127.0.0.1"), None).err(), Some(Admission::Busy));
        assert!(a.acked());
        assert_eq!(Slot::admit(&gate, ip("127.0.0.1"), None).err(), Some(Admission::Busy));
        // With room for 2 pending: both answered, the second ACK does not fit.
        let gate =
            Arc::new(Mutex::new(CallGate { max_pending: 2, ..CallGate::new(ip("127.0.0.1"), vec![], 1) }));
        let a = Slot::admit(&gate, ip("127.0.0.1"), None).expect("admitted");
        let b = Slot::admit(&gate, ip("127.0.0.1"), None).expect("admitted");
        assert!(a.acked());
        assert!(!b.acked(), "over max_calls at its ACK");
        assert_eq!(counts(&gate), (1, 1));
        drop(b);
        drop(a);
        assert_eq!(counts(&gate), (0, 0));
    }

    #[test]
    fn a_dialogs_routes_are_trusted_while_it_lives() {
        let gate = shared(2);
        let pbx = ip("127.0.0.1");
        let media_server = ip("127.0.0.7");
        let slot = Slot::admit(&gate, pbx, Some(media_server)).expect("admitted");
        assert!(
            slot.route_allows(pbx) && slot.route_allows(media_server) && slot.route_allows(ip("127.0.0.5"))
        );
        assert!(!slot.route_allows(ip("127.0.0.2")));
        assert!(gate.lock().expect("gate").is_trusted(media_server));
        assert!(!gate.lock().expect("gate").may_call(media_server), "a route is not a caller");
        let same = Slot::admit(&gate, pbx, Some(media_server)).expect("admitted");
        drop(slot);
        assert!(gate.lock().expect("gate").is_trusted(media_server), "still another dialog's route");
        drop(same);
        assert!(!gate.lock().expect("gate").is_trusted(media_server));
        assert!(gate.lock().expect("gate").is_trusted(pbx));
    }
}
