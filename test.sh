#!/usr/bin/env bash
# Runs the whole test suite (unit, property, tshark-oracle and kernel-comparison tests) and prints
# one closing line "N passed, N failed, N skipped". Kernel-comparison tests need root and netns;
# elsewhere they skip with a message. Usage: ./test.sh [extra dotnet test args]
set -uo pipefail
cd "$(dirname "$0")"
log=$(mktemp)
dotnet test Softnet.sln -c Release --nologo "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=0; failed=0; skipped=0
while read -r f p s; do
  failed=$((failed + f)); passed=$((passed + p)); skipped=$((skipped + s))
done < <(sed -nE 's/.*Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+).*/\1 \2 \3/p' "$log")
grep -E '^\s+Failed ' "$log" | sed 's/^ */failed: /' || true
rm -f "$log"
if [ "$passed" -eq 0 ] && [ "$rc" -eq 0 ]; then echo "no test ran"; rc=1; fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $rc
