#!/usr/bin/env bash
# Start-up cost of `lvscheck-ldirectord VIP VPORT RIP RPORT` (ldirectord's checkcommand) for an HTTP
# virtual, against `python -I -c "import asyncio, ssl"` on the same interpreter.  hyperfine.
#
#   bench/ldirectord_startup.sh            (from the repository root, with .venv installed)
#
# Three commands are timed, each a full process start to exit status:
#   baseline   python -I -c "import asyncio, ssl"          (the budget: at most 1.2x this)
#   warm       lvscheck-ldirectord ... with the check server running (every call but the first)
#   cold       lvscheck-ldirectord ... with LVSCHECK_LDIRECTORD_SERVER=0 (in-process: import
#              lvscheck, parse the config, run the check)
# The real is python's http.server on 127.0.0.1; the check is a full HTTP GET + receive match.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(readlink -f .venv/bin/python)
CHECK=.venv/bin/lvscheck-ldirectord
command -v hyperfine >/dev/null || { echo "hyperfine not installed (apt-get install hyperfine)" >&2; exit 77; }
D=$(mktemp -d /tmp/ld-startup.XXXXXX)
chmod 700 "$D"
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$D/www" "$D/run"
chmod 700 "$D/run"
echo "Still alive" > "$D/www/alive.html"
cat > "$D/ld.cf" <<EOC
checktimeout=5
virtual=10.0.0.1:80
	real=127.0.0.1:$PORT masq 5
	checktype=external
	checkcommand=$PWD/$CHECK
	service=http
	request="alive.html"
	receive="Still alive"
EOC
$PY -m http.server "$PORT" --bind 127.0.0.1 -d "$D/www" >/dev/null 2>&1 &
WEB=$!
cleanup() {
  kill "$WEB" 2>/dev/null || true
  [ -f "$D/run/server.pid" ] && kill "$(cat "$D/run/server.pid")" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
export LVSCHECK_LDIRECTORD_CONFIG="$D/ld.cf" LVSCHECK_LDIRECTORD_RUNDIR="$D/run" LVSCHECK_LDIRECTORD_IDLE=120
ARGS="10.0.0.1 80 127.0.0.1 $PORT"
$CHECK $ARGS && echo "check: up (exit 0)"   # also starts the check server
sleep 1
echo "interpreter: $PY ($($PY -V)); load: $(uptime | sed 's/.*load average/load average/')"
hyperfine -N --warmup 10 --runs "${RUNS:-60}" --export-json "$D/h.json" \
  -n baseline "$PY -I -c 'import asyncio, ssl'" \
  -n warm "$CHECK $ARGS" \
  -n cold "env LVSCHECK_LDIRECTORD_SERVER=0 $CHECK $ARGS"
$PY - "$D/h.json" <<'EOP'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["baseline"]
for name in ("warm", "cold"):
    x = r[name]
    print(f"{name:>5}: mean {x['mean']*1000:6.1f} ms  median {x['median']*1000:6.1f} ms  "
          f"= {x['median']/base['median']:.2f}x baseline median ({base['median']*1000:.1f} ms); "
          f"user+sys {(x['user']+x['system'])*1000:.1f} ms vs {(base['user']+base['system'])*1000:.1f} ms")
EOP
