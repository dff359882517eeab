#!/usr/bin/env bash
# Reproduce docs/notes/results.md: AEMG vs classic baselines on the three real datasets
# (Cote-Allard Myo first session, 3DC, UCI Myo), each evaluated with a tiny model pre-trained
# on the OTHER shared corpora (leave-one-dataset-out pre-training), seed 0 everywhere.
#
# Usage:  scripts/evaluate_real.sh [STEP ...]
#   STEP: archives corpora pretrain baselines probe subjnorm rotation seeds curve diagnostics heavy regimes table   (default: all, in order)
#   regimes: the LDA family and the probe variants under every adaptation regime (issue 9) plus the
#            intra reference, one report per dataset ($RES/reports$TAG/<dataset>_regimes); its
#            results.md opens with the regime table (one row per method, one column per regime):
#              scripts/evaluate_real.sh regimes            (after archives corpora pretrain)
#              TAG=_long scripts/evaluate_real.sh regimes  (with the longer pre-training runs)
# Environment:
#   RES       work folder (default /tmp/res); never inside the repository
#   AEMG      the aemg command (default: aemg on PATH, else .venv/bin/aemg of this checkout)
#   JOBS      heavy processes at once (default 2: the shared box has 2 cores)
#   SUBJECTS_COTEALLARD / SUBJECTS_3DC / SUBJECTS_UCI   test subjects of the slow methods
#             (aemg-finetune, aemg-scratch, window-transformer); default: 4 subjects each, every
#             10th / 6th / 8th of the sorted subject names; set to "" for all subjects
#   ONLY      evaluation datasets to process (default "coteallard 3dc uci_myo")
#   EPOCHS    epochs of the slow methods (default 10 = the methods' default)
#   PRETRAIN_STEPS  steps per pre-training stage (default: the tiny preset's 300)
#   TAG       suffix for the runs and reports folders, e.g. TAG=_long PRETRAIN_STEPS=2000
#             scripts/evaluate_real.sh pretrain probe subjnorm seeds curve table
# Every process runs under `nice` with one torch / BLAS thread (OMP_NUM_THREADS=1: torch reads
# it at start-up for its intra-op pool); wall / CPU times land in $RES/logs/<name>.time.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
RES=${RES:-/tmp/res}
if [[ -z "${AEMG:-}" ]]; then
    if command -v aemg >/dev/null 2>&1; then AEMG=aemg; else AEMG="$here/.venv/bin/aemg"; fi
fi
PY=${PY:-$(dirname "$(command -v "$AEMG" || echo "$AEMG")")/python}
JOBS=${JOBS:-2}
EPOCHS=${EPOCHS:-10}
SUBJECTS_COTEALLARD=${SUBJECTS_COTEALLARD-eval-Female0,eval-Male2,pre-Female2,pre-Male10}  # every 10th (sorted)
SUBJECTS_3DC=${SUBJECTS_3DC-1,15,20,6}  # every 6th of the sorted names
SUBJECTS_UCI=${SUBJECTS_UCI-01,09,19,27}  # every 8th (sorted)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1

ARCH=$RES/arch          # standard-space archives (aemg rectify)
CORPUS=$RES/corpus      # token corpora (aemg tokenize)
TAG=${TAG:-}            # suffix of the runs / reports folders (e.g. _long), to keep several settings
RUNS=$RES/runs$TAG      # pre-training runs
REPORTS=$RES/reports$TAG # evaluation reports
LOGS=$RES/logs
mkdir -p "$ARCH" "$CORPUS" "$RUNS" "$REPORTS" "$LOGS"

# shellcheck disable=SC2206
DATASETS=(${ONLY:-coteallard 3dc uci_myo})  # evaluated (ONLY="3dc uci_myo" restricts every step)
CORPORA=(coteallard 3dc uci_myo libemg_myo) # pre-training material
# Cote-Allard: first session of all 40 subjects (1,120 trials, as the issue's baselines).
declare -A SESSIONS=([coteallard]="--sessions training0" [3dc]="" [uci_myo]="")
# Few-shot: 4 repetitions per class and subject, so 5 % is below one trial per class:
# --small-share one takes the minimum share (one trial per class); actual_share is in the report.
FEWSHOT=(--shares 0.05 --small-share one)

# run NAME CMD...: nice, timed, logged; at most $JOBS at once (run in background, `wait` at the end).
run() {
    local name=$1; shift
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    echo "[$(date +%T)] start $name: $*"
    ( /usr/bin/time -f "%e s wall, %U s user, %S s sys, %M KiB max RSS" -o "$LOGS/$name.time" \
        nice "$@" > "$LOGS/$name.log" 2>&1 \
      && echo "[$(date +%T)] done  $name ($(head -c 60 "$LOGS/$name.time"))" \
      || echo "[$(date +%T)] FAILED $name (see $LOGS/$name.log)" ) &
}

