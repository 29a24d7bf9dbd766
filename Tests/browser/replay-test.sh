#!/usr/bin/env bash
# The replay page of `synod sim --html` in a real browser: headless Chromium (Debian's
# `chromium` package) loads a replay of a correct run and one of a --break run, steps forward
# and back with the keyboard, scrubs, plays, and checks that the node panels show the
# recorded state of the step shown, that partitions are drawn as cut links exactly while the
# record has them, that the log grid equals the recorded state, that a --break replay stops
# at its violation, text contrast, and that the guided tour's pages (synod sim --tour all)
# show their titles and link to their index. Screenshots go to $OUT (default:
# .build/browser-artifacts).
#
#   Tests/browser/replay-test.sh [path/to/synod]
#
# Skips (exit 0, with a message) when chromium or python3 is absent. Chromium does not run
# as root: as root, the browser part runs as $BROWSER_USER (default synodci) via runuser.
# BREAK_PAGE=back-off-by-one (step back goes two steps), panels-one-behind (the node panels
# show the previous step's state) or no-cut-links (partitions are not drawn) break the page on
# purpose: the test must then fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
SYNOD=${1:-${SYNOD:-.build/debug/synod}}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
OUT=${OUT:-.build/browser-artifacts}
if [[ -z "$CHROMIUM" ]]; then
    echo "SKIP: chromium not found (apt-get install chromium); the replay browser test did not run"
    exit 0
fi
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 not found; the replay browser test did not run"
    exit 0
fi
[[ -x "$SYNOD" ]] || { echo "no synod binary at $SYNOD (swift build first)"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# Seed 7 (4 s): crashes, stalls, a partition, a one-way cut, heals.
"$SYNOD" sim --seed 7 --duration 4 --html "$work/run.html" >/dev/null
# A --break run exits 1 (its violation is found); the page is written all the same.
"$SYNOD" sim --seed 6 --break tick-lease --html "$work/break.html" >/dev/null || true
"$SYNOD" sim --tour all --html "$work/tour" >/dev/null
[[ -s "$work/run.html" && -s "$work/break.html" && -s "$work/tour/index.html" ]] || { echo "synod sim --html wrote no page"; exit 1; }
if [[ "${BREAK_PAGE:-}" == back-off-by-one ]]; then
    sed -i 's/function back() { if (cur > 0) go(cur - 1); }/function back() { if (cur > 0) go(cur - 2); }/' "$work/run.html"
    grep -q 'go(cur - 2)' "$work/run.html" || { echo "could not break the page"; exit 1; }
    echo "(page deliberately broken: step back goes back two steps)"
elif [[ "${BREAK_PAGE:-}" == no-cut-links ]]; then
    sed -i 's/for (const \[a, b\] of cuts) {/for (const [a, b] of []) {/' "$work/run.html"
    grep -q 'for (const \[a, b\] of \[\]) {' "$work/run.html" || { echo "could not break the page"; exit 1; }
    echo "(page deliberately broken: partitions are not drawn)"
elif [[ "${BREAK_PAGE:-}" == panels-one-behind ]]; then
    sed -i 's/drawNet(cur); drawNodes(cur);/drawNet(cur); drawNodes(Math.max(0, cur - 1));/' "$work/run.html" "$work/break.html"
    grep -q 'drawNodes(Math.max(0, cur - 1))' "$work/run.html" || { echo "could not break the page"; exit 1; }
    echo "(page deliberately broken: the node panels show the state one step behind)"
fi
cp Tests/browser/replay_test.py Tests/browser/cdp.py "$work/"
chmod 644 "$work"/*.html "$work"/*.py "$work"/tour/*
chmod 755 "$work/tour"
mkdir -p "$work/out" && chmod 777 "$work/out"

run=(python3 "$work/replay_test.py" "$CHROMIUM" "$work/run.html" "$work/break.html" "$work/out" "$work/tour")
status=0
if [[ $(id -u) == 0 ]]; then
    runuser -u "${BROWSER_USER:-synodci}" -- env HOME="$work/out" "${run[@]}" || status=$?
else
    "${run[@]}" || status=$?
fi
mkdir -p "$OUT"
cp "$work"/out/*.png "$OUT"/ 2>/dev/null || true
echo "screenshots: $(ls "$OUT"/*.png 2>/dev/null | tr '\n' ' ')"
exit $status
