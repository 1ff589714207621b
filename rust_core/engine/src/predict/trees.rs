//! A LightGBM model's raw scores, computed in the engine over the feature rows it made.
//!
//! The server trains with LightGBM and keeps the model in LightGBM's own text format; scoring a
//! million profiles through LightGBM's predictor costs more than computing their features (it
//! copies every row into a vector of doubles, then walks the trees), and the rows would first
//! cross into Python as a matrix. Here the same trees are read from the same text and walked
//! straight over the engine's `f32` rows: each split compares the feature with the largest `f32`
//! at or below the threshold LightGBM wrote (for an `f32`, the same answer as LightGBM's comparison
//! in `f64`), missing values take the side the model learned, and each
//! row's tree outputs are summed in tree order in `f64`, as LightGBM sums them, so the scores are
//! LightGBM's to the last bit (the tests compare them with LightGBM's own).
//!
//! Only what the server trains is read: one tree per iteration (binary or regression
//! objectives), numerical splits. Anything else (categorical splits, multiclass, linear trees,
//! random-forest averaging) is refused with an error rather than scored wrongly.

use rayon::prelude::*;

use crate::error::{EngineError, Result};

/// LightGBM's `kZeroThreshold`: values this close to 0 are 0 (its dense-row reader drops them).
const ZERO: f64 = 1e-35_f32 as f64;
/// decision_type bits (LightGBM's `kCategoricalMask`, `kDefaultLeftMask`, missing type in 2..4).
const CATEGORICAL: u8 = 1;
const DEFAULT_LEFT: u8 = 2;
/// Rows scored per parallel task.
const ROWS_PER_TASK: usize = 4_096;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Missing {
    None,
    Zero,
    NaN,
}

#[derive(Clone, Copy, Debug)]
struct Split {
    feature: u32,
    threshold: f64,
    default_left: bool,
    missing: Missing,
    /// The children, right then left (indexed by "goes left"): ≥ 0 a split, < 0 leaf `!child`.
    children: [i32; 2],
}

#[derive(Debug)]
struct Tree {
    splits: Vec<Split>,
    leaves: Vec<f64>,
}

/// Rows walked through a tree side by side: their independent chains of loads overlap.
const LANES: usize = 8;

/// A tree laid out for scoring: its splits reading the rows' columns, then one node per leaf that
/// leads back to itself, so that every row takes exactly `depth` steps with no test of where it
/// is (a tree walk is a chain of data-dependent choices; mispredicted branches cost most of it).
struct Walk {
    nodes: Vec<Node>,
    /// The first leaf node (the splits' count).
    leaves_from: u32,
    depth: usize,
    leaves: Vec<f64>,
}

/// `Node::flags`: where a NaN goes (LightGBM reads it as 0 unless NaN is the missing type, and a
/// missing value takes the default side).
const NAN_LEFT: u8 = 1;
/// Missing type zero: a 0 is missing and takes the default side.
const ZERO_MISSING: u8 = 2;
const GOES_DEFAULT_LEFT: u8 = 4;

/// 16 bytes: a forest's nodes stay in the caches.
#[derive(Clone, Copy)]
struct Node {
    /// The feature's place in the rows the forest reads (`Gathered`).
    column: u32,
    /// The largest `f32` at or below LightGBM's `f64` threshold: for any `f32` value `v`,
    /// `v <= threshold` here is LightGBM's `f64(v) <= threshold`, without widening `v`.
    threshold: f32,
    /// Right, then left (indexed by "goes left"); the flags in the top byte of the right.
    next: [u32; 2],
}

/// Node indices stay below 2^24 (a tree of 16M nodes is far past what LightGBM grows).
const INDEX: u32 = (1 << 24) - 1;

impl Node {
    fn flags(&self) -> u8 {
        (self.next[0] >> 24) as u8
    }

