"""The stored tree as C2SP tlog-tiles: tile arithmetic, reading hashes, appending.

A *tile* (c2sp.org/tlog-tiles, "Merkle Tree") is 256 consecutive hashes of
one level of the tree: level-0 tiles hold leaf hashes; a level-``L`` tile
holds the Merkle Tree Hashes of full level-``L-1`` tiles, i.e. of
``256**L`` leaves each.  The rightmost tile of each level is *partial* (1 to
255 hashes) and grows in place: a stored hash never changes, so a tile's data
only ever gets longer, and a wider copy serves every narrower view of it.

Only the tiles are stored, as C2SP serves them: a tile's *inner nodes*
(:func:`tile_nodes`, the 7 levels it spans between its hashes and the level
above) are computed when a proof needs them, and the ledger keeps those of
recently used tiles in memory.  The partial level-0 tile is not stored at all:
its hashes are the leaf hashes of the entries since the last full tile, which
the entries' rows hold; it is read from them.

:class:`TileHashReader` turns tiles into a :class:`~ledger_adapter.merkle.HashReader`,
so any proof reads a handful of tiles: O(log n) work.  :func:`extend` computes
the tiles that change when a batch of leaves is appended, from the right edge
of the tree only (:class:`Edge`: one partial tile per level and the roots of
the perfect subtrees on the edge), hashing about one node per leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ledger_adapter.errors import StoreError
from ledger_adapter.merkle import EMPTY_ROOT, HASH_SIZE, parent_hashes, split_stored_hash_index

__all__ = [
    "EMPTY_EDGE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Edge",
    "Extension",
    "StoredTile",
    "TileHashReader",
    "TileKey",
    "TileReader",
    "edge_from_tiles",
    "edge_keys",
    "edge_root",
    "extend",
    "extend_nodes",
    "tile_nodes",
    "tile_path",
    "tile_root",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes
_FULL = TILE_WIDTH * HASH_SIZE  # 8,192 bytes
_sha256 = hashlib.sha256

#: (level, index) of a tile, as in ``<prefix>/tile/<L>/<N>``.
TileKey = tuple[int, int]


class StoredTile(NamedTuple):
    """A tile: its hashes (the C2SP tile) and its inner nodes (``b""`` if not computed)."""

    hashes: bytes
    nodes: bytes


class TileReader(Protocol):
    """Storage of tiles: returns the stored tiles (at least as wide as needed)."""

    def read_tiles(self, keys: Sequence[TileKey]) -> Mapping[TileKey, StoredTile]: ...


def tile_path(key: TileKey, width: int = TILE_WIDTH) -> str:
    """The tile's C2SP resource path, e.g. ``tile/0/x001/x234/067.p/12``."""
    level, n = key
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    path = f"tile/{level}/" + "/".join(reversed(parts))
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


def _perfect_root(data: bytes, start: int, end: int) -> bytes:
    """Merkle Tree Hash of hashes ``data[start:end]`` (a power-of-two count)."""
    level = [data[i * HASH_SIZE:(i + 1) * HASH_SIZE] for i in range(start, end)]
    while len(level) > 1:
        level = parent_hashes(level)
    return level[0]


def tile_root(data: bytes) -> bytes:
    """The hash a full tile contributes to the level above."""
    if len(data) != _FULL:
        raise StoreError("only a full tile has a hash in the level above", code="bad_tile")
    return _perfect_root(data, 0, TILE_WIDTH)


def tile_nodes(data: bytes) -> bytes:
    """A tile's inner nodes: for k = 1, 2, ... the Merkle Tree Hash of each complete
    aligned run of 2**k of its hashes, level after level.

    A tile of width w has ``w >> k`` nodes at level k; a full tile's last node
    (k = 8) is its hash in the level above.
    """
    sha = _sha256
    out: list[bytes] = []
    level = data
    while len(level) >= 2 * HASH_SIZE:
        level = b"".join([sha(b"\x01" + level[i:i + 2 * HASH_SIZE]).digest()
                          for i in range(0, len(level) - 2 * HASH_SIZE + 1, 2 * HASH_SIZE)])
        out.append(level)
    return b"".join(out)


def extend_nodes(hashes: bytes, old_width: int, old_nodes: bytes) -> bytes:
    """:func:`tile_nodes` of ``hashes``, reusing the nodes of its first ``old_width`` hashes.

    A tile only grows, and its complete subtrees never change, so appending
    hashes only adds nodes: about one per new hash.
    """
    width = len(hashes) // HASH_SIZE
    if len(old_nodes) != _node_offset(old_width, TILE_HEIGHT + 1, 0):
        old_width, old_nodes = 0, b""  # unknown or inconsistent: recompute
    sha = _sha256
    out: list[bytes] = []
    below = hashes
    k = 1
    while width >> k:
        n_old, n_new = old_width >> k, width >> k
        at = _node_offset(old_width, k, 0)
        level = old_nodes[at:at + n_old * HASH_SIZE] + b"".join(
            [sha(b"\x01" + below[2 * j * HASH_SIZE:(2 * j + 2) * HASH_SIZE]).digest()
             for j in range(n_old, n_new)])
        out.append(level)
        below = level
        k += 1
    return b"".join(out)


