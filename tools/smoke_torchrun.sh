#!/usr/bin/env bash
# Smoke test of pretraining under torchrun: 2 CPU processes (gloo), DDP and FSDP2, a failing rank, resume.
# prepare-data on a few standard-library files, 4 steps of a tiny model with each strategy, then an FSDP run
# whose rank 1 fails when it starts step 4 (GPT_HELPERS_FAIL_AT=1:3; the job must end, not hang) and is resumed
# from its step-2 checkpoint; the per-step losses of all three runs must agree to 1e-4 (relative). Under 2 minutes on an idle 2-core machine.
set -euo pipefail
export OMP_NUM_THREADS=1
PY=${PYTHON:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo '{"context_length": 32, "emb_dim": 32, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0}' > "$WORK/tiny.json"
$PY -m gpt_helpers prepare-data --stdlib --max-mb 0.3 --out "$WORK/data" --no-progress
ARGS=(pretrain --data "$WORK/data" --config "$WORK/tiny.json" --steps 4 --batch-size 4 --micro-batch-size 1
      --warmup 1 --eval-every 2 --save-every 2 --eval-windows 4 --sample-tokens 4 --peak-flops 1e11 --no-progress)
RUN=($PY -m torch.distributed.run --standalone --nproc_per_node=2 -m gpt_helpers)
timeout 300 "${RUN[@]}" "${ARGS[@]}" --out "$WORK/ddp"
timeout 300 "${RUN[@]}" "${ARGS[@]}" --out "$WORK/fsdp" --strategy fsdp
if GPT_HELPERS_FAIL_AT=1:3 timeout 300 "${RUN[@]}" "${ARGS[@]}" --out "$WORK/cut" --strategy fsdp 2> "$WORK/err"; then
    echo "smoke: the run with a failing rank exited 0" >&2; exit 1
fi
grep -q "error (rank 1 of 2): simulated failure" "$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
timeout 300 "${RUN[@]}" "${ARGS[@]}" --out "$WORK/cut" --strategy fsdp --resume
$PY - "$WORK" <<'PYEOF'
import json, math, sys
from pathlib import Path
work = Path(sys.argv[1])
runs = {name: [json.loads(l) for l in open(work / name / "metrics.jsonl")] for name in ("ddp", "fsdp", "cut")}
losses = {name: [r.get("loss", r.get("val_loss")) for r in recs] for name, recs in runs.items()}
for name in ("fsdp", "cut"):
    assert len(losses[name]) == len(losses["ddp"]) == 6, (name, losses)
    for a, b in zip(losses[name], losses["ddp"]):
        assert math.isclose(a, b, rel_tol=1e-4), (name, a, b)
print("smoke: DDP, FSDP and FSDP killed-and-resumed give the same losses:", losses["ddp"])
PYEOF
echo "smoke_torchrun: OK"
