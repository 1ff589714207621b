//! Tributary's patch (see TRIBUTARY.md at the crate's root).
//!
//! Intersection and union of two sorted arrays of distinct `u16` with SSE4.2, eight values at a
//! time, chosen at run time (`is_x86_feature_detected!`): the algorithms of CRoaring
//! (`intersect_vector16`, `union_vector16`; Lemire et al., "Roaring Bitmaps: Implementation of
//! an Optimized Software Library", arXiv:1709.07821; Schlegel et al., "Fast Sorted-Set
//! Intersection using SIMD Instructions"), which this crate's `simd` feature also ports but
//! only for nightly Rust (`core::simd`). The scalar merges take a mispredicted branch nearly
//! every time the two arrays interleave; these take one per eight values at most.

use core::arch::x86_64::{
    __m128i, _mm_alignr_epi8, _mm_cmpeq_epi16, _mm_cmpestrm, _mm_cvtsi128_si32, _mm_loadu_si128,
    _mm_max_epu16, _mm_min_epu16, _mm_movemask_epi8, _mm_packs_epi16, _mm_set1_epi16,
    _mm_setzero_si128, _mm_shuffle_epi8, _mm_storeu_si128, _SIDD_BIT_MASK, _SIDD_CMP_EQUAL_ANY,
    _SIDD_UWORD_OPS,
};

/// Whether the CPU has what the kernels use (SSSE3 `pshufb`/`palignr`, SSE4.1 `pminuw`/`pmaxuw`,
/// SSE4.2 `pcmpestrm`, POPCNT); `is_x86_feature_detected!` caches the answer.
#[inline]
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("sse4.2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("popcnt")
}

