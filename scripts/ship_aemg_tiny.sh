#!/usr/bin/env bash
# Retrain and ship the packaged `aemg-tiny` weights (aemg/weights/aemg-tiny, index.json).
# Pre-trains the tiny preset on EVERY shared corpus (the four older and the four newer sets),
# 1000 + 1000 steps, seed 0, one CPU thread (bit-for-bit reproducible on CPU), then copies the
# final checkpoint into the package with its model card and digests.
# Usage: RES=/tmp/res scripts/ship_aemg_tiny.sh [pretrain|ship]   (default both)
# Needs the corpora: `scripts/evaluate_real.sh archives corpora` for coteallard, 3dc, uci_myo,
# libemg_myo, and `aemg rectify NAME - $RES/arch/NAME && aemg tokenize $RES/arch/NAME
# $RES/corpus/NAME --workers 1` for myo_readings, ciil_myo, suguru_longterm_armband, multiday_4ch.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
RES=${RES:-/tmp/res}
AEMG=${AEMG:-$here/.venv/bin/aemg}
PY=${PY:-$here/.venv/bin/python}
CORPUS=${CORPUS:-$RES/corpus}
RUN=${RUN:-$RES/runs/all_tiny_1000}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1
# the shipped weights were trained with the padded token encoder (before session 5's packing, which
# computes the same function up to float rounding): keep it for a bit-for-bit retrain
export AEMG_PACK_TOKENS=0
NAMES=(coteallard 3dc uci_myo libemg_myo myo_readings ciil_myo suguru_longterm_armband multiday_4ch)
CMD="aemg pretrain ${NAMES[*]/#/\$RES/corpus/} --out \$RES/runs/all_tiny_1000 --preset tiny --steps 1000 --seed 0 --device cpu"
steps=("$@"); (( ${#steps[@]} )) || steps=(pretrain ship)
for s in "${steps[@]}"; do
    case $s in
        pretrain) nice "$AEMG" pretrain "${NAMES[@]/#/$CORPUS/}" --out "$RUN" --preset tiny --steps 1000 \
                      --seed 0 --device cpu --no-progress ;;
        ship) "$PY" -m aemg.weights ship "$RUN" aemg-tiny --card "$here/docs/aemg-tiny.md" --command "$CMD" ;;
        *) echo "unknown step $s (pretrain ship)" >&2; exit 2 ;;
    esac
done
