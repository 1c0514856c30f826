#!/usr/bin/env bash
# Fine-tune the shipped model on your own folder of clean anime pictures (any size, any nesting;
# a Danbooru folder with its metadata works too). Synthetic stamps are drawn on the fly; 10% of
# the files are held out for validation. Run it again to resume from the last checkpoint.
#   bash examples/train_own_folder.sh ~/pictures/clean_art
set -euo pipefail
pictures=${1:?usage: train_own_folder.sh PICTURE_FOLDER [STEPS]}
steps=${2:-2000}
pip install -q -e '.[train]'
start=$(python -c "import json; print(json.load(open('desample/weights/default.json'))['step'])")  # the shipped weights' step
desample train --data "$pictures" --out ~/.cache/desample/own \
  --init desample/weights/default.safetensors --export ~/.cache/desample/own/mine.safetensors \
  --lr 1e-4 --steps "$((start + steps))"
desample clean examples/stamped.jpg -o out/mine.png --model ~/.cache/desample/own/mine.onnx
