#!/usr/bin/env bash
# Training throughput: 1 process x 2 threads against 2 DDP processes x 1 thread on this machine.
# samples/s between the step-50 and step-150 log records (time spent in steps only), two rounds.
# Stop other jobs first (a background training: kill -STOP PID, then kill -CONT PID).
#   bash research/train_throughput.sh [DATA_FOLDER]
set -euo pipefail
data=${1:-../shared/data/anime}
work=$(mktemp -d)
measure() {  # name, command...
    local name=$1 out=$work/$1
    shift
    setsid "$@" --data "$data" --out "$out" --steps 1000 --val-every 100000 --ckpt-every 100000 > "$out.txt" 2>&1 &
    local pid=$!
    until grep -q '"step": 150,' "$out/log.jsonl" 2> /dev/null; do sleep 1; done
    kill -- -"$pid" 2> /dev/null || true
    sleep 3
    python - "$out" "$name" << 'PY'
import json, sys
recs = {r["step"]: r for r in map(json.loads, open(sys.argv[1] + "/log.jsonl")) if "loss" in r}
a, b = recs[50], recs[150]
print(f"{sys.argv[2]}: {(b['samples'] - a['samples']) / (b['wall'] - a['wall']):.1f} samples/s")
PY
}
for round in 1 2; do
    measure "1x2-round$round" desample train --threads 2
    measure "2x1-round$round" torchrun --standalone --nproc_per_node=2 -m desample train --threads 1
done
rm -rf "$work"
