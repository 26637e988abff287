"""README's longer pretraining run: every figure it quotes comes from the stored metrics.jsonl and config."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

from gpt_helpers import GPTConfig, GPTModel, count_parameters, matmul_parameters

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "docs" / "pretraining"
README = (ROOT / "README.md").read_text(encoding="utf-8")
RECORDS = [json.loads(line) for line in (RUN / "small_run_2026-12-03_metrics.jsonl").read_text().splitlines()]
STEPS = [r for r in RECORDS if "loss" in r]
EVALS = [r for r in RECORDS if "val_loss" in r]


def test_the_validation_table_is_the_run():
    zh_row = re.search(r"\| 验证损失 \|([^\n]+)\|", README).group(1)
    ppl_row = re.search(r"\| 验证困惑度 \|([^\n]+)\|", README).group(1)
    assert [float(v) for v in zh_row.split("|")] == [round(r["val_loss"], 3) for r in EVALS]
    assert [float(v) for v in ppl_row.split("|")] == [round(r["val_ppl"], 1) for r in EVALS]
    english = ", ".join(f"{r['val_loss']:.3f} / {r['val_ppl']:.1f}" for r in EVALS)
    assert english in " ".join(README.split()), english
    assert [r["step"] for r in EVALS] == [50, 100, 150, 200, 250, 300]


def test_the_quoted_losses_tokens_and_rate():
    assert f"{STEPS[0]['loss']:.2f}" == "10.90" and f"{math.log(50257):.2f}" == "10.82"
    assert f"{statistics.fmean(r['loss'] for r in STEPS[-10:]):.2f}" == "3.06"
    assert len(STEPS) == 300 and STEPS[-1]["tokens"] == 300 * 16 * 128 == 614_400
    rates = sorted(r["tokens_per_s"] for r in STEPS[5:])
    assert round(rates[len(rates) // 2]) == 606
    assert EVALS[-1]["sample"].startswith("initialized = True\n\ndef main():\n") and EVALS[-1]["sample"].endswith(" ")
    for text in ("10.90", "3.06", "614,400", "606"):
        assert text in README


def test_the_quoted_model_size():
    cfg = GPTConfig(**json.loads((RUN / "small.json").read_text()))
    model = GPTModel(cfg)
    assert count_parameters(model) == 21_100_800
    assert count_parameters(model) - matmul_parameters(model) == 9_673_920  # the two looked-up tables
    assert "21,100,800" in README and "9,673,920" in README


def test_the_quoted_benchmark_runs():
    results = ROOT / "benchmarks" / "results"
    training = (results / "bench_training_2026-12-03.txt").read_text()
    ours = re.findall(
        r"ours \(pretrain\) / Hugging Face tokens/s: ([\d.]+)x \(median of rounds; ratio of medians ([\d.]+)x", training
    )
    taught = re.findall(r"ours \(as taught\) / Hugging Face tokens/s: ([\d.]+)x", training)
    text = " ".join(README.split())
    assert "1.09× / 1.05× / 1.05×，中位数之比 1.07× / 0.89× / 1.06×" in text
    assert ours == [("1.09", "1.07"), ("1.05", "0.89"), ("1.05", "1.06")] and taught == ["0.91", "0.89", "0.99"]
    moe = (results / "family_qwen3_moe_2026-12-03.txt").read_text()
    assert re.findall(r"tokens/s \(median of rounds\):\s+([\d.]+)x", moe) == ["1.12", "1.18"]
    assert re.findall(r"transformers time / ours:\s+([\d.]+)x", moe) == ["1.02", "1.02"]
    assert "1.12x / 1.18x" in text and "1.12× / 1.18×" in text


def test_the_quoted_sample_is_stored():
    sample = (RUN / "small_run_2026-12-03_sample.txt").read_text(encoding="utf-8")
    assert sample.startswith("def read_config(path):\n") and '"""' in sample and "self." in sample
    assert "small_run_2026-12-03_sample.txt" in README
    greedy = EVALS[-1]["sample"]
    assert greedy == "initialized = True\n\ndef main():\n" + " " * 31  # README: a newline and 31 spaces
