#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one after the other, each for
# FUZZTIME (default 60s; first argument or $FUZZTIME): bash fuzz.sh 10m
# A crasher is written under the package's testdata/fuzz/ by go test; commit
# it, and it runs as a regression test in every plain `go test`.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=$PATH:/usr/local/go/bin
fuzztime=${1:-${FUZZTIME:-60s}}
ran=0
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    echo "-- $pkg $target ($fuzztime)"
    # Go's fuzzing engine can fail a short run with "context deadline
    # exceeded" when a worker starts too slowly on a busy machine, without
    # any failing input; that run alone is tried once more. A crasher is
    # always reported with "Failing input written" and never retried.
    if ! out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
      echo "$out"
      if [[ $out == *"context deadline exceeded"* && $out != *"Failing input written"* ]]; then
        echo "-- $pkg $target: the engine timed out with no failing input; once more"
        go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg"
      else
        exit 1
      fi
    else
      echo "$out"
    fi
    ran=$((ran + 1))
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
echo "fuzz: $ran targets, $fuzztime each"