others() {  # the pre-training corpora for evaluation dataset $1: every shared corpus but its own
    local d
    for d in "${CORPORA[@]}"; do [[ $d == "$1" ]] || printf '%s ' "$CORPUS/$d"; done
}

step_archives() {
    local d
    for d in "${CORPORA[@]}"; do run "rectify_$d" "$AEMG" rectify "$d" - "$ARCH/$d" --no-progress; done
    wait
}

step_corpora() {
    local d
    for d in "${CORPORA[@]}"; do run "tokenize_$d" "$AEMG" tokenize "$ARCH/$d" "$CORPUS/$d" --workers 1 --no-progress; done
    wait
}

step_pretrain() {
    local d resume
    for d in "${DATASETS[@]}"; do
        resume=()
        [[ -e $RUNS/for_$d/latest.json ]] && resume=(--resume)   # continue an interrupted run
        # shellcheck disable=SC2046
        run "pretrain_for_$d" "$AEMG" pretrain $(others "$d") --out "$RUNS/for_$d" --preset tiny ${PRETRAIN_STEPS:+--steps $PRETRAIN_STEPS} \
            --seed 0 --device cpu --no-progress "${resume[@]}"
    done
    wait
}

step_baselines() {
    local d
    for d in "${DATASETS[@]}"; do
        # shellcheck disable=SC2086
        run "lda_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_lda" \
            --methods lda,lda-log,lda-log-subjnorm --protocols loso,fewshot,intra "${FEWSHOT[@]}" \
            --seeds 0 --no-plots
    done
    wait
}

step_probe() {  # linear probe on the frozen pre-trained backbone, and on the same backbone untrained
    local d
    for d in "${DATASETS[@]}"; do
        # shellcheck disable=SC2086
        run "probe_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_probe" \
            --methods aemg-probe --checkpoint "$RUNS/for_$d" --protocols loso,fewshot,intra \
            "${FEWSHOT[@]}" --seeds 0 --no-plots
    done
    for d in "${DATASETS[@]}"; do
        # ablations (LOSO): strict per-trial noise calibration; probe on an untrained backbone
        # shellcheck disable=SC2086
        run "probe_robust_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_probe_robust" \
            --methods aemg-probe --checkpoint "$RUNS/for_$d" --protocols loso --seeds 0 --no-plots \
            --method-options '{"aemg-probe": {"calibration": "robust"}}'
        # shellcheck disable=SC2086
        run "probe_random_$d" "$PY" "$here/scripts/probe_random_init.py" "$ARCH/$d" "$RUNS/for_$d" \
            "$REPORTS/${d}_probe_random" ${SESSIONS[$d]}
    done
    wait
}

step_subjnorm() {  # the probe with per-subject standardisation of the embeddings (two variants)
    local d
    for d in "${DATASETS[@]}"; do
        # calibnorm: a subject's own labelled training trials (few-shot: the target's calibration
        # trials; LOSO: pooled statistics, = aemg-probe); subjnorm: all of a subject's trials, the
        # test subject's unlabelled ones included (transductive, like lda-log-subjnorm)
        # shellcheck disable=SC2086
        run "probe_norm_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_probe_norm" \
            --methods aemg-probe-calibnorm,aemg-probe-subjnorm --checkpoint "$RUNS/for_$d" \
            --protocols loso,fewshot,intra "${FEWSHOT[@]}" --seeds 0 --no-plots
    done
    wait
}

step_rotation() {  # armband-rotation augmentation of the probe's training trials (+-1, +-2 ring positions)
    local d
    for d in "${DATASETS[@]}"; do
        # shellcheck disable=SC2086
        run "probe_rot_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_probe_rot" \
            --methods aemg-probe,aemg-probe-calibnorm,aemg-probe-subjnorm --checkpoint "$RUNS/for_$d" \
            --protocols loso,fewshot "${FEWSHOT[@]}" --seeds 0 --no-plots --method-options \
            '{"aemg-probe": {"rotations": 2}, "aemg-probe-calibnorm": {"rotations": 2}, "aemg-probe-subjnorm": {"rotations": 2}}'
    done
    wait
}

