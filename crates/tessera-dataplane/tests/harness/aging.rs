//! Flow aging and fair tables on a virtual clock: each idle timeout (TCP half-open, established
//! with the VNet's flowTimeoutInMinutes, closing; UDP; ICMP; refused decisions), a flow kept
//! busy never expiring, eviction order when the table is full, the quota of a port, and a
//! flood of new flows from one VM that leaves another VM's connections untouched.

use std::time::Duration;

use tessera_dataplane::aging::Timeouts;
use tessera_dataplane::{DropReason, FlowLimits};

use crate::lab::{Lab, Sent, delivered};

/// Four VMs in one VNet (no NSG), and a VNet whose TCP flows idle out after 10 minutes.
const HOST: &str = r#"
vnets:
  - { name: a, addressSpace: [10.1.0.0/16], subnets: [{ name: s, prefix: 10.1.0.0/24 }] }
  - { name: slow, addressSpace: [10.9.0.0/16], flowTimeoutInMinutes: 10, subnets: [{ name: s, prefix: 10.9.0.0/24 }] }
vms:
  - { name: flooder, subnet: a/s, ip: 10.1.0.4 }
  - { name: victim, subnet: a/s, ip: 10.1.0.5 }
  - { name: server, subnet: a/s, ip: 10.1.0.6 }
  - { name: other, subnet: a/s, ip: 10.1.0.7 }
  - { name: patient, subnet: slow/s, ip: 10.9.0.4 }
  - { name: patient-peer, subnet: slow/s, ip: 10.9.0.5 }
"#;

fn at(lab: &mut Lab, secs: u64) -> usize {
    lab.switch.advance(Duration::from_secs(secs)).len()
}

/// Sends a UDP datagram and says whether the switch decided it anew (slow path).
fn udp_slow(lab: &mut Lab, from: &str, to: &str, sport: u16) -> bool {
    let slow = lab.switch.counters().slow_path;
    let dst = lab.ip(to);
    delivered(lab.send(from, lab.udp(from, dst, sport, 53)));
    lab.switch.counters().slow_path > slow
}

fn tcp_slow(lab: &mut Lab, from: &str, to: &str, ports: (u16, u16), flags: &str) -> bool {
    let slow = lab.switch.counters().slow_path;
    let dst = lab.ip(to);
    delivered(lab.send(from, lab.tcp(from, dst, ports.0, ports.1, flags)));
    lab.switch.counters().slow_path > slow
}

#[test]
fn a_udp_flow_idles_out_after_its_timeout_and_traffic_pushes_it_on() {
    let mut lab = Lab::new(HOST);
    let udp = u64::from(Timeouts::default().udp);
    at(&mut lab, 100);
    assert!(udp_slow(&mut lab, "flooder", "server", 1000), "a new flow is decided");
    assert_eq!(lab.switch.flow_count(), 2, "the flow and its reply");
    assert_eq!(at(&mut lab, 100 + udp - 1), 0, "not idle yet");
    assert!(!udp_slow(&mut lab, "flooder", "server", 1000), "still cached");
    // Its packet at 100 + udp - 1 pushed the flow on; the reply, unused, idles out.
    assert_eq!(at(&mut lab, 100 + udp), 1, "the unused reply entry goes at its time");
    assert_eq!(at(&mut lab, 100 + 2 * udp - 2), 0);
    assert_eq!(at(&mut lab, 100 + 2 * udp - 1), 1, "then the flow, idle for its timeout");
    assert_eq!(lab.switch.flow_count(), 0);
    assert_eq!(lab.switch.flows_of(lab.port("flooder")), 0, "its port is charged nothing any more");
    assert!(udp_slow(&mut lab, "flooder", "server", 1000), "decided again after it expired");
    assert_eq!(lab.switch.counters().expired, 2);
}

#[test]
fn a_flow_kept_busy_never_expires() {
    let mut lab = Lab::new(HOST);
    assert!(udp_slow(&mut lab, "flooder", "server", 1000));
    let server = lab.ip("flooder");
    for t in (20..3_000).step_by(20) {
        at(&mut lab, t);
        assert!(!udp_slow(&mut lab, "flooder", "server", 1000), "second {t}");
        // The reply keeps flowing too.
        delivered(lab.send("server", lab.udp("server", server, 53, 1000)));
    }
    assert_eq!(lab.switch.counters().slow_path, 2, "one decision each way in 50 minutes");
}

#[test]
fn icmp_idles_out_after_its_timeout() {
    let mut lab = Lab::new(HOST);
    let icmp = u64::from(Timeouts::default().icmp);
    let dst = lab.ip("server");
    delivered(lab.send("flooder", lab.ping("flooder", dst, false)));
    assert_eq!(at(&mut lab, icmp - 1), 0);
    assert_eq!(at(&mut lab, icmp), 2, "the echo flow and its reply");
}

