#!/usr/bin/env bash
# One-call GPU check (issue 10 item 5): every CUDA test and the kernel and pre-training benchmarks on
# one GPU, figures in one JSON.
#
#   bash scripts/gpu_check.sh [OUT.json]          (default: benchmarks/results/gpu_check.json)
#
# - Builds the Cython extensions in place (python setup.py build_ext --inplace; skipped with a note
#   when Cython is missing: the lent machine has no registry access) and runs with PYTHONPATH=., so
#   it works from a bare checkout without pip install.
# - With a GPU (torch.cuda.is_available()): AEMG_TEST_CUDA=1, TRITON_INTERPRET unset; the CUDA cases
#   of the Triton kernels' tests (KERNEL_TESTS) plus every test marked `cuda`;
#   benchmarks/test_bench_kernels.py (VQ lookup N=65536 K=8192 D=256 in fp32/TF32/bf16, varlen
#   attention on lengths <= 256 vs SDPA) and benchmarks/test_bench_pretrain.py (tiny and base tokens/s); the Triton AOT register report for
#   the GPU's architecture. Each step has a time limit; the whole run is meant to finish in < 8 min.
# - Without a GPU: the CPU-interpreter part only (TRITON_INTERPRET=1: the Triton kernels' tests
#   executed by the interpreter, about a minute on 2 cores); AEMG_GPU_CHECK_AOT=1 adds the sm_90
#   AOT compile (about 1.5 min more).
# Nothing here depends on the torch/triton version beyond what the tests themselves use (checked
# with torch 2.13 / triton 3.7 on CPU; meant for torch 2.11 / triton 3.6 as well).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-$ROOT/benchmarks/results/gpu_check.json}
mkdir -p "$(dirname "$OUT")"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aemg-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)
step() { echo "=== $* ($(( $(date +%s) - start )) s)"; }
STATUS=$WORK/status.tsv   # name <TAB> exit code <TAB> seconds
: > "$STATUS"
run_step() {  # run_step NAME LIMIT_S CMD...: run with a time limit, log to $WORK/NAME.log
  local name=$1 limit=$2 t0 rc
  shift 2
  step "$name"
  t0=$(date +%s)
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  tail -n 3 "$WORK/$name.log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$STATUS"
}

step "environment"
"$PY" - > "$WORK/env.json" <<'EOF'
import json, platform
info = {"python": platform.python_version()}
try:
    import torch
    info.update(torch=torch.__version__, cuda_available=torch.cuda.is_available(),
                cuda_runtime=torch.version.cuda)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                    gpu_memory_gib=round(p.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count())
except Exception as exc:  # noqa: BLE001 - reported in the JSON
    info["torch_error"] = repr(exc)
try:
    import triton
    info["triton"] = triton.__version__
except Exception as exc:  # noqa: BLE001
    info["triton_error"] = repr(exc)
print(json.dumps(info))
EOF
cat "$WORK/env.json"
GPU=$("$PY" -c "import json,sys; print(int(bool(json.load(open(sys.argv[1])).get('cuda_available'))))" "$WORK/env.json" 2>/dev/null || echo 0)
ARCH=$("$PY" -c "import json,sys; c=json.load(open(sys.argv[1])).get('capability') or [9,0]; print(c[0]*10+c[1])" "$WORK/env.json" 2>/dev/null || echo 90)

if "$PY" -c "import Cython" 2>/dev/null; then
  run_step build 300 "$PY" setup.py build_ext --inplace
else
  step "build skipped: Cython is not installed (the NumPy/Numba backends are used)"
  printf 'build\tskipped\t0\n' >> "$STATUS"
fi

PYTEST=("$PY" -m pytest -q -p no:cacheprovider -o addopts="")
# the Triton kernels' tests, one file per op (+ the fp16/bf16 error-relative-to-PyTorch rule)
KERNEL_TESTS=(tests/test_kernels_vq_lookup.py tests/test_kernels_masked_attention.py
              tests/test_kernels_masked_attention_precision.py)
if [ "$GPU" = "1" ]; then
  export AEMG_TEST_CUDA=1
  unset TRITON_INTERPRET
  run_step cuda_tests 240 "${PYTEST[@]}" "${KERNEL_TESTS[@]}" -k cuda --junit-xml="$WORK/cuda_tests.xml"
  run_step cuda_marked 120 "${PYTEST[@]}" tests -m cuda --junit-xml="$WORK/cuda_marked.xml"
  run_step benchmarks 300 env AEMG_BENCH_RESULTS="$WORK/bench" "${PYTEST[@]}" \
    benchmarks/test_bench_kernels.py benchmarks/test_bench_pretrain.py -m cuda --junit-xml="$WORK/benchmarks.xml"
  run_step aot 120 "$PY" -m aemg.kernels._aot "$ARCH"
else
  export TRITON_INTERPRET=1
  run_step interpreter_tests 240 "${PYTEST[@]}" "${KERNEL_TESTS[@]}" --junit-xml="$WORK/interpreter_tests.xml"
  if [ "${AEMG_GPU_CHECK_AOT:-0}" = "1" ]; then
    run_step aot 240 env -u TRITON_INTERPRET "$PY" -m aemg.kernels._aot 90
  fi
fi

step "writing $OUT"
"$PY" - "$WORK" "$OUT" "$GPU" <<'EOF'
import glob, json, os, sys, time
import xml.etree.ElementTree as ET

work, out, gpu = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
report = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "mode": "gpu" if gpu else "cpu-interpreter",
          "environment": json.load(open(os.path.join(work, "env.json"))), "steps": {}, "tests": {},
          "benchmarks": {}}
for line in open(os.path.join(work, "status.tsv")):
    name, rc, seconds = line.rstrip("\n").split("\t")
    report["steps"][name] = {"exit_code": rc if rc == "skipped" else int(rc), "seconds": int(seconds),
                             "timed_out": rc in ("124", "137")}
for xml in glob.glob(os.path.join(work, "*.xml")):
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}" for s in suites for c in s.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    report["tests"][os.path.basename(xml)[:-4]] = {**counts, "passed": counts["tests"] - counts["failures"]
                                                   - counts["errors"] - counts["skipped"], "failed": failed}
for res in glob.glob(os.path.join(work, "bench", "*.json")):
    report["benchmarks"][os.path.basename(res)[:-5]] = json.load(open(res))
aot = os.path.join(work, "aot.log")
if os.path.exists(aot):
    report["aot"] = [l.strip() for l in open(aot) if "registers" in l]
# pytest's 5 = no test collected (e.g. no test marked cuda yet): not a failure
report["ok"] = all(s["exit_code"] in (0, 5, "skipped") for s in report["steps"].values())
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(report, f, indent=1, default=float)
os.replace(tmp, out)
print(json.dumps({k: report[k] for k in ("mode", "ok", "steps", "tests")}, indent=1))
EOF
rc=$?
step "done"
[ $rc -eq 0 ] && "$PY" -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))['ok'] else 1)" "$OUT"
