//! [`Verdicts`]: one verdict per item of a [`super::Batch`], in item order, stored as one byte per
//! item (1 = valid, 0 = invalid) so a device can write them directly.

/// One verdict per item, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdicts {
    bytes: Vec<u8>,
}

impl Verdicts {
    /// Verdicts from one byte per item: 0 is invalid, anything else valid (normalised to 1).
    pub fn from_bytes(mut bytes: Vec<u8>) -> Self {
        for b in &mut bytes {
            *b = u8::from(*b != 0);
        }
        Verdicts { bytes }
    }

    /// Number of verdicts.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no verdicts.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The verdict of item `i`, `None` past the end.
    pub fn get(&self, i: usize) -> Option<bool> {
        self.bytes.get(i).map(|b| *b != 0)
    }

    /// The verdicts in item order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = bool> + '_ {
        self.bytes.iter().map(|b| *b != 0)
    }

    /// Whether every item is valid (true for an empty batch).
    pub fn all_valid(&self) -> bool {
        self.bytes.iter().all(|b| *b != 0)
    }

    /// Indices of the invalid items, ascending.
    pub fn invalid_indices(&self) -> Vec<usize> {
        self.bytes.iter().enumerate().filter(|(_, b)| **b == 0).map(|(i, _)| i).collect()
    }

    /// One byte per item: 1 = valid, 0 = invalid.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl FromIterator<bool> for Verdicts {
    fn from_iter<T: IntoIterator<Item = bool>>(iter: T) -> Self {
        Verdicts { bytes: iter.into_iter().map(u8::from).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_agree() {
        let v = Verdicts::from_bytes(vec![1, 0, 7, 0]);
        assert_eq!(v.as_bytes(), &[1, 0, 1, 0]);
        assert_eq!(v.len(), 4);
        assert_eq!(v.get(2), Some(true));
        assert_eq!(v.get(3), Some(false));
        assert_eq!(v.get(4), None);
        assert!(!v.all_valid());
        assert_eq!(v.invalid_indices(), vec![1, 3]);
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![true, false, true, false]);
        assert!(Verdicts::default().all_valid());
        assert_eq!([true, true].into_iter().collect::<Verdicts>().as_bytes(), &[1, 1]);
    }
}
