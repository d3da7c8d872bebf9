#!/usr/bin/env bash
# Runs everything that needs a GPU, on the GPU machine, from a work tree that holds the binaries
# `make cuda-device` built into .device/.
#
# usage: scripts/gpu-run.sh [measure|quick|profile]
#   measure (default)  the CUDA kernel tests and the device-learner tests; bench/pytorch_bench.py
#                      (episodes on the device, then copied from the host); the meta-batch sweeps of
#                      metaids bench (training for protonet and maml against PyTorch, the same with
#                      METAIDS_CUDA_GRAPHS=0, evaluation); a NSL-KDD experiment with metaids run on
#                      the GPU and on the CPU; go test -bench. ~5 minutes.
#   quick              the same with fewer steps and meta-batch sizes, to check the setup.
#   profile            the kernel tests under compute-sanitizer (memcheck, initcheck, and racecheck and
#                      synccheck for the kernels with shared memory and barriers) and the device-learner
#                      tests under memcheck, which find what the CPU emulation cannot; then ncu over a few
#                      meta-steps of each learner at meta-batch 256. ~5 minutes.
#
# Logs and JSON go to a work folder (default results/gpu/<mode>). Where $OUT is set (a folder that
# is fetched back, and only a few files), they are also packed into $OUT/gpu-<mode>.tar.gz, with
# the summary beside it in $OUT/gpu-<mode>.log. Each step has a time limit, so that one hang does
# not cost the rest.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
mode=${1:-measure}
case $mode in
  measure | quick | profile) ;;
  *) echo "gpu-run: unknown mode $mode (measure, quick, profile)" >&2; exit 2 ;;
esac
work=$here/results/gpu/$mode
rm -rf "$work"
mkdir -p "$work"
say() { echo "gpu-run: $*" | tee -a "$work/summary.log" >&2; }

pack() {
  if [[ -n ${OUT:-} ]]; then
    tar czf "$OUT/gpu-$mode.tar.gz" -C "$work" . && cp "$work/summary.log" "$OUT/gpu-$mode.log"
  fi
}
trap pack EXIT

for b in .device/kernels.test .device/train.test .device/metaids; do
  [[ -x $b ]] || { say "missing $b: run make cuda-device first"; exit 1; }
done

# The whole run ends within GPU_RUN_BUDGET seconds (default 540, inside a 10-minute call), so that
# the logs are packed before a caller's limit kills it.
deadline=$((SECONDS + ${GPU_RUN_BUDGET:-540}))

# step NAME LIMIT_S CMD...: runs CMD with stdout to $work/NAME and stderr to $work/NAME.err, for at
# most LIMIT_S seconds and what is left of the budget.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS - 10))
  if ((left < 10)); then
    say "$name: skipped, out of time"
    return 124
  fi
  ((limit > left)) && limit=$left
  local t0=$SECONDS
  # metaids stops cleanly on SIGTERM after its current step; a call that hangs is killed 10 s later.
  timeout -k 10 "$limit" "$@" >"$work/$name" 2>"$work/$name.err"
  local rc=$?
  say "$name: exit $rc in $((SECONDS - t0)) s"
  return $rc
}

nvidia-smi >"$work/nvidia-smi.txt" 2>&1 || say "nvidia-smi failed"
say "$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null)"

if [[ $mode == profile ]]; then
  PATH=$PATH:/usr/local/cuda/bin
  # The sanitizers first: they check what the CPU emulation cannot (accesses out of bounds or misaligned
  # on the GPU, reads of device memory nothing wrote, shared-memory races, barriers that not every thread
  # of a block reaches), and should not lose their time to the profile.
  if command -v compute-sanitizer >/dev/null; then
    san=(compute-sanitizer --error-exitcode 9)
    (cd kernels/cuda && step memcheck.log 120 "${san[@]}" --tool memcheck ../../.device/kernels.test -test.count=1)
    # The device learners' meta-steps as recorded graphs: the first layer reading the pool through row
    # numbers, split reductions, the staged copies.
    (cd train && step memcheck-train.log 120 "${san[@]}" --tool memcheck ../.device/train.test -test.run Device -test.count=1)
    # The kernels with shared memory and barriers: pairwise_sqdist, sgemm_batched, col_sum and reduce_sum
    # (through the softmax and vector tests).
    shared='Gemm|ColSum|Softmax|VectorOps|ClassMean|Pairwise|GridStriding'
    (cd kernels/cuda && step racecheck.log 90 "${san[@]}" --tool racecheck ../../.device/kernels.test -test.count=1 -test.run "$shared")
    (cd kernels/cuda && step synccheck.log 60 "${san[@]}" --tool synccheck ../../.device/kernels.test -test.count=1 -test.run "$shared")
    (cd kernels/cuda && step initcheck.log 90 "${san[@]}" --tool initcheck ../../.device/kernels.test -test.count=1)
  else
    say "no compute-sanitizer on this machine (nor in /usr/local/cuda/bin): memcheck, racecheck, synccheck and initcheck skipped"
  fi
  command -v ncu >/dev/null || say "no ncu on this machine (nor in /usr/local/cuda/bin): the profile is skipped"
  command -v ncu >/dev/null && for algo in protonet maml; do
    # Skip the first steps' launches (graph nodes count one each): a step of protonet is 14 kernels, of
    # maml 39, so 70 cover a few steps of each.
    step "ncu-$algo.csv" 150 ncu --target-processes all --launch-skip 300 --launch-count 70 --csv --page details \
      .device/metaids bench --device cuda --algo "$algo" --meta-batch 256 --steps 20 --warmup 5 --repeats 1
  done
  say "done"
  exit 0
