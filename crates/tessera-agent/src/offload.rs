//! Finishing what TAP offloads leave undone before a frame leaves the host: a frame read with
//! `NEEDS_CSUM` carries only the pseudo-header sum in its TCP/UDP checksum, and a GSO
//! super-frame (TSO) is one TCP segment of up to 64 KB. Between local ports both pass untouched
//! (the receiving TAP finishes them); towards another host over VXLAN the checksum is computed
//! here and the super-frame cut into MSS-sized segments, each a valid packet.

use crate::tap::{GSO_NONE, NEEDS_CSUM, VNET_HDR_LEN};

/// `virtio_net_hdr.gso_type` for TCP over IPv4 and over IPv6.
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const ETH: usize = 14;

/// The fields of a virtio-net header (little-endian, as the TAP writes them on this host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VnetHeader {
    /// `NEEDS_CSUM` or 0.
    pub flags: u8,
    /// The GSO type.
    pub gso_type: u8,
    /// The segment payload size.
    pub gso_size: u16,
    /// Where the checksum's coverage starts.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// Reads a header.
    pub fn read(h: &[u8]) -> Option<VnetHeader> {
        let h = h.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        Some(VnetHeader { flags: h[0], gso_type: h[1], gso_size: u(4), csum_start: u(6), csum_offset: u(8) })
    }
}

/// Calls `f` with each packet the frame stands for on the wire: the frame itself (with its
/// checksum finished) or, for a GSO super-frame, every segment.
pub fn for_each_segment(hdr: &[u8], frame: &mut [u8], mut f: impl FnMut(&[u8])) {
    let Some(h) = VnetHeader::read(hdr) else { return };
    if h.gso_type == GSO_NONE || h.gso_size == 0 {
        if h.flags & NEEDS_CSUM != 0 {
            finish_checksum(frame, usize::from(h.csum_start), usize::from(h.csum_offset));
        }
        f(frame);
        return;
    }
    let v6 = match h.gso_type & 0x7f {
        GSO_TCPV4 => false,
        GSO_TCPV6 => true,
        _ => return,
    };
    segment_tcp(frame, usize::from(h.gso_size), v6, &mut f);
}

