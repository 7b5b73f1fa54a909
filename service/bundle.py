"""The model bundle: one folder per trained model, written by training, read by one loader.

Layout::

    <bundle>/
      bundle.json          version, taxonomy, thresholds, base model, data fingerprint,
                           hyper-parameters, created at, metrics
      README.md            the model card
      model.safetensors    the classifier's weights (encoder + heads), fp32
      encoder/config.json  the encoder's architecture (no download needed to load)
      tokenizer.json, tokenizer_config.json

``models/current`` is a relative symlink to the bundle used when none is given; it is
replaced atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase
from transformers.initialization import no_init_weights

from service.locks import claim
from service.modeling import ThemeClassifier, load_encoder

BUNDLE_FORMAT = 1
META_FILE = "bundle.json"
WEIGHTS_FILE = "model.safetensors"
ENCODER_DIR = "encoder"
CURRENT_LINK = "current"
TAXONOMY_FILE = "taxonomy.yaml"
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_META = ("version", "theme_ids", "sentiment_labels", "thresholds", "taxonomy_version")
BACKENDS = ("auto", "torch", "torch-bf16", "onnx")  # the values of CXTHEMES_BACKEND
EXPORT_LOCK = ".export.lock"
# The weights' fingerprint read at every ONNX load: the size and 16 blocks of 64 KiB spread
# over the file plus its last block (where safetensors puts the heads, sorted after
# encoder.*), about 1 ms. The full sha256 took 0.6-1.0 s on the 470 MB weights even from the
# page cache (more from disk), as long as the ONNX session takes to load, for the backend
# chosen to start fast without reading those weights: it is recorded at export and checked
# by `export-onnx --if-missing` (:func:`export_matches_weights`), not at every load.
FINGERPRINT_BLOCKS = 16
FINGERPRINT_BLOCK = 64 * 1024

log = logging.getLogger(__name__)


class BundleError(RuntimeError):
    """A bundle is missing, incomplete or unreadable."""


class BundleBusyError(BundleError):
    """Another process is exporting the bundle or checking its precision right now."""


@dataclass
class Bundle:
    """A loaded model bundle: its metadata, the classifier and the tokenizer."""

    path: Path
    meta: dict[str, Any]
    model: ThemeClassifier
    tokenizer: PreTrainedTokenizerBase
    backend: str = "torch"

    @property
    def backend_detail(self) -> str:
        """The backend, naming the ONNX graph: torch, torch-bf16, onnx-fp32 or onnx-int8."""
        if self.backend != "onnx":
            return self.backend
        from service.backends import ONNX_INT8

        return "onnx-int8" if Path(self.model.onnx_path).name == ONNX_INT8 else "onnx-fp32"

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def theme_ids(self) -> list[str]:
        return list(self.meta["theme_ids"])

    @property
    def sentiment_labels(self) -> list[str]:
        return list(self.meta["sentiment_labels"])

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.meta["thresholds"].items()}


def save_bundle(
    path: str | Path,
    model: ThemeClassifier,
    tokenizer: PreTrainedTokenizerBase,
    meta: dict[str, Any],
    card: str | None = None,
    taxonomy_text: str | None = None,
) -> Path:
    """Write a bundle atomically: into ``<path>.partial`` (never taken for a model, see
    :func:`is_work_folder`), then renamed into place. ``taxonomy_text``: the taxonomy file
    the model was trained with, kept beside it."""
    missing = set(REQUIRED_META) - meta.keys()
    if missing:
        raise ValueError(f"bundle metadata lacks {sorted(missing)}")
    out = Path(path)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
    model.encoder.config.save_pretrained(tmp / ENCODER_DIR)
    tokenizer.save_pretrained(tmp)
    if card is not None:
        (tmp / "README.md").write_text(card, encoding="utf-8")
    if taxonomy_text is not None:
        (tmp / TAXONOMY_FILE).write_text(taxonomy_text, encoding="utf-8")
    # bundle.json last: a folder that has it has everything else.
    meta = {"format": BUNDLE_FORMAT, **meta}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def is_work_folder(path: str | Path) -> bool:
    """A bundle still being written (``<version>.partial``) or a hidden work folder such as
    ``.checkpoints``: never listed or made current, even if a kill left it complete."""
    name = Path(path).name
    return name.endswith(".partial") or name.startswith(".")


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read ``bundle.json`` of the bundle at ``path`` without loading weights."""
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{path} is not a model bundle (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path} is not a JSON object")
    return meta