fi

sizes=1,2,4,8,16,32,64,128,256,512,1024
ab_sizes=1,16,256,1024
steps=(--steps 50 --warmup 10 --repeats 5)
if [[ $mode == quick ]]; then
  sizes=1,16,256
  ab_sizes=256
  steps=(--steps 5 --warmup 2 --repeats 2)
fi

(cd kernels/cuda && step kernels-test.log 120 ../../.device/kernels.test -test.v -test.count=1)
say "kernel tests: $(grep -c -- '--- PASS' "$work/kernels-test.log") passed, $(grep -c -- '--- FAIL' "$work/kernels-test.log") failed, $(grep -c -- '--- SKIP' "$work/kernels-test.log") skipped"
(cd train && step train-test.log 120 ../.device/train.test -test.run Device -test.v -test.count=1)
say "device learner tests: $(grep -c -- '^--- PASS' "$work/train-test.log") passed, $(grep -c -- '^--- FAIL' "$work/train-test.log") failed"

export PYTHONUNBUFFERED=1
step pytorch.json 150 python3 bench/pytorch_bench.py --algo protonet,maml --meta-batch "$sizes" "${steps[@]}"
step pytorch-host-data.json 150 python3 bench/pytorch_bench.py --algo protonet,maml --meta-batch "$sizes" "${steps[@]}" --host-data

compare=()
[[ -s $work/pytorch.json ]] && compare=(--compare "$work/pytorch.json")
step metaids-train.json 120 .device/metaids bench --device cuda --algo protonet,maml --meta-batch "$sizes" "${steps[@]}" \
  "${compare[@]}" --format json
METAIDS_CUDA_GRAPHS=0 step metaids-train-nographs.json 90 .device/metaids bench --device cuda --algo protonet,maml \
  --meta-batch "$ab_sizes" "${steps[@]}" "${compare[@]}" --format json
step metaids-eval.json 90 .device/metaids bench --device cuda --eval --algo protonet,maml --meta-batch "$sizes" "${steps[@]}" \
  --format json
# One line per learner and size, for the log.
for f in metaids-train.json metaids-train-nographs.json metaids-eval.json; do
  [[ -s $work/$f ]] || continue
  python3 - "$work/$f" <<'EOF' | tee -a "$work/summary.log" >&2
import json, sys
doc = json.load(open(sys.argv[1]))
for r in doc["results"]:
    if "error" in r:
        print(f"  {sys.argv[1].rsplit('/', 1)[-1]} {r['algo']} mb {r['meta_batch']}: {r['error']}")
        continue
    su = f", PyTorch {r['pytorch_tasks_per_sec']:.0f} ({r['speed_up']:.2f}x)" if r.get("pytorch_tasks_per_sec") else ""
    dev = f"device {r['device_ms_per_step']:.3f} ms/step" if r.get("device_ms_per_step") else "not timed on the device"
    print(f"  {sys.argv[1].rsplit('/', 1)[-1]} {r['algo']} mb {r['meta_batch']}: {r['tasks_per_sec']:.0f}/s, "
          f"{dev}, {r.get('device_bytes', 0) / 2**20:.1f} MiB, "
          f"graphs {r.get('cuda_graphs', False)}, queued {r.get('pipelined', False)}{su}")
EOF
done

# A real experiment end to end (sampling, validation, testing included), on the GPU and on the CPU.
for dev in cuda cpu; do
  step "run-$dev.log" 90 .device/metaids run experiments/nsl-kdd/protonet-5way5shot.yaml --device "$dev" --seeds 1 \
    --out "$work/run-$dev" && python3 - "$work/run-$dev" "$dev" <<'EOF' | tee -a "$work/summary.log" >&2
import glob, json, sys
s = json.load(open(glob.glob(sys.argv[1] + "/*/seed-1/summary.json")[0]))
print(f"  metaids run on {sys.argv[2]}: train {s['train']['tasks_per_sec']:.0f} tasks/s over {s['train']['steps']} steps, "
      f"test {s['test']['episodes_per_sec']:.0f} episodes/s, accuracy {s['metrics']['accuracy']['Mean']:.4f}")
EOF
done

benchtime=2s
[[ $mode == quick ]] && benchtime=200ms
(cd train && step train-bench.log 150 ../.device/train.test -test.run '^$' -test.bench Device -test.benchtime $benchtime)
(cd kernels/cuda && step kernels-bench.log 90 ../../.device/kernels.test -test.run '^$' -test.bench . -test.benchtime 1s)
say "done"