/// `SHUFFLE[mask]`: the `pshufb` control that moves the 16-bit lanes whose bit is set in `mask`
/// to the front, in order.
static SHUFFLE: [[u8; 16]; 256] = {
    let mut table = [[0xFF_u8; 16]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut lane, mut out) = (0, 0);
        while lane < 8 {
            if mask & (1 << lane) != 0 {
                table[mask][2 * out] = 2 * lane as u8;
                table[mask][2 * out + 1] = 2 * lane as u8 + 1;
                out += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// The values of `lhs` that are in `rhs`, or `None` when the CPU lacks SSE4.2.
pub fn and(lhs: &[u16], rhs: &[u16]) -> Option<Vec<u16>> {
    if !available() {
        return None;
    }
    // Each step stores eight lanes, of which only the matches count: room for the last store.
    let mut out = vec![0; lhs.len().min(rhs.len()) + 8];
    // SAFETY: the CPU has the features `and_sse` is compiled for (checked above).
    let len = unsafe { and_sse(lhs, rhs, &mut out) };
    out.truncate(len);
    Some(out)
}

/// The values in either array, or `None` when the CPU lacks SSE4.2.
pub fn or(lhs: &[u16], rhs: &[u16]) -> Option<Vec<u16>> {
    if !available() {
        return None;
    }
    let mut out = vec![0; lhs.len() + rhs.len() + 8];
    // SAFETY: the CPU has the features `or_sse` is compiled for (checked above).
    let len = unsafe { or_sse(lhs, rhs, &mut out) };
    out.truncate(len);
    Some(out)
}

/// The eight values from `at`.
#[inline]
#[target_feature(enable = "sse2")]
fn load(values: &[u16], at: usize) -> __m128i {
    let values = &values[at..at + 8];
    // SAFETY: the slice above has the 16 bytes read (unaligned load).
    unsafe { _mm_loadu_si128(values.as_ptr() as *const __m128i) }
}

/// Writes the eight lanes of `values` at `out[at..at + 8]`.
#[inline]
#[target_feature(enable = "sse2")]
fn store(values: __m128i, out: &mut [u16], at: usize) {
    let out = &mut out[at..at + 8];
    // SAFETY: the slice above has the 16 bytes written (unaligned store).
    unsafe { _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, values) }
}

/// Writes the lanes of `values` selected by `mask` at `out[at..]`, in order (all eight lanes are
/// written, the selected first); returns how many were selected.
#[inline]
#[target_feature(enable = "ssse3,popcnt")]
fn store_selected(values: __m128i, mask: usize, out: &mut [u16], at: usize) -> usize {
    let control = &SHUFFLE[mask];
    // SAFETY: `control` is 16 bytes (unaligned load).
    let control = unsafe { _mm_loadu_si128(control.as_ptr() as *const __m128i) };
    store(_mm_shuffle_epi8(values, control), out, at);
    (mask as u32).count_ones() as usize
}

#[target_feature(enable = "sse4.2,ssse3,popcnt")]
fn and_sse(lhs: &[u16], rhs: &[u16], out: &mut [u16]) -> usize {
    const MODE: i32 = _SIDD_UWORD_OPS | _SIDD_CMP_EQUAL_ANY | _SIDD_BIT_MASK;
    let (whole_lhs, whole_rhs) = (lhs.len() / 8 * 8, rhs.len() / 8 * 8);
    let (mut i, mut j, mut count) = (0, 0, 0);
    if i < whole_lhs && j < whole_rhs {
        let (mut a, mut b) = (load(lhs, i), load(rhs, j));
        loop {
            // Bit k: lane k of `a` equals some lane of `b` (explicit lengths: 0 is a value).
            let found = _mm_cvtsi128_si32(_mm_cmpestrm::<MODE>(b, 8, a, 8)) as usize & 0xFF;
            count += store_selected(a, found, out, count);
            let (a_max, b_max) = (lhs[i + 7], rhs[j + 7]);
            if a_max <= b_max {
                i += 8;
                if i == whole_lhs {
                    break;
                }
                a = load(lhs, i);
            }
            if b_max <= a_max {
                j += 8;
                if j == whole_rhs {
                    break;
                }
                b = load(rhs, j);
            }
        }
    }
    count + and_scalar(&lhs[i..], &rhs[j..], &mut out[count..])
}

fn and_scalar(lhs: &[u16], rhs: &[u16], out: &mut [u16]) -> usize {
    let (mut i, mut j, mut count) = (0, 0, 0);
    while i < lhs.len() && j < rhs.len() {
        let (a, b) = (lhs[i], rhs[j]);
        if a == b {
            out[count] = a;
            count += 1;
        }
        i += usize::from(a <= b);
        j += usize::from(b <= a);
    }
    count
}

/// Merges two sorted vectors: `(min, max)`, the eight smallest and the eight largest of the
/// sixteen values, each sorted (a merge network of eight min/max steps).
#[inline]
#[target_feature(enable = "sse4.1,ssse3")]
fn merge(a: __m128i, b: __m128i) -> (__m128i, __m128i) {
    let mut tmp = _mm_min_epu16(a, b);
    let mut max = _mm_max_epu16(a, b);
    tmp = _mm_alignr_epi8::<2>(tmp, tmp);
    let mut min = _mm_min_epu16(tmp, max);
    for _ in 0..6 {
        max = _mm_max_epu16(tmp, max);
        tmp = _mm_alignr_epi8::<2>(min, min);
        min = _mm_min_epu16(tmp, max);
    }
    max = _mm_max_epu16(tmp, max);
    min = _mm_alignr_epi8::<2>(min, min);
    (min, max)
}

/// Writes the lanes of `new` (sorted) that differ from the lane before them, the one before
/// the first being the last of `old`, at `out[at..]`; returns how many.
#[inline]
#[target_feature(enable = "ssse3,popcnt")]
fn store_unique(old: __m128i, new: __m128i, out: &mut [u16], at: usize) -> usize {
    let previous = _mm_alignr_epi8::<14>(new, old);
    let repeated = _mm_packs_epi16(_mm_cmpeq_epi16(previous, new), _mm_setzero_si128());
    let repeated = _mm_movemask_epi8(repeated) as usize;
    store_selected(new, !repeated & 0xFF, out, at)
}

#[target_feature(enable = "sse4.2,ssse3,popcnt")]
fn or_sse(lhs: &[u16], rhs: &[u16], out: &mut [u16]) -> usize {
    if lhs.len() < 8 || rhs.len() < 8 {
        return or_scalar(lhs, rhs, out);
    }
    let (blocks_lhs, blocks_rhs) = (lhs.len() / 8, rhs.len() / 8);
    let (mut i, mut j) = (1, 1);
    let (mut min, mut max) = merge(load(lhs, 0), load(rhs, 0));
    let mut count = store_unique(_mm_set1_epi16(-1), min, out, 0);
    let mut last = min;
    if i < blocks_lhs && j < blocks_rhs {
        let (mut next_lhs, mut next_rhs) = (lhs[8 * i], rhs[8 * j]);
        let mut block;
        loop {
            // The block whose first value is smaller goes next: all below it is merged.
            if next_lhs <= next_rhs {
                block = load(lhs, 8 * i);
                i += 1;
                if i == blocks_lhs {
                    break;
                }
                next_lhs = lhs[8 * i];
            } else {
                block = load(rhs, 8 * j);
                j += 1;
                if j == blocks_rhs {
                    break;
                }
                next_rhs = rhs[8 * j];
            }
            (min, max) = merge(block, max);
            count += store_unique(last, min, out, count);
            last = min;
        }
        (min, max) = merge(block, max);
        count += store_unique(last, min, out, count);
        last = min;
    }
    // What is left: `max` (not yet written), the last partial block of the side whose whole
    // blocks ran out, and the rest of the other side. Sort the first two (at most 15 values)
    // and merge them with the rest.
    let mut buffer = [0_u16; 16];
    let mut kept = store_unique(last, max, &mut buffer, 0);
    let (tail, rest) = if i == blocks_lhs {
        (&lhs[8 * i..], &rhs[8 * j..])
    } else {
        (&rhs[8 * j..], &lhs[8 * i..])
    };
    buffer[kept..kept + tail.len()].copy_from_slice(tail);
    kept += tail.len();
    let buffer = &mut buffer[..kept];
    buffer.sort_unstable();
    let mut unique = usize::from(kept > 0);
    for k in 1..kept {
        if buffer[k] != buffer[unique - 1] {
            buffer[unique] = buffer[k];
            unique += 1;
        }
    }
    count + or_scalar(&buffer[..unique], rest, &mut out[count..])
}

fn or_scalar(lhs: &[u16], rhs: &[u16], out: &mut [u16]) -> usize {
    let (mut i, mut j, mut count) = (0, 0, 0);
    while i < lhs.len() && j < rhs.len() {
        let (a, b) = (lhs[i], rhs[j]);
        out[count] = a.min(b);
        count += 1;
        i += usize::from(a <= b);
        j += usize::from(b <= a);
    }
    let (lhs, rhs) = (&lhs[i..], &rhs[j..]);
    out[count..count + lhs.len()].copy_from_slice(lhs);
    count += lhs.len();
    out[count..count + rhs.len()].copy_from_slice(rhs);
    count + rhs.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sorted distinct values: each of 0..=65535 kept with probability `per_mille / 1000`.
    fn draw(seed: &mut u64, per_mille: u64, span: core::ops::RangeInclusive<u16>) -> Vec<u16> {
        span.filter(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed % 1000 < per_mille
        })
        .collect()
    }

    fn expected(lhs: &[u16], rhs: &[u16], union: bool) -> Vec<u16> {
        let mut all: Vec<u16> = if union {
            lhs.iter().chain(rhs).copied().collect()
        } else {
            lhs.iter().copied().filter(|v| rhs.binary_search(v).is_ok()).collect()
        };
        all.sort_unstable();
        all.dedup();
        all
    }

    #[test]
    fn agrees_with_a_plain_merge() {
        if !available() {
            return;
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        let densities = [0, 1, 5, 20, 60, 200, 500, 900, 1000];
        let spans = [0..=65535, 0..=40, 65500..=65535, 0..=7, 100..=115, 1000..=1100];
        for &d1 in &densities {
            for &d2 in &densities {
                for span1 in spans.clone() {
                    for span2 in spans.clone() {
                        let lhs = draw(&mut seed, d1, span1.clone());
                        let rhs = draw(&mut seed, d2, span2.clone());
                        assert_eq!(and(&lhs, &rhs).unwrap(), expected(&lhs, &rhs, false));
                        assert_eq!(and(&rhs, &lhs).unwrap(), expected(&lhs, &rhs, false));
                        assert_eq!(or(&lhs, &rhs).unwrap(), expected(&lhs, &rhs, true));
                        assert_eq!(or(&rhs, &lhs).unwrap(), expected(&lhs, &rhs, true));
                    }
                }
            }
        }
    }

    #[test]
    fn zero_and_the_largest_value() {
        if !available() {
            return;
        }
        let lhs: Vec<u16> = (0..16).chain(65520..=65535).collect();
        let rhs: Vec<u16> = (0..32).step_by(2).chain((65504..=65535).step_by(3)).collect();
        assert_eq!(and(&lhs, &rhs).unwrap(), expected(&lhs, &rhs, false));
        assert_eq!(or(&lhs, &rhs).unwrap(), expected(&lhs, &rhs, true));
        assert_eq!(or(&lhs, &lhs).unwrap(), lhs);
        assert_eq!(and(&lhs, &lhs).unwrap(), lhs);
        assert_eq!(or(&[], &lhs).unwrap(), lhs);
        assert!(and(&[], &lhs).unwrap().is_empty());
    }
}
