"""Texts/s on a fixed corpus of real texts (mixed Chinese reviews and English tweets):
(a) ``transformers.pipeline`` with default settings, (b) the torch backend, (c) the int8
ONNX backend, all in one run, with ratios.

    .venv/bin/python bench/throughput.py [--n 5000] [--pipeline-n 1000] [--model M]
        [--student S]

``--student`` adds a distilled student of the model (``cxthemes distill``): its ONNX graph as
served and its int8 graph, against the same (a) and (b) of its 12-layer teacher.

(a) runs over the first ``--pipeline-n`` texts (it is the slow one: one text at a time);
its rate is texts/s like the others. (b) and (c) use the predictor exactly as the API and
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

    from service.bundle import resolve_model_path
    from service.predictor import Predictor

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
    served = Predictor.from_path(bundle, backend="onnx").bundle.model.onnx_path.name
    engines = (
        ("(b) torch backend", "torch"),
        (f"(c) ONNX backend as served ({served})", "onnx"),
        ("(c') ONNX int8 graph", "onnx-int8"),
    )
    for name, backend in engines:
        predictor = Predictor.from_path(bundle, backend=backend)
        predictor.predict(texts[:64])  # warm-up
        r, s = rate(predictor.predict, texts)
        rows.append((name, len(texts), s, r))
    if args.student:
        student = resolve_model_path(args.student, ROOT / "models")
        served = Predictor.from_path(student, backend="onnx").bundle.model.onnx_path.name
        for name, backend in (
            (f"(d) student {student.name}, ONNX as served ({served})", "onnx"),
            (f"(d') student {student.name}, ONNX int8 graph", "onnx-int8"),
        ):
            predictor = Predictor.from_path(student, backend=backend)
            predictor.predict(texts[:64])
            r, s = rate(predictor.predict, texts)
            rows.append((name, len(texts), s, r))
    print("\n| engine | texts | seconds | texts/s | vs (a) |\n|---|---|---|---|---|")
    for name, n, s, r in rows:
        print(f"| {name} | {n:,} | {s:.1f} | {r:.1f} | {r / r_a:.2f}x |")
    r_b, r_c = rows[1][3], rows[3][3]
    print(
        f"\nint8 graph: (c')/(a) = {r_c / r_a:.2f}x (target >= 5x), (c')/(b) = {r_c / r_b:.2f}x"
        " (target >= 2x)"
    )
    for name, _, _, r in rows[4:]:
        print(f"{name}: vs (a) {r / r_a:.2f}x, vs (b) {r / r_b:.2f}x")


if __name__ == "__main__":
    main()
