#!/bin/bash
# Pre-training seed spread on 3DC (docs/notes/generalisation.md, session 6): tiny preset, the
# leave-one-dataset-out corpora, seeds $SEEDS (seed 0 = $RES/runs/for_3dc of evaluate_real.sh), then
# the recommended AEMG method per regime on 3DC. Resumable (pretrain --resume, evaluate's journal).
#   RES=/tmp/res [SEEDS="1 2"] bash scripts/pretrain_seeds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RES=${RES:?set RES to the evaluate_real.sh results folder}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
C=$RES/corpus
mkdir -p "$RES/reports_s6"
for s in ${SEEDS:-1 2}; do
  R=$RES/runs/for_3dc_seed$s
  resume=(); [[ -e $R/latest.json ]] && resume=(--resume)
  nice -n 12 .venv/bin/aemg pretrain "$C/coteallard" "$C/uci_myo" "$C/libemg_myo" --out "$R" \
     --preset tiny --seed "$s" --device cpu --no-progress "${resume[@]}"
  nice -n 12 .venv/bin/aemg evaluate "$RES/arch/3dc" --out "$RES/reports_s6/3dc_ptseed$s" --checkpoint "$R" \
     --methods aemg-probe-tok,aemg-probe-tok-subjnorm,aemg-probe-auto,aemg-probe-tok-map \
     --regimes rest,online,unlabelled,fewshot --shares 0.05 --small-share one --seeds 0 --no-plots --no-progress
done
