//! The split engine: a quote's lines into the fewest draft orders under the line limit.
//!
//! Pure: it sees only which warehouse (Shopify location) serves each line. The rules, in order
//! of priority:
//! 1. **Fewest parts**: `n = ⌈lines / limit⌉`, never more; no part exceeds `limit`.
//! 2. **Warehouses together where possible**: a warehouse's lines are cut into as few pieces
//!    as the limit forces (`⌈size / limit⌉`, of equal size ±1), and pieces are placed whole.
//!    Only when no part has room for a whole piece (the parts are nearly full) is a piece
//!    spread over the parts with the most room.
//! 3. **Balanced sizes**: pieces are placed largest first, each into the least loaded part
//!    ("worst fit decreasing"), so a single-warehouse quote of 1,200 lines becomes
//!    400 + 400 + 400 rather than 499 + 499 + 202.
//!
//! The result is deterministic: ties go to the lower warehouse id, then to the earlier line,
//! then to the lower part; within a part lines keep the quote's order, and parts are ordered
//! by their first line (part 1 holds the quote's first line).

use std::collections::BTreeMap;

/// Splits lines `0..warehouses.len()` (line `i` served by `warehouses[i]`, `None` when
/// unknown) into the fewest parts of at most `limit` lines, each part a sorted list of line
/// indices. No lines: no parts. Panics if `limit` is 0.
pub fn split(warehouses: &[Option<i64>], limit: usize) -> Vec<Vec<usize>> {
    assert!(limit > 0, "the line limit must be positive");
    let total = warehouses.len();
    if total == 0 {
        return Vec::new();
    }
    let parts = total.div_ceil(limit);

    let mut groups: BTreeMap<Option<i64>, Vec<usize>> = BTreeMap::new();
    for (i, w) in warehouses.iter().enumerate() {
        groups.entry(*w).or_default().push(i);
    }
    // Each warehouse in as few, equal pieces as the limit forces.
    let mut pieces: Vec<&[usize]> = Vec::new();
    for lines in groups.values() {
        let k = lines.len().div_ceil(limit);
        let (base, extra) = (lines.len() / k, lines.len() % k);
        let mut rest = lines.as_slice();
        for j in 0..k {
            let (piece, tail) = rest.split_at(base + usize::from(j < extra));
            pieces.push(piece);
            rest = tail;
        }
    }
    // Largest first; the sort is stable, so ties keep warehouse order.
    pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));

    let mut bins: Vec<Vec<usize>> = vec![Vec::new(); parts];
    for piece in pieces {
        let target = least_loaded(&bins);
        if bins[target].len() + piece.len() <= limit {
            bins[target].extend_from_slice(piece);
            continue;
        }
        // No part has room for the whole piece: pour it into the parts with the most room.
        // This always succeeds because the lines fit `parts × limit`.
        let mut rest = piece;
        while !rest.is_empty() {
            let target = least_loaded(&bins);
            let room = limit - bins[target].len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            bins[target].extend_from_slice(now);
            rest = later;
        }
    }
    for bin in &mut bins {
        bin.sort_unstable();
    }
    bins.sort_by_key(|b| b[0]);
    bins
}