/// Computes the checksum over `frame[start..]` into `frame[start + offset..]`; the field holds
/// the pseudo-header sum on entry.
pub fn finish_checksum(frame: &mut [u8], start: usize, offset: usize) {
    let at = start + offset;
    if at + 2 > frame.len() {
        return;
    }
    let sum = fold(sum_words(&frame[start..], 0));
    let mut c = !sum;
    if c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn sum_words(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    u16::try_from(acc).unwrap_or(0xffff)
}

/// Cuts a TCP super-frame into segments of `mss` payload bytes with valid headers.
fn segment_tcp(frame: &[u8], mss: usize, v6: bool, f: &mut impl FnMut(&[u8])) {
    let ip_len = if v6 { 40 } else { usize::from(frame.get(ETH).map_or(0, |b| b & 0x0f)) * 4 };
    let tcp_at = ETH + ip_len;
    let Some(doff) = frame.get(tcp_at + 12) else { return };
    let tcp_len = usize::from(doff >> 4) * 4;
    let headers = tcp_at + tcp_len;
    if ip_len < 20 || tcp_len < 20 || headers > frame.len() || mss == 0 {
        return;
    }
    let payload = &frame[headers..];
    let seq = u32::from_be_bytes([frame[tcp_at + 4], frame[tcp_at + 5], frame[tcp_at + 6], frame[tcp_at + 7]]);
    let id = u16::from_be_bytes([frame[ETH + 4], frame[ETH + 5]]);
    let count = payload.len().div_ceil(mss).max(1);
    let mut seg = Vec::with_capacity(headers + mss);
    for i in 0..count {
        let chunk = payload.get(i * mss..((i + 1) * mss).min(payload.len())).unwrap_or(&[]);
        seg.clear();
        seg.extend_from_slice(&frame[..headers]);
        seg.extend_from_slice(chunk);
        let l4_len = tcp_len + chunk.len();
        if v6 {
            seg[ETH + 4..ETH + 6].copy_from_slice(&u16::try_from(l4_len).unwrap_or(0).to_be_bytes());
        } else {
            let total = u16::try_from(ip_len + l4_len).unwrap_or(0);
            seg[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
            let seg_id = id.wrapping_add(u16::try_from(i).unwrap_or(0));
            seg[ETH + 4..ETH + 6].copy_from_slice(&seg_id.to_be_bytes());
            seg[ETH + 10..ETH + 12].fill(0);
            let c = !fold(sum_words(&seg[ETH..ETH + ip_len], 0));
            seg[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
        }
        let offset = u32::try_from(i * mss).unwrap_or(0);
        seg[tcp_at + 4..tcp_at + 8].copy_from_slice(&seq.wrapping_add(offset).to_be_bytes());
        if i + 1 < count {
            seg[tcp_at + 13] &= !(0x01 | 0x08); // FIN and PSH only on the last segment
        }
        if i > 0 {
            seg[tcp_at + 13] &= !0x80; // CWR only on the first
        }
        // The full checksum: pseudo-header, then the TCP header and payload.
        seg[tcp_at + 16..tcp_at + 18].fill(0);
        let pseudo = if v6 {
            sum_words(&seg[ETH + 8..ETH + 40], u64::try_from(l4_len).unwrap_or(0) + 6)
        } else {
            sum_words(&seg[ETH + 12..ETH + 20], u64::try_from(l4_len).unwrap_or(0) + 6)
        };
        let c = !fold(sum_words(&seg[tcp_at..], pseudo));
        seg[tcp_at + 16..tcp_at + 18].copy_from_slice(&c.to_be_bytes());
        f(&seg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn tcp_frame(payload: &[u8], fin: bool) -> Vec<u8> {
        let b =
            PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([10, 1, 0, 4], [10, 2, 0, 4], 64).tcp(40000, 80, 1000, 64000);
        let b = if fin { b.fin().psh() } else { b.psh() };
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("build");
        out
    }

    /// A super-frame of 3,000 bytes with MSS 1,400 becomes 1,400 + 1,400 + 200 bytes, sequence
    /// numbers advancing, FIN/PSH only on the last, and every checksum valid.
    #[test]
    fn a_tso_frame_becomes_valid_segments() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut frame = tcp_frame(&payload, true);
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[0] = NEEDS_CSUM;
        hdr[1] = GSO_TCPV4;
        hdr[4..6].copy_from_slice(&1400u16.to_le_bytes());
        let mut segs = Vec::new();
        for_each_segment(&hdr, &mut frame, |s| segs.push(s.to_vec()));
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let p = SlicedPacket::from_ethernet(s).expect("parse");
            let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!("ipv4") };
            assert_eq!(ip.header().header_checksum(), ip.header().to_header().calc_header_checksum());
            let Some(TransportSlice::Tcp(t)) = &p.transport else { panic!("tcp") };
            assert_eq!(t.sequence_number(), 1000 + 1400 * u32::try_from(i).expect("small"));
            let last = i == 2;
            assert_eq!(t.fin(), last);
            assert_eq!(t.psh(), last);
            let expect = t.to_header().calc_checksum_ipv4(&ip.header().to_header(), t.payload()).expect("sum");
            assert_eq!(t.checksum(), expect, "segment {i}");
            joined.extend_from_slice(t.payload());
        }
        assert_eq!(joined, payload);
    }

    /// A frame with only the pseudo-header sum gets its full checksum.
    #[test]
    fn a_partial_checksum_is_finished() {
        let mut frame = tcp_frame(b"hello", false);
        let good = frame.clone();
        let tcp_at = ETH + 20;
        // Put the pseudo-header sum (not complemented) in the field, as the kernel does.
        let len = u64::try_from(frame.len() - tcp_at).expect("len");
        let pseudo = fold(sum_words(&frame[ETH + 12..ETH + 20], len + 6));
        frame[tcp_at + 16..tcp_at + 18].copy_from_slice(&pseudo.to_be_bytes());
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[0] = NEEDS_CSUM;
        hdr[6..8].copy_from_slice(&u16::try_from(tcp_at).expect("small").to_le_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
        let mut out = Vec::new();
        for_each_segment(&hdr, &mut frame, |s| out.push(s.to_vec()));
        assert_eq!(out, vec![good]);
    }
}

/// The pseudo-header sum of a frame whose checksum the receiving kernel will finish
/// (`NEEDS_CSUM`), taken before the switch rewrites addresses (load balancing): the switch
/// updates checksums as if they were complete, which is wrong for a partial one, so the partial
/// sum is recomputed from the one taken here and the new addresses.
#[derive(Debug, Clone, Copy)]
pub struct PartialSum {
    at: usize,
    sum: u16,
    addresses: [u8; 8],
}

impl PartialSum {
    /// Takes the sum of an IPv4 frame with a partial checksum; `None` otherwise.
    pub fn take(hdr: &[u8], frame: &[u8]) -> Option<PartialSum> {
        let h = VnetHeader::read(hdr)?;
        if h.flags & NEEDS_CSUM == 0 || frame.get(12..14)? != [0x08, 0x00] {
            return None;
        }
        let at = usize::from(h.csum_start) + usize::from(h.csum_offset);
        let sum = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
        let addresses = frame.get(ETH + 12..ETH + 20)?.try_into().ok()?;
        Some(PartialSum { at, sum, addresses })
    }

    /// Puts the right partial sum back after a rewrite (nothing to do when no address changed).
    pub fn restore(&self, frame: &mut [u8]) {
        let Some(now) = frame.get(ETH + 12..ETH + 20) else { return };
        if now == self.addresses && frame.get(self.at..self.at + 2) == Some(&self.sum.to_be_bytes()[..]) {
            return;
        }
        // P' = P - old + new (ones' complement arithmetic: subtracting is adding the complement).
        let mut acc = u64::from(self.sum);
        for c in self.addresses.chunks_exact(2) {
            acc += u64::from(!u16::from_be_bytes([c[0], c[1]]));
        }
        acc = sum_words(now, acc);
        let p = fold(acc);
        if let Some(field) = frame.get_mut(self.at..self.at + 2) {
            field.copy_from_slice(&p.to_be_bytes());
        }
    }
}