    /// LightGBM's `NumericalDecision`, without branches. `value` has been read as LightGBM's
    /// dense-row reader reads it (|v| <= kZeroThreshold is 0).
    #[inline(always)]
    fn next(&self, value: f32) -> u32 {
        let flags = self.flags();
        let nan = value.is_nan();
        let zero = (flags & ZERO_MISSING != 0) & (value == 0.0);
        let left = (nan & (flags & NAN_LEFT != 0))
            | (!nan & zero & (flags & GOES_DEFAULT_LEFT != 0))
            | (!nan & !zero & (value <= self.threshold));
        self.next[usize::from(left)] & INDEX
    }
}

/// The largest `f32` at or below `threshold`.
fn f32_at_or_below(threshold: f64) -> f32 {
    let near = threshold as f32;
    if f64::from(near) > threshold {
        near.next_down()
    } else {
        near
    }
}

impl Walk {
    /// `place[f]`: where model feature `f` is in the gathered rows.
    fn of(tree: &Tree, place: &[u32]) -> Result<Walk> {
        let leaves_from = tree.splits.len() as u32;
        if (leaves_from as usize + tree.leaves.len()) as u64 > u64::from(INDEX) {
            return Err(invalid(format!("a tree of {} leaves", tree.leaves.len())));
        }
        let at = |child: i32| {
            if child >= 0 {
                child as u32
            } else {
                leaves_from + !child as u32
            }
        };
        let mut nodes: Vec<Node> = tree
            .splits
            .iter()
            .map(|s| {
                let nan_left = match s.missing {
                    Missing::None => 0.0 <= s.threshold,
                    Missing::Zero | Missing::NaN => s.default_left,
                };
                let flags = (u8::from(nan_left) * NAN_LEFT)
                    | (u8::from(s.missing == Missing::Zero) * ZERO_MISSING)
                    | (u8::from(s.default_left) * GOES_DEFAULT_LEFT);
                Node {
                    column: place[s.feature as usize],
                    threshold: f32_at_or_below(s.threshold),
                    next: [at(s.children[0]) | (u32::from(flags) << 24), at(s.children[1])],
                }
            })
            .collect();
        for leaf in 0..tree.leaves.len() as u32 {
            let me = leaves_from + leaf;
            nodes.push(Node {
                column: 0,
                threshold: 0.0,
                next: [me, me],
            });
        }
        // The longest path from the root: that many steps bring every row to its leaf.
        let mut depth = 0;
        let mut stack = vec![(0u32, 0usize)];
        while let Some((node, steps)) = stack.pop() {
            if node >= leaves_from {
                depth = depth.max(steps);
            } else {
                let next = nodes[node as usize].next;
                stack.extend(next.iter().map(|&n| (n & INDEX, steps + 1)));
            }
        }
        Ok(Walk {
            nodes,
            leaves_from,
            depth,
            leaves: tree.leaves.clone(),
        })
    }

    /// Adds the tree's leaf of each of `rows` (up to LANES gathered rows, `stride` values each)
    /// to `sums`.
    #[inline]
    fn add_leaves(&self, rows: &[f32], stride: usize, sums: &mut [f64]) {
        // All start at the root (a lone leaf's node 0, with depth 0).
        let mut at = [0u32; LANES];
        for _ in 0..self.depth {
            for (lane, row) in rows.chunks_exact(stride).enumerate() {
                let node = &self.nodes[at[lane] as usize];
                at[lane] = node.next(row[node.column as usize]);
            }
            // Leaf-wise trees are lopsided: most rows reach a leaf long before the deepest one.
            if at.iter().all(|&node| node >= self.leaves_from) {
                break;
            }
        }
        for (sum, node) in sums.iter_mut().zip(at) {
            *sum += self.leaves[(node - self.leaves_from) as usize];
        }
    }
}

/// The trees of a LightGBM text model.
#[derive(Debug)]
pub struct Forest {
    trees: Vec<Tree>,
    /// How many features the model was trained on (`max_feature_idx + 1`).
    pub features: usize,
}

