//! Seeded train / validation / test splits.
//!
//! The examples are shuffled with a seeded generator and cut by fractions
//! (the book uses 70/10/20 for classification and 85/5/10 for
//! instructions), so the same seed always holds out the same examples and
//! a reported test score can be reproduced.

use tensor::Generator;

/// Shuffles `items` with `seed` and cuts them into train, validation and
/// test by `train` and `val` fractions (test gets the rest).
pub fn split3<T>(mut items: Vec<T>, train: f64, val: f64, seed: u64) -> (Vec<T>, Vec<T>, Vec<T>) {
    Generator::seed(seed).shuffle(&mut items);
    let n = items.len();
    let n_train = (n as f64 * train).round() as usize;
    let n_val = ((n as f64 * val).round() as usize).min(n - n_train.min(n));
    let test = items.split_off((n_train + n_val).min(n));
    let val_items = items.split_off(n_train.min(n));
    (items, val_items, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_by_fraction_and_seed() {
        let (a, b, c) = split3((0..100).collect::<Vec<_>>(), 0.85, 0.05, 7);
        assert_eq!((a.len(), b.len(), c.len()), (85, 5, 10));
        let (a2, _, c2) = split3((0..100).collect::<Vec<_>>(), 0.85, 0.05, 7);
        assert_eq!((a.clone(), c.clone()), (a2, c2));
        let mut all: Vec<i32> = a.into_iter().chain(b).chain(c).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_ne!(
            split3((0..100).collect::<Vec<_>>(), 0.85, 0.05, 8).2,
            split3((0..100).collect::<Vec<_>>(), 0.85, 0.05, 7).2
        );
    }
}
