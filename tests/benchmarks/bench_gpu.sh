#!/usr/bin/env bash
# Every GPU check in one call on the accelerator machine (README, "GPU checks"):
#   here, once:   make gpu-wheels      (Ray and what Ray Train needs, for the device's Python)
#   on a device:  run(command="bash tests/benchmarks/bench_gpu.sh", carry=[".whl"], timeout_s=540)
# The device's python3 has torch but not Ray or searchrank: the carried wheels go to a scratch
# folder and searchrank is put on PYTHONPATH from this checkout. Each check's JSON line goes to
# $OUT/bench-gpu.jsonl (build/bench-gpu/ where $OUT is unset), the card to $OUT/card.txt. A
# failing check is reported and the next one still runs; the exit status says if any failed.
set -uo pipefail
out=${OUT:-build/bench-gpu}
mkdir -p "$out"
scratch=$(mktemp -d)
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target "$scratch/site" .whl/*.whl || exit 1
fi
mkdir -p "$scratch/src/searchrank"
for package in core components pipelines features serving; do
    ln -s "$PWD/$package" "$scratch/src/searchrank/$package"
done
# searchrank reads its own version from its installed metadata: give the linked source some.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
mkdir -p "$scratch/src/searchrank-$version.dist-info"
printf 'Metadata-Version: 2.1\nName: searchrank\nVersion: %s\n' "$version" \
    >"$scratch/src/searchrank-$version.dist-info/METADATA"
export PYTHONPATH="$scratch/src:$scratch/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no GPU"; } |
    tee "$out/card.txt"
: >"$out/bench-gpu.jsonl"
failed=0
checks=("bench_model_gpu.py" "bench_decode_gpu.py" "bench_train_gpu.py --quick")
[ $# -gt 0 ] && checks=("$@")  # or only the checks named, as in: bench_gpu.sh "bench_train_gpu.py --quick"
for check in "${checks[@]}"; do
    echo "== $check"
    # shellcheck disable=SC2086  # the check's arguments are meant to split
    if python3 tests/benchmarks/$check 2>&1 | tee "$scratch/log"; then
        tail -n 1 "$scratch/log" >>"$out/bench-gpu.jsonl"
    else
        echo "{\"bench\": \"${check%% *}\", \"failed\": true}" >>"$out/bench-gpu.jsonl"
        failed=1
    fi
done
cat "$out/bench-gpu.jsonl"
exit $failed
