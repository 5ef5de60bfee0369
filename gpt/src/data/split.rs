//! Holding out a validation set.
//!
//! To see whether a model generalizes rather than memorizes, we keep the
//! tail of the corpus out of training and measure the loss on it. The split
//! is by position, not at random: windows cut from neighbouring text overlap,
//! so a random split would leak validation text into training.

use super::DataError;

/// Splits `tokens` at `train_fraction` of their length: `(train, validation)`.
/// The fraction must lie strictly between 0 and 1.
pub fn train_val_split(tokens: &[u32], train_fraction: f64) -> Result<(&[u32], &[u32]), DataError> {
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(DataError::BadConfig(format!("train fraction must be between 0 and 1, got {train_fraction}")));
    }
    let cut = (tokens.len() as f64 * train_fraction).round() as usize;
    Ok(tokens.split_at(cut.min(tokens.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_fraction() {
        let tokens: Vec<u32> = (0..10).collect();
        let (train, val) = train_val_split(&tokens, 0.9).unwrap();
        assert_eq!((train.len(), val), (9, &[9][..]));
        let (train, val) = train_val_split(&tokens, 0.25).unwrap();
        assert_eq!((train, val.len()), (&[0, 1, 2][..], 7));
    }

    #[test]
    fn fraction_must_be_inside_zero_one() {
        for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            let err = train_val_split(&[1, 2, 3], bad).unwrap_err();
            assert!(err.to_string().contains("between 0 and 1"), "{err}");
        }
    }
}
