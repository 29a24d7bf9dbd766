#!/usr/bin/env bash
# The cluster page of `synod cluster` in a real browser: starts a local 3-member cluster (its
# own data directory in a temporary one, client ports 12379, 32379, 42379, the page on 12378),
# and headless Chromium (Debian's `chromium` package) loads the page and checks that it shows
# one leader; kills the leader with the page's button and sees another take over within the
# election timeout; puts a key with the form and sees it chosen on every live member; restarts
# the killed member and sees it catch up as a follower; works the controls with the keyboard;
# and checks text contrast. Screenshots go to $OUT (default: .build/browser-artifacts).
#
#   Tests/browser/live-test.sh [path/to/synod]
#
# Skips (exit 0, with a message) when chromium or python3 is absent. Chromium does not run
# as root: as root, the cluster and the browser run as $BROWSER_USER (default synodci) via
# runuser. LIVE_BASE_PORT / LIVE_UI_PORT move the ports.
# BREAK_PAGE=kill-noop (the kill button answers ok but kills nothing) or stale-leader (the
# page keeps showing the first leader it saw) break the supervisor on purpose, through its
# tests-only SYNOD_LIVE_BREAK: the test must then fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
SYNOD=${1:-${SYNOD:-.build/debug/synod}}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
OUT=${OUT:-.build/browser-artifacts}
BASE=${LIVE_BASE_PORT:-12379}
UI=${LIVE_UI_PORT:-$((BASE - 1))}
if [[ -z "$CHROMIUM" ]]; then
    echo "SKIP: chromium not found (apt-get install chromium); the live cluster browser test did not run"
    exit 0
fi
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 not found; the live cluster browser test did not run"
    exit 0
fi
[[ -x "$SYNOD" ]] || { echo "no synod binary at $SYNOD (swift build first)"; exit 1; }

work=$(mktemp -d)
chmod 755 "$work"
cluster_pid=""
cleanup() {
    if [[ -s "$work/run/cluster.pid" ]]; then
        # Ctrl-C, as a person would stop it; it stops every member, paused ones too.
        kill -INT "$(cat "$work/run/cluster.pid")" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$(cat "$work/run/cluster.pid")" 2>/dev/null || break; sleep 0.1; done
    fi
    [[ -n "$cluster_pid" ]] && wait "$cluster_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The binary is copied where the unprivileged user can run it.
cp "$SYNOD" "$work/synod"
cp Tests/browser/live_test.py Tests/browser/cdp.py "$work/"
chmod 755 "$work/synod"
chmod 644 "$work/live_test.py" "$work/cdp.py"
mkdir -p "$work/out" "$work/run" && chmod 777 "$work/out" "$work/run"

export SYNOD_LIVE_BREAK=
case "${BREAK_PAGE:-}" in
    "") ;;
    kill-noop) SYNOD_LIVE_BREAK=kill-noop; echo "(supervisor deliberately broken: kill answers ok and kills nothing)" ;;
    stale-leader) SYNOD_LIVE_BREAK=stale-leader; echo "(supervisor deliberately broken: the page keeps the first leader it saw)" ;;
    *) echo "unknown BREAK_PAGE=$BREAK_PAGE"; exit 1 ;;
esac

as_user=()
[[ $(id -u) == 0 ]] && as_user=(runuser -u "${BROWSER_USER:-synodci}" --)
# The shell writes its pid and becomes synod cluster, so the pid is synod's own.
"${as_user[@]}" env HOME="$work/out" SYNOD_LIVE_BREAK="$SYNOD_LIVE_BREAK" sh -c \
    'cd "$1" && echo $$ > "$1/cluster.pid" && exec "$1/../synod" cluster --data-dir "$1/data" --base-port "$2" --ui-port "$3"' \
    sh "$work/run" "$BASE" "$UI" > "$work/cluster.log" 2>&1 &
cluster_pid=$!

status=0
"${as_user[@]}" env HOME="$work/out" python3 "$work/live_test.py" "$CHROMIUM" "http://127.0.0.1:$UI" "$work/out" || status=$?
if [[ $status != 0 ]]; then
    echo "--- synod cluster's output:"; cat "$work/cluster.log" || true
fi
mkdir -p "$OUT"
cp "$work"/out/*.png "$OUT"/ 2>/dev/null || true
echo "screenshots: $(ls "$OUT"/live-*.png 2>/dev/null | tr '\n' ' ')"
exit $status