def _check_contents(root: Path, meta: dict[str, Any]) -> None:
    """Refuse, naming the file, a bundle whose metadata or files are incomplete, or whose
    themes disagree with the taxonomy it carries (the torch backends' encoder config is
    checked as they load)."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise BundleError(f"{root / META_FILE} lacks {', '.join(missing)}")
    themes, thresholds = meta["theme_ids"], meta["thresholds"]
    if not isinstance(themes, list) or not isinstance(thresholds, dict):
        raise BundleError(f"{root / META_FILE}: theme_ids must be a list, thresholds an object")
    if set(themes) - thresholds.keys():
        raise BundleError(
            f"{root / META_FILE}: no threshold for {sorted(set(themes) - thresholds.keys())}"
        )
    for name in (WEIGHTS_FILE, TOKENIZER_FILE):
        if not (root / name).is_file():
            raise BundleError(f"{root}: missing {name}")
    own = root / TAXONOMY_FILE
    if own.is_file():
        from service.taxonomy import parse_taxonomy

        try:
            import yaml

            taxonomy = parse_taxonomy(yaml.safe_load(own.read_text(encoding="utf-8")))
        except Exception as exc:  # YAML, a missing key, a wrong type: all mean unreadable
            raise BundleError(f"{own} is not a valid taxonomy: {exc}") from exc
        if taxonomy.version != str(meta["taxonomy_version"]):
            raise BundleError(
                f"{root}: {META_FILE} says taxonomy version {meta['taxonomy_version']} but its "
                f"{TAXONOMY_FILE} is version {taxonomy.version}"
            )
        if taxonomy.theme_ids != list(themes):
            raise BundleError(
                f"{root}: the themes in {META_FILE} differ from its {TAXONOMY_FILE} "
                f"(taxonomy version {taxonomy.version})"
            )


# What `cxthemes export-onnx` records in a bundle.json after training: its graphs and checks.
EXPORT_RECORDS = ("onnx", "bf16")


def export_records_changed(bundle: Bundle) -> bool:
    """Whether ``export-onnx`` has added, redone or removed a graph or precision check in the
    bundle's folder since the bundle was loaded, so that the backend ``auto`` chooses may now
    be another (``make student`` makes a student current before it exports it). An unreadable
    bundle.json counts as unchanged: the next look decides."""
    try:
        meta = read_meta(bundle.path)
    except BundleError:
        return False
    return any(meta.get(key) != bundle.meta.get(key) for key in EXPORT_RECORDS)


def write_meta(path: str | Path, meta: dict[str, Any]) -> None:
    """Replace ``bundle.json`` atomically (used to add evaluation figures after training)."""
    meta_path = Path(path) / META_FILE
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, meta_path)


def load_bundle(
    path: str | Path,
    device: str = "cpu",
    backend: str = "torch",
    spin_threads: bool = True,
    threads: int | None = None,
) -> Bundle:
    """Load the bundle at ``path`` (weights, tokenizer, metadata); raise BundleError if broken.

    ``backend``: ``torch``, ``torch-bf16`` (the torch model under CPU bf16 autocast), ``onnx``
    (the bundle's ONNX export, CPU only: the int8 graph if its export passed the accuracy gate,
    else the fp32 graph) or ``auto``: on the CPU, the int8 graph if it passed its gate, else
    ``torch-bf16`` if the bundle passed its bf16 check and the CPU computes bf16 natively,
    else the fp32 graph if the bundle has an export, else ``torch``. ``onnx-int8`` and
    ``onnx-fp32`` pick a graph explicitly. A graph is served only if ``bundle.json`` records
    it and the weights it was exported from (:func:`_onnx_graph`); where it is not, or cannot
    be loaded, ``auto`` logs why and serves torch, the others refuse. ``spin_threads=False``
    lets ONNX Runtime's idle threads sleep instead of busy-waiting (for a server that shares
    its cores with an event loop); ``threads`` sets ONNX Runtime's intra-op threads (default:
    as many as torch uses).
    """
    from service.backends import ONNX_FP32, ONNX_INT8

    root = Path(path)
    meta = read_meta(root)
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{root}: unsupported bundle format {meta.get('format')!r}")
    if backend not in (*BACKENDS, "onnx-int8", "onnx-fp32"):
        raise BundleError(f"unknown backend {backend!r}: use auto, torch, torch-bf16 or onnx")
    requested = backend
    _check_contents(root, meta)
    onnx_path: Path | None = None
    if backend == "auto":
        backend, onnx_path = _auto_backend(root, meta, device)
    elif backend.startswith("onnx"):
        # ONNX Runtime is run with the CPU provider only: on another device it would quietly
        # compute on the CPU, as torch-bf16 is refused there.
        if device != "cpu":
            raise BundleError(
                f"{_setting(requested)} runs on the CPU only, not on {device} "
                "(CXTHEMES_DEVICE); set CXTHEMES_BACKEND=torch or auto"
            )
        graph = {"onnx-int8": ONNX_INT8, "onnx-fp32": ONNX_FP32}.get(backend)
        onnx_path, problem = _onnx_graph(root, meta, graph)
        if onnx_path is None:
            raise BundleError(f"{root}: {_setting(requested)}: {problem}; {_REDO}")
        backend = "onnx"
    elif backend == "torch-bf16" and device != "cpu":
        raise BundleError(
            f"{_setting(requested)}: the torch-bf16 backend runs on the CPU only, not on "
            f"{device}; set CXTHEMES_BACKEND=torch or auto"
        )
    weights = root / WEIGHTS_FILE
    try:
        model: Any = None
        if onnx_path is not None:
            try:
                from service.backends.onnx_model import OnnxThemeClassifier

                model = OnnxThemeClassifier(
                    onnx_path, weights, threads=threads, spin_threads=spin_threads
                )
            except Exception as exc:  # onnxruntime missing, a corrupt graph: its own types
                cause = f"cannot load {onnx_path.relative_to(root)}: {type(exc).__name__}: {exc}"
                if requested != "auto":
                    raise BundleError(f"{root}: {_setting(requested)}: {cause}; {_REDO}") from exc
                # The torch model is the same model, only slower: serving it beats no service.
                log.warning("%s: %s; serving the torch model instead", root, cause)
                backend = "torch"
        if model is None:
            model = _load_torch(root, meta, device, bf16=backend == "torch-bf16")
        # After the weights: a damaged bundle is refused before the slow tokenizer load.
        tokenizer = AutoTokenizer.from_pretrained(root)
    except BundleError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise BundleError(f"{root}: cannot load bundle: {exc}") from exc
    except Exception as exc:  # a tokenizer or config error of an unexpected type
        raise BundleError(f"{root}: cannot load bundle: {type(exc).__name__}: {exc}") from exc
    return Bundle(path=root, meta=meta, model=model, tokenizer=tokenizer, backend=backend)


_REDO = "re-run cxthemes export-onnx, or set CXTHEMES_BACKEND=torch"


def _setting(backend: str) -> str:
    """How ``backend`` was asked for, for an error message: the setting that chose it, or the
    explicit graph (``onnx-int8``, ``onnx-fp32``: the export's checks and benchmarks)."""
    return f"CXTHEMES_BACKEND={backend}" if backend in BACKENDS else f"backend {backend}"


def _load_torch(root: Path, meta: dict[str, Any], device: str, bf16: bool) -> torch.nn.Module:
    """The torch model from the bundle's weights, on ``device``; under bf16 autocast if
    ``bf16``."""
    weights = root / WEIGHTS_FILE
    if not (root / ENCODER_DIR / "config.json").is_file():
        raise BundleError(f"{root}: missing {ENCODER_DIR}/config.json")
    config = AutoConfig.from_pretrained(root / ENCODER_DIR)
    # Built without initialising its weights, which the file's tensors then replace
    # (assign): the empty parameters are never written, so they take no memory, and
    # the load peaks at one copy of the weights instead of two (1.6 GB -> 1.1 GB).
    with no_init_weights():
        model = ThemeClassifier(
            load_encoder("", config=config),
            n_themes=len(meta["theme_ids"]),
            n_sentiments=len(meta["sentiment_labels"]),
        )
    try:
        state = load_file(str(weights))
    except SafetensorError as exc:
        raise BundleError(f"{weights} is truncated or corrupt: {exc}") from exc
    model.load_state_dict(state, strict=True, assign=True)
    model.eval().to(torch.device(device))
    if bf16:
        from service.backends.bf16 import Bf16ThemeClassifier

        return Bf16ThemeClassifier(model).eval()
    return model


def _auto_backend(root: Path, meta: dict[str, Any], device: str) -> tuple[str, Path | None]:
    """The fastest backend that keeps the model's decisions here (see :func:`load_bundle`),
    with the ONNX graph it serves, if any."""
    from service.backends import ONNX_DIR, ONNX_INT8

    if device != "cpu":
        return "torch", None
    graph, problem = _onnx_graph(root, meta)
    if graph is not None and graph.name == ONNX_INT8:
        return "onnx", graph
    from service.backends.bf16 import cpu_has_native_bf16

    if (meta.get("bf16") or {}).get("accepted") and cpu_has_native_bf16():
        return "torch-bf16", None
    if graph is not None:
        return "onnx", graph
    if "onnx" in meta or (root / ONNX_DIR).exists():  # an export, but not one to serve
        log.warning("%s: %s; serving the torch model (re-run cxthemes export-onnx)", root, problem)
    return "torch", None


def _onnx_graph(
    root: Path, meta: dict[str, Any], graph: str | None = None
) -> tuple[Path | None, str]:
    """The ONNX graph to serve (``graph``, else the int8 graph if it passed its gate, else the
    fp32 graph) and ``""``, or ``None`` and why there is none. A graph is served only if the
    export in ``bundle.json`` lists it and was made from the bundle's weights: a bundle copied
    over an exported folder (``cp -r new/. served/``) keeps the old graphs, which are another
    model."""
    from service.backends import ONNX_DIR, ONNX_FP32, ONNX_INT8

    export = meta.get("onnx")
    if not isinstance(export, dict):
        left = " (the graphs in onnx/ are left from another model)" * (root / ONNX_DIR).exists()
        return None, f"{META_FILE} records no ONNX export{left}"
    listed = set(export.get("files") or [])
    if graph is None:
        graph = ONNX_FP32
        if export.get("int8_accepted"):
            if f"{ONNX_DIR}/{ONNX_INT8}" in listed and (root / ONNX_DIR / ONNX_INT8).is_file():
                graph = ONNX_INT8
            else:  # the fp32 graph is the model itself: the slower exact answer
                log.warning(
                    "%s: the int8 graph passed its check but %s/%s is missing; not served "
                    "(re-run cxthemes export-onnx)",
                    root,
                    ONNX_DIR,
                    ONNX_INT8,
                )
    name = f"{ONNX_DIR}/{graph}"
    if name not in listed:
        return None, f"the ONNX export in {META_FILE} does not include {name}"
    if not (root / name).is_file():
        return None, f"{name} is missing"
    made_from = export.get("weights")
    if not isinstance(made_from, dict):  # exported before the fingerprint was recorded
        log.warning(
            "%s: its ONNX export does not record the weights it was made from; re-run "
            "cxthemes export-onnx to record them",
            root,
        )
    elif not _same_weights(made_from, weights_fingerprint(root / WEIGHTS_FILE, full=False)):
        return None, f"the ONNX export was made from other weights than {WEIGHTS_FILE}"
    return root / name, ""


def weights_fingerprint(weights: Path, full: bool = True) -> dict[str, Any]:
    """The identity of a weights file, as the ONNX export records it: its size, the sha256 of
    sampled blocks (``sample_sha256``, cheap) and, if ``full``, of the whole file (see
    FINGERPRINT_BLOCKS for the cost)."""
    size = weights.stat().st_size
    sample = hashlib.sha256()
    with weights.open("rb") as f:
        starts = [size * i // FINGERPRINT_BLOCKS for i in range(FINGERPRINT_BLOCKS)]
        for start in [*starts, max(size - FINGERPRINT_BLOCK, 0)]:
            f.seek(start)
            sample.update(f.read(FINGERPRINT_BLOCK))
        found: dict[str, Any] = {"size": size, "sample_sha256": sample.hexdigest()}
        if full:
            f.seek(0)
            found["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
    return found


def _same_weights(recorded: dict[str, Any], found: dict[str, Any]) -> bool:
    """Whether ``found`` (a :func:`weights_fingerprint`) is the recorded one: every key both
    have must agree."""
    return all(recorded.get(k) == v for k, v in found.items())


def export_matches_weights(path: str | Path, graph: str) -> bool:
    """Whether the bundle at ``path`` has a finished ONNX export that includes ``graph`` (a
    file name in ``onnx/``) and was made from exactly its weights (full sha256): what
    ``export-onnx --if-missing`` takes for done. An export that records no fingerprint (made
    before it was recorded) is not: redoing it records one."""
    root = Path(path)
    meta = read_meta(root)
    export = meta.get("onnx")
    made_from = export.get("weights") if isinstance(export, dict) else None
    weights = root / WEIGHTS_FILE
    if not isinstance(made_from, dict) or "sha256" not in made_from or not weights.is_file():
        return False
    # As it would be served (listed, present, sampled fingerprint), then the full hash.
    served, _ = _onnx_graph(root, meta, graph)
    return served is not None and _same_weights(made_from, weights_fingerprint(weights))


@contextlib.contextmanager
def lock_bundle(path: str | Path) -> Iterator[None]:
    """Hold the bundle's export lock (``<bundle>/.export.lock``) while an export or a
    precision check rewrites its ``onnx/`` and ``bundle.json``: a second one fails at once
    with :class:`BundleBusyError` instead of deleting the first one's work. A killed export
    never blocks a rerun (:func:`service.locks.claim`)."""

    def busy() -> BundleBusyError:
        return BundleBusyError(
            f"{path} is being exported or checked by another process (cxthemes "
            "export-onnx); wait for it to finish"
        )

    with claim(Path(path) / EXPORT_LOCK, busy):
        yield


def resolve_model_path(model: str | Path | None, models_dir: str | Path) -> Path:
    """The bundle to use: ``model`` if given (a bundle's path, or the version name of a bundle
    in ``models_dir``; a path wins), else the registry's current model (or, before there was
    a registry, what ``<models_dir>/current`` points to)."""
    if model:
        path = Path(model)
        named = Path(models_dir) / str(model)
        if not path.exists() and (named / META_FILE).is_file():
            path = named
        if not path.exists():
            raise BundleError(
                f"model {model} does not exist (give a bundle's path or a version in {models_dir})"
            )
        return path.resolve()
    from service.registry import REGISTRY_FILE, current_path

    if (Path(models_dir) / REGISTRY_FILE).is_file():
        return current_path(models_dir)
    current = Path(models_dir) / CURRENT_LINK
    if not current.exists():
        raise BundleError(
            f"no model given and {current} does not exist: "
            "train one (cxthemes train) or pass --model"
        )
    return current.resolve()


def check_current_replaceable(models_dir: str | Path) -> Path:
    """``<models_dir>/current``, or ``BundleError`` when it is a real folder, which a link
    cannot replace (the registry checks this before it changes anything)."""
    link = Path(models_dir) / CURRENT_LINK
    if link.is_dir() and not link.is_symlink():
        raise BundleError(f"{link} is a directory, not a link; move it away")
    return link


def set_current(bundle_path: str | Path, models_dir: str | Path) -> Path:
    """Point ``<models_dir>/current`` at ``bundle_path`` with an atomic symlink swap;
    ``BundleError`` (nothing changed) when ``current`` is a real folder, which a link cannot
    replace."""
    models = Path(models_dir)
    models.mkdir(parents=True, exist_ok=True)
    link = check_current_replaceable(models)
    target = os.path.relpath(Path(bundle_path).resolve(), models.resolve())
    # A name of its own: with one fixed name, two promotions at once removed or renamed each
    # other's temporary link (FileNotFoundError) or put the other's target in place.
    tmp = models / f".{CURRENT_LINK}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.symlink_to(target)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return link


def bundle_taxonomy(bundle: Bundle, fallback_path: str | Path | None = None):
    """The taxonomy a bundle was trained with (its own copy), else the project's."""
    from service.taxonomy import load_taxonomy, parse_taxonomy

    own = bundle.path / TAXONOMY_FILE
    if own.is_file():
        import yaml

        return parse_taxonomy(yaml.safe_load(own.read_text(encoding="utf-8")))
    taxonomy = load_taxonomy(fallback_path)
    trained_with = bundle.meta.get("taxonomy_version")
    if trained_with is not None and str(trained_with) != taxonomy.version:
        raise BundleError(
            f"{bundle.path} was trained with taxonomy version {trained_with} but "
            f"{fallback_path or 'labels/taxonomy.yaml'} is version {taxonomy.version}: put the "
            f"taxonomy it was trained with in {bundle.path / TAXONOMY_FILE}"
        )
    return taxonomy
