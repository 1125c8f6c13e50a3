//! The RFC 6962 / RFC 9162 Merkle tree: leaf and node hashing, tree heads, inclusion and
//! consistency proofs and their verifiers, and the incremental `Frontier` a log keeps so
//! that appending a leaf and reading the root cost O(log n).
//!
//! The verifiers take byte slices, not `Hash`es: proofs and roots arrive as untrusted
//! bytes, and a hash of the wrong length is a verification failure like any other.
//! A `&Hash` or `&[Hash]` coerces to them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::b64;

/// A SHA-256 output: a leaf hash, an interior node or a tree head.
pub type Hash = [u8; 32];

/// Why a proof could not be made or did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked about.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked between sizes that do not allow one.
    #[error("no consistency proof from size {old_size} to size {new_size}")]
    BadSizes {
        /// The earlier tree size.
        old_size: u64,
        /// The later tree size.
        new_size: u64,
    },
    /// More leaves were asked for than the slice holds.
    #[error("tree size {size} exceeds the {available} leaves given")]
    NotEnoughLeaves {
        /// The size asked for.
        size: u64,
        /// The leaves available.
        available: u64,
    },
    /// A hash in the proof, a leaf hash or a root is not 32 bytes.
    #[error("hash of {0} bytes, expected 32")]
    HashLength(usize),
    /// The proof has the wrong number of hashes for the sizes given.
    #[error("proof has {got} hashes, expected {want}")]
    ProofLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes the sizes call for.
        want: usize,
    },
    /// The proof recomputes a root other than the one given.
    #[error("proof does not lead to the given root")]
    RootMismatch,
}

/// `SHA-256(0x00 ‖ data)`: the hash of one log entry.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    let below = n.saturating_sub(1).max(1);
    1usize << (usize::BITS - 1 - below.leading_zeros())
}

/// Splits `leaves` where RFC 9162 §2.1.1 does: the left part is a perfect tree of the
/// largest power of two below `leaves.len()` (which must be at least 2).
fn split(leaves: &[Hash]) -> (&[Hash], &[Hash]) {
    leaves
        .split_at_checked(split_point(leaves.len()))
        .unwrap_or((leaves, &[]))
}

/// MTH (RFC 9162 §2.1.1): the tree head over `leaves`, in order.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [only] => *only,
        _ => {
            let (left, right) = split(leaves);
            node_hash(&root(left), &root(right))
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The first `size` leaves, or an error if there are fewer.
fn prefix(leaves: &[Hash], size: u64) -> Result<&[Hash], ProofError> {
    leaves
        .get(..to_usize(size))
        .ok_or(ProofError::NotEnoughLeaves {
            size,
            available: to_u64(leaves.len()),
        })
}

/// PATH (RFC 9162 §2.1.3.1): the audit path of leaf `index` in the tree over all of
/// `leaves`, ordered from the leaf's sibling up to the root's child.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = to_u64(leaves.len());
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(to_usize(index), leaves, &mut proof);
    Ok(proof)
}

/// The audit paths of many leaves of one tree, in the order of `indices` (repeats
/// allowed): what [`inclusion_proof`] gives for each, but each subtree root is computed
/// once, so `k` proofs over `n` leaves cost O(n + k log n) hashes instead of O(k n).
pub fn inclusion_proofs(leaves: &[Hash], indices: &[u64]) -> Result<Vec<Vec<Hash>>, ProofError> {
    let size = to_u64(leaves.len());
    let mut wanted = Vec::with_capacity(indices.len());
    for (position, &index) in indices.iter().enumerate() {
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        wanted.push((to_usize(index), position));
    }
    wanted.sort_unstable();
    let mut proofs = vec![Vec::new(); indices.len()];
    paths(leaves, 0, &wanted, &mut proofs);
    Ok(proofs)
}

/// Returns the root of `leaves` (leaf `offset` onwards of the whole tree) and extends
/// the proof of every `(leaf, position)` in `wanted` (sorted, all inside `leaves`) with
/// the sibling hashes below that root, lowest first, as [`path`] does.
fn paths(
    leaves: &[Hash],
    offset: usize,
    wanted: &[(usize, usize)],
    proofs: &mut [Vec<Hash>],
) -> Hash {
    if wanted.is_empty() || leaves.len() <= 1 {
        return root(leaves);
    }
    let (left, right) = split(leaves);
    let middle = offset + left.len();
    let cut = wanted.partition_point(|(leaf, _)| *leaf < middle);
    let (in_left, in_right) = wanted.split_at_checked(cut).unwrap_or((wanted, &[]));
    let left_root = paths(left, offset, in_left, proofs);
    let right_root = paths(right, middle, in_right, proofs);
    for (sibling, side) in [(right_root, in_left), (left_root, in_right)] {
        for (_, position) in side {
            if let Some(p) = proofs.get_mut(*position) {
                p.push(sibling);
            }
        }
    }
    node_hash(&left_root, &right_root)
}

