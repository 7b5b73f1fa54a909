"""Texts/s on a fixed corpus of real texts (mixed Chinese reviews and English tweets):
(a) ``transformers.pipeline`` with default settings, (b) the torch backend (fp32), and the
faster backends: bf16 torch, the fp32 and the int8 ONNX graphs, all in one run, with ratios.
The one the ``auto`` backend serves on this machine (the fastest that passed its accuracy
gate, see ``service/bundle.py``) is marked and checked against the targets.

    .venv/bin/python bench/throughput.py [--n 5000] [--pipeline-n 1000] [--model M]
        [--student S]

``--student`` adds a distilled student of the model (``cxthemes distill``): the backend ``auto``
serves it with and its int8 graph, against the same (a) and (b) of its 12-layer teacher. The
row of the current model (``models/current``) is marked served and checked against the targets.

(a) runs over the first ``--pipeline-n`` texts (it is the slow one: one text at a time);
its rate is texts/s like the others. The others use the predictor exactly as the API and
``cxthemes score`` do (length-sorted batches, windows, evidence from the same pass).
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--pipeline-n", type=int, default=1000)
    parser.add_argument("--model")
    parser.add_argument("--student", help="a distilled student bundle to time as well")
    args = parser.parse_args()

    import torch

    from service.backends.bf16 import cpu_has_native_bf16 as native_bf16
    from service.bundle import resolve_model_path
    from service.predictor import Predictor
    from service.registry import current_version

    bundle = resolve_model_path(args.model, ROOT / "models")
    texts = real_texts(args.n)
    tokens = Predictor.from_path(bundle, backend="onnx").bundle.tokenizer(texts)["input_ids"]
    mean_tokens = sum(len(t) for t in tokens) / len(tokens)
    print(
        f"{len(texts):,} real texts, {mean_tokens:.0f} tokens on average; bundle "
        f"{bundle.name}; torch threads {torch.get_num_threads()}"
    )
    rows = []
    pipe = plain_pipeline(bundle)
    r_a, s_a = rate(pipe, texts[: args.pipeline_n])
    rows.append(("(a) transformers.pipeline, defaults", args.pipeline_n, s_a, r_a))
    current = current_version(ROOT / "models")
    student = resolve_model_path(args.student, ROOT / "models") if args.student else None
    # The 12-layer model's served row is marked unless the student is what is served.
    served_backend = Predictor.from_path(bundle, backend="auto").bundle.backend_detail
    if student is not None and student.name == current:
        served_backend = None
    engines = (
        ("(b) torch backend, fp32", "torch"),
        ("(c1) torch backend, bf16 autocast", "torch-bf16"),
        ("(c2) ONNX fp32 graph (fused)", "onnx-fp32"),
        ("(c3) ONNX int8 graph", "onnx-int8"),
    )
    for name, backend in engines:
        predictor = Predictor.from_path(bundle, backend=backend)
        predictor.predict(texts[:64])  # warm-up
        r, s = rate(predictor.predict, texts)
        mark = " **(served)**" if backend == served_backend else ""
        rows.append((name + mark, len(texts), s, r))
    if student is not None:
        served = Predictor.from_path(student, backend="auto").bundle.backend_detail
        mark = " **(served: the current model)**" if student.name == current else ""
        for name, backend in (
            (f"(d) student {student.name}, as `auto` serves it ({served}){mark}", "auto"),
            (f"(d') student {student.name}, ONNX int8 graph", "onnx-int8"),
        ):
            predictor = Predictor.from_path(student, backend=backend)
            predictor.predict(texts[:64])
            r, s = rate(predictor.predict, texts)
            rows.append((name, len(texts), s, r))
    r_a, r_b = rows[0][3], rows[1][3]
    print("\n| engine | texts | seconds | texts/s | vs (a) | vs (b) |\n|---|---|---|---|---|---|")
    for name, n, s, r in rows:
        print(f"| {name} | {n:,} | {s:.1f} | {r:.1f} | {r / r_a:.2f}x | {r / r_b:.2f}x |")
    r_served = next(r for name, _, _, r in rows if "(served" in name)
    print(
        f"\nserved: {current} on this machine (native bf16 CPU: {native_bf16()}); "
        f"vs (a) {r_served / r_a:.2f}x (target >= 5x), vs (b) {r_served / r_b:.2f}x "
        "(target >= 2x)"
    )


if __name__ == "__main__":
    main()
