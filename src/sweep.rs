//! Overlap detection on address intervals by sort and sweep, never by comparing all pairs.
//!
//! Every range in a plan (CIDRs, MetalLB ranges, single addresses) becomes an inclusive
//! [`Interval`] of one address family. Sorting by start and sweeping with a list of intervals
//! still open costs O(n log n + pairs reported), so plans with tens of thousands of nodes check
//! fast; overlap is symmetric by construction (a /24 inside a /16 is found whichever comes
//! first).

use std::net::IpAddr;

use ipnet::IpNet;

/// An inclusive interval of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    /// IPv6 (true) or IPv4 (false); intervals of different families never overlap.
    pub v6: bool,
    /// First address.
    pub lo: u128,
    /// Last address.
    pub hi: u128,
}

impl Interval {
    /// The addresses of a network, host bits ignored.
    pub fn of_net(net: &IpNet) -> Self {
        let trunc = net.trunc();
        let (_, lo) = Self::key(trunc.network());
        let (v6, hi) = Self::key(trunc.broadcast());
        Interval { v6, lo, hi }
    }

    /// One address.
    pub fn of_addr(addr: IpAddr) -> Self {
        let (v6, at) = Self::key(addr);
        Interval { v6, lo: at, hi: at }
    }

    /// `start..=end`, if both are one family and `start <= end`.
    pub fn of_range(start: IpAddr, end: IpAddr) -> Option<Self> {
        let (v6_start, lo) = Self::key(start);
        let (v6_end, hi) = Self::key(end);
        (v6_start == v6_end && lo <= hi).then_some(Interval {
            v6: v6_start,
            lo,
            hi,
        })
    }

    fn key(addr: IpAddr) -> (bool, u128) {
        match addr {
            IpAddr::V4(a) => (false, u128::from(u32::from(a))),
            IpAddr::V6(a) => (true, u128::from(a)),
        }
    }

    /// Whether the two share at least one address.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.v6 == other.v6 && self.lo <= other.hi && other.lo <= self.hi
    }

    /// Whether every address of `other` is in `self`.
    pub fn contains(&self, other: &Interval) -> bool {
        self.v6 == other.v6 && self.lo <= other.lo && other.hi <= self.hi
    }

    /// Number of addresses, saturating at `u128::MAX` for the whole IPv6 space.
    pub fn size(&self) -> u128 {
        (self.hi - self.lo).saturating_add(1)
    }
}

/// Every pair `(i, j)` with `i < j` whose intervals overlap, in ascending order.
pub fn overlapping_pairs(items: &[Interval]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for current in sorted_by_start(items) {
        let at = items[current];
        open.retain(|&i| items[i].v6 == at.v6 && items[i].hi >= at.lo);
        pairs.extend(open.iter().map(|&i| (i.min(current), i.max(current))));
        open.push(current);
    }
    pairs.sort_unstable();
    pairs
}

/// Every pair `(i, j)`, `i` indexing `left` and `j` indexing `right`, whose intervals overlap,
/// in ascending order.
pub fn crossing_pairs(left: &[Interval], right: &[Interval]) -> Vec<(usize, usize)> {
    let all: Vec<Interval> = left.iter().chain(right).copied().collect();
    let split = left.len();
    let mut pairs = Vec::new();
    let (mut open_left, mut open_right): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for current in sorted_by_start(&all) {
        let at = all[current];
        let is_left = current < split;
        let (own, other) = if is_left {
            (&mut open_left, &mut open_right)
        } else {
            (&mut open_right, &mut open_left)
        };
        // Pruning only the other side keeps the cost proportional to the pairs reported.
        other.retain(|&i| all[i].v6 == at.v6 && all[i].hi >= at.lo);
        for &i in other.iter() {
            let pair = if is_left { (current, i) } else { (i, current) };
            pairs.push((pair.0, pair.1 - split));
        }
        own.push(current);
    }
    pairs.sort_unstable();
    pairs
}

fn sorted_by_start(items: &[Interval]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].v6, items[i].lo, i));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn brute_force(items: &[Interval]) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for i in 0..items.len() {
            for j in i + 1..items.len() {
                if items[i].overlaps(&items[j]) {
                    pairs.push((i, j));
                }
            }
        }
        pairs
    }

    fn brute_force_crossing(left: &[Interval], right: &[Interval]) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for (i, l) in left.iter().enumerate() {
            for (j, r) in right.iter().enumerate() {
                if l.overlaps(r) {
                    pairs.push((i, j));
                }
            }
        }
        pairs
    }

    /// Small address spaces make overlaps frequent; both families appear.
    fn interval() -> impl Strategy<Value = Interval> {
        let v4_net = (0u32..4096, 20u8..=32).prop_map(|(host, len)| {
            let addr = Ipv4Addr::from(0x0a00_0000 | host);
            let net = IpNet::new(IpAddr::V4(addr), len).unwrap();
            Interval::of_net(&net)
        });
        let v6_net = (0u128..4096, 116u8..=128).prop_map(|(host, len)| {
            let addr = Ipv6Addr::from(0xfd00_u128 << 112 | host);
            let net = IpNet::new(IpAddr::V6(addr), len).unwrap();
            Interval::of_net(&net)
        });
        let v4_range = (0u32..4096, 0u32..64).prop_map(|(start, len)| {
            let lo = Ipv4Addr::from(0x0a00_0000 | start);
            let hi = Ipv4Addr::from(0x0a00_0000 | (start + len));
            Interval::of_range(lo.into(), hi.into()).unwrap()
        });
        prop_oneof![v4_net, v6_net, v4_range]
    }

    proptest! {
        #[test]
        fn sweep_agrees_with_pairwise_check(items in prop::collection::vec(interval(), 0..60)) {
            prop_assert_eq!(overlapping_pairs(&items), brute_force(&items));
        }

        #[test]
        fn crossing_sweep_agrees_with_pairwise_check(
            left in prop::collection::vec(interval(), 0..40),
            right in prop::collection::vec(interval(), 0..40),
        ) {
            prop_assert_eq!(crossing_pairs(&left, &right), brute_force_crossing(&left, &right));
        }

        #[test]
        fn overlap_is_symmetric(a in interval(), b in interval()) {
            prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
            prop_assert_eq!(overlapping_pairs(&[a, b]).len(), overlapping_pairs(&[b, a]).len());
        }
    }

    #[test]
    fn a_slash_24_inside_a_slash_16_overlaps_in_either_order() {
        let wide = Interval::of_net(&"10.10.0.0/16".parse().unwrap());
        let narrow = Interval::of_net(&"10.10.10.0/24".parse().unwrap());
        assert_eq!(overlapping_pairs(&[wide, narrow]), vec![(0, 1)]);
        assert_eq!(overlapping_pairs(&[narrow, wide]), vec![(0, 1)]);
    }

    #[test]
    fn families_never_overlap() {
        let v4 = Interval::of_addr("0.0.0.1".parse().unwrap());
        let v6 = Interval::of_addr("::1".parse().unwrap());
        assert!(overlapping_pairs(&[v4, v6]).is_empty());
    }
}