fn path(m: usize, leaves: &[Hash], proof: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let (left, right) = split(leaves);
    if m < left.len() {
        path(m, left, proof);
        proof.push(root(right));
    } else {
        path(m - left.len(), right, proof);
        proof.push(root(left));
    }
}

/// PROOF (RFC 9162 §2.1.4.1): the consistency proof from the tree over the first
/// `old_size` leaves to the tree over the first `new_size`.
///
/// Defined for `0 < old_size <= new_size` (empty when the sizes are equal); the empty
/// tree has no consistency proof, as in RFC 9162.
pub fn consistency_proof(
    leaves: &[Hash],
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes { old_size, new_size });
    }
    let leaves = prefix(leaves, new_size)?;
    let mut proof = Vec::new();
    subproof(to_usize(old_size), leaves, true, &mut proof);
    Ok(proof)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    if m == leaves.len() {
        if !complete {
            proof.push(root(leaves));
        }
        return;
    }
    let (left, right) = split(leaves);
    if m <= left.len() {
        subproof(m, left, complete, proof);
        proof.push(root(right));
    } else {
        subproof(m - left.len(), right, false, proof);
        proof.push(root(left));
    }
}

fn as_hash(bytes: &[u8]) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::HashLength(bytes.len()))
}

fn proof_hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, ProofError> {
    proof.iter().map(|p| as_hash(p.as_ref())).collect()
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves whose head is
/// `root`, following RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let leaf = as_hash(leaf_hash)?;
    let root = as_hash(root)?;
    let proof = proof_hashes(proof)?;
    let want = inclusion_proof_len(index, size);
    if proof.len() != want {
        return Err(ProofError::ProofLength {
            got: proof.len(),
            want,
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf;
    for p in &proof {
        if snode == 0 {
            return Err(ProofError::ProofLength {
                got: proof.len(),
                want,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::ProofLength {
            got: proof.len(),
            want,
        });
    }
    if r == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The length of the audit path of leaf `index` in a tree of `size` (`index < size`):
/// one hash per level below the root where the path has a sibling.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let last = size - 1;
    // Levels where index and the last leaf share a subtree that is not perfect need no
    // hash on the right border; RFC 9162's loop skips them.
    let inner = u64::BITS - (index ^ last).leading_zeros();
    let border = (index >> inner).count_ones();
    usize::try_from(inner + border).unwrap_or(usize::MAX)
}

/// Checks that the tree of `new_size` leaves with head `new_root` extends the tree of
/// `old_size` leaves with head `old_root`, following RFC 9162 §2.1.4.2.
///
/// Equal sizes need an empty proof and equal roots. `old_size == 0` is refused: every
/// tree extends the empty one, so such a proof proves nothing.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &[u8],
    new_root: &[u8],
    proof: &[impl AsRef<[u8]>],
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::BadSizes { old_size, new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::ProofLength {
                got: proof.len(),
                want: 0,
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let old_root = as_hash(old_root)?;
    let new_root = as_hash(new_root)?;
    let mut path = proof_hashes(proof)?;
    // Step 1: a proof between different sizes is never empty.
    if path.is_empty() {
        return Err(ProofError::ProofLength { got: 0, want: 1 });
    }
    // Step 2: a perfect old tree is its own first node, which the proof leaves out.
    if old_size.is_power_of_two() {
        path.insert(0, old_root);
    }
    let want = consistency_path_len(old_size, new_size);
    if path.len() != want {
        let prepended = usize::from(old_size.is_power_of_two());
        return Err(ProofError::ProofLength {
            got: path.len() - prepended,
            want: want.saturating_sub(prepended),
        });
    }
    // Steps 3-4.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::ProofLength { got: 0, want });
    };
    let (mut fr, mut sr) = (*first, *first);
    // Step 6.
    for c in rest {
        if snode == 0 {
            return Err(ProofError::ProofLength {
                got: path.len(),
                want,
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(ProofError::ProofLength {
            got: path.len(),
            want,
        });
    }
    if fr == old_root && sr == new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The length of the consistency path once a perfect old tree's root is prepended
/// (`0 < old_size < new_size`).
fn consistency_path_len(old_size: u64, new_size: u64) -> usize {
    // The path is the first node (the largest perfect subtree ending at old_size) plus
    // the audit path of that node's level in the new tree.
    let shift = old_size.trailing_zeros();
    let index = (old_size - 1) >> shift;
    let last = (new_size - 1) >> shift;
    let inner = u64::BITS - (index ^ last).leading_zeros();
    let border = (index >> inner).count_ones();
    usize::try_from(1 + inner + border).unwrap_or(usize::MAX)
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest (left)
/// first, one per set bit of its size — at most 64 hashes.
///
/// Append with [`Frontier::push`]; [`Frontier::root`] equals [`root`] over every leaf
/// pushed so far. Serializes as `{"size": n, "hashes": [base64, …]}` for storage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    // INVARIANT (frontier): hashes.len() == size.count_ones(); hashes[i] is the root of
    // the i-th perfect subtree from the left, whose size is the i-th highest set bit.
    hashes: Vec<Hash>,
}

/// A stored frontier whose hashes do not match its size.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrontierError {
    /// The number of hashes is not the number of set bits of the size.
    #[error("frontier of size {size} needs {want} hashes, found {got}")]
    HashCount {
        /// The stored size.
        size: u64,
        /// Hashes stored.
        got: usize,
        /// Hashes the size calls for.
        want: u32,
    },
    /// A stored hash is not 32 bytes of canonical base64.
    #[error("invalid frontier hash `{0}`")]
    BadHash(String),
    /// The log is full.
    #[error("frontier is full")]
    Full,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash. Fails only when the size would overflow `u64`.
    pub fn push(&mut self, leaf_hash: Hash) -> Result<(), FrontierError> {
        let new_size = self.size.checked_add(1).ok_or(FrontierError::Full)?;
        // Merge equal-sized subtrees like a binary counter's carries: each trailing one
        // bit of the old size is a subtree the new leaf completes.
        let mut h = leaf_hash;
        for _ in 0..self.size.trailing_ones() {
            let Some(left) = self.hashes.pop() else {
                break; // unreachable by INVARIANT (frontier)
            };
            h = node_hash(&left, &h);
        }
        self.hashes.push(h);
        self.size = new_size;
        Ok(())
    }

    /// The tree head over every leaf pushed, as [`root`] computes it.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontierWire {
    size: u64,
    hashes: Vec<String>,
}

impl Serialize for Frontier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FrontierWire {
            size: self.size,
            hashes: self.hashes.iter().map(|h| b64::encode(h)).collect(),
        }
        .serialize(s)
    }
}

impl TryFrom<FrontierWire> for Frontier {
    type Error = FrontierError;

    fn try_from(wire: FrontierWire) -> Result<Self, FrontierError> {
        let want = wire.size.count_ones();
        if u32::try_from(wire.hashes.len()).ok() != Some(want) {
            return Err(FrontierError::HashCount {
                size: wire.size,
                got: wire.hashes.len(),
                want,
            });
        }
        let hashes = wire
            .hashes
            .into_iter()
            .map(|s| {
                b64::decode_canonical(&s)
                    .and_then(|b| Hash::try_from(b.as_slice()).ok())
                    .ok_or(FrontierError::BadHash(s))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            size: wire.size,
            hashes,
        })
    }
}

impl<'de> Deserialize<'de> for Frontier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Frontier::try_from(FrontierWire::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn hex(h: &Hash) -> String {
        crate::hex::encode(h)
    }

    // RFC 6962 test leaves, as used by transparency-dev/merkle and Certificate Transparency.
    fn rfc6962_leaves() -> Vec<Hash> {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        inputs.iter().map(|d| leaf_hash(d)).collect()
    }

    #[test]
    fn known_roots() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = rfc6962_leaves();
        let want = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, want) in want.iter().enumerate() {
            assert_eq!(hex(&root(&l[..=n])), *want, "size {}", n + 1);
        }
    }

    #[test]
    fn frontier_matches_root_for_every_size() {
        let all = leaves(300);
        let mut f = Frontier::new();
        assert_eq!(f.root(), root(&[]));
        for n in 1..=300 {
            f.push(all[n - 1]).unwrap();
            assert_eq!(f.size(), n as u64);
            assert_eq!(f.hashes().len(), n.count_ones() as usize);
            assert_eq!(f.root(), root(&all[..n]), "size {n}");
        }
    }

    #[test]
    fn frontier_serde_round_trip_and_checks() {
        let mut f = Frontier::new();
        for l in leaves(11) {
            f.push(l).unwrap();
        }
        let text = serde_json::to_string(&f).unwrap();
        let back: Frontier = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.root(), f.root());
        let empty: Frontier = serde_json::from_str(r#"{"size":0,"hashes":[]}"#).unwrap();
        assert_eq!(empty, Frontier::new());
        let h = b64::encode(&[7; 32]);
        for bad in [
            r#"{"size":2,"hashes":[]}"#.to_owned(),
            format!(r#"{{"size":3,"hashes":["{h}"]}}"#),
            format!(r#"{{"size":1,"hashes":["{h}","{h}"]}}"#),
            r#"{"size":1,"hashes":["AAAA"]}"#.to_owned(),
            format!(r#"{{"size":1,"hashes":["{h}"],"extra":1}}"#),
        ] {
            assert!(serde_json::from_str::<Frontier>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proof_generation_errors() {
        let l = leaves(5);
        assert_eq!(
            inclusion_proof(&l, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(inclusion_proof(&l[..1], 0), Ok(vec![]));
        assert!(consistency_proof(&l, 0, 3).is_err());
        assert!(consistency_proof(&l, 4, 3).is_err());
        assert!(consistency_proof(&l, 2, 6).is_err());
        assert_eq!(consistency_proof(&l, 5, 5), Ok(vec![]));
    }

    fn flip(proof: &mut [Hash], which: usize, bit: usize) {
        proof[which][bit / 8] ^= 1 << (bit % 8);
    }

    proptest! {
        #[test]
        fn inclusion_proofs_verify(n in 1usize..200, i in any::<prop::sample::Index>(),
                                   which in any::<prop::sample::Index>(), bit in 0usize..256) {
            let l = leaves(n);
            let index = i.index(n);
            let r = root(&l);
            let mut proof = inclusion_proof(&l, index as u64).unwrap();
            prop_assert_eq!(proof.len(), inclusion_proof_len(index as u64, n as u64));
            prop_assert_eq!(verify_inclusion(&l[index], index as u64, n as u64, &proof, &r), Ok(()));
            // The wrong leaf, index or size fails.
            prop_assert!(verify_inclusion(&leaf_hash(b"x"), index as u64, n as u64, &proof, &r).is_err());
            prop_assert!(verify_inclusion(&l[index], index as u64 + 1, n as u64, &proof, &r).is_err());
            if !proof.is_empty() {
                let w = which.index(proof.len());
                flip(&mut proof, w, bit);
                prop_assert!(verify_inclusion(&l[index], index as u64, n as u64, &proof, &r).is_err());
            }
        }

        #[test]
        fn batch_proofs_equal_single_proofs(n in 1usize..200,
                                            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let l = leaves(n);
            let indices: Vec<u64> = picks.iter().map(|p| p.index(n) as u64).collect();
            let batch = inclusion_proofs(&l, &indices).unwrap();
            prop_assert_eq!(batch.len(), indices.len());
            for (i, proof) in indices.iter().zip(&batch) {
                prop_assert_eq!(proof, &inclusion_proof(&l, *i).unwrap());
            }
            prop_assert_eq!(
                inclusion_proofs(&l, &[n as u64]),
                Err(ProofError::IndexOutOfRange { index: n as u64, size: n as u64 })
            );
        }

        #[test]
        fn consistency_proofs_verify(n in 1usize..200, m in any::<prop::sample::Index>(),
                                     which in any::<prop::sample::Index>(), bit in 0usize..256) {
            let l = leaves(n);
            let old = m.index(n) + 1;
            let (old_root, new_root) = (root(&l[..old]), root(&l));
            let mut proof = consistency_proof(&l, old as u64, n as u64).unwrap();
            prop_assert_eq!(verify_consistency(old as u64, n as u64, &old_root, &new_root, &proof), Ok(()));
            prop_assert!(verify_consistency(old as u64, n as u64, &new_root, &old_root, &proof).is_err() || old == n);
            if !proof.is_empty() {
                let w = which.index(proof.len());
                flip(&mut proof, w, bit);
                prop_assert!(verify_consistency(old as u64, n as u64, &old_root, &new_root, &proof).is_err());
                // A truncated or extended proof fails too.
                flip(&mut proof, w, bit);
                let mut longer = proof.clone();
                longer.push([0; 32]);
                prop_assert!(verify_consistency(old as u64, n as u64, &old_root, &new_root, &longer).is_err());
                proof.pop();
                prop_assert!(verify_consistency(old as u64, n as u64, &old_root, &new_root, &proof).is_err());
            }
        }
    }
}
