#!/usr/bin/env bash
# Builds and checks the CUDA backend (build tag metaids_cuda) on a machine without a GPU, against the
# CUDA SDK that ../shared/tools/cuda-sdk.sh unpacks (headers, stub libcuda, nvcc; the first run
# downloads ~870 MB).
#
# usage: scripts/cuda-check.sh [check]  vet and compile everything under the tag; run the build
#                                       against the toolkit's stub libcuda (the backend must refuse
#                                       to open naming the reason, its tests skip, --backend auto
#                                       fall back to the CPU); then run the cuda tests and a cuda
#                                       bench against kernels/cuda/emu, a libcuda.so.1 that runs
#                                       kernels.cu on the CPU, and rehearse no device, an old device
#                                       and no memory. Exits 0 with a message, checking nothing,
#                                       when the SDK cannot be had (no network); any build or check
#                                       failure is an error.
#        scripts/cuda-check.sh ptx      regenerate kernels/cuda/kernels.ptx and kernels.ptx.sha256
#                                       from kernels.cu (make kernels)
#        scripts/cuda-check.sh device   build the binaries for the GPU machine into .device/
#                                       (see ../shared/GPU.md)
# Environment: GO (default go), CUDA_SDK_SCRIPT (default <repo>/../shared/tools/cuda-sdk.sh), BUILD_COMMIT
# (the commit that device's metaids records; make cuda-device sets it).
#
# The tag is metaids_cuda, not cuda: under cuda, gorgonia.org/gorgonia (which train imports) builds
# its own CUDA engine, which needs cuDNN and cuBLAS to build and to run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || echo "$here")
cd "$root"
GO=${GO:-go}
tag=metaids_cuda
sdk_script=${CUDA_SDK_SCRIPT:-$root/../shared/tools/cuda-sdk.sh}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { echo "cuda-check: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }

# load_sdk exports the SDK's variables (CGO_CFLAGS, CGO_LDFLAGS, NVCC, CUDA_SDK_ROOT), or returns 1
# with the reason in $sdk_reason.
sdk_reason=
load_sdk() {
  if [[ ! -f $sdk_script ]]; then
    sdk_reason="$sdk_script not found"
    return 1
  fi
  local env
  say "loading the CUDA SDK ($sdk_script; the first run downloads ~870 MB)"
  if ! env=$(bash "$sdk_script" 2>"$tmp/sdk.log"); then
    sdk_reason="$sdk_script failed: $(tail -n 3 "$tmp/sdk.log" | tr '\n' ' ')"
    return 1
  fi
  eval "$env"
  [[ -n ${NVCC:-} && -n ${CGO_LDFLAGS:-} ]] || { sdk_reason="$sdk_script printed no environment"; return 1; }
}

check() {
  if ! load_sdk; then
    say "skipped: CUDA SDK unavailable: $sdk_reason"
    exit 0
  fi
  say "vet -tags $tag"
  "$GO" vet -tags "$tag" ./kernels/cuda/ ./train/ ./cmd/... || die "go vet -tags $tag"
  say "compile -tags $tag"
  "$GO" test -c -tags "$tag" -o "$tmp/kernels.test" ./kernels/cuda || die "go test -c -tags $tag ./kernels/cuda"
  "$GO" test -c -tags "$tag" -o "$tmp/train.test" ./train || die "go test -c -tags $tag ./train"
  "$GO" build -tags "$tag" -o "$tmp/metaids" ./cmd/metaids || die "go build -tags $tag ./cmd/metaids"
  assemble

  # The toolkit's stub libcuda fails cuInit with CUDA_ERROR_STUB_LIBRARY, like a broken driver:
  # run the build against it to check that it starts and degrades as it should.
  local stub=$CUDA_SDK_ROOT/usr/lib/x86_64-linux-gnu/stubs/libcuda.so
  [[ -f $stub ]] || die "no stub libcuda at $stub"
  mkdir -p "$tmp/stub"
  cp "$stub" "$tmp/stub/libcuda.so.1"
  say "startup without a usable driver (the toolkit's stub libcuda)"
  (cd kernels/cuda && LD_LIBRARY_PATH=$tmp/stub "$tmp/kernels.test" -test.v -test.count=1) >"$tmp/test.log" 2>&1 ||
    { cat "$tmp/test.log" >&2; die "cuda tests without a driver"; }
  grep -q -- '--- SKIP' "$tmp/test.log" && grep -q 'no usable NVIDIA driver' "$tmp/test.log" ||
    { cat "$tmp/test.log" >&2; die "cuda tests did not skip naming the missing driver"; }
  LD_LIBRARY_PATH=$tmp/stub "$tmp/metaids" "${bench[@]}" --backend auto >/dev/null 2>"$tmp/auto.err" ||
    { cat "$tmp/auto.err" >&2; die "metaids bench --backend auto without a driver"; }
  grep -q 'cuda unavailable, using cpu: no usable NVIDIA driver' "$tmp/auto.err" ||
    { cat "$tmp/auto.err" >&2; die "--backend auto did not report falling back"; }
  expect_refusal "$tmp/stub" 'no usable NVIDIA driver'

  emulate
  say "ok"
}

bench=(bench --steps 5 --warmup 0 --repeats 1 --format json)

# assemble runs the committed PTX through ptxas for Ampere and Hopper, as the driver's JIT compiler
# does when the backend loads it (which the emulation does not): it must assemble, and no kernel may
# spill registers or keep a stack frame.
assemble() {
  local ptxas=$CUDA_SDK_ROOT/usr/bin/ptxas arch regs=0 n
  [[ -x $ptxas ]] || die "no ptxas at $ptxas"
  for arch in sm_80 sm_90; do
    "$ptxas" -arch=$arch -v -o "$tmp/kernels.$arch.cubin" kernels/cuda/kernels.ptx >"$tmp/ptxas.log" 2>&1 ||
      { cat "$tmp/ptxas.log" >&2; die "ptxas -arch=$arch kernels/cuda/kernels.ptx"; }
    if grep -qE '[1-9][0-9]* bytes (stack frame|spill)' "$tmp/ptxas.log"; then
      grep -E -B2 '[1-9][0-9]* bytes (stack frame|spill)' "$tmp/ptxas.log" >&2
      die "ptxas -arch=$arch: a kernel spills registers or uses a stack frame"
    fi
    n=$(awk '/Used [0-9]+ registers/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^registers/ && $i + 0 > m) m = $i + 0 } END { print m + 0 }' "$tmp/ptxas.log")
    ((n > regs)) && regs=$n
  done
  ((regs > 0)) || { cat "$tmp/ptxas.log" >&2; die "ptxas reported no register counts"; }
  say "the PTX assembles for sm_80 and sm_90 without spills (at most $regs registers a thread)"
}

# expect_refusal LIBDIR TEXT [VAR=VALUE...]: metaids bench --backend cuda must fail saying TEXT.
expect_refusal() {
  local lib=$1 text=$2
  shift 2
  if env "$@" LD_LIBRARY_PATH="$lib" "$tmp/metaids" "${bench[@]}" --backend cuda >/dev/null 2>"$tmp/cuda.err"; then
    die "metaids bench --backend cuda succeeded with $* (want: $text)"
  fi
  grep -q "open cuda backend: $text" "$tmp/cuda.err" ||
    { cat "$tmp/cuda.err" >&2; die "--backend cuda with $* failed without saying: $text"; }
}

# emulate runs the cuda tests and a cuda bench against kernels/cuda/emu: a libcuda.so.1 that runs
# kernels.cu compiled for the CPU, with bounds checks (see fakecuda.cc). Everything must pass, not
# skip; the failure reasons are rehearsed through its environment variables.
emulate() {
  if ! command -v g++ >/dev/null; then
    say "no g++: emulated run skipped"
    return 0
  fi
  say "kernels on the CPU emulation of the driver"
  local lib=$tmp/emu
  mkdir -p "$lib"
  # Every driver function the binaries link gets a weak stub; fakecuda.cc defines the ones used.
  nm -D --undefined-only "$tmp/kernels.test" "$tmp/train.test" "$tmp/metaids" | awk '$1 == "U" && $2 ~ /^cu/ {print $2}' | sort -u |
    sed 's/.*/__attribute__((weak)) int &(void) { return 801; }/' >"$lib/stubs.c"
  gcc -O2 -fPIC -c "$lib/stubs.c" -o "$lib/stubs.o"
  # nvcc fuses multiply-adds: so does the emulation where the CPU can, so that the tests'
  # tolerances meet the same roundings as on a GPU.
  local fma=()
  grep -qw fma /proc/cpuinfo 2>/dev/null && fma=(-mfma -ffp-contract=fast)
  g++ -std=c++17 -O2 "${fma[@]}" -fPIC -shared -fvisibility=hidden -I"$CUDA_SDK_ROOT/usr/include" -Ikernels/cuda \
    -Ikernels/cuda/emu kernels/cuda/emu/fakecuda.cc "$lib/stubs.o" -o "$lib/libcuda.so.1" ||
    die "building the emulated driver"
  (cd kernels/cuda && LD_LIBRARY_PATH=$lib "$tmp/kernels.test" -test.v -test.count=1) >"$tmp/emu.log" 2>&1 ||
    { grep -v -e '^=== RUN' -e '^    --- PASS' "$tmp/emu.log" >&2; die "cuda tests on the emulation"; }
  ! grep -q -- '--- SKIP' "$tmp/emu.log" || { grep -B1 -A2 -- '--- SKIP' "$tmp/emu.log" >&2; die "cuda tests skipped on the emulation"; }
  say "$(grep -c -- '--- PASS' "$tmp/emu.log") tests passed on the emulation"
  # Again with blocks and threads run last first: a missing barrier that the usual order gets right shows.
  (cd kernels/cuda && METAIDS_FAKECUDA_ORDER=reverse LD_LIBRARY_PATH=$lib "$tmp/kernels.test" -test.count=1) >"$tmp/emu-rev.log" 2>&1 ||
    { grep -v -e '^=== RUN' -e '^    --- PASS' "$tmp/emu-rev.log" >&2; die "cuda tests on the emulation, threads in reverse order"; }
  say "and again with blocks and threads in reverse order"

  # The device-resident learners against the fused CPU ones.
  (cd train && LD_LIBRARY_PATH=$lib "$tmp/train.test" -test.run Device -test.v -test.count=1) >"$tmp/emu-train.log" 2>&1 ||
    { grep -v -e '^=== RUN' -e '^    --- PASS' "$tmp/emu-train.log" >&2; die "device learner tests on the emulation"; }
  ! grep -q -- '--- SKIP' "$tmp/emu-train.log" || { grep -B1 -A2 -- '--- SKIP' "$tmp/emu-train.log" >&2; die "device learner tests skipped on the emulation"; }
  say "$(grep -c -- '^--- PASS' "$tmp/emu-train.log") device learner tests passed on the emulation"

  # The cuda backend trains as the CPU one does (it runs the optimiser steps).
  local algo cpu gpu
  for algo in protonet maml; do
    cpu=$(LD_LIBRARY_PATH=$lib "$tmp/metaids" "${bench[@]}" --algo $algo --backend cpu 2>&1 | awk -F': *' '/"final_loss"/ {sub(/,$/, "", $2); print $2}')
    gpu=$(LD_LIBRARY_PATH=$lib "$tmp/metaids" "${bench[@]}" --algo $algo --backend cuda 2>&1 | awk -F': *' '/"final_loss"/ {sub(/,$/, "", $2); print $2}')
    # Device-resident learners sum in another order than the CPU's: float32 rounding apart.
    awk -v a="$cpu" -v b="$gpu" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 1e-4 * (a < 0 ? -a : a)) }' ||
      die "$algo: final loss on cuda (emulated) $gpu, on cpu $cpu"
    say "$algo bench: final loss $gpu on cuda (emulated), $cpu on cpu"
  done

  # The meta-batch sweep and the evaluation bench run device-resident, timed by events.
  local sweep
  for mode in train eval; do
    local extra=(--algo protonet,maml)
    [[ $mode == eval ]] && extra+=(--eval)
    sweep=$(LD_LIBRARY_PATH=$lib "$tmp/metaids" bench --backend cuda "${extra[@]}" --meta-batch 1,3 --steps 2 --warmup 0 \
      --repeats 1 --format json 2>"$tmp/sweep.err") || { cat "$tmp/sweep.err" >&2; die "$mode sweep on cuda (emulated)"; }
    [[ $mode == eval || $(grep -c '"pipelined": true' <<<"$sweep") == $(grep -c '"meta_batch"' <<<"$sweep") ]] &&
    [[ $(grep -c '"device_resident": true' <<<"$sweep") == $(grep -c '"meta_batch"' <<<"$sweep") ]] &&
      [[ $(grep -c '"cuda_graphs": true' <<<"$sweep") == $(grep -c '"meta_batch"' <<<"$sweep") ]] &&
      grep -q '"device_ms_per_step": [0-9]' <<<"$sweep" && grep -q '"device_pool": true' <<<"$sweep" ||
      { echo "$sweep" >&2; die "$mode sweep on cuda (emulated) was not device-resident, replayed as graphs, queued, fed from a device pool and timed"; }
  done
  # Without graphs, every kernel is launched from the host.
  sweep=$(METAIDS_CUDA_GRAPHS=0 LD_LIBRARY_PATH=$lib "$tmp/metaids" bench --backend cuda --algo protonet --meta-batch 2 --steps 2 \
    --warmup 0 --repeats 1 --format json 2>"$tmp/sweep.err") || { cat "$tmp/sweep.err" >&2; die "sweep without graphs on cuda (emulated)"; }
  grep -q '"device_resident": true' <<<"$sweep" && ! grep -q '"cuda_graphs"' <<<"$sweep" ||
    { echo "$sweep" >&2; die "METAIDS_CUDA_GRAPHS=0 did not turn graphs off"; }
  say "meta-batch sweeps (training, evaluation) device-resident, replayed as graphs and timed on the emulation"

  # A real run trains device-resident from the training file's matrix on the device.
  LD_LIBRARY_PATH=$lib "$tmp/metaids" run experiments/nsl-kdd/protonet-5way5shot.yaml --device cuda --seeds 1 --out "$tmp/run" \
    --set episodes.train_steps=4 --set episodes.val_every=2 --set episodes.val_episodes=2 --set episodes.test_episodes=2 \
    >"$tmp/run.log" 2>&1 || { tail -n 20 "$tmp/run.log" >&2; die "metaids run --device cuda (emulated)"; }
  grep -q '"backend": "cuda"' "$tmp"/run/*/seed-1/summary.json || die "metaids run --device cuda (emulated) did not record the cuda backend"
  # Launching every kernel instead of replaying graphs changes nothing: the same curve, the same test episodes.
  METAIDS_CUDA_GRAPHS=0 LD_LIBRARY_PATH=$lib "$tmp/metaids" run experiments/nsl-kdd/protonet-5way5shot.yaml --device cuda --seeds 1 \
    --out "$tmp/run-nographs" --set episodes.train_steps=4 --set episodes.val_every=2 --set episodes.val_episodes=2 \
    --set episodes.test_episodes=2 >"$tmp/run.log" 2>&1 || { tail -n 20 "$tmp/run.log" >&2; die "metaids run --device cuda without graphs (emulated)"; }
  for f in curve.csv episodes.csv; do
    cmp -s "$tmp"/run/*/seed-1/$f "$tmp"/run-nographs/*/seed-1/$f || die "metaids run --device cuda: $f differs with METAIDS_CUDA_GRAPHS=0"
  done
  say "metaids run --device cuda on the emulation, the same curve and test episodes with and without graphs"

  # Pre-training initialises the device learner, not only its host copy.
  LD_LIBRARY_PATH=$lib "$tmp/metaids" run experiments/nsl-kdd/protonet-5way5shot.yaml --device cuda --seeds 1 --out "$tmp/run-pre" \
    --set pretrain.objective=denoise --set pretrain.epochs=1 --set episodes.train_steps=4 --set episodes.val_every=2 \
    --set episodes.val_episodes=2 --set episodes.test_episodes=2 >"$tmp/run.log" 2>&1 ||
    { tail -n 20 "$tmp/run.log" >&2; die "metaids run --device cuda with pre-training (emulated)"; }
  # A device that faults mid-run stops the run with the driver's error, never a panic: device-resident (protonet)
  # and host-side learners whose optimiser steps run on the device (anil).
  for algo in protonet anil; do
    if METAIDS_FAKECUDA_FAIL_AFTER=6 LD_LIBRARY_PATH=$lib "$tmp/metaids" run experiments/nsl-kdd/protonet-5way5shot.yaml --device cuda \
      --seeds 1 --out "$tmp/run-fault" --set learner.algo=$algo --set episodes.train_steps=8 --set episodes.val_every=0 \
      --set episodes.test_episodes=2 >"$tmp/run.log" 2>&1; then
      die "metaids run --device cuda ($algo) succeeded on a device that faults"
    fi
    grep -q 'CUDA_ERROR_LAUNCH_FAILED' "$tmp/run.log" && ! grep -q -e '^panic' -e '^goroutine ' "$tmp/run.log" ||
      { tail -n 20 "$tmp/run.log" >&2; die "metaids run --device cuda ($algo) on a faulting device did not stop with the driver's error"; }
  done
  # A learner that cannot run device-resident says why.
  grep -q 'anil runs on the host (only protonet, maml and fomaml run device-resident)' "$tmp/run.log" ||
    { tail -n 20 "$tmp/run.log" >&2; die "metaids run --device cuda (anil) did not say why it runs on the host"; }
  say "pre-training reaches the device learner; a device fault mid-run is an error, not a panic"

  expect_refusal "$lib" 'no usable CUDA device: cuInit: CUDA_ERROR_NO_DEVICE' METAIDS_FAKECUDA_INIT=100
  expect_refusal "$lib" 'no usable CUDA device: the driver reports no CUDA device' METAIDS_FAKECUDA_DEVICES=0
  expect_refusal "$lib" 'no usable CUDA device: .* compute capability 7.5' METAIDS_FAKECUDA_CC=75
  expect_refusal "$lib" 'out of GPU memory' METAIDS_FAKECUDA_FREE_MIB=64
  expect_refusal "$lib" 'no usable NVIDIA driver: cuInit: CUDA_ERROR_UNKNOWN' METAIDS_FAKECUDA_INIT=999
  expect_refusal "$lib" 'cuda: METAIDS_CUDA_GRAPHS="maybe": want 1' METAIDS_CUDA_GRAPHS=maybe
}

ptx() {
  load_sdk || die "CUDA SDK unavailable: $sdk_reason"
  # shellcheck disable=SC2086 # NVCC is a command with arguments
  $NVCC -ptx -arch=compute_80 -o kernels/cuda/kernels.ptx kernels/cuda/kernels.cu
  (cd kernels/cuda && sha256sum kernels.cu >kernels.ptx.sha256)
  say "wrote kernels/cuda/kernels.ptx ($(wc -l <kernels/cuda/kernels.ptx) lines) and kernels.ptx.sha256"
}

device() {
  load_sdk || die "CUDA SDK unavailable: $sdk_reason"
  mkdir -p .device
  # Without symbol tables and debug information: what the device tool carries is limited to 64 MiB.
  local small=(-trimpath -ldflags "-s -w")
  "$GO" test -c -tags "$tag" "${small[@]}" -o .device/kernels.test ./kernels/cuda
  "$GO" test -c -tags "$tag" "${small[@]}" -o .device/train.test ./train
  "$GO" build -tags "$tag" -trimpath -ldflags "-s -w -X github.com/metaids/metaids/experiments.BuildCommit=${BUILD_COMMIT:-}" \
    -o .device/metaids ./cmd/metaids
  say "$(du -sh .device | cut -f1) in .device"
  say "built .device/kernels.test, .device/train.test and .device/metaids; on the GPU machine run:"
  say "  scripts/gpu-run.sh (tests, sweeps against PyTorch, benchmarks), then scripts/gpu-run.sh profile (ncu,"
  say "  compute-sanitizer); logs in results/gpu/<mode>/, packed into \$OUT/gpu-<mode>.tar.gz when OUT is set"
}

case ${1:-check} in
  check) check ;;
  ptx) ptx ;;
  device) device ;;
  -h | --help | help) sed -n '2,22p' "${BASH_SOURCE[0]}" ;;
  *) die "unknown subcommand ${1} (check, ptx, device)" ;;
esac