step_seeds() {  # the few-shot target share (one trial per class) over 3 seeds, adaptation methods
    local d
    for d in "${DATASETS[@]}"; do
        # shellcheck disable=SC2086
        run "seeds_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_seeds" \
            --methods lda-log-subjnorm,aemg-probe-calibnorm,aemg-probe-subjnorm \
            --checkpoint "$RUNS/for_$d" --protocols fewshot "${FEWSHOT[@]}" --seeds 0,1,2
    done
    wait
}

step_curve() {  # the few-shot curve (1/5/20/40/80 %: 1, 1, 1, 2, 3 trials per class here), seed 0
    local d
    for d in "${DATASETS[@]}"; do
        # shellcheck disable=SC2086
        run "curve_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_curve" \
            --methods lda-log-subjnorm,aemg-probe-calibnorm,aemg-probe-subjnorm \
            --checkpoint "$RUNS/for_$d" --protocols fewshot --shares 0.01,0.05,0.2,0.4,0.8 \
            --small-share one --seeds 0
    done
    wait
}

step_diagnostics() {  # probe features: pre-trained / untrained backbone / token energies, two standardisations
    local d
    mkdir -p "$REPORTS/diagnostics"
    for d in "${DATASETS[@]}"; do
        # shellcheck disable=SC2086
        run "diagnostics_$d" "$PY" "$here/scripts/probe_diagnostics.py" "$ARCH/$d" "$RUNS/for_$d" \
            "$REPORTS/diagnostics/$d.json" ${SESSIONS[$d]}
    done
    wait
}

subjects_of() {
    case $1 in
        coteallard) echo "$SUBJECTS_COTEALLARD" ;;
        3dc) echo "$SUBJECTS_3DC" ;;
        uci_myo) echo "$SUBJECTS_UCI" ;;
    esac
}

step_heavy() {  # fine-tune, no pre-training, window-Transformer ablation; LOSO on a subject subset
    local d subj sel
    for d in "${DATASETS[@]}"; do
        subj=$(subjects_of "$d")
        sel=()
        [[ -n $subj ]] && sel=(--subjects "$subj")
        # shellcheck disable=SC2086
        run "heavy_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_heavy" \
            --methods lda-log-subjnorm,aemg-probe,aemg-finetune,aemg-scratch,window-transformer \
            --checkpoint "$RUNS/for_$d" --protocols loso --seeds 0 "${sel[@]}" --no-plots \
            --method-options "{\"aemg-finetune\": {\"epochs\": $EPOCHS}, \"aemg-scratch\": {\"epochs\": $EPOCHS}, \"window-transformer\": {\"epochs\": $EPOCHS}}"
    done
    wait
}

# the methods of the regimes step: classic baselines, classic features on NCT tokens (no network),
# and the pre-trained probe on its embedding alone and with the token features (-tok); -em = EM;
# -map = class means from the few-shot share (MAP); -auto = settings chosen by inner cross-validation;
# -tok-rows = trial rows or token rows (voted), chosen by inner cross-validation (the intra probe)
REGIME_METHODS=${REGIME_METHODS:-lda,lda-log,lda-log-restnorm,lda-log-subjnorm,lda-log-subjnorm-em,lda-log-subjnorm-map,nct-lda,nct-lda-subjnorm,nct-logreg-em,aemg-probe,aemg-probe-subjnorm,aemg-probe-tok,aemg-probe-tok-subjnorm,aemg-probe-tok-em,aemg-probe-tok-map,aemg-probe-auto,aemg-probe-tok-rows}
step_regimes() {  # every adaptation regime: none, rest, online, unlabelled, fewshot (+ intra), seed 0
    local d
    for d in "${DATASETS[@]}"; do
        # shellcheck disable=SC2086
        run "regimes_$d" "$AEMG" evaluate "$ARCH/$d" ${SESSIONS[$d]} --out "$REPORTS/${d}_regimes" \
            --methods "$REGIME_METHODS" \
            --checkpoint "$RUNS/for_$d" --regimes none,rest,online,unlabelled,fewshot --protocols intra \
            "${FEWSHOT[@]}" --seeds 0 --no-plots
    done
    wait
}

step_table() {
    "$PY" "$here/scripts/results_table.py" "$REPORTS"
}

steps=("$@")
(( ${#steps[@]} )) || steps=(archives corpora pretrain baselines probe subjnorm rotation seeds curve diagnostics heavy regimes table)
for s in "${steps[@]}"; do
    case $s in
        archives|corpora|pretrain|baselines|probe|subjnorm|rotation|seeds|curve|diagnostics|heavy|regimes|table) "step_$s" ;;
        *) echo "unknown step $s (archives corpora pretrain baselines probe subjnorm rotation seeds curve diagnostics heavy regimes table)" >&2; exit 2 ;;
    esac
done