fn invalid(message: String) -> EngineError {
    EngineError::InvalidRequest(format!("tree model: {message}"))
}

fn numbers<T: std::str::FromStr>(key: &str, text: &str) -> Result<Vec<T>> {
    text.split_ascii_whitespace()
        .map(|word| {
            word.parse::<T>()
                .map_err(|_| invalid(format!("{key}: not a number: {word:?}")))
        })
        .collect()
}

impl Forest {
    /// Reads LightGBM's text format (`Booster.model_to_string`).
    pub fn parse(text: &str) -> Result<Forest> {
        let text = text.split("end of trees").next().unwrap_or("");
        let mut blocks = text.split("\nTree=");
        let header = blocks.next().unwrap_or("");
        let mut features = None;
        for line in header.lines().map(str::trim) {
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            match key {
                "num_class" | "num_tree_per_iteration" if value != "1" => {
                    return Err(invalid(format!("{key}={value}: only one tree per iteration is scored")));
                }
                "average_output" => return Err(invalid("average_output (random forest) is not scored".into())),
                "max_feature_idx" => {
                    let max: usize = value.parse().map_err(|_| invalid(format!("max_feature_idx={value}")))?;
                    features = Some(max + 1);
                }
                _ => {}
            }
        }
        let features = features.ok_or_else(|| invalid("no max_feature_idx".into()))?;
        let trees = blocks
            .map(|block| {
                let fields: Vec<(&str, &str)> = block.lines().filter_map(|line| line.trim().split_once('=')).collect();
                Self::tree(&fields)
            })
            .collect::<Result<Vec<Tree>>>()?;
        if let Some(bad) = trees
            .iter()
            .flat_map(|t| &t.splits)
            .find(|s| s.feature as usize >= features)
        {
            return Err(invalid(format!("a split on feature {} of {features}", bad.feature)));
        }
        Ok(Forest { trees, features })
    }

