//! Reused packet buffers: the media path takes a buffer for each packet it writes and
//! gives it back once the packet is sent, so forwarding allocates nothing once the pool
//! is warm.

/// A buffer's capacity: the largest UDP datagram a peer may send us over a 1500-byte
/// path, plus room for SRTP's tag.
pub const BUF_LEN: usize = 1500 + super::srtp::MAX_OVERHEAD;
/// The most idle buffers kept (beyond that, returned buffers are freed).
const MAX_IDLE: usize = 8192;

/// A packet buffer: its bytes and how many of them are the packet.
pub struct Buf {
    data: Box<[u8; BUF_LEN]>,
    len: usize,
}

impl Buf {
    /// The packet.
    pub fn as_slice(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The whole buffer, to write a packet into.
    pub fn space(&mut self) -> &mut [u8; BUF_LEN] {
        &mut self.data
    }

    /// Sets the packet's length.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(BUF_LEN);
    }

    /// The packet's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the content (media, or a peer's STUN username).
        write!(f, "Buf({} bytes)", self.len)
    }
}

/// Idle buffers.
#[derive(Default)]
pub struct Pool {
    idle: Vec<Buf>,
    /// Buffers ever allocated (for tests and metrics).
    pub allocated: u64,
}

impl Pool {
    /// A buffer (empty), reused if one is idle.
    pub fn take(&mut self) -> Buf {
        match self.idle.pop() {
            Some(mut b) => {
                b.len = 0;
                b
            }
            None => {
                self.allocated += 1;
                Buf {
                    data: Box::new([0; BUF_LEN]),
                    len: 0,
                }
            }
        }
    }

    /// A buffer holding a copy of `bytes` (cut at [`BUF_LEN`]).
    pub fn copy_of(&mut self, bytes: &[u8]) -> Buf {
        let mut b = self.take();
        let n = bytes.len().min(BUF_LEN);
        b.data[..n].copy_from_slice(&bytes[..n]);
        b.len = n;
        b
    }

    /// Gives a buffer back.
    pub fn give(&mut self, b: Buf) {
        if self.idle.len() < MAX_IDLE {
            self.idle.push(b);
        }
    }

    /// How many are idle.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}
