"""Training runs unchanged under torchrun: two CPU processes (gloo), one bundle written."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_torchrun_two_processes(tiny_base, small_labels, tmp_path):
    env = {**os.environ, "CXTHEMES_MODELS_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", "29517", "-m", "service.cli", "train",
        "--base-model", str(tiny_base), "--labels", str(small_labels),
        "--max-steps", "2", "--no-baselines", "--version", "ddp",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model bundle:") == 1  # only the main process writes and reports
    assert (tmp_path / "ddp" / "bundle.json").is_file()
    assert (tmp_path / "current").resolve() == (tmp_path / "ddp").resolve()
