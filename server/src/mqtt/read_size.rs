//! How much a session reads from its socket at once. A busy device's socket holds many
//! packets: taking them in one read answers them all with one write (one acknowledgement
//! segment instead of one per read), where a fixed small buffer costs a read and a write
//! system call every few packets. An idle device keeps a small buffer.

use bytes::BytesMut;

/// What every session starts with, and returns to when its device slows down.
pub const READ_MIN: usize = 4 * 1024;
/// The most one session's buffer grows to for reading (a packet larger than this grows
/// it to the packet's size, bounded by the payload limit, as before).
pub const READ_MAX: usize = 64 * 1024;

/// The size of the next read: doubled after a read that filled what was offered, halved
/// after one that used under a quarter of it.
#[derive(Debug, Clone, Copy)]
pub struct ReadSize {
    size: usize,
    offered: usize,
}

impl Default for ReadSize {
    fn default() -> ReadSize {
        ReadSize {
            size: READ_MIN,
            offered: 0,
        }
    }
}

impl ReadSize {
    /// Makes room in `buf` for the next read.
    pub fn prepare(&mut self, buf: &mut BytesMut) {
        if buf.capacity() - buf.len() < self.size {
            buf.reserve(self.size);
        }
        self.offered = buf.capacity() - buf.len();
    }

    /// Adapts to a read of `n` bytes into what [`ReadSize::prepare`] offered.
    pub fn read(&mut self, n: usize) {
        if n >= self.offered {
            self.size = (self.size * 2).min(READ_MAX);
        } else if n < self.size / 4 {
            self.size = (self.size / 2).max(READ_MIN);
        }
    }

    /// Called once the buffer's packets are processed: an empty buffer larger than the
    /// current size is replaced by a small one, so an idle session holds 4 KiB.
    pub fn shrink(&self, buf: &mut BytesMut) {
        if buf.is_empty() && buf.capacity() > 2 * self.size.max(READ_MIN) {
            *buf = BytesMut::with_capacity(self.size);
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_reads_fill_it_and_shrinks_when_they_do_not() {
        let mut size = ReadSize::default();
        let mut buf = BytesMut::with_capacity(READ_MIN);
        for _ in 0..10 {
            size.prepare(&mut buf);
            let offered = buf.capacity() - buf.len();
            assert!(offered >= size.size());
            size.read(offered);
        }
        assert_eq!(size.size(), READ_MAX);
        size.prepare(&mut buf);
        assert!(buf.capacity() >= READ_MAX);
        for _ in 0..10 {
            size.prepare(&mut buf);
            size.read(100);
            size.shrink(&mut buf);
        }
        assert_eq!(size.size(), READ_MIN);
        assert!(buf.capacity() <= 2 * READ_MIN, "{}", buf.capacity());
    }

    #[test]
    fn a_buffer_holding_part_of_a_packet_is_kept() {
        let size = ReadSize::default();
        let mut buf = BytesMut::with_capacity(4 * READ_MAX);
        buf.extend_from_slice(b"partial");
        size.shrink(&mut buf);
        assert_eq!(&buf[..], b"partial");
        assert!(buf.capacity() >= 4 * READ_MAX);
    }
}
