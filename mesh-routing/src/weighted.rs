//! [`Weighted`]: a traffic split, checked once, picked with a caller-supplied roll.
//!
//! Selection is Envoy's `pickClusterIndex`: `roll % total`, then the first destination whose
//! cumulative weight exceeds it. Zero weights are dropped when the set is built, so every pick
//! lands on a destination with weight > 0.
//!
//! ```
//! use mesh_routing::weighted::Weighted;
//!
//! let split = Weighted::new([("v1", 90), ("v2", 10), ("v3", 0)]).unwrap();
//! assert_eq!(split.len(), 2);
//! assert_eq!(split.pick(0).1, &"v1");
//! assert_eq!(split.pick(89).1, &"v1");
//! assert_eq!(split.pick(90).1, &"v2");
//! assert_eq!(split.pick(100).1, &"v1"); // 100 % 100 == 0
//! ```

use std::fmt;

/// A non-empty list of items with positive weights and their cumulative sums.
#[derive(Debug, Clone)]
pub struct Weighted<T> {
    items: Box<[T]>,
    weights: Box<[u32]>,
    /// `cumulative[i]` = sum of `weights[..=i]`.
    cumulative: Box<[u64]>,
}

/// Why a [`Weighted`] set could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightError {
    /// No item had a weight above zero.
    ZeroTotal,
}

impl fmt::Display for WeightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightError::ZeroTotal => f.write_str("total destination weight = 0"),
        }
    }
}

impl std::error::Error for WeightError {}

impl<T> Weighted<T> {
    /// Build from `(item, weight)` pairs; zero weights are dropped.
    pub fn new(pairs: impl IntoIterator<Item = (T, u32)>) -> Result<Self, WeightError> {
        let mut items = Vec::new();
        let mut weights = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for (item, w) in pairs {
            if w == 0 {
                continue;
            }
            total += u64::from(w);
            items.push(item);
            weights.push(w);
            cumulative.push(total);
        }
        if items.is_empty() {
            return Err(WeightError::ZeroTotal);
        }
        Ok(Weighted {
            items: items.into(),
            weights: weights.into(),
            cumulative: cumulative.into(),
        })
    }

    /// A single item that takes all traffic (Istio ignores the weight of a lone destination).
    pub fn single(item: T) -> Self {
        Weighted {
            items: Box::new([item]),
            weights: Box::new([1]),
            cumulative: Box::new([1]),
        }
    }

    /// The item for `roll`, with its index.
    #[inline]
    pub fn pick(&self, roll: u64) -> (usize, &T) {
        let i = if self.items.len() == 1 {
            0
        } else {
            let r = roll % self.total();
            self.cumulative.partition_point(|&c| c <= r)
        };
        (i, &self.items[i])
    }

    /// Sum of the weights (> 0).
    pub fn total(&self) -> u64 {
        self.cumulative[self.cumulative.len() - 1]
    }

    /// Number of items (zero-weight ones were dropped).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always `false`: a set has at least one item.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The items with their weights, in config order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&T, u32)> + '_ {
        self.items.iter().zip(self.weights.iter().copied())
    }

    /// The item at `index`.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.items.get(index)
    }

    /// The weight of the item at `index`.
    pub fn weight(&self, index: usize) -> Option<u32> {
        self.weights.get(index).copied()
    }
}
