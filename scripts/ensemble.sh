#!/usr/bin/env bash
# The README's ensemble and test-time-augmentation table (Fashion-MNIST test accuracy).
#
#   scripts/ensemble.sh            # train what is missing, then score everything
#   STAGE=eval scripts/ensemble.sh # score runs trained before
#
# Trains the default LeNet-5 with seeds 0-4, an MLP, the classic LeNet-5 (tanh, average
# pooling) and a LeNet-5 with --augment (random crops and flips), then scores each checkpoint alone, the 5 seeds as an ensemble (mean of the
# probabilities, and majority vote), the architectures fused, and test-time augmentation.
# Set NABLA to the binary (default: target/release/nabla) and RUNS to the run folder root.
set -euo pipefail
NABLA=${NABLA:-target/release/nabla}
RUNS=${RUNS:-runs/ensemble}
STAGE=${STAGE:-all}
mkdir -p "$RUNS"

train() { # name, flags...
    local name=$1
    shift
    if [ ! -f "$RUNS/$name/best.safetensors" ]; then
        "$NABLA" train "$@" --out "$RUNS/$name" --overwrite | tail -1
    fi
}

if [ "$STAGE" != eval ]; then
    for seed in 0 1 2 3 4; do
        train "lenet5-s$seed" --seed "$seed"
    done
    train mlp --model mlp --hidden 256
    train lenet5-classic --variant classic
    # Trained on random crops and mirrors, the views test-time augmentation shows.
    train lenet5-augment --augment
fi
[ "$STAGE" = train ] && exit 0

ck() { echo "$RUNS/$1/best.safetensors"; }
seeds=()
for seed in 0 1 2 3 4; do seeds+=(--checkpoint "$(ck lenet5-s$seed)"); done
fused=(--checkpoint "$(ck lenet5-s0)" --checkpoint "$(ck mlp)" --checkpoint "$(ck lenet5-classic)")

echo "== 5 seeds of LeNet-5, mean of probabilities"
"$NABLA" eval "${seeds[@]}" --combine mean-prob
echo "== 5 seeds of LeNet-5, majority vote"
"$NABLA" eval "${seeds[@]}" --combine vote
echo "== LeNet-5 + MLP + classic LeNet-5, mean of probabilities"
"$NABLA" eval "${fused[@]}" --combine mean-prob
for tta in flips ten-crop multiscale; do
    echo "== LeNet-5 seed 0, --tta $tta"
    "$NABLA" eval --checkpoint "$(ck lenet5-s0)" --tta "$tta"
done
echo "== LeNet-5 trained with --augment"
"$NABLA" eval --checkpoint "$(ck lenet5-augment)" | grep '^accuracy'
for tta in flips ten-crop multiscale; do
    echo "== LeNet-5 trained with --augment, --tta $tta"
    "$NABLA" eval --checkpoint "$(ck lenet5-augment)" --tta "$tta"
done
echo "== 5 seeds of LeNet-5, mean of probabilities, --tta flips"
"$NABLA" eval "${seeds[@]}" --combine mean-prob --tta flips
