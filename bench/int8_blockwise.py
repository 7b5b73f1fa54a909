"""Blockwise 8-bit weights (ONNX Runtime's ``MatMulNBits``, int8 compute): accuracy and speed
against the graphs a bundle already has.

    .venv/bin/pip install onnx-ir   # MatMulNBitsQuantizer needs it; not a cxthemes dependency
    .venv/bin/python bench/int8_blockwise.py [--model M] [--block-size 32] [--n 1500]

``quantize_dynamic`` (the export's int8 graph) scales each activation tensor once, and the
outlier channels of this encoder's activations make it miss the 99% agreement gate.
``MatMulNBits`` with ``accuracy_level`` 4 quantizes the weights in blocks of ``--block-size``
along the input dimension and the activations per row and block at run time, a much finer
scale. This script quantizes a scratch copy of the bundle's fp32 graph that way (the bundle is
not changed), reports the export gate's figures on the dev and test splits (theme decisions
that agree with fp32 torch, macro F1 of both) and times ``--n`` real texts with each backend
in one process: torch fp32, torch bf16 (where the CPU has it), the fp32 graph, the bundle's
``quantize_dynamic`` graph and the blockwise graph. The fused attention blocks keep their
query/key/value weights in fp32: ``MatMulNBits`` replaces plain ``MatMul`` nodes only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def quantize_blockwise(src: Path, dst: Path, block_size: int) -> int:
    """Write ``src`` with its MatMul weights as 8-bit blocks (int8 compute); returns how many
    MatMul nodes were replaced."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True, accuracy_level=4, bits=8
    )
    quantizer = MatMulNBitsQuantizer(
        onnx.load(src),
        bits=8,
        block_size=block_size,
        is_symmetric=True,
        accuracy_level=4,
        algo_config=config,
    )
    quantizer.process()
    model = getattr(quantizer.model, "model", quantizer.model)
    onnx.save(model, dst)
    return sum(node.op_type == "MatMulNBits" for node in model.graph.node)


def scratch_bundle(bundle: Path, into: Path) -> Path:
    """A copy of ``bundle`` made of links, with an ``onnx/`` folder of its own (the fp32
    graph linked), so the blockwise graph can sit where the ``onnx-int8`` backend looks."""
    from service.backends import ONNX_DIR, ONNX_FP32

    copy = into / bundle.name
    copy.mkdir()
    for entry in bundle.iterdir():
        if entry.name != ONNX_DIR:
            (copy / entry.name).symlink_to(entry.resolve())
    (copy / ONNX_DIR).mkdir()
    (copy / ONNX_DIR / ONNX_FP32).symlink_to((bundle / ONNX_DIR / ONNX_FP32).resolve())
    return copy


def texts_per_second(bundle: Path, backend: str, texts: list[str]) -> float:
    from bench.throughput import rate
    from service.predictor import Predictor

    predictor = Predictor.from_path(bundle, backend=backend)
    predictor.predict(texts[:64])  # warm-up: kernels, caches
    return rate(predictor.predict, texts)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--n", type=int, default=1500, help="real texts timed per backend")
    args = parser.parse_args()
    try:
        import onnx_ir  # noqa: F401
    except ImportError:
        sys.exit("MatMulNBitsQuantizer needs onnx_ir: .venv/bin/pip install onnx-ir")

    from bench.corpus import real_texts
    from service.backends import ONNX_DIR, ONNX_FP32, ONNX_INT8
    from service.backends.bf16 import cpu_has_native_bf16
    from service.bundle import resolve_model_path
    from service.core.config import Settings
    from service.taxonomy import load_taxonomy
    from training.data import find_label_files, load_items, split_items
    from training.precision import compare_with_torch

    settings = Settings()
    bundle = resolve_model_path(args.model, ROOT / "models")
    if not (bundle / ONNX_DIR / ONNX_FP32).is_file():
        sys.exit(f"{bundle.name} has no ONNX export: run `cxthemes export-onnx` first")
    taxonomy = load_taxonomy(settings.taxonomy_path)
    items, _ = load_items(find_label_files(ROOT / settings.labels_dir), taxonomy)
    splits = split_items(items)
    with tempfile.TemporaryDirectory(prefix="cxblockwise-") as tmp:
        copy = scratch_bundle(bundle, Path(tmp))
        fp32_graph = copy / ONNX_DIR / ONNX_FP32
        replaced = quantize_blockwise(fp32_graph, copy / ONNX_DIR / ONNX_INT8, args.block_size)
        print(f"{bundle.name}: {replaced} MatMul nodes as 8-bit blocks of {args.block_size}")
        print(
            "\n| split | texts | theme decisions agree | sentiment agrees | max prob diff "
            "| macro F1 fp32 torch | macro F1 blockwise |"
        )
        print("|---|---|---|---|---|---|---|")
        for split in ("dev", "test"):
            part = splits[split]
            f = compare_with_torch(copy, "onnx-int8", "int8", [i.text for i in part], part)
            print(
                f"| {split} | {f['n_check_texts']} | {f['theme_decisions_agree']:.2%} | "
                f"{f['sentiment_agrees']:.2%} | {f['max_abs_theme_prob_diff']:.3f} | "
                f"{f['macro_f1_torch']:.4f} | {f['macro_f1_int8']:.4f} |"
            )
        texts = real_texts(args.n)
        engines = [("torch fp32", bundle, "torch")]
        if cpu_has_native_bf16():
            engines.append(("torch bf16", bundle, "torch-bf16"))
        engines.append(("ONNX fp32 graph", bundle, "onnx-fp32"))
        if (bundle / ONNX_DIR / ONNX_INT8).is_file():
            engines.append(("ONNX `quantize_dynamic` int8 graph", bundle, "onnx-int8"))
        engines.append(("ONNX blockwise int8 graph", copy, "onnx-int8"))
        rates = [(name, texts_per_second(path, backend, texts)) for name, path, backend in engines]
    base = rates[0][1]
    print(f"\n| engine ({len(texts)} real texts) | texts/s | vs torch fp32 |")
    print("|---|---|---|")
    for name, rate in rates:
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
