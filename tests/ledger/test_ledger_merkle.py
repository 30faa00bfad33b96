"""Properties of the Merkle core and the tiles, against the RFC's own definitions.

The reference below transcribes RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and
§2.1.4.1 (PROOF/SUBPROOF) recursively over lists, as written; the code under
test reads stored hashes (a flat list, Go tlog style, or C2SP tiles).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger_adapter import merkle, tile
from ledger_adapter.errors import ProofError

# --- the RFC, transcribed ---------------------------------------------------------------


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


# --- stored hashes: a flat list, and tiles ----------------------------------------------


class ListReader:
    """All stored hashes in one list (what Go's tlog stores)."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.size = 0
        self.reads = 0

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        self.reads += len(indexes)
        return [self.hashes[i] for i in indexes]

    def append(self, leaf: bytes) -> None:
        self.hashes.extend(merkle.stored_hashes(self.size, leaf, self))
        self.size += 1


class DictTiles:
    def __init__(self) -> None:
        self.tiles: dict[tile.TileKey, tile.StoredTile] = {}

    def read_tiles(self, keys: Sequence[tile.TileKey]
                   ) -> Mapping[tile.TileKey, tile.StoredTile]:
        return {k: self.tiles[k] for k in keys if k in self.tiles}


def build(data: Sequence[bytes], batches: Sequence[int], partial0: bool = True
          ) -> tuple[DictTiles, bytes]:
    """Append ``data``'s leaves in batches of the given sizes; return tiles and root.

    ``partial0``: add the partial level-0 tile (which the ledger reads from its entries)."""
    store = DictTiles()
    edge, root = tile.EMPTY_EDGE, merkle.EMPTY_ROOT
    i = 0
    leaves = [merkle.leaf_hash(x) for x in data]
    for b in [*list(batches), len(data)]:
        chunk = leaves[i:i + max(b, 0)] if b else []
        if not chunk:
            continue
        ext = tile.extend(edge, chunk)
        assert all(lv > 0 or len(h) == 8192 for (lv, _), h in ext.tiles.items())
        store.tiles.update((k, tile.StoredTile(h, b"")) for k, h in ext.tiles.items())
        edge, root = ext.edge, ext.root
        assert root == merkle.root(leaves[:edge.size])
        assert tile.edge_from_tiles(edge.size, edge.tiles) == edge
        i += len(chunk)
        if i >= len(data):
            break
    if partial0 and edge.size % 256:
        store.tiles[(0, edge.size // 256)] = tile.StoredTile(edge.tiles[0], b"")
    return store, root


leaf_data = st.lists(st.binary(max_size=8), min_size=1, max_size=700)


@settings(max_examples=60, deadline=None)
@given(leaf_data, st.data())
def test_stored_hash_proofs_equal_the_rfc(data: list[bytes], draw: st.DataObject) -> None:
    reader = ListReader()
    for x in data:
        reader.append(merkle.leaf_hash(x))
    n = len(data)
    assert reader.size == n
    assert merkle.stored_hash_count(n) == len(reader.hashes)
    size = draw.draw(st.integers(1, n))
    index = draw.draw(st.integers(0, size - 1))
    old = draw.draw(st.integers(1, size))
    assert merkle.tree_hash(size, reader) == ref_mth(data[:size])
    assert merkle.root([merkle.leaf_hash(x) for x in data[:size]]) == ref_mth(data[:size])
    reader.reads = 0
    assert merkle.inclusion_proof(index, size, reader) == ref_path(index, data[:size])
    assert reader.reads <= 2 * max(1, size.bit_length()) ** 2  # O(log n) reads, not O(n)
    assert merkle.consistency_proof(old, size, reader) == ref_subproof(old, data[:size], True)


@given(st.integers(0, 10**6))
def test_stored_hash_index_round_trips(index: int) -> None:
    level, n = merkle.split_stored_hash_index(index)
    assert merkle.stored_hash_index(level, n) == index


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.lists(st.integers(1, 700), max_size=8), st.data())
def test_tiles_give_every_proof(n: int, batches: list[int], draw: st.DataObject) -> None:
    data = [i.to_bytes(4, "big") for i in range(n)]
    store, root = build(data, batches)
    assert root == ref_mth(data)
    reader = tile.TileHashReader(store)
    size = draw.draw(st.integers(1, n))
    index = draw.draw(st.integers(0, size - 1))
    old = draw.draw(st.integers(1, size))
    want_root = ref_mth(data[:size])
    assert merkle.tree_hash(size, reader) == want_root
    path = merkle.inclusion_proof(index, size, reader)
    assert path == ref_path(index, data[:size])
    merkle.verify_inclusion(merkle.leaf_hash(data[index]), index, size, path, want_root)
    proof = merkle.consistency_proof(old, size, reader)
    assert proof == ref_subproof(old, data[:size], True)
    merkle.verify_consistency(old, size, proof, ref_mth(data[:old]), want_root)


def flip(b: bytes, bit: int) -> bytes:
    i = bit % (8 * len(b))
    return b[:i // 8] + bytes([b[i // 8] ^ (1 << (i % 8))]) + b[i // 8 + 1:]


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 300), st.data())
def test_flipping_any_bit_breaks_an_inclusion_proof(n: int, draw: st.DataObject) -> None:
    data = [i.to_bytes(2, "big") for i in range(n)]
    index = draw.draw(st.integers(0, n - 1))
    leaf, root, path = merkle.leaf_hash(data[index]), ref_mth(data), ref_path(index, data)
    target = draw.draw(st.sampled_from(["leaf", "root", "proof"]))
    bit = draw.draw(st.integers(0, 10**6))
    if target == "leaf":
        leaf = flip(leaf, bit)
    elif target == "root":
        root = flip(root, bit)
    else:
        assume(path)
        j = bit % len(path)
        path = [*path[:j], flip(path[j], bit // len(path)), *path[j + 1:]]
    try:
        merkle.verify_inclusion(leaf, index, n, path, root)
    except ProofError as e:
        assert e.code == "root_mismatch"
    else:
        raise AssertionError(f"a flipped {target} bit still verified")


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 300), st.data())
def test_flipping_any_bit_breaks_a_consistency_proof(n: int, draw: st.DataObject) -> None:
    data = [i.to_bytes(2, "big") for i in range(n)]
    m = draw.draw(st.integers(1, n - 1))
    root1, root2, proof = ref_mth(data[:m]), ref_mth(data), ref_subproof(m, data, True)
    merkle.verify_consistency(m, n, proof, root1, root2)
    target = draw.draw(st.sampled_from(["root1", "root2", "proof"]))
    bit = draw.draw(st.integers(0, 10**6))
    if target == "root1":
        root1 = flip(root1, bit)
    elif target == "root2":
        root2 = flip(root2, bit)
    else:
        j = bit % len(proof)
        proof = [*proof[:j], flip(proof[j], bit // len(proof)), *proof[j + 1:]]
    try:
        merkle.verify_consistency(m, n, proof, root1, root2)
    except ProofError as e:
        assert e.code in {"first_root_mismatch", "second_root_mismatch"}
    else:
        raise AssertionError(f"a flipped {target} bit still verified")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.data())
def test_subtree_proofs_verify(n: int, draw: st.DataObject) -> None:
    """Consistency proofs are subtree consistency proofs of [0, m); inclusion in a subtree."""
    data = [i.to_bytes(2, "big") for i in range(n)]
    m = draw.draw(st.integers(1, n))
    merkle.verify_subtree_consistency(0, m, n, ref_subproof(m, data, True),
                                      ref_mth(data[:m]), ref_mth(data))
    # every aligned power-of-two subtree inside the tree
    level = draw.draw(st.integers(0, max(0, (n.bit_length() - 1))))
    width = 1 << level
    start = draw.draw(st.integers(0, max(0, n // width - 1))) * width
    assume(start + width <= n)
    sub = data[start:start + width]
    i = draw.draw(st.integers(0, width - 1))
    merkle.verify_subtree_inclusion(merkle.leaf_hash(sub[i]), start + i, start, start + width,
                                    ref_path(i, sub), ref_mth(sub))


def test_tile_paths_follow_c2sp() -> None:
    assert tile.tile_path((0, 1234067)) == "tile/0/x001/x234/067"
    assert tile.tile_path((1, 5), 17) == "tile/1/005.p/17"
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
    # level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
    # 17, and one partial level 2 tile of width 1"
    store, _ = build([i.to_bytes(4, "big") for i in range(70_000)], [], partial0=False)
    widths = {k: len(v.hashes) // 32 for k, v in store.tiles.items()}
    assert sum(1 for (lv, _), w in widths.items() if lv == 0 and w == 256) == 273
    # (the partial level-0 tile is not stored: the entries hold its hashes)
    assert (0, 273) not in widths and widths[(1, 0)] == 256 and widths[(1, 1)] == 17
    assert widths[(2, 0)] == 1 and len(widths) == 273 + 3
    assert tile.edge_keys(70_000) == [(0, 273), (1, 1), (2, 0)]


@given(st.integers(1, 256))
def test_inner_nodes_are_the_subtree_hashes(width: int) -> None:
    hashes = [i.to_bytes(32, "big") for i in range(width)]
    nodes = tile.tile_nodes(b"".join(hashes))
    assert len(nodes) == 32 * sum(width >> k for k in range(1, 9))
    k, at = 1, 0
    while width >> k:
        for j in range(width >> k):
            want = merkle.root(hashes[j << k:(j + 1) << k]) if k else hashes[j]
            assert nodes[at:at + 32] == want
            at += 32
        k += 1


@given(st.integers(0, 256), st.integers(0, 256))
def test_inner_nodes_grow_incrementally(old: int, new: int) -> None:
    old, new = min(old, new), max(old, new)
    hashes = b"".join(i.to_bytes(32, "big") for i in range(new))
    before = tile.tile_nodes(hashes[:old * 32])
    assert tile.extend_nodes(hashes, old, before) == tile.tile_nodes(hashes)
    assert tile.extend_nodes(hashes, old, b"junk") == tile.tile_nodes(hashes)


def test_proofs_do_not_need_the_inner_nodes() -> None:
    """Without stored inner nodes the reader recomputes them: same proofs."""
    data = [i.to_bytes(4, "big") for i in range(5000)]
    store, _ = build(data, [777])
    bare = DictTiles()
    bare.tiles = {k: tile.StoredTile(v.hashes, b"") for k, v in store.tiles.items()}
    for index in (0, 1, 255, 256, 4095, 4999):
        a = merkle.inclusion_proof(index, 5000, tile.TileHashReader(store))
        b = merkle.inclusion_proof(index, 5000, tile.TileHashReader(bare))
        assert a == b == ref_path(index, data)
