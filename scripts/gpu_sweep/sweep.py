"""Hyper-parameter sweep on the GPU; selection by dev only, the test figures are reported."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

OUT = Path(os.environ["OUT"])
RUNS = [
    ("base", []),
    ("emb", ["--train-embeddings"]),
    ("ep8", ["--epochs", "8"]),
    ("lr3", ["--lr", "3e-4"]),
    ("emb-ep8", ["--train-embeddings", "--epochs", "8"]),
    ("lr3-ep8", ["--lr", "3e-4", "--epochs", "8"]),
    ("emb-lr3-ep8", ["--train-embeddings", "--lr", "3e-4", "--epochs", "8"]),
    ("base-s1", ["--seed", "1"]),
    ("bs32-lr3-ep8", ["--batch-size", "32", "--lr", "3e-4", "--epochs", "8"]),
]
t0 = time.monotonic()
summary, best = [], None
env = {**os.environ, "CXTHEMES_MODELS_DIR": "/tmp/sweep"}
for name, args in RUNS:
    if time.monotonic() - t0 > float(sys.argv[1]):
        print("time guard: stop before", name)
        break
    cmd = [
        sys.executable,
        "-m",
        "service.cli",
        "train",
        "--base-model",
        "/tmp/base",
        "--labels",
        ".gpu/labels/items.jsonl",
        "--no-baselines",
        "--no-current",
        "--version",
        name,
        *args,
    ]
    s = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        print(name, "FAILED", done.stderr[-1500:])
        continue
    b = json.loads(Path(f"/tmp/sweep/{name}/bundle.json").read_text())
    m = b["metrics"]["model"]
    row = {
        "run": name,
        "args": args,
        "dev_selection": b["best_dev_selection"],
        "test_macro_f1": m["macro_f1"],
        "test_micro_f1": m["micro_f1"],
        "sentiment": m["sentiment"],
        "per_language": m["per_language"],
        "train_s": b["training_seconds"],
        "wall_s": round(time.monotonic() - s, 1),
    }
    summary.append(row)
    print(
        f"{name:14s} dev {row['dev_selection']:.4f} test macro {row['test_macro_f1']:.4f} "
        f"train {row['train_s']} s wall {row['wall_s']} s",
        flush=True,
    )
    (OUT / "sweep.json").write_text(json.dumps(summary, indent=1))
    if best is None or row["dev_selection"] > best["dev_selection"]:
        best = row
        sd = load_file(f"/tmp/sweep/{name}/model.safetensors")
        word = "encoder.embeddings.word_embeddings.weight"
        parts = [{}]
        for k, v in sd.items():
            if k == word:
                continue
            if sum(t.numel() for t in parts[-1].values()) + v.numel() > 7_500_000:
                parts.append({})
            parts[-1][k] = v.half().contiguous()
        for f in OUT.glob("w*.safetensors"):
            f.unlink()
        for i, p in enumerate(parts):
            save_file(p, OUT / f"w{i}.safetensors")
        for f in OUT.glob("e*.safetensors"):
            f.unlink()
        if "--train-embeddings" in args:
            ids = load_file(".gpu/w/ids.safetensors")["ids"]
            rows = sd[word][ids].half()
            half = len(ids) // 2
            save_file({"ids": ids[:half], "rows": rows[:half].contiguous()}, OUT / "e0.safetensors")
            save_file({"ids": ids[half:], "rows": rows[half:].contiguous()}, OUT / "e1.safetensors")
        for f in ("bundle.json", "README.md"):
            (OUT / f).write_bytes(Path(f"/tmp/sweep/{name}/{f}").read_bytes())
        print("  best so far ->", len(parts), "weight files", flush=True)
print("best:", best and best["run"])