/// The part with the fewest lines (the first of equals).
fn least_loaded(bins: &[Vec<usize>]) -> usize {
    bins.iter()
        .enumerate()
        .min_by_key(|(i, b)| (b.len(), *i))
        .map(|(i, _)| i)
        .expect("at least one part")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(parts: &[Vec<usize>]) -> Vec<usize> {
        parts.iter().map(Vec::len).collect()
    }

    /// Every line exactly once, no part over the limit, the fewest parts.
    fn assert_valid(warehouses: &[Option<i64>], limit: usize, parts: &[Vec<usize>]) {
        let mut seen: Vec<usize> = parts.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..warehouses.len()).collect::<Vec<_>>());
        assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= limit));
        assert_eq!(parts.len(), warehouses.len().div_ceil(limit));
    }

    /// How many parts each warehouse's lines are spread over.
    fn spread(warehouses: &[Option<i64>], parts: &[Vec<usize>]) -> BTreeMap<Option<i64>, usize> {
        let mut out = BTreeMap::new();
        for part in parts {
            let mut here: Vec<Option<i64>> = part.iter().map(|&i| warehouses[i]).collect();
            here.dedup();
            here.sort_unstable();
            here.dedup();
            for w in here {
                *out.entry(w).or_insert(0) += 1;
            }
        }
        out
    }

    #[test]
    fn a_quote_under_the_limit_is_one_part_in_quote_order() {
        let w = vec![Some(2), Some(1), None, Some(2)];
        assert_eq!(split(&w, 499), vec![vec![0, 1, 2, 3]]);
        assert!(split(&[], 499).is_empty());
    }

    #[test]
    fn a_single_warehouse_is_split_into_equal_parts() {
        let w = vec![Some(7); 1200];
        let parts = split(&w, 499);
        assert_valid(&w, 499, &parts);
        assert_eq!(sizes(&parts), vec![400, 400, 400]);
        let w = vec![None; 5000];
        let parts = split(&w, 499);
        assert_valid(&w, 499, &parts);
        assert!(parts.iter().all(|p| p.len() == 454 || p.len() == 455));
    }

    #[test]
    fn warehouses_that_fit_stay_whole_even_when_interleaved() {
        // 400 lines from each of three warehouses, interleaved in the quote.
        let w: Vec<Option<i64>> = (0..1200)
            .map(|i| match i % 12 {
                0..=3 => Some(10),
                4..=7 => Some(20),
                _ => Some(30),
            })
            .collect();
        let counts = spread(&w, &split(&w, 499));
        let mut per_warehouse: Vec<usize> = counts.values().copied().collect();
        per_warehouse.sort_unstable();
        assert_eq!(per_warehouse, vec![1, 1, 1], "each warehouse in one part");
        let w: Vec<Option<i64>> = (0..1200)
            .map(|i| {
                Some(if i < 450 {
                    1
                } else if i < 900 {
                    2
                } else {
                    3
                })
            })
            .collect();
        let parts = split(&w, 499);
        assert_valid(&w, 499, &parts);
        assert_eq!(sizes(&parts), vec![450, 450, 300]);
        assert!(spread(&w, &parts).values().all(|&n| n == 1));
    }

    #[test]
    fn a_warehouse_over_the_limit_spans_only_the_parts_it_must() {
        // 700 + 200 + 200 + 100: 1,200 lines, 3 parts; warehouse 1 needs two parts, the small
        // ones fit whole.
        let mut w = vec![Some(1); 700];
        w.extend(vec![Some(2); 200]);
        w.extend(vec![Some(3); 200]);
        w.extend(vec![Some(4); 100]);
        let parts = split(&w, 499);
        assert_valid(&w, 499, &parts);
        let s = spread(&w, &parts);
        assert_eq!(s[&Some(1)], 2);
        assert_eq!((s[&Some(2)], s[&Some(3)], s[&Some(4)]), (1, 1, 1));
    }

    #[test]
    fn nearly_full_parts_still_take_every_line() {
        // 997 lines in two parts of at most 499 with awkward warehouse sizes: pieces must be
        // poured over both parts.
        for sizes in [[333usize, 333, 331], [498, 250, 249], [400, 400, 197]] {
            let w: Vec<Option<i64>> = sizes
                .iter()
                .enumerate()
                .flat_map(|(k, &n)| std::iter::repeat_n(Some(k as i64), n))
                .collect();
            let w = &w[..w.len().min(998)];
            let parts = split(w, 499);
            assert_valid(w, 499, &parts);
        }
    }

    #[test]
    fn random_quotes_always_split_validly_and_deterministically() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let n = rng.gen_range(1..3000);
            let warehouses = rng.gen_range(1..12);
            let limit = rng.gen_range(1..600);
            let w: Vec<Option<i64>> = (0..n)
                .map(|_| Some(rng.gen_range(0..warehouses)).filter(|&x| x != 0))
                .collect();
            let parts = split(&w, limit);
            assert_valid(&w, limit, &parts);
            assert_eq!(parts, split(&w, limit));
            assert_eq!(parts[0][0], 0, "part 1 holds the first line");
        }
    }
}
