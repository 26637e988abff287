#!/usr/bin/env bash
# Run notebooks under strict nbval with other CPU kernels and thread counts, so that stored
# outputs hold on learners' machines, not only on the one that stored them.
# Usage: tools/check_cpu_variants.sh [NOTEBOOK ...]   (default: every notebook)
# Each variant is one pytest run; the script fails if any variant fails.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -gt 0 ]; then
  notebooks=("$@")
else
  mapfile -t notebooks < <(find notebooks -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' | sort)
fi

variants=(
  "OMP_NUM_THREADS=1"
  "OMP_NUM_THREADS=4"
  "ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 OMP_NUM_THREADS=1"
  "ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 OMP_NUM_THREADS=2"
)

failed=()
for variant in "${variants[@]}"; do
  echo "=== strict nbval with ${variant}"
  start=$SECONDS
  # shellcheck disable=SC2086  # the variant is a list of VAR=value words for env
  # two processes, as the README command runs them; --dist loadfile keeps each notebook in one process
  if env $variant python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --nbval --nbval-current-env \
      --nbval-sanitize-with tests/nbval_sanitize.cfg "${notebooks[@]}"; then
    echo "=== passed in $((SECONDS - start)) s: ${variant}"
  else
    echo "=== FAILED in $((SECONDS - start)) s: ${variant}"
    failed+=("${variant}")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'CPU variants that failed:\n'
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "All ${#variants[@]} CPU variants passed."
