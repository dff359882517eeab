#!/bin/bash
# Issue 9 item 5 on all 22 3DC subjects (docs/notes/generalisation.md, session 6): pre-trained probe
# and fine-tune vs scratch vs fixed windows under the rest regime, seed 0, in batches of 4 subjects
# into one report folder. Resumable: every finished fold is in the report's journal.jsonl, so
# re-running continues where it stopped; the last command writes the all-subject report.
#   RES=/tmp/res bash scripts/heavy_rest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RES=${RES:?set RES to the evaluate_real.sh results folder}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=$RES/reports_s6/3dc_heavy_rest
M=aemg-probe,aemg-finetune,aemg-scratch,window-transformer
ARGS=(--methods $M --checkpoint "$RES/runs/for_3dc" --regimes rest --seeds 0 --no-plots --no-progress)
for B in 1,15,20,6 2,3,4,5 7,8,9,10 11,12,13,14 16,17,18,19 21,22; do
  nice -n 19 .venv/bin/aemg evaluate "$RES/arch/3dc" --out "$OUT" "${ARGS[@]}" --subjects "$B"
done
nice -n 19 .venv/bin/aemg evaluate "$RES/arch/3dc" --out "$OUT" "${ARGS[@]}"
