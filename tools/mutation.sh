#!/usr/bin/env bash
# Mutation testing of the code that decides what the jobs store (issue 32); NOT part of CI's run.
# mutmut mutates the functions below one small change at a time (config: pyproject.toml [tool.mutmut]), runs the tests
# that reach each mutant, and tools/mutation_score.py prints the share killed per package (analysis/, store/, jobs/).
#   tools/mutation.sh             the chosen subset (544 mutants: 33 min with JOBS=1 on 2 cores at load 10)
#   tools/mutation.sh GLOB...     other mutants, e.g. 'bertsecrets_cli.jobs.diff.x_run_diff*'
# JOBS=n sets the parallel workers (default 1: the machine is shared). Results stay in mutants/ (git-ignored): `python -m mutmut browse`.
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSET=(
  'bertsecrets_cli.analysis.ablation.*'
  'bertsecrets_cli.store.merge.x__concat_stats*'
  'bertsecrets_cli.jobs.diff.x_pair_examples*'
  'bertsecrets_cli.jobs.diff.x_compare_quantities*'
  'bertsecrets_cli.jobs.diff.x__nanmean*'
)
[ $# -gt 0 ] && SUBSET=("$@")
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
rm -rf mutants
nice -n 19 python -m mutmut run --max-children "${JOBS:-1}" "${SUBSET[@]}" > mutants.log 2>&1 || { tail -c 2000 mutants.log | tr '\r' '\n' | tail -20; exit 1; }
python tools/mutation_score.py "${SUBSET[@]}"
