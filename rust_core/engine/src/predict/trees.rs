//! A LightGBM model's raw scores, computed in the engine over the feature rows it made.
//!
//! The server trains with LightGBM and keeps the model in LightGBM's own text format; scoring a
//! million profiles through LightGBM's predictor costs more than computing their features (it
//! copies every row into a vector of doubles, then walks the trees), and the rows would first
//! cross into Python as a matrix. Here the same trees are read from the same text and walked
//! straight over the engine's `f32` rows: each split compares the feature, widened to `f64`,
//! with the threshold LightGBM wrote, missing values take the side the model learned, and each
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

#[derive(Clone, Copy)]
struct Node {
    column: u32,
    threshold: f64,
    /// Where a NaN goes: LightGBM reads it as 0 unless NaN is the missing type, and a missing
    /// value takes the default side.
    nan_left: bool,
    /// Missing type zero: a 0 is missing and takes the default side.
    zero_missing: bool,
    default_left: bool,
    /// Right, then left (indexed by "goes left").
    next: [u32; 2],
}

impl Node {
    /// LightGBM's `NumericalDecision`, without branches. `value` has been read as LightGBM's
    /// dense-row reader reads it (|v| <= kZeroThreshold is 0).
    #[inline(always)]
    fn left(&self, value: f64) -> bool {
        let nan = value.is_nan();
        let zero = self.zero_missing & (value == 0.0);
        (nan & self.nan_left) | (!nan & zero & self.default_left) | (!nan & !zero & (value <= self.threshold))
    }
}

impl Walk {
    fn of(tree: &Tree, columns: &[u32]) -> Walk {
        let leaves_from = tree.splits.len() as u32;
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
            .map(|s| Node {
                column: columns[s.feature as usize],
                threshold: s.threshold,
                nan_left: match s.missing {
                    Missing::None => 0.0 <= s.threshold,
                    Missing::Zero | Missing::NaN => s.default_left,
                },
                zero_missing: s.missing == Missing::Zero,
                default_left: s.default_left,
                next: [at(s.children[0]), at(s.children[1])],
            })
            .collect();
        for leaf in 0..tree.leaves.len() as u32 {
            let me = leaves_from + leaf;
            nodes.push(Node {
                column: 0,
                threshold: 0.0,
                nan_left: false,
                zero_missing: false,
                default_left: false,
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
                stack.extend(nodes[node as usize].next.iter().map(|&n| (n, steps + 1)));
            }
        }
        Walk {
            nodes,
            leaves_from,
            depth,
            leaves: tree.leaves.clone(),
        }
    }

    /// Adds the tree's leaf of each of `rows` (up to LANES) to `sums`.
    #[inline]
    fn add_leaves(&self, rows: &[&[f32]], sums: &mut [f64]) {
        // All start at the root (a lone leaf's node 0, with depth 0).
        let mut at = [0u32; LANES];
        for _ in 0..self.depth {
            for (lane, row) in rows.iter().enumerate() {
                let node = &self.nodes[at[lane] as usize];
                let value = f64::from(row[node.column as usize]);
                at[lane] = node.next[usize::from(node.left(value))];
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
        let walks: Vec<Walk> = self.trees.iter().map(|tree| Walk::of(tree, columns)).collect();
        let mut scores = vec![0.0; rows.len() / (width * 4)];
        scores
            .par_chunks_mut(ROWS_PER_TASK)
            .zip(rows.par_chunks(ROWS_PER_TASK * width * 4))
            .for_each(|(out, block)| {
                // LightGBM's dense-row reader keeps only |v| > kZeroThreshold (and NaN): the rest
                // are 0.
                let values: Vec<f32> = block
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .map(|v| if f64::from(v).abs() <= ZERO { 0.0 } else { v })
                    .collect();
                let rows: Vec<&[f32]> = values.chunks_exact(width).collect();
                for (sums, rows) in out.chunks_mut(LANES).zip(rows.chunks(LANES)) {
                    // In tree order, as LightGBM sums them.
                    for walk in &walks {
                        walk.add_leaves(rows, sums);
                    }
                }
            });
        Ok(scores)
    }
}
