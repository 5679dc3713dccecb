#!/usr/bin/env bash
# The lecture's transfer-learning table, measured: a LeNet-5 trained on Fashion-MNIST
# classes 0-4 (the source), then for each target (Fashion-MNIST classes 5-9, similar; the
# 8x8 handwritten digits upsampled to 28x28, very different; each with little and with more
# labelled data): training from scratch vs a linear probe on the top layer vs linear
# probes on earlier stages (globally pooled, and pooled to 4x4) vs fine-tuning the top
# block vs fine-tuning everything.
# Test accuracy on the target's held-out images, the mean over SEEDS (the seed of the new
# head's initialization and of the shuffles; the labelled subsets are fixed).
#
# Usage: python scripts/transfer/make_data.py   # once: writes runs/transfer/data
#        scripts/transfer/run.sh                  # writes runs/transfer/table.md
# Env: NABLA (the binary, default target/release/nabla), DATA (runs/transfer/data),
#      OUT (runs/transfer), SEEDS ("0 1 2"), SOURCE_EPOCHS (8).
#
# Every run uses SGD (momentum 0.9, weight decay 5e-4) with a cosine schedule from lr 0.05
# (fine-tuned bodies at 0.005, nabla finetune's default of a tenth of the head's rate), no
# validation split (all labelled images train; the last weights are tested), and the same
# batches and steps for every method of a target: 10 labelled images per class, batch 10
# for 100 (Fashion) or 50 (digits) epochs, i.e. 500 steps; Fashion 1,000 per class, batch
# 64, 10 epochs (790 steps); all digits (about 140 per class), batch 32, 20 epochs (880 steps).
set -euo pipefail
NABLA=${NABLA:-target/release/nabla}
DATA=${DATA:-runs/transfer/data}
OUT=${OUT:-runs/transfer}
SEEDS=${SEEDS:-0 1 2}
SOURCE_EPOCHS=${SOURCE_EPOCHS:-8}
[ -d "$DATA/source" ] || { echo "no $DATA/source: run python scripts/transfer/make_data.py first" >&2; exit 1; }

acc() { # the test accuracy a nabla train/finetune run printed last
  sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' | tail -1
}

echo "source: lenet5 on Fashion-MNIST classes 0-4, $SOURCE_EPOCHS epochs"
"$NABLA" train --dataset imagefolder --data-dir "$DATA/source" --epochs "$SOURCE_EPOCHS" \
  -o "$OUT/source" --overwrite | tail -1
SRC="$OUT/source/best.safetensors"

METHODS=(scratch probe-top probe-features.2 probe-features.2:4 probe-features.5 probe-features.5:4 probe-classifier.1
  top full)
declare -A NAME=(
  [scratch]="from scratch"
  [probe-top]="linear probe, top (fc2, 84)"
  [probe-features.2]="linear probe, conv1/pool (features.2, 6 pooled)"
  [probe-features.2:4]="linear probe, conv1/pool pooled 4×4 (96)"
  [probe-features.5]="linear probe, conv2/pool (features.5, 16 pooled)"
  [probe-features.5:4]="linear probe, conv2/pool pooled 4×4 (256)"
  [probe-classifier.1]="linear probe, fc1 (classifier.1, 120)"
  [top]="fine-tune top (classifier: fc1, fc2, head)"
  [full]="fine-tune all"
)
TARGETS=(fashion10 fashion1000 digits10 digitsall)
declare -A TITLE=([fashion10]="Fashion 5-9, 10/class" [fashion1000]="Fashion 5-9, 1000/class"
  [digits10]="digits, 10/class" [digitsall]="digits, all (~140/class)")
declare -A SCHED=([fashion10]="--batch-size 10 --epochs 100" [fashion1000]="--batch-size 64 --epochs 10"
  [digits10]="--batch-size 10 --epochs 50" [digitsall]="--batch-size 32 --epochs 20")
declare -A RESULT

for t in "${TARGETS[@]}"; do
  for m in "${METHODS[@]}"; do
    accs=()
    for seed in $SEEDS; do
      common=(--dataset imagefolder --data-dir "$DATA/$t" --val-size 0 ${SCHED[$t]} --seed "$seed"
        -o "$OUT/$t/${m/:/-pool}-s$seed" --overwrite)
      case $m in
        scratch) a=$("$NABLA" train "${common[@]}" | acc) ;;
        probe-top) a=$("$NABLA" finetune --from "$SRC" --strategy probe --probe-features "${common[@]}" | acc) ;;
        probe-*:*) stage=${m#probe-}
          a=$("$NABLA" finetune --from "$SRC" --strategy probe --probe-features \
            --probe-layer "${stage%:*}" --probe-pool "${m##*:}" "${common[@]}" | acc) ;;
        probe-*) a=$("$NABLA" finetune --from "$SRC" --strategy probe --probe-features \
          --probe-layer "${m#probe-}" "${common[@]}" | acc) ;;
        *) a=$("$NABLA" finetune --from "$SRC" --strategy "$m" "${common[@]}" | acc) ;;
      esac
      accs+=("$a")
    done
    RESULT[$t,$m]=$(printf '%s\n' "${accs[@]}" | awk '{s+=$1; if(NR==1||$1<lo)lo=$1; if(NR==1||$1>hi)hi=$1}
      END{if(NR>1) printf "%.1f (%.1f–%.1f)", s/NR, lo, hi; else printf "%.1f", s}')
    echo "$t  ${NAME[$m]}: ${RESULT[$t,$m]}"
  done
done

{
  printf '| test accuracy %% (mean of seeds %s; min–max) |' "$SEEDS"
  for t in "${TARGETS[@]}"; do printf ' %s |' "${TITLE[$t]}"; done
  printf '\n|---|'
  for t in "${TARGETS[@]}"; do printf -- '---|'; done
  printf '\n'
  for m in "${METHODS[@]}"; do
    printf '| %s |' "${NAME[$m]}"
    for t in "${TARGETS[@]}"; do printf ' %s |' "${RESULT[$t,$m]}"; done
    printf '\n'
  done
} > "$OUT/table.md"
echo
cat "$OUT/table.md"
