"""MAGRPO under `accelerate launch` with two processes on CPU (gloo): replicas stay in sync."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).parent / "accelerate"


@pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate is not installed (the llm extra)")
def test_accelerate_launch_two_processes(tmp_path: Path) -> None:
    output = tmp_path / "run"
    command = [
        str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        str(ROOT / "baselines" / "magrpo.py"), "--env-id", "CommonWord-v1", "--group-size", "2",
        "--max-new-tokens", "1", "--num-updates", "2", "--no-tensorboard", "--no-progress",
        "--threads", "1", "--output-dir", str(output),
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.load(output / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["world_size"] == 2
    assert len(set(saved["replica_checksums"])) == 1  # both processes hold the same weights
