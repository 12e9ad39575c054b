//! Exact sliding-window booking: the math of `botai_rate_acquire`.
//!
//! A key (exchange + endpoint) keeps a log of booked requests: moments (µs)
//! with weights, sorted by time, possibly in the future. The guarantee is
//! that for every moment `x`, the weight booked in the window `(x - W, x]`
//! never exceeds the limit `L`.
//!
//! Adding weight `w` at `t` touches the windows that contain `t`, i.e.
//! `x ∈ [t, t + W)`. With `S(x)` the weight in `(x - W, x]`, the booking is
//! allowed iff `max S(x) over x ∈ [t, t+W)` plus `w` stays within `L`. `S` only
//! steps up at booked moments and down at booked moments + W, so that maximum
//! is attained at `x = t` or at a booked moment inside `(t, t + W)`, and the
//! earliest allowed `t ≥ from` is `from` itself or some `t_i + W` (a moment
//! where weight leaves a window). [`LogView::earliest_fit`] walks those
//! candidates in order with prefix sums and a monotonic deque: O(n) in the
//! worst case, O(1) when the whole log plus `w` fits under `L`.
//!
//! The log lives in a caller-provided buffer used as a ring, so the extension
//! can place it in shared memory; tests use a `Vec`.

use std::collections::VecDeque;

use thiserror::Error;

/// One booked request.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    /// When the request may be sent, µs on the caller's clock.
    pub at: i64,
    pub weight: u32,
    _pad: u32,
}

impl Entry {
    pub fn new(at: i64, weight: u32) -> Entry {
        Entry { at, weight, _pad: 0 }
    }
}

/// Ring bookkeeping for one log; lives next to its buffer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LogHeader {
    head: u32,
    len: u32,
    /// Sum of the weights currently in the log.
    total: u64,
}

/// A limit as the log sees it: at most `limit` weight in any window of
/// `length_us` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u64,
    pub length_us: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the log holds its maximum of {capacity} booked requests")]
pub struct LogFull {
    pub capacity: usize,
}

/// Read access to a log.
#[derive(Clone, Copy)]
pub struct LogView<'a> {
    hdr: &'a LogHeader,
    buf: &'a [Entry],
}

/// Write access to a log.
pub struct SlidingLog<'a> {
    hdr: &'a mut LogHeader,
    buf: &'a mut [Entry],
}

impl<'a> LogView<'a> {
    pub fn new(hdr: &'a LogHeader, buf: &'a [Entry]) -> Self {
        debug_assert!(hdr.len as usize <= buf.len());
        LogView { hdr, buf }
    }

