"""Texts/s on a fixed corpus of real texts (mixed Chinese reviews and English tweets):
(a) ``transformers.pipeline`` with default settings, (b) the torch backend (fp32), and the
faster backends: bf16 torch, the fp32 and the int8 ONNX graphs, all in one run, with ratios.
The one the ``auto`` backend serves on this machine (the fastest that passed its accuracy
gate, see ``service/bundle.py``) is marked and checked against the targets.

    .venv/bin/python bench/throughput.py [--n 5000] [--pipeline-n N] [--model M]
        [--student S]

``--student`` adds a distilled student of the model (``cxthemes distill``): the backend ``auto``
serves it with and its int8 graph, with (a) and (b) timed on the student too. Its rows get two
ratios: against its teacher's (a) and (b) (the issue's framing: a student is one way to reach
5x over the obvious code on the fine-tuned model) and against its own. The row of the current
model (``models/current``) is marked served and checked against the targets.

Every engine is warmed up on the first 64 texts and timed on the same texts: all of them, or
the first ``--pipeline-n`` for (a) when given (it is the slow one: one text at a time; a
prefix is a little shorter than the whole, which flatters (a)). The others use the predictor
as the API and ``cxthemes score`` do (the settings' options and threads, the same oneDNN
cache; length-sorted batches, windows, evidence from the same pass).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.batch_scoring import plain_pipeline  # noqa: E402
from bench.corpus import real_texts  # noqa: E402


def rate(fn, texts) -> tuple[float, float]:
    started = time.perf_counter()
    fn(texts)
    seconds = time.perf_counter() - started
    return len(texts) / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--pipeline-n", type=int, help="texts for (a) (default: all)")
    parser.add_argument("--model")
    parser.add_argument("--student", help="a distilled student bundle to time as well")
    args = parser.parse_args()

    from service.cli import ONEDNN_CACHE_DEFAULT

    # As the CLI sets it for `score` and `serve`, before torch is imported.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_DEFAULT)
    import torch

    from service.backends.bf16 import cpu_has_native_bf16 as native_bf16
    from service.bundle import resolve_model_path
    from service.core.config import get_settings
    from service.predictor import Predictor, apply_torch_threads, predictor_options
    from service.registry import current_version

    settings = get_settings()
    apply_torch_threads(settings)
    options = predictor_options(settings)
    options.pop("backend")

    def predictor(path: Path, backend: str) -> Predictor:
        loaded = Predictor.from_path(path, backend=backend, **options)
        loaded.predict(texts[:64])  # warm-up
        return loaded

    def pipeline_rate(path: Path) -> tuple[float, float]:
        pipe = plain_pipeline(path)
        pipe(texts[:64])  # warm-up, as the others
        return rate(pipe, texts[:pipeline_n])

    bundle = resolve_model_path(args.model, ROOT / "models")
    texts = real_texts(args.n)
    pipeline_n = min(args.pipeline_n or len(texts), len(texts))
    tokens = Predictor.from_path(bundle, backend="onnx").bundle.tokenizer(texts)["input_ids"]
    mean_tokens = sum(len(t) for t in tokens) / len(tokens)
    print(
        f"{len(texts):,} real texts, {mean_tokens:.0f} tokens on average; bundle "
        f"{bundle.name}; torch threads {torch.get_num_threads()}"
    )
    rows = []
    r_a, s_a = pipeline_rate(bundle)
    rows.append(("(a) transformers.pipeline, defaults", pipeline_n, s_a, r_a))
    current = current_version(ROOT / "models")
    student = resolve_model_path(args.student, ROOT / "models") if args.student else None
    # The model's served row is marked only if it is the current model.
    served_backend = Predictor.from_path(bundle, backend="auto").bundle.backend_detail
    if bundle.name != current:
        served_backend = None
    engines = (
        ("(b) torch backend, fp32", "torch"),
        ("(c1) torch backend, bf16 autocast", "torch-bf16"),
        ("(c2) ONNX fp32 graph (fused)", "onnx-fp32"),
        ("(c3) ONNX int8 graph", "onnx-int8"),
    )
    for name, backend in engines:
        r, s = rate(predictor(bundle, backend).predict, texts)
        mark = " **(served)**" if backend == served_backend else ""
        rows.append((name + mark, len(texts), s, r))
    r_a, r_b = rows[0][3], rows[1][3]
    own: dict[str, tuple[float, float]] = {}  # a student row: its own model's (a) and (b)
    if student is not None:
        sr_a, ss_a = pipeline_rate(student)
        rows.append((f"(a) student {student.name}, transformers.pipeline", pipeline_n, ss_a, sr_a))
        sr_b, ss_b = rate(predictor(student, "torch").predict, texts)
        rows.append((f"(b) student {student.name}, torch backend, fp32", len(texts), ss_b, sr_b))
        served = Predictor.from_path(student, backend="auto").bundle.backend_detail
        mark = " **(served: the current model)**" if student.name == current else ""
        for name, backend in (
            (f"(d) student {student.name}, as `auto` serves it ({served}){mark}", "auto"),
            (f"(d') student {student.name}, ONNX int8 graph", "onnx-int8"),
        ):
            r, s = rate(predictor(student, backend).predict, texts)
            rows.append((name, len(texts), s, r))
            own[name] = (sr_a, sr_b)
    print(
        "\n| engine | texts | seconds | texts/s | vs (a) | vs (b) | vs its own (a) "
        "| vs its own (b) |\n|---|---|---|---|---|---|---|---|"
    )
    for name, n, s, r in rows:
        mine = own.get(name)
        extra = f"{r / mine[0]:.2f}x | {r / mine[1]:.2f}x" if mine else "| "
        print(f"| {name} | {n:,} | {s:.1f} | {r:.1f} | {r / r_a:.2f}x | {r / r_b:.2f}x | {extra} |")
    served_rows = [(name, r) for name, _, _, r in rows if "(served" in name]
    if not served_rows:
        print(f"\nthe current model, {current}, is not among the rows: no target checked")
        return
    name, r_served = served_rows[0]
    line = (
        f"\nserved: {current} on this machine (native bf16 CPU: {native_bf16()}); "
        f"vs (a) {r_served / r_a:.2f}x (target >= 5x), vs (b) {r_served / r_b:.2f}x "
        "(target >= 2x)"
    )
    if name in own:
        mine = own[name]
        line += f"; against its own (a) {r_served / mine[0]:.2f}x, (b) {r_served / mine[1]:.2f}x"
    print(line)


if __name__ == "__main__":
    main()
