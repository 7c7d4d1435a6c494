#!/bin/bash
# Run test programs (unit binaries, integration scripts) and total their results.
# Each program prints lines "PASS ...", "FAIL ...", "SKIP ..."; a program that exits
# non-zero without printing a FAIL line counts as one failure of its own.
# Ends with the line "N passed, N failed"; exits non-zero on any failure.
set -u
pass=0 fail=0 skip=0
failed_lines=()
for prog in "$@"; do
  name=${prog#./}
  echo "== $name"
  out=$(mktemp)
  "$prog" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^PASS ' "$out") f=$(grep -c '^FAIL ' "$out") s=$(grep -c '^SKIP ' "$out")
  while IFS= read -r l; do failed_lines+=("$l"); done < <(grep '^FAIL ' "$out")
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    f=1
    failed_lines+=("FAIL $name: exited with status $rc and reported no failing test")
    echo "FAIL $name: exited with status $rc and reported no failing test"
  fi
  pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
  rm -f "$out"
done
echo
if [ ${#failed_lines[@]} -gt 0 ]; then
  echo "failures:"
  printf '  %s\n' "${failed_lines[@]}"
fi
[ "$skip" -gt 0 ] && echo "$skip skipped (reasons above)"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
