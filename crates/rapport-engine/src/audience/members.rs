//! A segment's members as a bitset indexed by contact id: one bit per id up to the highest member, so a workspace
//! of a million contacts costs 125 KiB per segment whatever its size, and set differences run a word at a time.

use rapport_domain::ContactId;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Members {
    words: Vec<u64>,
    len: usize,
}

fn position(id: ContactId) -> Option<(usize, u64)> {
    let index = usize::try_from(id.get()).ok()?;
    Some((index / 64, 1u64 << (index % 64)))
}

impl Members {
    pub(crate) fn contains(&self, id: ContactId) -> bool {
        position(id).is_some_and(|(word, bit)| self.words.get(word).is_some_and(|value| value & bit != 0))
    }

    pub(crate) fn insert(&mut self, id: ContactId) -> bool {
        let Some((word, bit)) = position(id) else { return false };
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        let added = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += usize::from(added);
        added
    }

    pub(crate) fn remove(&mut self, id: ContactId) -> bool {
        let Some((word, bit)) = position(id) else { return false };
        let Some(value) = self.words.get_mut(word) else { return false };
        let removed = *value & bit != 0;
        *value &= !bit;
        self.len -= usize::from(removed);
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Members of `self` that are not in `other`, in ascending id order.
    pub(crate) fn difference(&self, other: &Members) -> Vec<ContactId> {
        let mut out = Vec::new();
        for (index, word) in self.words.iter().enumerate() {
            let mut rest = word & !other.words.get(index).copied().unwrap_or(0);
            while rest != 0 {
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if let Ok(id) = i64::try_from(index * 64 + bit) {
                    out.push(ContactId::new(id));
                }
            }
        }
        out
    }

    pub(crate) fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_differences() {
        let mut a = Members::default();
        let mut b = Members::default();
        for id in [1, 64, 65, 1_000] {
            assert!(a.insert(ContactId::new(id)));
        }
        assert!(!a.insert(ContactId::new(64)));
        b.insert(ContactId::new(65));
        b.insert(ContactId::new(7));
        assert_eq!(a.len(), 4);
        assert_eq!(a.difference(&b), [1, 64, 1_000].map(ContactId::new));
        assert_eq!(b.difference(&a), [ContactId::new(7)]);
        assert!(a.remove(ContactId::new(1_000)) && !a.remove(ContactId::new(1_000)));
        assert!(!a.contains(ContactId::new(1_000)) && a.contains(ContactId::new(65)));
        assert_eq!(a.len(), 3);
    }
}
