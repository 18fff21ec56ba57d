#!/usr/bin/env bash
# Regenerate the shell completion scripts; tests/test_completions.py fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")"
for sh in bash zsh fish; do
  _BERTSECRETS_COMPLETE="source_$sh" bertsecrets > "bertsecrets.$sh"
done
