"""torchrun with 2 CPU processes (gloo): DDP and FSDP2 match one process; a failing rank ends the job."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from gpt_helpers import GPTConfig
from gpt_helpers.training.data import prepare_data
from gpt_helpers.training.pretraining import PretrainSettings, latest_checkpoint, pretrain

TINY = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0}
STEPS = dict(steps=4, batch_size=4, warmup=1, eval_every=2, save_every=2, eval_windows=4, sample_tokens=4)
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small corpus, its data folder, the config file and a one-process reference run."""
    root = tmp_path_factory.mktemp("dist")
    rng = np.random.default_rng(1)
    (root / "corpus").mkdir()
    for i in range(6):
        (root / "corpus" / f"doc{i}.txt").write_text(" ".join(rng.choice(WORDS, size=400)) + "\n")
    prepare_data([root / "corpus"], root / "data", val_fraction=0.3)
    (root / "tiny.json").write_text(json.dumps(TINY))
    settings = PretrainSettings(**STEPS, micro_batch_size=2)  # 1 process: 2 micro-batches of 2
    pretrain(root / "data", root / "single", GPTConfig(**TINY), settings, progress=False, peak_flops=1e11)
    return root


def _records(run_dir):
    return [json.loads(line) for line in open(run_dir / "metrics.jsonl")]


def _torchrun(root, out, *extra, env_extra=None, timeout=240):
    """2 processes on this machine (--standalone picks a free port); micro-batch 1 = 2 micro-batches per rank."""
    import os

    args = ["--steps", "4", "--batch-size", "4", "--micro-batch-size", "1", "--warmup", "1", "--eval-every", "2"]
    args += ["--save-every", "2", "--eval-windows", "4", "--sample-tokens", "4", "--peak-flops", "1e11"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gpt_helpers"]
    cmd += ["pretrain", "--data", str(root / "data"), "--out", str(out), "--config", str(root / "tiny.json")]
    env = os.environ | {"OMP_NUM_THREADS": "1"} | (env_extra or {})
    return subprocess.run(
        [*cmd, *args, "--no-progress", *extra], capture_output=True, text=True, timeout=timeout, env=env
    )


def _assert_same_losses(run_dir, reference_dir):
    ours, ref = _records(run_dir), _records(reference_dir)
    assert [(r["step"], "loss" in r) for r in ours] == [(r["step"], "loss" in r) for r in ref]
    for a, b in zip(ours, ref, strict=True):
        key = "loss" if "loss" in b else "val_loss"
        assert a[key] == pytest.approx(b[key], rel=1e-4), (a, b)
        if key == "loss":
            assert a["tokens"] == b["tokens"] and a["lr"] == pytest.approx(b["lr"], rel=1e-12)


def test_ddp_two_processes_match_one(setup):
    result = _torchrun(setup, setup / "ddp")
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_same_losses(setup / "ddp", setup / "single")
    assert "done: 4 steps" in result.stdout and result.stdout.count("done:") == 1  # only rank 0 prints


def test_fsdp_failing_rank_ends_the_job_then_resume_matches_one_process(setup):
    out = setup / "fsdp"
    if tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 6):  # the lowest torch allowed
        refused = _torchrun(setup, out, "--strategy", "fsdp", timeout=180)
        assert refused.returncode != 0 and "--strategy fsdp on CPU needs torch 2.6 or newer" in refused.stderr
        return
    failed = _torchrun(setup, out, "--strategy", "fsdp", env_extra={"GPT_HELPERS_FAIL_AT": "1:3"}, timeout=180)
    assert failed.returncode != 0
    assert "error (rank 1 of 2): simulated failure (GPT_HELPERS_FAIL_AT=1:3)" in failed.stderr
    assert latest_checkpoint(out).name == "ckpt-0000002"  # written by rank 0 from the gathered shards
    resumed = _torchrun(setup, out, "--strategy", "fsdp", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_losses(out, setup / "single")
