"""RFC 6962 / RFC 9162 Merkle trees: hashing, stored hashes, proofs, verification.

A small pure core in the manner of Go's ``golang.org/x/mod/sumdb/tlog``.
Storage is seen through one method, :meth:`HashReader.read_hashes`, which
returns *stored hashes* by their index in the order the log stores them: the
hash of leaf ``n`` followed by the hash of every subtree that leaf completes
(:func:`stored_hash_index`).  Producing a proof plans the indexes it needs,
reads them in one call, and combines them: O(log n) hashes for any proof.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step and says
*why* a proof fails (:class:`~ledger_adapter.errors.ProofError` codes).
Subtree proofs (``verify_subtree_inclusion``, ``verify_subtree_consistency``)
follow draft-ietf-plants-merkle-tree-certs §4 (the proofs C2SP tlog-witness
``sign-subtree`` uses).

Only the standard library is used: the offline verifier depends on this file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from ledger_adapter.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HashReader",
    "consistency_proof",
    "inclusion_proof",
    "is_valid_subtree",
    "leaf_hash",
    "node_hash",
    "parent_hashes",
    "root",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "stored_hashes",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32
_U64 = 1 << 64
_sha256 = hashlib.sha256

#: RFC 9162 §2.1.1: the hash of an empty list is the hash of an empty string.
EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``MTH({d(0)}) = HASH(0x00 || d(0))``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``."""
    return _sha256(b"\x01" + left + right).digest()


_DIGEST = _sha256().__class__.digest  # the hash object's digest(), unbound
_NODE = b"\x01"


def parent_hashes(level: Sequence[bytes]) -> list[bytes]:
    """``node_hash`` of each pair of neighbours (0-1, 2-3, ...): the level above
    ``level``; an odd last node is left out (its caller carries it up).

    Through ``map`` (no Python frame per node): appending to a log hashes about
    one node per leaf here.
    """
    return list(map(_DIGEST, map(_sha256, map(_NODE.__add__,
                                               map(bytes.__add__, level[0::2], level[1::2])))))


