//! Batching records into segments: flushed by size or by age, a record never split.

use std::{io::BufRead, time::Duration};

use fastdata_primitives::envelope::MAX_PAYLOAD_LEN;
use tokio::{sync::mpsc, time::Instant};

use super::config::FlushPolicy;

/// A segment's plaintext: whole records, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The records, concatenated.
    pub payload: Vec<u8>,
    /// How many records.
    pub records: usize,
}

/// A record refused because no segment can hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oversize {
    /// Its length in bytes (at least).
    pub len: usize,
}

impl std::fmt::Display for Oversize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record of {} bytes is longer than a segment can be ({MAX_PAYLOAD_LEN} bytes); not sent",
            self.len
        )
    }
}

/// Collects records into segments of at most `max_bytes` (a longer record is a segment of
/// its own), each flushed at the latest `max_delay` after its first record arrived.
#[derive(Debug)]
pub struct Batcher {
    policy: FlushPolicy,
    buf: Vec<u8>,
    records: usize,
    oldest: Option<Instant>,
}

impl Batcher {
    /// An empty batcher.
    pub fn new(policy: FlushPolicy) -> Self {
        Self {
            policy,
            buf: Vec::new(),
            records: 0,
            oldest: None,
        }
    }

    /// Adds `record`, arrived at `now`; returns the segments now complete (zero, one or two,
    /// in order). A record longer than a segment can carry is refused.
    pub fn push(&mut self, record: &[u8], now: Instant) -> Result<Vec<Segment>, Oversize> {
        if record.len() > MAX_PAYLOAD_LEN {
            return Err(Oversize { len: record.len() });
        }
        let mut out = Vec::new();
        if !self.buf.is_empty() && self.buf.len() + record.len() > self.policy.max_bytes {
            out.extend(self.take());
        }
        if self.buf.is_empty() {
            self.oldest = Some(now);
        }
        self.buf.extend_from_slice(record);
        self.records += 1;
        if self.buf.len() >= self.policy.max_bytes || self.policy.max_delay.is_zero() {
            out.extend(self.take());
        }
        Ok(out)
    }

    /// When the batched records must be flushed, if any are batched.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.policy.max_delay)
    }

    /// The batched records as a segment if their deadline has come by `now`.
    pub fn take_due(&mut self, now: Instant) -> Option<Segment> {
        match self.deadline() {
            Some(deadline) if deadline <= now => self.take(),
            _ => None,
        }
    }

    /// The batched records as a segment, if any (flush now).
    pub fn take(&mut self) -> Option<Segment> {
        if self.buf.is_empty() {
            return None;
        }
        self.oldest = None;
        Some(Segment {
            payload: std::mem::take(&mut self.buf),
            records: std::mem::take(&mut self.records),
        })
    }

    /// Bytes batched.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing batched.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Reads newline-delimited records from `reader` into `records` until the end of input (or
/// until the receiver is gone), blocking: run it on a thread of its own. Each record keeps its
/// newline (one is added to a last line without). A line longer than a segment can carry is
/// sent cut to [`MAX_PAYLOAD_LEN`]` + 1` bytes, for the batcher to refuse, so memory stays
/// bounded.
pub fn read_lines<R: BufRead>(
    mut reader: R,
    records: &mpsc::Sender<Vec<u8>>,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !line.is_empty() {
                line.push(b'\n');
                let _ = records.blocking_send(line);
            }
            return Ok(());
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(at) => (&buf[..=at], true),
            None => (buf, false),
        };
        let used = chunk.len();
        if !cut {
            let room = (MAX_PAYLOAD_LEN + 1).saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            cut = line.len() > MAX_PAYLOAD_LEN;
        }
        reader.consume(used);
        if done {
            cut = false;
            if records.blocking_send(std::mem::take(&mut line)).is_err() {
                return Ok(());
            }
        }
    }
}

/// One MQTT message as a record: its payload, with a newline added unless it ends with one
/// (so a buyer reads the stream as lines).
pub fn message_record(payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(payload.len() + 1);
    record.extend_from_slice(payload);
    if record.last() != Some(&b'\n') {
        record.push(b'\n');
    }
    record
}