def _node_offset(width: int, k: int, j: int) -> int:
    """Where node j of level k >= 1 starts in the inner nodes of a tile of ``width``."""
    if width <= TILE_WIDTH and k <= TILE_HEIGHT + 1:
        return (_NODES_BELOW[width][k] + j) * HASH_SIZE
    return (sum(width >> i for i in range(1, k)) + j) * HASH_SIZE


#: _NODES_BELOW[width][k]: how many inner nodes a tile of ``width`` has below level k
_NODES_BELOW = [[sum(w >> i for i in range(1, k)) for k in range(TILE_HEIGHT + 2)]
                for w in range(TILE_WIDTH + 1)]


def _locate(index: int) -> tuple[TileKey, int, int]:
    """The tile holding stored hash ``index`` and the run of its hashes that make it."""
    level, n = split_stored_hash_index(index)
    tile_level, inner = divmod(level, TILE_HEIGHT)
    tile_n = (n << inner) >> TILE_HEIGHT
    within = n - ((tile_n << TILE_HEIGHT) >> inner)
    return (tile_level, tile_n), within << inner, (within + 1) << inner


class TileHashReader:
    """A :class:`~ledger_adapter.merkle.HashReader` over stored tiles."""

    def __init__(self, tiles: TileReader) -> None:
        self._tiles = tiles

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        plan = [_locate(i) for i in indexes]
        covering = getattr(self._tiles, "read_tiles_covering", None)
        if covering is not None:  # a reader that can serve a narrower cached partial tile
            need: dict[TileKey, int] = {}
            for key, _, end in plan:
                if need.get(key, 0) < end:
                    need[key] = end
            data = covering(need)
        else:
            data = self._tiles.read_tiles(sorted({key for key, _, _ in plan}))
        out: list[bytes] = []
        for key, start, end in plan:
            stored = data.get(key)
            if stored is None or len(stored.hashes) < end * HASH_SIZE:
                raise StoreError(f"tile {tile_path(key)} is missing or too short",
                                 code="missing_tile")
            tile = stored.hashes
            if end - start == 1:
                out.append(tile[start * HASH_SIZE:end * HASH_SIZE])
                continue
            k = (end - start).bit_length() - 1
            at = _node_offset(len(tile) // HASH_SIZE, k, start >> k)
            node = stored.nodes[at:at + HASH_SIZE]
            out.append(node if len(node) == HASH_SIZE else _perfect_root(tile, start, end))
        return out


# --- appending ------------------------------------------------------------------------


def _levels(size: int) -> int:
    """How many tile levels a tree of ``size`` leaves has (0 for the empty tree)."""
    levels = 0
    while size >> (TILE_HEIGHT * levels):
        levels += 1
    return levels


def edge_keys(size: int) -> list[TileKey]:
    """The partial tiles (one per level, if non-empty) on the right edge of ``size``."""
    out: list[TileKey] = []
    for level in range(_levels(size)):
        count = size >> (TILE_HEIGHT * level)
        if count % TILE_WIDTH:
            out.append((level, count >> TILE_HEIGHT))
    return out


def _check_edge(size: int, edge: Mapping[int, bytes]) -> None:
    for level in range(_levels(size) + 1):
        width = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
        got = len(edge.get(level, b""))
        if got != width * HASH_SIZE:
            raise StoreError(f"the partial tile at level {level} has {got // HASH_SIZE} "
                             f"hashes; a tree of size {size} needs {width}", code="bad_tile")
    extra = [lv for lv, d in edge.items() if d and lv > _levels(size)]
    if extra:
        raise StoreError(f"unexpected partial tiles at levels {extra}", code="bad_tile")


def edge_root(size: int, edge: Mapping[int, bytes], nodes: Mapping[int, bytes] | None = None
              ) -> bytes:
    """MTH(D[0:size]) from the partial tiles on the right edge (``edge[level]``).

    The tree is the run of perfect subtrees that the binary digits of ``size``
    describe, largest (leftmost) first; each lies in one partial tile, as one
    of its hashes or inner nodes (taken from ``nodes[level]`` when given,
    hashed otherwise).  Their Merkle Tree Hash is their right fold (RFC 9162
    §2.1.1).
    """
    _check_edge(size, edge)
    parts: list[bytes] = []
    for level in range(_levels(size) - 1, -1, -1):
        data = edge.get(level, b"")
        inner = nodes.get(level, b"") if nodes is not None else b""
        width = len(data) // HASH_SIZE
        if len(inner) != _node_offset(width, TILE_HEIGHT + 1, 0):
            inner = b""
        offset = 0
        for bit in range(TILE_HEIGHT - 1, -1, -1):
            if width >> bit & 1:
                if bit == 0:
                    parts.append(data[offset * HASH_SIZE:(offset + 1) * HASH_SIZE])
                elif inner:
                    at = _node_offset(width, bit, offset >> bit)
                    parts.append(inner[at:at + HASH_SIZE])
                else:
                    parts.append(_perfect_root(data, offset, offset + (1 << bit)))
                offset += 1 << bit
    if not parts:
        return EMPTY_ROOT
    h = parts[-1]
    sha = _sha256
    for left in reversed(parts[:-1]):
        h = sha(b"\x01" + left + h).digest()
    return h


@dataclass(frozen=True, slots=True)
class Edge:
    """The right edge of a tree of ``size`` leaves: all that appending needs.

    ``tiles[level]``: the hashes of that level's partial tile (levels whose
    partial tile is empty are left out); ``frontier[height]``: the hash of the
    perfect subtree of ``2**height`` leaves on the right edge, one for each
    bit set in ``size`` (RFC 9162 §2.1.1: the tree is their right fold).
    """

    size: int
    tiles: dict[int, bytes]
    frontier: dict[int, bytes]

    def root(self) -> bytes:
        """MTH(D[0:size])."""
        if not self.frontier:
            return EMPTY_ROOT
        heights = sorted(self.frontier)  # smallest (rightmost) first
        h = self.frontier[heights[0]]
        sha = _sha256
        for height in heights[1:]:
            h = sha(b"\x01" + self.frontier[height] + h).digest()
        return h


#: the edge of the empty tree
EMPTY_EDGE = Edge(0, {}, {})


def edge_from_tiles(size: int, tiles: Mapping[int, bytes]) -> Edge:
    """The edge of a tree of ``size`` leaves from its partial tiles (``tiles[level]``).

    Each perfect subtree on the right edge lies in one partial tile: it is
    hashed from that tile's hashes (at most 255 node hashes per level).
    Raises :class:`StoreError` if a tile has the wrong width.
    """
    _check_edge(size, tiles)
    frontier: dict[int, bytes] = {}
    for level in range(_levels(size)):
        data = tiles.get(level, b"")
        width = len(data) // HASH_SIZE
        offset = 0
        for bit in range(TILE_HEIGHT - 1, -1, -1):
            if width >> bit & 1:
                frontier[TILE_HEIGHT * level + bit] = _perfect_root(data, offset,
                                                                    offset + (1 << bit))
                offset += 1 << bit
    return Edge(size, {lv: d for lv, d in tiles.items() if d}, frontier)


@dataclass(frozen=True, slots=True)
class Extension:
    """What appending a batch changes: the tiles to store, the new edge and root.

    ``tiles`` holds every tile that fills and the partial tile of each level
    >= 1 that grows; the partial level-0 tile is not in it (nor stored): its
    hashes are the entries' leaf hashes, which the entries' rows hold.
    """

    size: int
    tiles: dict[TileKey, bytes]
    edge: Edge
    root: bytes


def extend(edge: Edge, leaf_hashes: Sequence[bytes]) -> Extension:
    """Append ``leaf_hashes`` to the tree whose right edge is ``edge``.

    The batch is merged into the frontier height by height (a compact range):
    every new node is hashed once, about one node hash per leaf, and the new
    nodes at heights 0, 8, 16, ... are the new hashes of tile levels 0, 1, 2, ...
    """
    size = edge.size
    frontier = dict(edge.frontier)
    partial = dict(edge.tiles)
    tiles: dict[TileKey, bytes] = {}
    cur = list(leaf_hashes)
    if cur and set(map(len, cur)) != {HASH_SIZE}:  # map/set: no Python frame per hash
        raise StoreError("every leaf hash must be 32 bytes", code="bad_leaf")
    height = 0
    while cur:
        level, inner = divmod(height, TILE_HEIGHT)
        if not inner:
            # cur: the new hashes of tile level `level`, from index size >> height on
            count = size >> height
            data = partial.pop(level, b"") + b"".join(cur)
            first = count >> TILE_HEIGHT
            full = len(data) // _FULL
            for i in range(full):
                tiles[(level, first + i)] = data[i * _FULL:(i + 1) * _FULL]
            rest = data[full * _FULL:]
            if rest:
                partial[level] = rest
                if level:
                    tiles[(level, first + full)] = rest
        if size >> height & 1:  # the left sibling of the first new node is on the edge
            cur.insert(0, frontier.pop(height))
        n = len(cur)
        if n & 1:
            frontier[height] = cur[-1]
        cur = parent_hashes(cur)  # an odd last node waits on the edge (frontier above)
        height += 1
    new = Edge(size + len(leaf_hashes), partial, frontier)
    return Extension(new.size, tiles, new, new.root())