def root(hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of *leaf hashes* (RFC 9162 §2.1.1).

    Computed bottom-up: pairing neighbours level by level and carrying an odd
    last node up unchanged yields exactly the RFC's split at the largest power
    of two smaller than n.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = parent_hashes(level)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class HashReader(Protocol):
    """Where proofs read stored hashes from (Go tlog's ``HashReader``)."""

    def read_hashes(self, indexes: Sequence[int]) -> Sequence[bytes]:
        """The stored hashes at ``indexes`` (see :func:`stored_hash_index`), in that order."""
        ...


# --- stored hash indexing ------------------------------------------------------------
#
# A log stores, for each leaf n in turn, the leaf hash and then the hash of each
# subtree that leaf completes: level 1 if n is odd, level 2 if n % 4 == 3, ...
# The position of a hash in that sequence is its stored hash index.


def stored_hash_index(level: int, n: int) -> int:
    """Index of the ``n``-th hash at ``level`` (level 0 = leaves) among stored hashes."""
    # Level L's n-th hash is written right after level L-1's (2n+1)-th hash, so right
    # after level 0's ((n + 1) * 2**L - 1)-th ...
    n = ((n + 1) << level) - 1
    # ... which is preceded by n + n/2 + n/4 + ... = 2n - popcount(n) hashes.
    return 2 * n - n.bit_count() + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """Inverse of :func:`stored_hash_index`: ``(level, n)``."""
    # stored_hash_index(0, n) < 2n, so the leaf we want is in [index/2, index/2 + log2(index)].
    n = index // 2
    index_n = stored_hash_index(0, n)
    if index_n > index:  # pragma: no cover - arithmetic guard
        raise AssertionError("bad math in split_stored_hash_index")
    while True:
        # Leaf n+1 is stored after leaf n's 1 + trailing_ones(n) hashes.
        x = index_n + 1 + _trailing_zeros(n + 1)
        if x > index:
            break
        n += 1
        index_n = x
    level = index - index_n
    return level, n >> level


def stored_hash_count(n: int) -> int:
    """How many hashes a log of ``n`` leaves stores."""
    if n == 0:
        return 0
    count = stored_hash_index(0, n - 1) + 1
    i = n - 1
    while i & 1:
        count += 1
        i >>= 1
    return count


def stored_hashes(n: int, leaf: bytes, reader: HashReader) -> list[bytes]:
    """The hashes to store when appending leaf ``n`` with leaf hash ``leaf``.

    Reads the left neighbours of the subtrees the new leaf completes.
    """
    m = _trailing_zeros(n + 1)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in range(m - 1, -1, -1)]
    old = reader.read_hashes(indexes) if indexes else []
    out = [leaf]
    h = leaf
    for i in range(m):
        h = node_hash(old[m - 1 - i], h)
        out.append(h)
    return out


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def _split(n: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- proofs from stored hashes --------------------------------------------------------


def _subtree_indexes(lo: int, hi: int, need: list[int]) -> int:
    """Append the stored hashes that make MTH(D[lo:hi]); return how many.

    [lo, hi) is split into perfect subtrees, largest first; each is one stored
    hash.  Their Merkle Tree Hash is their right fold (:func:`_fold`).
    """
    count = 0
    while lo < hi:
        k = 1 << ((hi - lo).bit_length() - 1)
        level = k.bit_length() - 1
        if lo & (k - 1):  # pragma: no cover - callers only ask for aligned ranges
            raise AssertionError("bad math in _subtree_indexes")
        need.append(stored_hash_index(level, lo >> level))
        lo += k
        count += 1
    return count


def _fold(hashes: Sequence[bytes]) -> bytes:
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _ranges_to_hashes(ranges: list[tuple[int, int]], reader: HashReader) -> list[bytes]:
    need: list[int] = []
    counts = [_subtree_indexes(lo, hi, need) for lo, hi in ranges]
    got = reader.read_hashes(need) if need else []
    if len(got) != len(need):
        raise ProofError("the hash reader returned the wrong number of hashes",
                         code="storage_error")
    out: list[bytes] = []
    i = 0
    for c in counts:
        out.append(_fold(got[i:i + c]))
        i += c
    return out


def tree_hash(n: int, reader: HashReader) -> bytes:
    """MTH(D[0:n]) from stored hashes (``EMPTY_ROOT`` for n = 0)."""
    if n == 0:
        return EMPTY_ROOT
    return _ranges_to_hashes([(0, n)], reader)[0]


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 §2.1.3.1 ``PATH(index, D[size])`` read from stored hashes."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}",
                         code="index_out_of_range")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((lo, lo + k))
            lo = lo + k
    ranges.reverse()  # the path runs from the leaf's sibling up to the root's child
    return _ranges_to_hashes(ranges, reader)


