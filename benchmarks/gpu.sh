#!/usr/bin/env bash
# The GPU checks, on one CUDA GPU in under 8 minutes, run from anywhere in the repository:
#
#   benchmarks/gpu.sh                 # log in ./gpu-bench.txt, training reports in ./training-{torch,jax}/
#   OUT=/some/dir benchmarks/gpu.sh   # the same under /some/dir
#
# 1. bench.py --device cuda with the GPU sizes (sections 1, 2, 3 and 5; 4 comes with 3);
# 2. the step time of the recommended configuration on the (large) LM against torch.optim.Muon and
#    optax.contrib.muon (their tuned hybrid settings), from a 50-step run of
#    benchmarks/training/run.py (step_time.py has no --device), one process per framework so that
#    a slow JAX compile cannot lose PyTorch's numbers. run.py's PyTorch ms/step averages every step
#    of the run, the first (CUDA start-up) included, so it reads high for a run this short; JAX's
#    step is timed after two warm-up calls;
# 3. the parity suite (JAX on the GPU where jax[cuda] is installed; torch's side runs on the CPU),
#    over all cores when pytest-xdist is installed.
#
# Each step has a time limit in seconds (TIMEOUT_BENCH, TIMEOUT_LM_TORCH, TIMEOUT_LM_JAX,
# TIMEOUT_PARITY; 460 in all) and the next step runs whatever the last one did; the exit status is
# the number of steps that failed.
# PYTHON picks the interpreter (default: python). Needs torch with CUDA and jax[cuda12].
# DEVICE=cpu QUICK=1 runs the same steps as a smoke test of this script on a machine without a GPU
# (bench.py --quick, 10 training steps of the small LM).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "${OUT:-.}"
out="$(cd "${OUT:-.}" && pwd)"  # absolute: OUT is relative to where the script was started
log="$out/gpu-bench.txt"
cd "$root"
python="${PYTHON:-python}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# torch and JAX share the GPU within one process: JAX allocates as it goes instead of taking 75% at start.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
: "${TIMEOUT_BENCH:=200}" "${TIMEOUT_LM_TORCH:=40}" "${TIMEOUT_LM_JAX:=120}" "${TIMEOUT_PARITY:=100}"
device="${DEVICE:-cuda}"
if [[ -n "${QUICK:-}" ]]; then
    bench_sizes=(--quick)
    steps=10
else
    bench_sizes=(--sizes gpu)
    steps=50
fi

failed=()

# step NAME SECONDS COMMAND...: run COMMAND under a time limit, note its exit status, carry on.
step() {
    local name=$1 limit=$2 rc=0 start=$SECONDS
    shift 2
    echo
    echo "=== $name (limit ${limit} s): $*"
    timeout -k 5 "$limit" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo  # the command was cut off, perhaps mid-line
        echo "=== $name: timed out after $((SECONDS - start)) s (exit $rc)"
    else
        echo "=== $name: exit $rc after $((SECONDS - start)) s"
    fi
    if [[ $rc -ne 0 ]]; then
        failed+=("$name")
    fi
}

main() {
    echo "=== gpu.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi -L || true
    else
        echo "nvidia-smi not found"
    fi
    local parallel=()
    if "$python" -c 'import xdist' 2>/dev/null; then
        parallel=(-n auto)
    fi

    step "bench.py" "$TIMEOUT_BENCH" \
        "$python" benchmarks/bench.py --device "$device" "${bench_sizes[@]}" --sections 1,2,3,5
    local framework
    for framework in torch jax; do
        local limit_name="TIMEOUT_LM_${framework^^}"
        step "LM step time, $framework (training/run.py)" "${!limit_name}" \
            "$python" benchmarks/training/run.py --device "$device" --tasks lm --frameworks "$framework" \
            --quick --steps "$steps" --configs recommended,torch_muon_hybrid,optax_muon_hybrid \
            --out "$out/training-$framework"
    done
    step "parity suite" "$TIMEOUT_PARITY" \
        "$python" -m pytest -q -p no:cacheprovider "${parallel[@]}" parity_tests

    echo
    if [[ ${#failed[@]} -eq 0 ]]; then
        echo "=== all steps passed in $SECONDS s"
    else
        echo "=== ${#failed[@]} step(s) failed in $SECONDS s:"
        printf '===   %s\n' "${failed[@]}"
    fi
    return "${#failed[@]}"
}

main 2>&1 | tee "$log"
