"""Batch scoring: rows/s of ``cxthemes score`` against a plain transformers pipeline, and
peak memory at 10,000 vs 1,000,000 rows.

    .venv/bin/python bench/batch_scoring.py throughput   # 10,000 real texts, both in one run
    .venv/bin/python bench/batch_scoring.py memory       # peak RSS, 10k vs 1M rows

The pipeline is ``transformers.pipeline("text-classification")`` with default settings over
a ``BertForSequenceClassification`` carrying the same encoder weights, tokenizer and theme
head as the bundle (its pooler is untrained: the comparison is of cost, not of answers).
The memory run scores the same distinct real texts (2,000 by default) repeated to 10,000 and
to 1,000,000 rows, so both runs do the same model work and the difference is what streaming
1,000,000 rows costs (dedup scores each distinct text once).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import real_texts, write_jsonl  # noqa: E402


def plain_pipeline(bundle: Path):
    """A text-classification pipeline over the bundle's encoder and theme head."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification, pipeline

    config = AutoConfig.from_pretrained(bundle / "encoder")
    config.num_labels = 9
    config.problem_type = "multi_label_classification"
    model = BertForSequenceClassification(config)
    state = load_file(bundle / "model.safetensors")
    bert = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    model.bert.load_state_dict(bert, strict=False)
    with torch.no_grad():
        model.classifier.weight.copy_(state["theme_head.weight"])
        model.classifier.bias.copy_(state["theme_head.bias"])
    tokenizer = AutoTokenizer.from_pretrained(bundle)
    return pipeline(
        "text-classification",
        model=model.eval(),
        tokenizer=tokenizer,
        top_k=None,
        device="cpu",
        truncation=True,
    )


def throughput(args) -> None:
    from service.batch.runner import Job, ScoreOptions
    from service.bundle import resolve_model_path
    from service.core.config import get_settings
    from service.predictor import Predictor, predictor_options

    bundle = resolve_model_path(args.model, ROOT / "models")
    texts = real_texts(args.n)
    print(f"{len(texts):,} real texts ({len(set(texts)):,} distinct), bundle {bundle.name}")
    with tempfile.TemporaryDirectory() as tmp:
        src = write_jsonl(Path(tmp) / "in.jsonl", texts)
        # Built exactly as `cxthemes score` builds it (settings' backend, batch size, ...).
        settings = get_settings()
        predictor = Predictor.from_path(bundle, **predictor_options(settings))
        print(f"backend {predictor.bundle.backend} ({settings.backend})")
        started = time.perf_counter()
        summary = Job(predictor, src, Path(tmp) / "out.jsonl", ScoreOptions()).run(progress=False)
        ours = time.perf_counter() - started
    pipe = plain_pipeline(bundle)
    sample = texts[: args.pipeline_n]
    started = time.perf_counter()
    pipe(sample)
    theirs = time.perf_counter() - started
    ours_rate, theirs_rate = summary.scored / ours, len(sample) / theirs
    print("| engine | rows | seconds | rows/s |\n|---|---|---|---|")
    print(f"| cxthemes score (evidence on) | {summary.scored:,} | {ours:.1f} | {ours_rate:.1f} |")
    print(
        f"| transformers.pipeline, defaults | {len(sample):,} | {theirs:.1f} | {theirs_rate:.1f} |"
    )
    print(f"ratio: {ours_rate / theirs_rate:.2f}x (target >= 3x)")


_MEASURE = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Peak RSS of ``cmd`` alone: a fresh wrapper process per run, since the children's
    ru_maxrss is a maximum over every child a process has waited for."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], check=True, capture_output=True, text=True
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024, time.perf_counter() - started


def memory(args) -> None:
    texts = real_texts(args.unique)
    with tempfile.TemporaryDirectory() as tmp:
        small = write_jsonl(Path(tmp) / "small.jsonl", texts, repeat=10_000 // args.unique)
        big = write_jsonl(Path(tmp) / "big.jsonl", texts, repeat=args.rows // args.unique)
        base = [sys.executable, "-m", "service.cli", "score", "-q"]
        if args.model:
            base += ["--model", args.model]
        small_mb, small_s = _peak_rss_mb([*base, str(small), "-o", str(Path(tmp) / "s.parquet")])
        big_mb, big_s = _peak_rss_mb([*base, str(big), "-o", str(Path(tmp) / "b.parquet")])
    rows_big = args.rows // args.unique * args.unique
    print("| rows | peak RSS (MB) | seconds |\n|---|---|---|")
    print(f"| 10,000 | {small_mb:.0f} | {small_s:.0f} |")
    print(f"| {rows_big:,} | {big_mb:.0f} | {big_s:.0f} |")
    print(f"difference: {big_mb - small_mb:+.0f} MB (target: within 300 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--pipeline-n", type=int, default=10_000)
    p.add_argument("--model")
    p.set_defaults(func=throughput)
    p = sub.add_parser("memory")
    p.add_argument("--unique", type=int, default=2_000, help="distinct texts")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--model")
    p.set_defaults(func=memory)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