def consistency_proof(size1: int, size2: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 §2.1.4.1 ``PROOF(size1, D[size2])`` read from stored hashes.

    Defined for ``0 < size1 <= size2``; the proof between equal sizes is empty.
    """
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}",
                         code="invalid_sizes")
    ranges: list[tuple[int, int]] = []
    m, lo, hi, complete = size1, 0, size2, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((lo, lo + k))
            m, lo, complete = m - k, lo + k, False
    if not complete:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}
        ranges.append((lo, hi))
    ranges.reverse()
    return _ranges_to_hashes(ranges, reader)


# --- verification (RFC 9162) ------------------------------------------------------


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root_hash: bytes) -> None:
    """Check an inclusion proof exactly as RFC 9162 §2.1.3.2; raise :class:`ProofError`."""
    # Step 1: leaf_index must be below tree_size.
    if not (0 <= index < _U64 and 0 <= size < _U64) or index >= size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}",
                         code="index_out_of_range")
    # (A leaf hash is a SHA-256 output; anything else cannot be one.)
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"the leaf hash has {len(leaf)} bytes, not {HASH_SIZE}",
                         code="malformed_hash")
    # Step 2: fn = leaf_index, sn = tree_size - 1.
    fn, sn = index, size - 1
    # Step 3: r = hash.
    r = leaf
    # Step 4: for each p in inclusion_path:
    for p in proof:
        # 4a: if sn is 0, stop and fail.
        if sn == 0:
            raise ProofError(f"the proof has {len(proof)} hashes, more than the path from "
                             f"leaf {index} to the root of a tree of size {size}",
                             code="proof_too_long")
        # 4b: if LSB(fn) is set or fn == sn ...
        if fn & 1 or fn == sn:
            r = node_hash(p, r)  # 4b.1: r = HASH(0x01 || p || r)
            if not fn & 1:
                # 4b.2: right-shift fn and sn until LSB(fn) is set or fn is 0.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)  # otherwise r = HASH(0x01 || r || p)
        # 4c: right-shift fn and sn once.
        fn >>= 1
        sn >>= 1
    # Step 5: sn must be 0 and r must equal root_hash.
    if sn != 0:
        raise ProofError(f"the proof has {len(proof)} hashes, fewer than the path from "
                         f"leaf {index} to the root of a tree of size {size}",
                         code="proof_too_short")
    if r != root_hash:
        raise ProofError("the inclusion proof leads to a different root hash",
                         code="root_mismatch")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes,
                       root2: bytes) -> None:
    """Check a consistency proof exactly as RFC 9162 §2.1.4.2; raise :class:`ProofError`.

    RFC 9162 §2.1.4.1 defines proofs for ``0 < first < second``; between equal
    sizes the proof is empty and the roots must be equal; a proof from the
    empty tree proves nothing and is refused.
    """
    if not (0 <= size1 < _U64 and 0 <= size2 < _U64) or size1 > size2:
        raise ProofError(f"the first tree (size {size1}) is larger than the second "
                         f"(size {size2})", code="invalid_sizes")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing",
                         code="invalid_sizes")
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof",
                             code="proof_too_long")
        if root1 != root2:
            raise ProofError("two trees of the same size have different roots",
                             code="root_mismatch")
        return
    # Step 1: an empty consistency_path fails.
    if not proof:
        raise ProofError("the consistency proof is empty", code="proof_too_short")
    path = list(proof)
    # Step 2: if first is an exact power of 2, prepend first_hash.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # Step 3: fn = first - 1, sn = second - 1.
    fn, sn = size1 - 1, size2 - 1
    # Step 4: if LSB(fn) is set, right-shift fn and sn until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5: fr = sr = the first value of the path.
    fr = sr = path[0]
    # Step 6: for each subsequent value c:
    for c in path[1:]:
        # 6a: if sn is 0, stop and fail.
        if sn == 0:
            raise ProofError(f"the proof has more hashes than a consistency proof from "
                             f"size {size1} to size {size2}", code="proof_too_long")
        # 6b: if LSB(fn) is set or fn == sn ...
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)  # 6b.1
            sr = node_hash(c, sr)  # 6b.2
            if not fn & 1:
                # 6b.3: right-shift until LSB(fn) is set or fn is 0.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)  # otherwise sr = HASH(0x01 || sr || c)
        # 6c: right-shift once.
        fn >>= 1
        sn >>= 1
    # Step 7: fr == first_hash, sr == second_hash, sn == 0.
    if sn != 0:
        raise ProofError(f"the proof has fewer hashes than a consistency proof from "
                         f"size {size1} to size {size2}", code="proof_too_short")
    if fr != root1:
        raise ProofError(f"the proof does not lead to the given root of the tree of size "
                         f"{size1}", code="first_root_mismatch")
    if sr != root2:
        raise ProofError(f"the proof does not lead to the given root of the tree of size "
                         f"{size2}", code="second_root_mismatch")


# --- subtrees (draft-ietf-plants-merkle-tree-certs §4) -----------------------------


def is_valid_subtree(start: int, end: int) -> bool:
    """§4.1: [start, end) is a subtree iff start < end and start is a multiple of
    BIT_CEIL(end - start) (any size may start at 0)."""
    if not 0 <= start < end < _U64:
        return False
    lowbit = start & -start
    return start == 0 or end - start <= lowbit


def verify_subtree_inclusion(leaf: bytes, index: int, start: int, end: int,
                             proof: Sequence[bytes], subtree_hash: bytes) -> None:
    """Inclusion of leaf ``index`` in the subtree [start, end) with hash ``subtree_hash``.

    A subtree's hash is MTH(D[start:end]), a tree of its own, so this is the
    RFC 9162 §2.1.3.2 check of leaf ``index - start`` in a tree of ``end - start``.
    """
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a subtree", code="invalid_subtree")
    if not start <= index < end:
        raise ProofError(f"leaf {index} is not in the subtree [{start}, {end})",
                         code="index_out_of_range")
    verify_inclusion(leaf, index - start, end - start, proof, subtree_hash)


def verify_subtree_consistency(start: int, end: int, size: int, proof: Sequence[bytes],
                               subtree_hash: bytes, root_hash: bytes) -> None:
    """§4.4: the subtree [start, end) with hash ``subtree_hash`` is part of the tree of
    ``size`` leaves with root ``root_hash``.

    The empty range [s, s) (s <= size) is part of every tree: its proof is empty
    and its hash is the empty tree's, and nothing else is checked.
    """
    if start == end and 0 <= start <= size < _U64:
        if proof:
            raise ProofError("an empty subtree needs an empty proof", code="proof_too_long")
        if subtree_hash != EMPTY_ROOT:
            raise ProofError("an empty subtree's hash is the empty tree's hash",
                             code="first_root_mismatch")
        return
    # Step 1: the subtree must be valid and inside the tree.
    if not is_valid_subtree(start, end) or not end <= size < _U64:
        raise ProofError(f"[{start}, {end}) is not a subtree of a tree of size {size}",
                         code="invalid_subtree")
    # Step 2: fn, sn, tn: paths to the subtree's first and last leaves and the tree's last.
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        # Step 3: the subtree ends at the tree's right edge: shift until fn == sn.
        while fn != sn:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    else:
        # Step 4: shift while fn != sn and LSB(sn) is set.
        while fn != sn and sn & 1:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    path = list(proof)
    if fn == sn:
        # Step 5: the subtree is a node of the tree; its hash starts both computations.
        fr = sr = subtree_hash
    else:
        # Step 6: otherwise the first proof hash does.
        if not path:
            raise ProofError("the subtree consistency proof is empty", code="proof_too_short")
        fr = sr = path.pop(0)
    # Step 7: for each remaining proof hash c:
    for c in path:
        if tn == 0:  # 7.1
            raise ProofError("the proof has more hashes than the path to the root",
                         code="proof_too_long")
        if sn & 1 or sn == tn:  # 7.2
            if fn < sn:
                fr = node_hash(c, fr)  # 7.2.1
            sr = node_hash(c, sr)  # 7.2.2
            while not sn & 1:  # 7.2.3
                fn >>= 1
                sn >>= 1
                tn >>= 1
        else:
            sr = node_hash(sr, c)  # 7.3.1
        fn >>= 1  # 7.4
        sn >>= 1
        tn >>= 1
    # Step 8: tn == 0, fr == subtree hash, sr == root hash.
    if tn != 0:
        raise ProofError("the proof has fewer hashes than the path to the root",
                         code="proof_too_short")
    if fr != subtree_hash:
        raise ProofError("the proof does not lead to the given subtree hash",
                         code="first_root_mismatch")
    if sr != root_hash:
        raise ProofError("the proof does not lead to the given root hash",
                         code="second_root_mismatch")
