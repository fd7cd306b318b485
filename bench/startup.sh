#!/usr/bin/env bash
# Start-up cost of a one-shot check: `lvscheck run http ...` as a process, against local nginx,
# vs `python -I -c "import asyncio, ssl"` with the same venv interpreter.  Budget (issue 3): 1.2x.
#
#   bench/startup.sh [RUNS]        (needs hyperfine: apt-get install hyperfine; nginx-light)
#
# Prints hyperfine's table and the ratio of the means; also the import-time top list of the
# lvscheck process (python -X importtime), for finding what to make lazy.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100}
PY=.venv/bin/python
LVSCHECK=.venv/bin/lvscheck
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (apt-get install hyperfine)"; exit 1; }

# An installed lvscheck has its bytecode compiled (pip does it); this editable checkout may run
# under PYTHONDONTWRITEBYTECODE=1, which makes every start recompile the sources (~35 ms here).
unset PYTHONDONTWRITEBYTECODE
"$PY" -m compileall -q src >/dev/null

TMP=$(mktemp -d)
trap 'kill "$NGINX_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"' EXIT
# nginx from the test peer module, in the background, writing its port to a file
"$PY" - "$TMP" <<'EOF' &
import signal, sys, time
from pathlib import Path
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leave the with-block: nginx is stopped
sys.path.insert(0, ".")
from tests.peers.nginx import start_nginx
with start_nginx(Path(sys.argv[1]) / "nginx") as ng:
    (Path(sys.argv[1]) / "port").write_text(str(ng.http_port))
    time.sleep(3600)
EOF
NGINX_PID=$!
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(cat "$TMP/port")
CHECK="$LVSCHECK run http 127.0.0.1:$PORT request=/test.html receive='Still alive'"

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)   $(nproc) CPUs   $($PY -V)"
eval "$CHECK"
hyperfine -N --warmup 10 --runs "$RUNS" --export-json "$TMP/h.json" \
  -n "lvscheck run http" "$CHECK" \
  -n "python -I -c 'import asyncio, ssl'" "$PY -I -c 'import asyncio, ssl'"
"$PY" - "$TMP/h.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
check, base = r[0], r[1]
ratio = check["mean"] / base["mean"]
def cpu(r):
    return r["user"] + r["system"]
for name, r in (("lvscheck run http", check), ("python -I -c 'import asyncio, ssl'", base)):
    print(f"{name}: mean {r['mean'] * 1000:.1f} ms, median {r['median'] * 1000:.1f} ms, "
          f"min {r['min'] * 1000:.1f} ms, CPU (user+sys) {cpu(r) * 1000:.1f} ms")
print(f"ratio of means {ratio:.2f}x, medians {check['median'] / base['median']:.2f}x, "
      f"minimums {check['min'] / base['min']:.2f}x, CPU {cpu(check) / cpu(base):.2f}x (budget 1.2x)")
EOF
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "imports of lvscheck run http not in the baseline (self us, cumulative us):"
$PY -I -X importtime -c "import asyncio, ssl" 2>"$TMP/base.txt"
eval "$PY -X importtime $CHECK" >/dev/null 2>"$TMP/run.txt" || true
"$PY" - "$TMP/base.txt" "$TMP/run.txt" <<'EOF'
import sys
def load(path):
    out = {}
    for line in open(path):
        if line.startswith("import time:") and "[us]" not in line:
            self_us, cum_us, name = line[len("import time:"):].split("|")
            out[name.strip()] = (int(self_us), int(cum_us))
    return out
base, run = load(sys.argv[1]), load(sys.argv[2])
extra = {k: v for k, v in run.items() if k not in base}
print(f"  {len(extra)} modules, {sum(v[0] for v in extra.values()) / 1000:.1f} ms self time in total")
for name, (self_us, cum_us) in sorted(extra.items(), key=lambda kv: -kv[1][0])[:15]:
    print(f"  {self_us:6d} {cum_us:7d}  {name}")
EOF