    fn tree(fields: &[(&str, &str)]) -> Result<Tree> {
        let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        if get("is_linear").is_some_and(|v| v != "0") {
            return Err(invalid("linear trees are not scored".into()));
        }
        let leaves: Vec<f64> = numbers("leaf_value", get("leaf_value").unwrap_or(""))?;
        let count: usize = get("num_leaves")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid("a tree without num_leaves".into()))?;
        if leaves.len() != count || count == 0 {
            return Err(invalid(format!("{} leaf values for {count} leaves", leaves.len())));
        }
        if count == 1 {
            return Ok(Tree {
                splits: Vec::new(),
                leaves,
            });
        }
        let feature: Vec<u32> = numbers("split_feature", get("split_feature").unwrap_or(""))?;
        let threshold: Vec<f64> = numbers("threshold", get("threshold").unwrap_or(""))?;
        let decision: Vec<u8> = numbers("decision_type", get("decision_type").unwrap_or(""))?;
        let left: Vec<i32> = numbers("left_child", get("left_child").unwrap_or(""))?;
        let right: Vec<i32> = numbers("right_child", get("right_child").unwrap_or(""))?;
        let n = count - 1;
        if [feature.len(), threshold.len(), decision.len(), left.len(), right.len()] != [n; 5] {
            return Err(invalid(format!("a tree of {count} leaves needs {n} splits")));
        }
        let child_ok = |c: i32| {
            if c >= 0 {
                (c as usize) < n
            } else {
                ((!c) as usize) < count
            }
        };
        let mut splits = Vec::with_capacity(n);
        for k in 0..n {
            if decision[k] & CATEGORICAL != 0 {
                return Err(invalid("categorical splits are not scored".into()));
            }
            if !child_ok(left[k]) || !child_ok(right[k]) {
                return Err(invalid(format!("split {k} has a child out of range")));
            }
            splits.push(Split {
                feature: feature[k],
                threshold: threshold[k],
                default_left: decision[k] & DEFAULT_LEFT != 0,
                missing: match (decision[k] >> 2) & 3 {
                    0 => Missing::None,
                    1 => Missing::Zero,
                    _ => Missing::NaN,
                },
                children: [right[k], left[k]],
            });
        }
        Ok(Tree { splits, leaves })
    }

    /// The raw scores of `rows` (row-major little-endian `f32`, `width` columns each), where
    /// model feature `j` is column `columns[j]`; in parallel over blocks of rows.
    pub fn raw_scores(&self, rows: &[u8], width: usize, columns: &[u32]) -> Result<Vec<f64>> {
        if columns.len() != self.features {
            return Err(invalid(format!(
                "{} columns given for a model of {} features",
                columns.len(),
                self.features
            )));
        }
        if let Some(&bad) = columns.iter().find(|&&c| c as usize >= width) {
            return Err(invalid(format!("column {bad} of rows {width} wide")));
        }
        if width == 0 || !rows.len().is_multiple_of(width * 4) {
            return Err(invalid(format!("{} bytes are not rows of {width} f32", rows.len())));
        }
        // Only the columns some split reads are gathered, each row's into `stride` values side by
        // side (a model reads a fraction of the rows' columns; the rest would only fill caches).
        let mut read: Vec<u32> = self.trees.iter().flat_map(|t| &t.splits).map(|s| s.feature).collect();
        read.sort_unstable();
        read.dedup();
        let mut place = vec![0u32; self.features];
        for (k, &feature) in read.iter().enumerate() {
            place[feature as usize] = k as u32;
        }
        let gathered: Vec<usize> = read.iter().map(|&f| columns[f as usize] as usize * 4).collect();
        let stride = gathered.len().max(1);
        let walks = self
            .trees
            .iter()
            .map(|tree| Walk::of(tree, &place))
            .collect::<Result<Vec<Walk>>>()?;
        let mut scores = vec![0.0; rows.len() / (width * 4)];
        scores
            .par_chunks_mut(ROWS_PER_TASK)
            .zip(rows.par_chunks(ROWS_PER_TASK * width * 4))
            .for_each(|(out, block)| {
                let mut values = vec![0f32; out.len() * stride];
                for (row, into) in block.chunks_exact(width * 4).zip(values.chunks_exact_mut(stride)) {
                    for (value, &at) in into.iter_mut().zip(&gathered) {
                        let v = f32::from_le_bytes(row[at..at + 4].try_into().expect("4 bytes"));
                        // LightGBM's dense-row reader keeps only |v| > kZeroThreshold (and NaN):
                        // the rest are 0.
                        *value = if f64::from(v).abs() <= ZERO { 0.0 } else { v };
                    }
                }
                for (sums, rows) in out.chunks_mut(LANES).zip(values.chunks(LANES * stride)) {
                    // In tree order, as LightGBM sums them.
                    for walk in &walks {
                        walk.add_leaves(rows, stride, sums);
                    }
                }
            });
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::f32_at_or_below;

    /// Thresholds near the value, at it, between two f32s, tiny, huge and infinite.
    fn threshold_near(v: f32) -> impl Strategy<Value = f64> {
        let v = f64::from(v);
        prop_oneof![
            Just(v),
            (-4i32..=4).prop_map(move |k| v + f64::from(k) * v.abs().max(1e-300) * f64::EPSILON * 2f64.powi(28)),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(1e300),
            Just(-1e300),
            Just(1e-300),
            Just(-1e-300),
            any::<f64>().prop_filter("a number", |t| !t.is_nan()),
        ]
    }

    proptest! {
        /// The rounded threshold gives every f32 LightGBM's f64 answer.
        #[test]
        fn an_f32_compares_with_the_rounded_threshold_as_with_the_exact_one(
            (v, t) in any::<f32>()
                .prop_filter("a number", |v| !v.is_nan())
                .prop_flat_map(|v| (Just(v), threshold_near(v)))
        ) {
            prop_assert_eq!(v <= f32_at_or_below(t), f64::from(v) <= t, "v={} t={}", v, t);
        }
    }
}
