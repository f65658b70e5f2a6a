#!/usr/bin/env bash
# The GPU checks the CPU-only CI cannot run, as one bounded command for a borrowed GPU machine:
#   1. pytest -m gpu             the engine and the extraction on CUDA equal the CPU's
#   2. bench_extract.py          images/s per backbone, batched path vs per-image PIL (batch 64)
#   3. bench_engine.py aggfixed  the §5.1 grids and mixed313 on CUDA, full MNIST size, one seed
#   4. bench_engine.py aggfocus
#   5. engine_cpu_vs_cuda        aggfixed and mixed313 at a tenth of the size on the CPU, then on
#                                CUDA: how many of the results tables' rows differ (--compare)
# Each step has its own time limit in seconds (default GPU_CHECK_LIMITS="120 120 110 140 60",
# 9.2 min in all, inside a 10-minute command limit), so one slow step cannot lose the others'
# numbers.
# Logs go to $OUT (or results/gpu_check) as each step prints, a summary line per step last.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh   # tiny sizes: checks the script itself on a CPU
#
# Needs numpy, torch, torchvision, scikit-learn, pandas, pyarrow, pyyaml, tqdm, Pillow and pytest
# in $PYTHON (default python3); the library is taken from workflow/ (no install, so an image's
# own torch build is used as it is).
set -uo pipefail

out=${OUT:-results/gpu_check}
mkdir -p "$out"
python=${PYTHON:-python3}
defaults=(120 120 110 140 60)
read -r -a limits <<<"${GPU_CHECK_LIMITS:-}"
for i in "${!defaults[@]}"; do limits[i]=${limits[i]:-${defaults[i]}}; done
export PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if [[ -n ${GPU_CHECK_SMOKE:-} ]]; then
    extract_args=(--backbones resnet18 --images 32 --workers 0)
    engine_args=(--scale 0.01 --naive-sample 0)
    compare_args=(--grids aggfixed mixed313 --scale 0.01 --naive-sample 0) compare_device=cpu
else
    extract_args=()
    engine_args=(--device cuda --naive-sample 0)
    compare_args=(--grids aggfixed mixed313 --scale 0.1 --naive-sample 0) compare_device=cuda
fi

summary="$out/summary.txt"
: >"$summary"
failed=0
step() { # step NAME LIMIT COMMAND...
    local name=$1 limit=$2 start rc pid tailer note=""
    shift 2
    start=$SECONDS
    echo "== $name (limit ${limit} s): $*" | tee "$out/$name.log"
    # In the background and followed with tail, so that a child left behind (a DataLoader
    # worker ignoring SIGTERM) cannot hold a pipe open past the limit: timeout leads its own
    # process group, which is killed whole once timeout returns.
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >>"$out/$name.log" 2>&1 &
    pid=$!
    tail -n +2 -f --pid="$pid" "$out/$name.log" &
    tailer=$!
    wait "$pid"
    rc=$?
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$tailer" 2>/dev/null || true
    [[ $rc == 124 || $rc == 137 ]] && note=" (time limit)"
    [[ $rc == 0 ]] || failed=1
    echo "$name: exit $rc after $((SECONDS - start)) s$note" | tee -a "$summary"
}

{
    date -u
    git rev-parse HEAD 2>/dev/null || true
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true
    "$python" - <<'EOF'
import sys, numpy, PIL, sklearn, torch, torchvision
print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}, Pillow {PIL.__version__}, "
      f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
      f"torchvision {torchvision.__version__}, CUDA {torch.cuda.is_available()}, "
      f"threads {torch.get_num_threads()}")
EOF
} 2>&1 | tee "$out/environment.txt"
# Without CUDA the gpu tests skip and the benchmarks fall back to the CPU: say so and stop.
if [[ -z ${GPU_CHECK_SMOKE:-} ]] && ! "$python" -c "import torch; assert torch.cuda.is_available()"; then
    echo "no CUDA device visible to $python; nothing checked (GPU_CHECK_SMOKE=1 runs the CPU smoke)" |
        tee "$summary"
    exit 1
fi

step pytest_gpu "${limits[0]}" "$python" -m pytest -m gpu -p no:cacheprovider -q -rA \
    tests/engine/test_evaluate.py tests/engine/test_distances.py tests/data/test_extract.py
step bench_extract "${limits[1]}" "$python" benchmarks/bench_extract.py "${extract_args[@]}"
step bench_engine_aggfixed "${limits[2]}" "$python" benchmarks/bench_engine.py \
    --grids aggfixed mixed313 "${engine_args[@]}"
step bench_engine_aggfocus "${limits[3]}" "$python" benchmarks/bench_engine.py \
    --grids aggfocus "${engine_args[@]}"
# $1 python, $2 the CPU's tables, $3 the device compared, then bench_engine's arguments.
step engine_cpu_vs_cuda "${limits[4]}" bash -c '"$1" benchmarks/bench_engine.py "${@:4}" \
    --device cpu --save "$2" && "$1" benchmarks/bench_engine.py "${@:4}" --device "$3" \
    --compare "$2"' _ "$python" "$out/cpu_tables" "$compare_device" "${compare_args[@]}"
cat "$summary"
exit "$failed"
