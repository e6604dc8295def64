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

# Notebook 06 (issue 15): the classifier that judges samples, the sweep, binarized MNIST. All one
# CPU thread each, one after another; the fast recipe unless the command says otherwise.
python -m helper_lib train --threads 1 --no-progress --model classifier --recipe fast --lr 2e-3 --epochs 4 --out runs/classifier_mnist \
    > runs/classifier_mnist.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 16 --out runs/sweep_vae_d16 \
    > runs/sweep_vae_d16.log 2>&1
python -m helper_lib train --threads 1 --no-progress --model conv-vae --dataset binarized-mnist --kind bce --latent-dim 32 --recipe fast --lr 2e-3 --epochs 40 --out runs/binarized_vae_d32 \
    > runs/binarized_vae_d32.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 32 --out runs/sweep_vae_d32 \
    > runs/sweep_vae_d32.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-ae --latent-dim 32 --out runs/sweep_ae_d32 \
    > runs/sweep_ae_d32.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-ae --latent-dim 2 --out runs/sweep_ae_d2 \
    > runs/sweep_ae_d2.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 8 --out runs/sweep_vae_d8 \
    > runs/sweep_vae_d8.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 4 --out runs/sweep_vae_d4 \
    > runs/sweep_vae_d4.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-ae --latent-dim 8 --out runs/sweep_ae_d8 \
    > runs/sweep_ae_d8.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 16 --beta 784 --out runs/sweep_vae_d16_beta784 \
    > runs/sweep_vae_d16_beta784.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 16 --beta 0.1 --out runs/sweep_vae_d16_beta0p1 \
    > runs/sweep_vae_d16_beta0p1.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 16 --beta 10 --out runs/sweep_vae_d16_beta10 \
    > runs/sweep_vae_d16_beta10.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 16 --beta 3 --out runs/sweep_vae_d16_beta3 \
    > runs/sweep_vae_d16_beta3.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 16 --beta 0.3 --out runs/sweep_vae_d16_beta0p3 \
    > runs/sweep_vae_d16_beta0p3.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 16 --kind bce --out runs/sweep_vae_bce_d16 \
    > runs/sweep_vae_bce_d16.log 2>&1
python -m helper_lib train --recipe fast --threads 1 --no-progress --model conv-vae --latent-dim 2 --kind bce --out runs/sweep_vae_bce_d2 \
    > runs/sweep_vae_bce_d2.log 2>&1

# Their test-set reports, stored in each checkpoint ("evaluation" in its metadata), which the
# notebook reads: all 10,000 test images, the log-likelihood with k = 100 on 1,000 test images
# drawn at random (seed 0; the first 1,000 are the easier half), binarized: k = 1,000 on the
# same 1,000, and 10,000 prior samples judged by the classifier.
python -m helper_lib evaluate runs/classifier_mnist/model.pt --save
cp runs/classifier_mnist/model.pt data/pretrained/classifier_mnist.pt
python -m helper_lib evaluate runs/binarized_vae_d32/model.pt --k 1000 --iw-images 1000 --iw-random \
    --save
for name in conv_vae_mnist_fast sweep_vae_d4 sweep_vae_d8 sweep_vae_d16 sweep_vae_d32 \
        sweep_ae_d2 sweep_ae_d8 sweep_ae_d32 sweep_vae_bce_d2 sweep_vae_bce_d16 \
        sweep_vae_d16_beta0p1 sweep_vae_d16_beta0p3 sweep_vae_d16_beta3 sweep_vae_d16_beta10 \
        sweep_vae_d16_beta784; do
    python -m helper_lib evaluate "runs/$name/model.pt" --k 100 --iw-images 1000 --iw-random \
        --classifier data/pretrained/classifier_mnist.pt --samples 10000 --save
done
# Only per-epoch CSV histories for these (the per-batch JSON is kept where a notebook plots it).
for name in classifier_mnist binarized_vae_d32 sweep_vae_d4 sweep_vae_d8 sweep_vae_d16 \
        sweep_vae_d32 sweep_ae_d2 sweep_ae_d8 sweep_ae_d32 sweep_vae_bce_d2 sweep_vae_bce_d16 \
        sweep_vae_d16_beta0p1 sweep_vae_d16_beta0p3 sweep_vae_d16_beta3 sweep_vae_d16_beta10 \
        sweep_vae_d16_beta784; do
    cp "runs/$name/model.pt" "data/pretrained/$name.pt"
    cp "runs/$name/history.csv" "data/pretrained/$name.history.csv"
    (cd data/pretrained && sha256sum "$name.pt" > "$name.pt.sha256")
done
cp runs/conv_vae_mnist_fast/model.pt data/pretrained/conv_vae_mnist_fast.pt
(cd data/pretrained && sha256sum conv_vae_mnist_fast.pt > conv_vae_mnist_fast.pt.sha256)

python -m helper_lib compare data/pretrained/conv_vae_mnist.pt \
    data/pretrained/conv_vae_mnist_fast.pt --labels "lecture recipe" "fast recipe" \
    --out docs/recipes.png

# Notebook 07 (issue 17). The fast model's training, filmed: the same command as
# conv_vae_mnist_fast plus --snapshots. Recording does not touch the training (its weights come
# out bit-identical to conv_vae_mnist_fast.pt), so only the film is kept, and the README's GIF
# is drawn from it.
python -m helper_lib train --model conv-vae --recipe fast --snapshots --no-progress \
    --out runs/conv_vae_mnist_fast_snapshots > runs/conv_vae_mnist_fast_snapshots.log 2>&1
cp runs/conv_vae_mnist_fast_snapshots/snapshots.npz data/pretrained/conv_vae_mnist_fast.snapshots.npz
(cd data/pretrained && sha256sum conv_vae_mnist_fast.snapshots.npz \
    > conv_vae_mnist_fast.snapshots.npz.sha256)
python -m helper_lib film data/pretrained/conv_vae_mnist_fast.snapshots.npz --out docs/latent_film.gif
# A Fashion-MNIST VAE (D = 16, the fast recipe) and a small Fashion-MNIST classifier (feature
# layer 32 wide, to fit the 30 MB budget) that judges the latent arithmetic on it.
python -m helper_lib train --model conv-vae --dataset fashion-mnist --latent-dim 16 --recipe fast \
    --no-progress --out runs/fashion_vae_d16 > runs/fashion_vae_d16.log 2>&1
python -m helper_lib train --model classifier --dataset fashion-mnist --feature-dim 32 \
    --recipe fast --lr 2e-3 --epochs 6 --no-progress --out runs/classifier_fashion \
    > runs/classifier_fashion.log 2>&1
python -m helper_lib evaluate runs/classifier_fashion/model.pt --save
python -m helper_lib evaluate runs/fashion_vae_d16/model.pt --k 100 --iw-images 1000 --iw-random \
    --classifier runs/classifier_fashion/model.pt --samples 10000 --save
for name in fashion_vae_d16 classifier_fashion; do
    cp "runs/$name/model.pt" "data/pretrained/$name.pt"
    cp "runs/$name/history.csv" "data/pretrained/$name.history.csv"
    (cd data/pretrained && sha256sum "$name.pt" > "$name.pt.sha256")
done

# The package carries every shipped file's sha256 (helper_lib/pretrained_files.json): downloads
# outside a clone are checked against it, and tests/test_downloads.py against these files.
python -m helper_lib manifest
