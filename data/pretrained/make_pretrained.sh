#!/usr/bin/env bash
# Reproduces every file in data/pretrained/ with the project's own command line.
# Run from the repository root with the data root set, e.g.
#   VAE_DATA_DIR=../shared/data bash data/pretrained/make_pretrained.sh
# Training writes run folders under runs/ (git-ignored); the checkpoints, their histories and
# sha256 files are then copied here.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs

# The two runs go side by side, one CPU thread each (this was a 2-core machine).
# L17.5: the lecture's convolutional VAE.
python -m helper_lib train --model conv-vae --dataset mnist --epochs 50 --batch-size 256 \
    --lr 5e-4 --latent-dim 2 --seed 123 --threads 1 --out runs/conv_vae_mnist \
    > runs/conv_vae_mnist.log 2>&1 &
# L16: the plain convolutional autoencoder used by the sampling notebook.
python -m helper_lib train --model conv-ae --dataset mnist --epochs 20 --batch-size 32 \
    --lr 5e-4 --latent-dim 2 --seed 123 --threads 1 --out runs/conv_ae_mnist \
    > runs/conv_ae_mnist.log 2>&1 &
wait

python -m helper_lib evaluate runs/conv_vae_mnist/model.pt --k 100 --save
python -m helper_lib evaluate runs/conv_ae_mnist/model.pt --save

# The fast recipe (issue 14): the same VAE, one-cycle schedule, 12 epochs, 2 threads.
python -m helper_lib train --model conv-vae --recipe fast --out runs/conv_vae_mnist_fast \
    > runs/conv_vae_mnist_fast.log 2>&1

for name in conv_vae_mnist conv_ae_mnist conv_vae_mnist_fast; do
    cp "runs/$name/model.pt" "data/pretrained/$name.pt"
    cp "runs/$name/history.csv" "data/pretrained/$name.history.csv"
    cp "runs/$name/history.json" "data/pretrained/$name.history.json"
    (cd data/pretrained && sha256sum "$name.pt" > "$name.pt.sha256")
done

python -m helper_lib compare data/pretrained/conv_vae_mnist.pt \
    data/pretrained/conv_vae_mnist_fast.pt --labels "lecture recipe" "fast recipe" \
    --out docs/recipes.png
