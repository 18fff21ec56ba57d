#!/usr/bin/env bash
# Regenerate the README figures from the shipped demo data and the embedded model (offline, CPU; ~6 min, most of it fine-tuning).
# Usage: bash docs/figures/make_figures.sh   (from the repository root, with bertsecrets installed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export HF_HUB_OFFLINE=1
bertsecrets extract --task sst2 --limit 200 --device cpu -o "$tmp/demo.h5" -q > /dev/null
bertsecrets plot "$tmp/demo.h5" --quantity stat_sep --title "[SEP] attention per head (MiniLM, 200 demo sentences)" \
    --out "$here/sep_per_head.png" --force
bertsecrets plot "$tmp/demo.h5" --example 3 --head L1H3 --out "$here/attention_map_L1H3.png" --force
bertsecrets plot "$tmp/demo.h5" --figure layers --quantity stat_cls,stat_sep \
    --title "attention to [CLS] and [SEP] per layer (mean over heads)" --out "$here/cls_sep_per_layer.png" --force
# pretrained vs fine-tuned (the paper's Fig. 5 layout); fine-tuning on the demo set takes ~5 min on 2 CPU cores
bertsecrets finetune --task sst2 --preset demo --device cpu -o "$tmp/ft" -q > /dev/null
bertsecrets extract --task sst2 --limit 200 --device cpu -m "$tmp/ft" -o "$tmp/ft.h5" -q > /dev/null
bertsecrets diff "$tmp/demo.h5" "$tmp/ft.h5" -o "$tmp/diff.h5" -q > /dev/null
bertsecrets plot "$tmp/diff.h5" --title "cosine similarity per head, pretrained vs fine-tuned (demo sst2, 200 sentences)" \
    --out "$here/finetune_cosine.png" --force
