// Tessera's kernel fast path: tc programs on the host side of each VM's veth pair and on the
// port's TAP. A frame from a VM whose flow the switch has already decided as a plain delivery
// (an exact-match entry in FLOWS, put there by the agent) goes straight into the destination
// VM (bpf_redirect_peer), with the switch's MAC rewrite and per-flow counters; everything else
// (new flows, TCP SYN/FIN/RST, ARP, DHCP, neighbour discovery, rewrites, other hosts) goes to the
// port's TAP, where the agent's userspace switch reads it. Frames the agent writes to a TAP go
// to that port's VM. The agent keeps FLOWS in step with the switch: it empties it when programs
// change, so every flow is decided again by the switch.
//
// Built by build.rs with `clang -O2 -target bpf`; loaded with aya (src/fastpath.rs).

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/types.h>

#define SEC(name) __attribute__((section(name), used))
#define ALWAYS __attribute__((always_inline)) static inline

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_skb_store_bytes)(struct __sk_buff *skb, __u32 offset, const void *from, __u32 len,
                                   __u64 flags) = (void *)BPF_FUNC_skb_store_bytes;
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect;
static long (*bpf_redirect_peer)(__u32 ifindex, __u64 flags) = (void *)BPF_FUNC_redirect_peer;

// The legacy map definition aya reads from the "maps" section.
struct map_def {
    __u32 type, key_size, value_size, max_entries, flags, id, pinning;
};

// The exact-match key; the agent builds the same bytes (src/fastpath.rs, `key`).
struct flow_key {
    __u32 ifindex;    // the host-side veth the frame came in on (native order)
    __u8 proto;       // IP protocol
    __u8 family;      // 4 or 6
    __u8 pad[2];
    __u16 sport, dport;  // as on the wire (ICMP echo request: identifier, 0; reply: 0, identifier)
    __u8 src[16], dst[16];  // IPv4: first 4 bytes, rest zero
};

struct flow_value {
    __u32 to;         // the destination port's host-side veth
    __u8 macs[12];    // destination MAC, source MAC, as the switch rewrites them
    __u32 slot;       // the entry's counters in COUNTS
};

SEC("maps") struct map_def FLOWS = {
    .type = BPF_MAP_TYPE_HASH, .key_size = sizeof(struct flow_key),
    .value_size = sizeof(struct flow_value), .max_entries = 262144,
};

// Per-entry counters, in an array so that they outlive the entry: a frame that found the entry
// just before the agent removed it still counts into a slot the agent reads after the removal
// (it frees the slot only a harvest later), so nothing carried goes uncounted.
struct flow_count {
    __u64 packets, bytes;
};

SEC("maps") struct map_def COUNTS = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = sizeof(__u32),
    .value_size = sizeof(struct flow_count), .max_entries = 262144,
};

// Host-side veth -> its TAP (punt), and TAP -> its host-side veth (delivery from the agent).
SEC("maps") struct map_def LINKS = {
    .type = BPF_MAP_TYPE_HASH, .key_size = sizeof(__u32), .value_size = sizeof(__u32),
    .max_entries = 65536,
};

#define ETH_HLEN 14
#define TCP_SYN_FIN_RST 0x07

ALWAYS int punt(struct __sk_buff *skb) {
    __u32 in = skb->ifindex;
    __u32 *tap = bpf_map_lookup_elem(&LINKS, &in);
    if (!tap)
        return TC_ACT_SHOT;
    return bpf_redirect(*tap, 0);
}

// Fills the ports of a TCP, UDP or ICMP echo header at `l4`; 0 when the frame must go to the
// switch (headers outside the linear data, TCP SYN/FIN/RST, ICMP other than echo).
ALWAYS int ports(struct flow_key *k, void *l4, void *end) {
    if (k->proto == 6) {
        __u8 *t = l4;
        if ((void *)(t + 20) > end || (t[13] & TCP_SYN_FIN_RST))
            return 0;
        k->sport = *(__u16 *)t;
        k->dport = *(__u16 *)(t + 2);
        return 1;
    }
    if (k->proto == 17) {
        __u8 *u = l4;
        if ((void *)(u + 8) > end)
            return 0;
        k->sport = *(__u16 *)u;
        k->dport = *(__u16 *)(u + 2);
        return 1;
    }
    if (k->proto == 1 || k->proto == 58) {
        __u8 *i = l4;
        if ((void *)(i + 8) > end)
            return 0;
        __u8 t = i[0];
        int request = k->proto == 1 ? t == 8 : t == 128;
        int reply = k->proto == 1 ? t == 0 : t == 129;
        if (!request && !reply)
            return 0;
        // The identifier is the request's source port and the reply's destination port
        // (tessera_dataplane::wire), so a reply's flow is the request's reversed.
        k->sport = request ? *(__u16 *)(i + 4) : 0;
        k->dport = reply ? *(__u16 *)(i + 4) : 0;
        return 1;
    }
    return 0;
}

// Fills the family, protocol and addresses (source then destination, `len` bytes each, at
// `addrs`); returns where the L4 header starts (right after the addresses in both families).
ALWAYS void *addresses(struct flow_key *k, __u8 family, __u8 proto, __u8 *addrs, int len) {
    k->family = family;
    k->proto = proto;
    if (len == 4) {
        __builtin_memcpy(k->src, addrs, 4);
        __builtin_memcpy(k->dst, addrs + 4, 4);
    } else {
        __builtin_memcpy(k->src, addrs, 16);
        __builtin_memcpy(k->dst, addrs + 16, 16);
    }
    return addrs + 2 * len;
}

SEC("classifier/from_vm") int from_vm(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    __u8 *eth = data;
    if ((void *)(eth + ETH_HLEN) > end)
        return punt(skb);
    struct flow_key k = {};
    k.ifindex = skb->ifindex;
    __u16 type = *(__u16 *)(eth + 12);
    __u8 *ip = eth + ETH_HLEN;
    void *l4;
    if (type == __builtin_bswap16(0x0800)) {
        // IPv4 without options; fragments go to the switch.
        if ((void *)(ip + 20) > end || ip[0] != 0x45 || (*(__u16 *)(ip + 6) & __builtin_bswap16(0x3fff)))
            return punt(skb);
        l4 = addresses(&k, 4, ip[9], ip + 12, 4);
    } else if (type == __builtin_bswap16(0x86dd)) {
        // IPv6 without extension headers (anything else fails `ports`).
        if ((void *)(ip + 40) > end)
            return punt(skb);
        l4 = addresses(&k, 6, ip[6], ip + 8, 16);
    } else {
        return punt(skb);
    }
    if (!ports(&k, l4, end))
        return punt(skb);
    struct flow_value *v = bpf_map_lookup_elem(&FLOWS, &k);
    if (!v)
        return punt(skb);
    __u32 slot = v->slot;
    struct flow_count *c = bpf_map_lookup_elem(&COUNTS, &slot);
    if (!c)
        return punt(skb);
    __sync_fetch_and_add(&c->packets, 1);
    __sync_fetch_and_add(&c->bytes, skb->len);
    if (bpf_skb_store_bytes(skb, 0, v->macs, 12, 0) < 0)
        return TC_ACT_SHOT;
    return bpf_redirect_peer(v->to, 0);
}

SEC("classifier/from_agent") int from_agent(struct __sk_buff *skb) {
    __u32 in = skb->ifindex;
    __u32 *veth = bpf_map_lookup_elem(&LINKS, &in);
    if (!veth)
        return TC_ACT_SHOT;
    return bpf_redirect_peer(*veth, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