    pub fn len(&self) -> usize {
        self.hdr.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.hdr.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Total weight in the log (past and future bookings).
    pub fn total(&self) -> u64 {
        self.hdr.total
    }

    /// The i-th entry in time order.
    pub fn get(&self, i: usize) -> Entry {
        let j = self.hdr.head as usize + i;
        self.buf[if j >= self.buf.len() { j - self.buf.len() } else { j }]
    }

    pub fn last(&self) -> Option<Entry> {
        (!self.is_empty()).then(|| self.get(self.len() - 1))
    }

    /// Number of entries with `at <= x`.
    pub fn count_at_or_before(&self, x: i64) -> usize {
        // Bookings mostly land at the end: check there before searching.
        match self.last() {
            None => return 0,
            Some(last) if last.at <= x => return self.len(),
            _ => {}
        }
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid).at <= x {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Weight booked in `(after, upto]`.
    pub fn weight_in(&self, after: i64, upto: i64) -> u64 {
        let (from, to) = (self.count_at_or_before(after), self.count_at_or_before(upto));
        (from..to).map(|i| u64::from(self.get(i).weight)).sum()
    }

    /// Would `weight` at `at` keep every window within the limit?
    pub fn fits(&self, at: i64, weight: u64, window: Window) -> bool {
        self.earliest_fit(at, weight, window) == at
    }

    /// The earliest moment `t ≥ from` at which `weight` can be booked without
    /// any window of `window.length_us` exceeding `window.limit`.
    /// `weight` must not exceed `window.limit` (callers refuse that first).
    pub fn earliest_fit(&self, from: i64, weight: u64, window: Window) -> i64 {
        assert!(weight <= window.limit, "weight above the limit never fits");
        if self.total() + weight <= window.limit {
            return from;
        }
        let room = window.limit - weight;
        let w = window.length_us;
        let n = self.len();
        let at: Vec<i64> = (0..n).map(|i| self.get(i).at).collect();
        let mut prefix = Vec::with_capacity(n + 1);
        prefix.push(0u64);
        for i in 0..n {
            prefix.push(prefix[i] + u64::from(self.get(i).weight));
        }
        // upper(x): entries with at <= x; lower(x): entries with at < x.
        let upper = |x: i64| at.partition_point(|&a| a <= x);
        // s[j] = S(at[j]) = weight in (at[j] - W, at[j]].
        let mut s = vec![0u64; n];
        {
            let (mut lo, mut hi) = (0usize, 0usize);
            for j in 0..n {
                while hi < n && at[hi] <= at[j] {
                    hi += 1;
                }
                while lo < n && at[lo] <= at[j] - w {
                    lo += 1;
                }
                s[j] = prefix[hi] - prefix[lo];
            }
        }
        // Candidates in ascending order: `from`, then at[i] + W for every
        // entry still inside a window that contains `from`.
        let first = upper(from - w);
        let candidates = std::iter::once(from).chain(at[first..].iter().map(|&a| a + w).filter(|&c| c > from));

        let (mut ub_c, mut ub_c_minus_w, mut lb_c_plus_w) = (0usize, 0usize, 0usize);
        let mut deque: VecDeque<usize> = VecDeque::new();
        for c in candidates {
            while ub_c < n && at[ub_c] <= c {
                ub_c += 1;
            }
            while ub_c_minus_w < n && at[ub_c_minus_w] <= c - w {
                ub_c_minus_w += 1;
            }
            while lb_c_plus_w < n && at[lb_c_plus_w] < c + w {
                while deque.back().is_some_and(|&k| s[k] <= s[lb_c_plus_w]) {
                    deque.pop_back();
                }
                deque.push_back(lb_c_plus_w);
                lb_c_plus_w += 1;
            }
            while deque.front().is_some_and(|&k| k < ub_c) {
                deque.pop_front();
            }
            let at_c = prefix[ub_c] - prefix[ub_c_minus_w];
            let later = deque.front().map_or(0, |&k| s[k]);
            if at_c.max(later) <= room {
                return c;
            }
        }
        unreachable!("after the last booking plus one window every window is empty")
    }
}

impl<'a> SlidingLog<'a> {
    pub fn new(hdr: &'a mut LogHeader, buf: &'a mut [Entry]) -> Self {
        assert!(!buf.is_empty(), "a log needs room for at least one entry");
        assert!(hdr.len as usize <= buf.len() && (hdr.head as usize) < buf.len());
        SlidingLog { hdr, buf }
    }

    pub fn view(&self) -> LogView<'_> {
        LogView { hdr: self.hdr, buf: self.buf }
    }

    /// Forgets every booking at or before `upto`. Callers pass `now - W`:
    /// such bookings can no longer share a window with anything booked now
    /// or later.
    pub fn prune(&mut self, upto: i64) {
        let cap = self.buf.len() as u32;
        while self.hdr.len > 0 {
            let e = self.buf[self.hdr.head as usize];
            if e.at > upto {
                break;
            }
            self.hdr.total -= u64::from(e.weight);
            self.hdr.head = (self.hdr.head + 1) % cap;
            self.hdr.len -= 1;
        }
        if self.hdr.len == 0 {
            self.hdr.head = 0;
        }
    }

    /// Records a booking, keeping time order.
    pub fn book(&mut self, at: i64, weight: u32) -> Result<(), LogFull> {
        let cap = self.buf.len();
        let len = self.hdr.len as usize;
        if len == cap {
            return Err(LogFull { capacity: cap });
        }
        let pos = self.view().count_at_or_before(at);
        let head = self.hdr.head as usize;
        for k in (pos..len).rev() {
            self.buf[(head + k + 1) % cap] = self.buf[(head + k) % cap];
        }
        self.buf[(head + pos) % cap] = Entry::new(at, weight);
        self.hdr.len += 1;
        self.hdr.total += u64::from(weight);
        Ok(())
    }

    /// Drops everything (used when the key's configuration disappears).
    pub fn clear(&mut self) {
        *self.hdr = LogHeader::default();
    }
}

/// The earliest `t ≥ from` at which `weight` fits in every one of `logs`
/// (an endpoint and its exchange's `global`, say).
pub fn earliest_common_fit(logs: &[(LogView<'_>, Window)], from: i64, weight: u64) -> i64 {
    let mut t = from;
    loop {
        let mut moved = false;
        for (log, window) in logs {
            let fit = log.earliest_fit(t, weight, *window);
            if fit != t {
                t = fit;
                moved = true;
            }
        }
        if !moved {
            return t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Owned {
        hdr: LogHeader,
        buf: Vec<Entry>,
    }

    impl Owned {
        fn new(cap: usize) -> Self {
            Owned { hdr: LogHeader::default(), buf: vec![Entry::default(); cap] }
        }
        fn log(&mut self) -> SlidingLog<'_> {
            SlidingLog::new(&mut self.hdr, &mut self.buf)
        }
        fn view(&self) -> LogView<'_> {
            LogView::new(&self.hdr, &self.buf)
        }
        fn entries(&self) -> Vec<Entry> {
            let v = self.view();
            (0..v.len()).map(|i| v.get(i)).collect()
        }
    }

    /// Max weight over every window (x - W, x], by brute force.
    fn max_window(entries: &[Entry], w: i64) -> u64 {
        entries
            .iter()
            .map(|e| entries.iter().filter(|o| o.at > e.at - w && o.at <= e.at).map(|o| u64::from(o.weight)).sum())
            .max()
            .unwrap_or(0)
    }

    fn fits_brute(entries: &[Entry], t: i64, weight: u32, window: Window) -> bool {
        let mut with = entries.to_vec();
        with.push(Entry::new(t, weight));
        with.sort_by_key(|e| e.at);
        max_window(&with, window.length_us) <= window.limit
    }

    #[test]
    fn books_at_once_until_full_then_when_the_first_leaves() {
        let mut o = Owned::new(16);
        let win = Window { limit: 3, length_us: 1_000 };
        for t in [0, 10, 20] {
            assert_eq!(o.view().earliest_fit(t, 1, win), t);
            o.log().book(t, 1).unwrap();
        }
        // Full: the next slot opens when the booking at 0 leaves the window.
        assert_eq!(o.view().earliest_fit(30, 1, win), 1_000);
        o.log().book(1_000, 1).unwrap();
        assert_eq!(o.view().earliest_fit(30, 1, win), 1_010);
    }

    #[test]
    fn finds_a_gap_before_a_future_booking() {
        let mut o = Owned::new(16);
        let win = Window { limit: 2, length_us: 100 };
        o.log().book(500, 2).unwrap();
        // [0, 100) is far from 500: free now.
        assert_eq!(o.view().earliest_fit(0, 1, win), 0);
        // 450 would share a window with 500: first free moment is 600.
        assert_eq!(o.view().earliest_fit(450, 1, win), 600);
    }

    #[test]
    fn prune_and_ring_wraparound_keep_order() {
        let mut o = Owned::new(4);
        for t in [1, 2, 3, 4] {
            o.log().book(t, 1).unwrap();
        }
        assert_eq!(o.log().book(5, 1), Err(LogFull { capacity: 4 }));
        o.log().prune(2);
        o.log().book(6, 1).unwrap();
        o.log().book(5, 1).unwrap();
        assert_eq!(o.entries().iter().map(|e| e.at).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
        assert_eq!(o.view().total(), 4);
    }

    #[test]
    fn common_fit_respects_endpoint_and_global() {
        let mut endpoint = Owned::new(32);
        let mut global = Owned::new(32);
        let ew = Window { limit: 2, length_us: 100 };
        let gw = Window { limit: 3, length_us: 1_000 };
        for t in [0, 1] {
            endpoint.log().book(t, 1).unwrap();
            global.log().book(t, 1).unwrap();
        }
        global.log().book(50, 1).unwrap();
        // Endpoint frees at 100, global is full until 1000.
        let t = earliest_common_fit(&[(endpoint.view(), ew), (global.view(), gw)], 2, 1);
        assert_eq!(t, 1_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

        /// Booking at earliest_fit never breaks a window, and no earlier
        /// moment would have fitted.
        #[test]
        fn earliest_fit_is_safe_and_earliest(
            limit in 1u64..8,
            length in 1i64..60,
            ops in prop::collection::vec((0i64..40, 1u32..4, any::<bool>()), 1..60),
        ) {
            let win = Window { limit, length_us: length };
            let mut o = Owned::new(512);
            let mut now = 0i64;
            for (step, weight, prune) in ops {
                let weight = u64::from(weight).min(limit) as u32;
                now += step;
                if prune {
                    o.log().prune(now - length);
                }
                let entries = o.entries();
                let t = o.view().earliest_fit(now, u64::from(weight), win);
                prop_assert!(t >= now);
                prop_assert!(fits_brute(&entries, t, weight, win), "t={t} does not fit");
                for earlier in now..t {
                    prop_assert!(!fits_brute(&entries, earlier, weight, win), "{earlier} < {t} fits");
                }
                o.log().book(t, weight).unwrap();
                prop_assert!(max_window(&o.entries(), length) <= limit);
            }
        }

        #[test]
        fn common_fit_is_safe_for_both(
            ops in prop::collection::vec((0i64..20, 1u32..3, any::<bool>()), 1..50),
        ) {
            let ew = Window { limit: 3, length_us: 10 };
            let gw = Window { limit: 5, length_us: 40 };
            let mut endpoint = Owned::new(512);
            let mut global = Owned::new(512);
            let mut now = 0;
            for (step, weight, on_endpoint) in ops {
                now += step;
                let t = if on_endpoint {
                    earliest_common_fit(&[(endpoint.view(), ew), (global.view(), gw)], now, u64::from(weight))
                } else {
                    global.view().earliest_fit(now, u64::from(weight), gw)
                };
                if on_endpoint {
                    endpoint.log().book(t, weight).unwrap();
                }
                global.log().book(t, weight).unwrap();
                prop_assert!(max_window(&endpoint.entries(), 10) <= 3);
                prop_assert!(max_window(&global.entries(), 40) <= 5);
            }
        }
    }
}