#[test]
fn a_half_open_tcp_flow_idles_out_sooner_than_an_established_one() {
    let mut lab = Lab::new(HOST);
    let t = Timeouts::default();
    assert!(tcp_slow(&mut lab, "flooder", "server", (4000, 80), "S"));
    assert!(tcp_slow(&mut lab, "victim", "server", (4001, 80), "S"));
    // The victim's connection completes: SYN-ACK back, then its ACK.
    let victim = lab.ip("victim");
    delivered(lab.send("server", lab.tcp("server", victim, 80, 4001, "SA")));
    assert!(!tcp_slow(&mut lab, "victim", "server", (4001, 80), "A"));
    assert_eq!(at(&mut lab, u64::from(t.tcp_half_open)), 2, "the SYN that got no answer, and its reply entry");
    assert_eq!(lab.switch.flows_of(lab.port("flooder")), 0);
    assert_eq!(lab.switch.flows_of(lab.port("victim")), 2, "the established connection stays");
    // Azure's default TCP idle timeout, 4 minutes, with no flowTimeoutInMinutes.
    assert_eq!(at(&mut lab, 4 * 60 - 1), 0);
    assert_eq!(at(&mut lab, 4 * 60), 2);
}

#[test]
fn established_tcp_takes_the_vnets_flow_timeout() {
    let mut lab = Lab::new(HOST);
    assert!(tcp_slow(&mut lab, "patient", "patient-peer", (4000, 22), "S"));
    let patient = lab.ip("patient");
    delivered(lab.send("patient-peer", lab.tcp("patient-peer", patient, 22, 4000, "SA")));
    assert!(!tcp_slow(&mut lab, "patient", "patient-peer", (4000, 22), "A"));
    // flowTimeoutInMinutes: 10 on the VNet.
    assert_eq!(at(&mut lab, 10 * 60 - 1), 0, "alive for the VNet's ten minutes");
    assert_eq!(at(&mut lab, 10 * 60), 2);
}

#[test]
fn a_closing_tcp_flow_idles_out_after_the_closing_timeout() {
    let mut lab = Lab::new(HOST);
    let closing = u64::from(Timeouts::default().tcp_closing);
    assert!(tcp_slow(&mut lab, "victim", "server", (4001, 80), "S"));
    let victim = lab.ip("victim");
    delivered(lab.send("server", lab.tcp("server", victim, 80, 4001, "SA")));
    assert!(!tcp_slow(&mut lab, "victim", "server", (4001, 80), "A"));
    at(&mut lab, 100);
    assert!(!tcp_slow(&mut lab, "victim", "server", (4001, 80), "A"), "established: alive after 100 s");
    // One side closes at 200 and the other never answers: its entry goes after the closing
    // timeout, long before the established one would.
    at(&mut lab, 200);
    assert!(!tcp_slow(&mut lab, "victim", "server", (4001, 80), "FA"));
    assert_eq!(at(&mut lab, 200 + closing - 1), 0);
    assert_eq!(at(&mut lab, 200 + closing), 1, "the closing direction");
    assert_eq!(lab.switch.flow_count(), 1, "the reply direction, established, keeps its own time");
}

#[test]
fn a_refused_decision_is_decided_again_after_two_seconds_whatever_the_traffic() {
    let mut lab = Lab::new(HOST);
    let refused = u64::from(Timeouts::default().refused);
    let outside = crate::lab::v4("10.1.0.99");
    let slow = lab.switch.counters().slow_path;
    for t in 0..=refused {
        at(&mut lab, t);
        assert_eq!(lab.send("flooder", lab.udp("flooder", outside, 1, 2)), Sent::Drop(DropReason::NoSuchHost));
    }
    // Decided at 0, repeated from the cache at 1, decided again at 2.
    assert_eq!(lab.switch.counters().slow_path, slow + 2);
}

#[test]
fn a_full_table_evicts_the_heaviest_ports_entry_closest_to_expiry() {
    let mut lab = Lab::with_limits(HOST, FlowLimits { capacity: 8, port_quota: 6, timeouts: Timeouts::default() });
    for (t, sport) in [(0, 1000), (1, 1001), (2, 1002)] {
        at(&mut lab, t);
        assert!(udp_slow(&mut lab, "flooder", "server", sport));
    }
    assert!(udp_slow(&mut lab, "victim", "server", 2000));
    assert_eq!(lab.switch.flow_count(), 8, "full: three flows of the flooder, one of the victim");
    // The victim's next flow needs two entries: the flooder's oldest flow (both directions) goes.
    assert!(udp_slow(&mut lab, "victim", "server", 2001));
    let (flooder, victim) = (lab.port("flooder"), lab.port("victim"));
    assert_eq!(lab.switch.counters().evictions(flooder), 2);
    assert_eq!(lab.switch.counters().evictions(victim), 0);
    assert_eq!((lab.switch.flows_of(flooder), lab.switch.flows_of(victim)), (4, 4));
    assert!(!udp_slow(&mut lab, "flooder", "server", 1001), "the younger flows stay cached");
    assert!(!udp_slow(&mut lab, "flooder", "server", 1002));
    // The oldest is decided again, but may not push the victim out: the ports are even now.
    let server = lab.ip("server");
    assert_eq!(lab.send("flooder", lab.udp("flooder", server, 1000, 53)), Sent::Drop(DropReason::FlowTableFull));
    assert_eq!(lab.switch.counters().evictions(victim), 0);
}

