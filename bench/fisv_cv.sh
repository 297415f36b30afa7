#!/usr/bin/env bash
# Every cross-validation number of docs/accuracy.md, from a fresh clone (after `bash setup.sh`):
#
#   bash bench/fisv_cv.sh                      # the table: 5 heads x TES, PCS, 3 seeds each
#   bash bench/fisv_cv.sh diagnosis            # the before/after rows of each fix (seed 0)
#   bash bench/fisv_cv.sh final                # each table row's final model on all 400 programs (no CV)
#   JOBS=1 ONLY='ridge-*' SEEDS=0 bash bench/fisv_cv.sh  # a subset, one run at a time, one seed
#
# Runs go to $OUT/<name>/ (metrics.json, folds.json, cv_predictions.csv/.png); the table is printed
# at the end by bench/cv_table.py. Every run trains on the 400 Fis-V training programs of
# ../shared/data/fisv only, on the committed folds data/folds/fisv_train_5fold.json; no test score
# is ever read. Runs are independent, $JOBS at a time (default 2, one torch thread each).
set -euo pipefail
cd "$(dirname "$0")/.."
FISV="${FISV:-../shared/data/fisv}"
OUT="${OUT:-runs/fisv-cv}"
JOBS="${JOBS:-2}"
ONLY="${ONLY:-*}"
SEEDS="${SEEDS:-0,1,2}"
PY="${AQA_VENV:-.venv}/bin"
STORE="$OUT/fisv_train.h5"
FOLDS=data/folds/fisv_train_5fold.json
mkdir -p "$OUT"
[[ -f "$STORE" ]] || "$PY/aqa-import" "$FISV/features" --labels "$FISV/train.txt" --columns id,TES,PCS,ded \
  -o "$STORE" -q

table_runs() {  # name, then aqa-train arguments
  for score in tes pcs; do
    echo "ridge-$score --head ridge --preset fisv-$score"
    echo "mlp-$score --head mlp --preset fisv-$score"
    echo "cofinal-$score --head cofinal --preset fisv-$score"
    # The authors'-code variant: the preset's cofinal:likert entries (docs/accuracy.md, section 5).
    echo "likert-$score --head cofinal --preset fisv-$score --set head.coarse=likert"
    echo "fspn-$score --head fspn --preset fisv-$score --set head.use_actor=false --streams scene"
    # FSPN with dropout on its pair regressor's hidden layer (head.pair_dropout; docs/accuracy.md, section 8).
    echo "fspndrop-$score --head fspn --preset fisv-$score --set head.use_actor=false --streams scene --set head.pair_dropout=0.5"
    # Ridge on the mean clip beside the per-dimension max over clips (a member for the ensembles).
    echo "ridgemax-$score --head ridge --preset fisv-$score --set head.pool=mean+max"
    # TES learnt beside PCS through the MLP's hidden layer (head.aux_scores; docs/accuracy.md).
    if [[ $score == tes ]]; then echo "mlpaux-tes --head mlp --preset fisv-tes --set head.aux_scores=[PCS]"; fi
    # The other score learnt beside this one by CoFInAl (from its procedures) and by the likert variant.
    other=$([[ $score == tes ]] && echo PCS || echo TES)
    echo "cofinalaux-$score --head cofinal --preset fisv-$score --set head.aux_scores=[$other]"
    if [[ $score == pcs ]]; then
      echo "likertaux-pcs --head cofinal --preset fisv-pcs --set head.coarse=likert --set head.aux_scores=[TES]"
      # PCS beside TES the other way: 256 hidden units shared with TES, plus PCS's own linear read-out.
      echo "mlpauxlin-pcs --head mlp --preset fisv-pcs --set head.hidden_dims=[256] --set head.aux_scores=[TES] --set head.linear_readout=true"
    fi
  done
}

diagnosis_runs() {  # docs/accuracy.md's diagnosis rows a-d (CoFInAl, cumulative) and the MLP's, seed 0
  # Rows e-g (test windows) come from bench/cv_windows.py; the commands are in docs/accuracy.md.
  local paper="--set head.train_window=124 --set head.test_windows=1 --set head.lambda_score=1"
  paper+=" --set train.epochs=200 --set train.weight_decay=0.01"
  for score in tes pcs; do
    local head="--head cofinal --preset fisv-$score --seeds 0"
    echo "diag-a-cofinal-paper-$score $head $paper"
    echo "diag-b-cofinal-lambda25-$score $head $paper --set head.lambda_score=25"
    echo "diag-c-cofinal-e50-$score $head $paper --set head.lambda_score=25 --set train.epochs=50"
    echo "diag-d-cofinal-wd05-$score $head --set head.train_window=124 --set head.test_windows=1"
    echo "old-mlp-$score --head mlp --preset fisv-$score --set train.standardize_features=false --seeds 0"
    echo "mlp-lr01-$score --head mlp --preset fisv-$score --set train.lr=0.1 --seeds 0"
  done
}

MODE="${1:-table}"
CV_ARGS="--folds-file $FOLDS --seeds $SEEDS"
TABLE_ARGS=""
case "$MODE" in
  diagnosis) runs=$(diagnosis_runs) ;;
  # The presets' default settings on every training program: is the model collapsed or saturated?
  final) runs=$(table_runs | sed 's/^/final-/'); CV_ARGS="--test-split none --seeds 0"; TABLE_ARGS="--final" ;;
  *) runs=$(table_runs) ;;
esac
while read -r name args; do
  # shellcheck disable=SC2053
  [[ $name == $ONLY ]] || continue
  [[ -f "$OUT/$name/metrics.json" ]] && continue  # done already: rerunning resumes
  printf '%s\0' "OMP_NUM_THREADS=1 $PY/aqa-train $STORE $CV_ARGS --device cpu -q $args --out $OUT/$name > $OUT/$name.log 2>&1 && tail -1 $OUT/$name.log"
done <<< "$runs" | xargs -0 -P "$JOBS" -I{} bash -c {}
"$PY/python" bench/cv_table.py "$OUT" $TABLE_ARGS  # unquoted: empty outside final mode
