#!/usr/bin/env bash
# One-shot start-up of two revisions side by side, each from a non-editable install (pip install .):
# `lvscheck run connect` and `lvscheck check-config` of each, against `python -I -c "import asyncio, ssl"`,
# in one hyperfine run per round, rounds alternating A B A B.  Budget: lvscheck run <= 1.2x the baseline.
#
#   bench/startup_compare.sh OLD_REV [NEW_REV=HEAD] [ROUNDS=2] [RUNS=60]   (needs hyperfine)
#   INSTRUCTIONS=1 bench/startup_compare.sh OLD_REV [NEW_REV]   instructions counted by callgrind instead of
#   wall time: the same figure whatever else the machine does (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/startup_compare.sh OLD_REV [NEW_REV] [ROUNDS] [RUNS]}
NEW=${2:-HEAD}
ROUNDS=${3:-2}
RUNS=${4:-60}
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install hyperfine)"; exit 1; }
TMP=$(mktemp -d)
trap 'kill $LISTENER 2>/dev/null || true; rm -rf "$TMP"' EXIT
for side in old new; do
  rev=$OLD; [ $side = new ] && rev=$NEW
  git worktree add -q --detach "$TMP/src-$side" "$rev"
  python3 -m venv "$TMP/venv-$side"
  "$TMP/venv-$side/bin/pip" install -q "$TMP/src-$side" >/dev/null
  git worktree remove --force "$TMP/src-$side"
done
python3 - "$TMP/port" <<'PY' &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(512)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
while True:
    c, _ = s.accept(); c.close()
PY
LISTENER=$!
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(cat "$TMP/port")
printf 'checktimeout=1\nvirtual=127.0.0.1:80\n\treal=127.0.0.1:%s masq\n\tchecktype=connect\n' "$PORT" >"$TMP/one.cf"
PY=$TMP/venv-new/bin/python
echo "old=$(git rev-parse --short "$OLD") new=$(git rev-parse --short "$NEW")  $(nproc) CPUs  $($PY -V)"
if [ -n "${INSTRUCTIONS:-}" ]; then
  count() {  # total instructions of one run of "$@" (bytecode already compiled by pip)
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$@" >/dev/null 2>"$TMP/cg.err" || true
    grep -o 'Collected : [0-9]*' "$TMP/cg.err" | grep -o '[0-9]*$'
  }
  base=$(count "$PY" -I -c 'import asyncio, ssl')
  echo "python -I -c 'import asyncio, ssl': $base instructions"
  for side in old new; do
    run=$(count "$TMP/venv-$side/bin/lvscheck" run connect "127.0.0.1:$PORT")
    cfg=$(count "$TMP/venv-$side/bin/lvscheck" check-config -q "$TMP/one.cf")
    python3 -c "print(f'  $side run connect   $run instructions  {$run / $base:.2f}x the baseline'); print(f'  $side check-config $cfg instructions  {$cfg / $base:.2f}x the baseline')"
  done
  exit 0
fi
for round in $(seq "$ROUNDS"); do
  for order in "old new" "new old"; do
    set -- $order
    echo "== round $round ($1 first); load $(cut -d' ' -f1-3 /proc/loadavg)"
    hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$TMP/h.json" --style none \
      -n "python -I -c 'import asyncio, ssl'" "$PY -I -c 'import asyncio, ssl'" \
      -n "$1 run connect" "$TMP/venv-$1/bin/lvscheck run connect 127.0.0.1:$PORT" \
      -n "$2 run connect" "$TMP/venv-$2/bin/lvscheck run connect 127.0.0.1:$PORT" \
      -n "$1 check-config" "$TMP/venv-$1/bin/lvscheck check-config -q $TMP/one.cf" \
      -n "$2 check-config" "$TMP/venv-$2/bin/lvscheck check-config -q $TMP/one.cf" >/dev/null
    "$PY" - "$TMP/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r.pop("python -I -c 'import asyncio, ssl'")["mean"]
for name, x in sorted(r.items()):
    print(f"  {name:<22} mean {x['mean'] * 1000:6.1f} ms  {x['mean'] / base:.2f}x the baseline ({base * 1000:.1f} ms)")
PY
  done
done
