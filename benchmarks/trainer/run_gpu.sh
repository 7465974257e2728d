#!/usr/bin/env bash
# The GPU checks in one command: the `gpu` tests, then sftdata vs TRL (bench_gpu.py).
# Everything it prints also goes to $OUT (default gpu-results/).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
python - <<'PY' 2>&1 | tee "$OUT/environment.txt"
import importlib.util, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
for name in ("transformers", "peft", "accelerate", "trl", "flash_attn", "liger_kernel", "bitsandbytes"):
    print(name, "installed" if importlib.util.find_spec(name) else "MISSING")
PY
python -m pytest -q -m gpu -rs -p no:cacheprovider tests/trainer/test_gpu.py 2>&1 | tee "$OUT/gpu-tests.txt"
tests=${PIPESTATUS[0]}
python benchmarks/trainer/bench_gpu.py --json "$OUT/bench_gpu.json" "$@" 2>&1 | tee "$OUT/bench_gpu.txt"
bench=${PIPESTATUS[0]}
echo "gpu tests exit $tests, benchmark exit $bench" | tee -a "$OUT/bench_gpu.txt"
exit $(( tests || bench ))