#[test]
fn a_port_at_its_quota_is_refused_new_flows_and_only_it_is_counted() {
    let mut lab = Lab::with_limits(HOST, FlowLimits { capacity: 1000, port_quota: 10, timeouts: Timeouts::default() });
    let server = lab.ip("server");
    let mut refused = 0;
    for sport in 0..100 {
        match lab.send("flooder", lab.udp("flooder", server, 1000 + sport, 53)) {
            Sent::Drop(DropReason::FlowQuotaExceeded) => refused += 1,
            other => {
                delivered(other);
            }
        }
    }
    assert_eq!(refused, 95, "five flows (a flow and its reply each) fill a quota of ten");
    for sport in 0..5 {
        assert!(udp_slow(&mut lab, "victim", "server", 2000 + sport), "the victim has its own quota");
    }
    let c = lab.switch.counters();
    assert_eq!(c.quota_drops(lab.port("flooder")), 95);
    assert_eq!(c.quota_drops(lab.port("victim")), 0);
    assert_eq!(c.quota_drops(lab.port("server")), 0);
    assert_eq!(c.dropped(DropReason::FlowQuotaExceeded), 95);
    // Once the flooder's flows idle out, it may open new ones again.
    at(&mut lab, u64::from(Timeouts::default().udp));
    assert!(udp_slow(&mut lab, "flooder", "server", 3000));
}

/// The flood of issue 14's acceptance: one VM opens new flows as fast as it can while another
/// opens 1,000 TCP connections; every connection of the second succeeds, and the flood is
/// counted as quota drops against the first VM's port only.
#[test]
fn a_flood_of_new_flows_from_one_vm_leaves_anothers_connections_untouched() {
    let mut lab =
        Lab::with_limits(HOST, FlowLimits { capacity: 16_384, port_quota: 4_096, timeouts: Timeouts::default() });
    let (server, victim) = (lab.ip("server"), lab.ip("victim"));
    let other = lab.ip("other");
    let mut flood: u32 = 0;
    for i in 0..1_000u16 {
        for _ in 0..50 {
            flood += 1;
            let dst = if flood.is_multiple_of(2) { server } else { other };
            let frame = lab.udp("flooder", dst, (flood % 60_000) as u16 + 1, (flood / 60_000) as u16 + 1);
            let _ = lab.send("flooder", frame);
        }
        let sport = 10_000 + i;
        delivered(lab.send("victim", lab.tcp("victim", server, sport, 443, "S")));
        delivered(lab.send("server", lab.tcp("server", victim, 443, sport, "SA")));
        delivered(lab.send("victim", lab.tcp("victim", server, sport, 443, "A")));
    }
    let c = lab.switch.counters();
    let (f, v, s, o) = (lab.port("flooder"), lab.port("victim"), lab.port("server"), lab.port("other"));
    assert!(c.quota_drops(f) > 40_000, "the flood hit its quota: {}", c.quota_drops(f));
    assert_eq!((c.quota_drops(v), c.quota_drops(s), c.quota_drops(o)), (0, 0, 0));
    assert_eq!((c.evictions(v), c.evictions(s)), (0, 0));
    assert_eq!(lab.switch.flows_of(f), 4_096);
    assert_eq!(lab.switch.flows_of(v), 2_000, "the victim's 1,000 connections, both directions");
}

/// A flow the kernel fast path carries passes the switch no more: the agent reports its
/// activity (`keep_alive`, from the kernel entry's counters) so it does not expire, and when it
/// idles out `advance` names its key, for the agent to withdraw the kernel's entry too.
#[test]
fn an_offloaded_flow_lives_while_the_kernel_carries_it_and_its_key_is_handed_back_when_idle() {
    let mut lab = Lab::new(HOST);
    let udp = u64::from(Timeouts::default().udp);
    let dst = lab.ip("server");
    let frame = lab.udp("flooder", dst, 1000, 53);
    delivered(lab.send("flooder", frame.clone()));
    let offload = lab.switch.offload(lab.port("flooder"), &frame).expect("a plain local delivery is offloaded");
    for t in (10..10 * udp).step_by(10) {
        // Its reply entry, never used (no reply came), idles out; the flow itself does not.
        let gone = lab.switch.advance(Duration::from_secs(t));
        assert!(!gone.contains(&offload.key), "second {t}: {gone:?}");
        lab.switch.keep_alive(&offload.key);
    }
    assert_eq!(lab.switch.flow_count(), 1);
    let last = 10 * udp - 10;
    let gone = lab.switch.advance(Duration::from_secs(last + udp));
    assert!(gone.contains(&offload.key), "the idle flow's key is handed back: {gone:?}");
    assert!(lab.switch.offload(lab.port("flooder"), &frame).is_none(), "and is no longer offloaded");
}