/// Back-off between retries: doubles from `initial` up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`, never more than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The wait before the next retry (and doubles the one after).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// After a success: start over.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_bytes: usize, ms: u64) -> FlushPolicy {
        FlushPolicy {
            max_bytes,
            max_delay: Duration::from_millis(ms),
        }
    }

    fn lines(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut r = format!("{i}:").into_bytes();
                r.resize(len - 1, b'x');
                r.push(b'\n');
                r
            })
            .collect()
    }

    #[test]
    fn records_are_never_split_and_segments_respect_max_bytes() {
        let t = Instant::now();
        let mut b = Batcher::new(policy(100, 1_000));
        let mut segments = Vec::new();
        let mut input = Vec::new();
        // Records of many sizes, some larger than max_bytes.
        for (i, len) in [7, 30, 99, 1, 100, 101, 250, 45, 55, 60, 3, 3, 3]
            .into_iter()
            .cycle()
            .take(200)
            .enumerate()
        {
            let mut r = vec![b'a' + (i % 26) as u8; len - 1];
            r.push(b'\n');
            input.push(r.clone());
            segments.extend(b.push(&r, t).unwrap());
        }
        segments.extend(b.take());
        // Every segment is whole records: splitting at newlines gives back the input, in order.
        let mut out = Vec::new();
        for s in &segments {
            assert_eq!(s.payload.last(), Some(&b'\n'));
            let recs: Vec<Vec<u8>> = s
                .payload
                .split_inclusive(|c| *c == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            assert_eq!(recs.len(), s.records);
            // At most max_bytes unless it is one record on its own.
            assert!(s.payload.len() <= 100 || s.records == 1, "{s:?}");
            out.extend(recs);
        }
        assert_eq!(out, input);
    }

    #[test]
    fn flushes_by_size() {
        let t = Instant::now();
        let mut b = Batcher::new(policy(30, 10_000));
        let recs = lines(4, 10);
        assert!(b.push(&recs[0], t).unwrap().is_empty());
        assert!(b.push(&recs[1], t).unwrap().is_empty());
        // Exactly max_bytes: flushed at once.
        let s = b.push(&recs[2], t).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].records, 3);
        assert_eq!(s[0].payload.len(), 30);
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
        // A record that would overflow flushes what is batched first, then waits.
        let mut b = Batcher::new(policy(25, 10_000));
        b.push(&recs[0], t).unwrap();
        b.push(&recs[1], t).unwrap();
        let s = b.push(&recs[2], t).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].payload, [recs[0].clone(), recs[1].clone()].concat());
        assert_eq!(b.len(), 10);
        // A record longer than max_bytes is its own segment, after the batched ones.
        let big = lines(1, 40).remove(0);
        let s = b.push(&big, t).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].payload, recs[2]);
        assert_eq!(s[1].payload, big);
        assert!(b.is_empty());
    }

    #[test]
    fn flushes_by_time_within_the_deadline() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = Batcher::new(policy(4096, 100));
        let recs = lines(3, 10);
        assert_eq!(b.deadline(), None);
        b.push(&recs[0], t0).unwrap();
        b.push(&recs[1], t0 + ms(60)).unwrap();
        // The deadline is the first record's arrival plus max_delay, not the last one's.
        assert_eq!(b.deadline(), Some(t0 + ms(100)));
        assert_eq!(b.take_due(t0 + ms(99)), None);
        let s = b.take_due(t0 + ms(100)).unwrap();
        assert_eq!(s.records, 2);
        assert_eq!(b.deadline(), None);
        // The next record starts a new deadline.
        b.push(&recs[2], t0 + ms(150)).unwrap();
        assert_eq!(b.deadline(), Some(t0 + ms(250)));
        // max_delay 0: every record is its own segment at once.
        let mut b = Batcher::new(policy(4096, 0));
        assert_eq!(b.push(&recs[0], t0).unwrap().len(), 1);
        assert!(b.is_empty());
    }

    #[tokio::test]
    async fn the_flush_timer_fires_at_the_deadline() {
        // What the stream task does: sleep until the batcher's deadline, then take the segment.
        let mut b = Batcher::new(policy(4096, 50));
        let start = Instant::now();
        b.push(b"one\n", start).unwrap();
        let deadline = b.deadline().unwrap();
        tokio::time::sleep_until(deadline).await;
        let s = b.take_due(Instant::now()).unwrap();
        let waited = start.elapsed();
        assert_eq!(s.payload, b"one\n");
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn oversize_records_are_refused_and_leave_the_batch_alone() {
        let t = Instant::now();
        let mut b = Batcher::new(policy(100, 100));
        b.push(b"kept\n", t).unwrap();
        let huge = vec![b'x'; MAX_PAYLOAD_LEN + 1];
        assert_eq!(
            b.push(&huge, t),
            Err(Oversize {
                len: MAX_PAYLOAD_LEN + 1
            })
        );
        // Exactly the maximum still fits.
        let max = vec![b'y'; MAX_PAYLOAD_LEN];
        let s = b.push(&max, t).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].payload, b"kept\n");
        assert_eq!(s[1].payload.len(), MAX_PAYLOAD_LEN);
    }

    #[test]
    fn lines_are_read_whole_and_long_ones_cut_for_refusal() {
        let long = vec![b'z'; MAX_PAYLOAD_LEN * 3];
        let mut input = b"a\nbb\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nccc\nlast");
        // A small buffer: lines span many reads.
        let reader = std::io::BufReader::with_capacity(7, &input[..]);
        let (tx, mut rx) = mpsc::channel(16);
        read_lines(reader, &tx).unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Some(r) = rx.blocking_recv() {
            got.push(r);
        }
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], b"a\n");
        assert_eq!(got[1], b"bb\n");
        assert_eq!(got[2].len(), MAX_PAYLOAD_LEN + 1);
        assert_eq!(got[3], b"ccc\n");
        assert_eq!(got[4], b"last\n");
        let mut b = Batcher::new(policy(100, 100));
        assert!(b.push(&got[2], Instant::now()).is_err());
    }

    #[test]
    fn messages_become_lines_and_backoff_doubles() {
        assert_eq!(message_record(b"{\"t\":1}"), b"{\"t\":1}\n");
        assert_eq!(message_record(b"x\n"), b"x\n");
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| backoff.next_wait().as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.next_wait().as_secs(), 1);
    }
}
