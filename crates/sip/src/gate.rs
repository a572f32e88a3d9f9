//! Who may start a call: the security gate in front of everything that costs money.
//! An INVITE is admitted only from the registrar's address or an allow-listed one
//! (SIP scanners get 403 and never reach media or an agent), and only while fewer
//! than `max_calls` are up (486 Busy Here otherwise). Sans-IO: the router asks,
//! the call task reports when its call ends.

use std::net::IpAddr;

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
    active: usize,
}

impl CallGate {
    pub fn new(registrar: IpAddr, allow: Vec<IpAddr>, max_calls: usize) -> CallGate {
        CallGate { registrar, allow, max_calls, active: 0 }
    }

    /// Decide on a new INVITE from `source`; an admitted call counts until `call_ended`.
    pub fn admit(&mut self, source: IpAddr) -> Admission {
        if source != self.registrar && !self.allow.contains(&source) {
            return Admission::Forbidden;
        }
        if self.active >= self.max_calls {
            return Admission::Busy;
        }
        self.active += 1;
        Admission::Admit
    }

    /// The registrar's address changed (the PBX host was resolved again).
    pub fn set_registrar(&mut self, registrar: IpAddr) {
        self.registrar = registrar;
    }

    pub fn call_ended(&mut self) {
        self.active = self.active.saturating_sub(1);
    }

    pub fn active(&self) -> usize {
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn only_the_pbx_and_the_allow_list_get_in() {
        let mut g = CallGate::new(ip("127.0.0.1"), vec![ip("127.0.0.5")], 10);
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Admit);
        assert_eq!(g.admit(ip("127.0.0.5")), Admission::Admit);
        assert_eq!(g.admit(ip("127.0.0.9")), Admission::Forbidden);
        assert_eq!(g.admit(ip("::1")), Admission::Forbidden);
        assert_eq!(g.active(), 2, "refused calls do not count");
    }

    #[test]
    fn the_limit_gives_busy_and_frees_up() {
        let mut g = CallGate::new(ip("127.0.0.1"), vec![], 2);
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Admit);
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Admit);
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Busy);
        assert_eq!(Admission::Busy.status(), Some(486));
        g.call_ended();
        assert_eq!(g.admit(ip("127.0.0.1")), Admission::Admit);
        g.call_ended();
        g.call_ended();
        g.call_ended();
        assert_eq!(g.active(), 0, "never below zero");
    }
}
