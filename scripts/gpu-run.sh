#!/usr/bin/env bash
# Runs everything that needs a GPU, on the GPU machine, from a work tree that holds the binaries
# `make cuda-device` built into .device/: the CUDA kernel tests, the device-learner tests, the
# meta-batch sweeps of metaids bench (training for protonet and maml, evaluation for protonet)
# and bench/pytorch_bench.py on the same GPU, then the two side by side. Every log and JSON goes
# to $OUT (default results/gpu), so one call brings back all there is to record in BENCHMARKS.md.
#
# usage: scripts/gpu-run.sh [quick]   quick: fewer steps and meta-batch sizes, to check the setup
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
out=${OUT:-results/gpu}
mkdir -p "$out"
say() { echo "gpu-run: $*" | tee -a "$out/gpu-run.log" >&2; }

for b in .device/kernels.test .device/train.test .device/metaids; do
  [[ -x $b ]] || { say "missing $b: run make cuda-device first"; exit 1; }
done

sizes=1,2,4,8,16,32,64,128,256,512,1024
steps=(--steps 50 --warmup 10 --repeats 5)
if [[ ${1:-} == quick ]]; then
  sizes=1,16,256
  steps=(--steps 5 --warmup 2 --repeats 2)
fi

nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || say "nvidia-smi failed (see $out/nvidia-smi.txt)"

say "kernel tests"
(cd kernels/cuda && ../../.device/kernels.test -test.v -test.count=1) >"$out/kernels-test.log" 2>&1
say "kernel tests: exit $? ($(grep -c -- '--- PASS' "$out/kernels-test.log") passed, $(grep -c -- '--- FAIL' "$out/kernels-test.log") failed, $(grep -c -- '--- SKIP' "$out/kernels-test.log") skipped)"

say "device learner tests"
(cd train && ../.device/train.test -test.run Device -test.v -test.count=1) >"$out/train-test.log" 2>&1
say "device learner tests: exit $? ($(grep -c -- '^--- PASS' "$out/train-test.log") passed, $(grep -c -- '^--- FAIL' "$out/train-test.log") failed)"

say "PyTorch baseline"
python3 bench/pytorch_bench.py --algo protonet,maml --meta-batch "$sizes" "${steps[@]}" \
  >"$out/pytorch.json" 2>"$out/pytorch.log"
say "PyTorch baseline: exit $?"
python3 bench/pytorch_bench.py --algo protonet,maml --meta-batch "$sizes" "${steps[@]}" --host-data \
  >"$out/pytorch-host-data.json" 2>"$out/pytorch-host-data.log"
say "PyTorch baseline with host data: exit $?"

compare=()
[[ -s $out/pytorch.json ]] && compare=(--compare "$out/pytorch.json")
say "metaids training sweep"
.device/metaids bench --device cuda --algo protonet,maml --meta-batch "$sizes" "${steps[@]}" --format json \
  >"$out/metaids-train.json" 2>"$out/metaids-train.log"
say "metaids training sweep: exit $?"
.device/metaids bench --device cuda --algo protonet,maml --meta-batch "$sizes" "${steps[@]}" "${compare[@]}" \
  >"$out/metaids-train.txt" 2>>"$out/metaids-train.log"
say "metaids evaluation sweep"
.device/metaids bench --device cuda --eval --algo protonet --meta-batch "$sizes" "${steps[@]}" --format json \
  >"$out/metaids-eval.json" 2>"$out/metaids-eval.log"
say "metaids evaluation sweep: exit $?"
.device/metaids bench --device cuda --eval --algo protonet --meta-batch "$sizes" "${steps[@]}" \
  >"$out/metaids-eval.txt" 2>>"$out/metaids-eval.log"

say "device benchmarks (go test -bench)"
(cd train && ../.device/train.test -test.run '^$' -test.bench Device -test.benchtime 2s) >"$out/train-bench.log" 2>&1
(cd kernels/cuda && ../../.device/kernels.test -test.run '^$' -test.bench . -test.benchtime 1s) >"$out/kernels-bench.log" 2>&1

if command -v ncu >/dev/null && [[ ${1:-} != quick ]]; then
  say "kernel profile of one meta-step at meta-batch 256 (ncu)"
  for algo in protonet maml; do
    ncu --target-processes all --launch-skip 200 --launch-count 60 --csv --page details \
      .device/metaids bench --device cuda --algo "$algo" --meta-batch 256 --steps 20 --warmup 5 --repeats 1 \
      >"$out/ncu-$algo.csv" 2>"$out/ncu-$algo.log"
    say "ncu $algo: exit $?"
  done
fi
say "done; results in $out"
