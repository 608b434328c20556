//! TAP devices with virtio-net headers (`IFF_VNET_HDR`) and offloads: each read or write moves
//! one frame behind a 10-byte `virtio_net_hdr`, and a TCP "super-frame" of up to 64 KB passes
//! as one frame (TSO), which is what makes a userspace switch fast (notes/dataplane.md: ten
//! times the throughput of plain frames here). A TAP has one queue per forwarding worker
//! (`IFF_MULTI_QUEUE`); the kernel hands each flow to one queue, and to the queue a flow's
//! frames were last written on, so both directions of a connection meet at the same worker.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// The size of the virtio-net header in front of every frame.
pub const VNET_HDR_LEN: usize = 10;
/// `virtio_net_hdr.flags`: the checksum starting at `csum_start` is still to be computed.
pub const NEEDS_CSUM: u8 = 1;
/// `virtio_net_hdr.gso_type`: not a GSO frame.
pub const GSO_NONE: u8 = 0;

/// `struct ifreq` as TUNSETIFF reads it: a name and the flags (the rest of the union unused).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TAP device. Closing it removes the device.
#[derive(Debug)]
pub struct Tap {
    queues: Vec<File>,
    name: String,
}

impl Tap {
    /// Makes a TAP device with `queues` queues (at least one), virtio-net headers and checksum
    /// + TSO offloads, non-blocking.
    pub fn create(name: &str, queues: usize) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name '{name}'")));
        }
        let count = queues.max(1);
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        if count > 1 {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        let mut files = Vec::with_capacity(count);
        for _ in 0..count {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open("/dev/net/tun")?;
            let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: 0, _pad: [0; 22] };
            req.name[..name.len()].copy_from_slice(name.as_bytes());
            // The flags fit in a c_short (0x4000 | 0x1000 | 0x0100 | 0x0002).
            req.flags = flags as libc::c_short;
            let fd = file.as_raw_fd();
            // SAFETY: `fd` is an open /dev/net/tun; TUNSETIFF reads a `struct ifreq`, which `IfReq`
            // lays out (name, then flags, padded to the union's 24 bytes) and which outlives the
            // call. With IFF_MULTI_QUEUE the same name attaches one more queue to the device.
            check(unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req as *mut IfReq) })?;
            let offloads = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
            // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of TUN_F_* bits).
            check(unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(offloads)) })?;
            files.push(file);
        }
        Ok(Tap { queues: files, name: name.to_string() })
    }

    /// The device's name (in the namespace it was made in).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of queues.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    fn queue(&self, q: usize) -> &File {
        &self.queues[q % self.queues.len()]
    }

    /// Reads one frame with its virtio-net header from queue `q`; `WouldBlock` when none is
    /// waiting.
    pub fn recv(&self, q: usize, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut self.queue(q), buf)
    }

    /// Writes one frame with its virtio-net header on queue `q`.
    pub fn send(&self, q: usize, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut self.queue(q), buf)
    }

    /// The file descriptor of queue `q` (for polling).
    pub fn fd(&self, q: usize) -> RawFd {
        self.queue(q).as_raw_fd()
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
