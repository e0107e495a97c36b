#!/usr/bin/env bash
# pgbench -S through shardgate's PostgreSQL port, compared in one run with PostgreSQL directly and with PgBouncer
# (run by hand, not a test).
#
#   bench/pgbench.sh                          -M simple and -M prepared, 1/8/64 clients, 20 s each
#   DURATION=5 CLIENTS="1 8" REPEAT=3 bench/pgbench.sh
#
# Targets: (a) PostgreSQL directly; (b) PgBouncer 1.18 with transaction pooling in front of it; (c) shardgate in
# front of it (keyspace "direct", unsharded); (d) shardgate over 2 shards on 2 servers (keyspace "sharded",
# pgbench_accounts sharded by aid with hash, made with VSchema DDL and loaded with pgbench -i through the router).
# The router is `python -m router.serve` (uvloop, WORKERS worker processes). Prints TPS, average and p95 latency,
# the ratios shardgate/direct and shardgate/PgBouncer, and the router's CPU time per transaction (from /proc).
# pgbench, the router, PgBouncer and PostgreSQL share this machine's cores: compare within one run; REPEAT=N runs
# each cell N times, interleaved across targets (A B C D A B C D …), and reports the median.
# Debian's PgBouncer 1.18 cannot run -M prepared under transaction pooling ("prepared statement "P_0" already
# exists"): that cell shows the failure instead of a figure.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-"1 8 64"}
MODES=${MODES:-"simple prepared"}
SCALE=${SCALE:-1}
REPEAT=${REPEAT:-1}
WORKERS=${WORKERS:-1}
POOL_SIZE=${POOL_SIZE:-20}  # backend connections per shard, as PgBouncer's default_pool_size below
export PGBOUNCER_PORT=${PGBOUNCER_PORT:-$((20000 + RANDOM % 20000))}

for tool in pgbench psql pgbouncer; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/shardgate-pgbench.XXXXXX)
chmod 755 "$WORK"
SERVERS_PID=""
ROUTER_PID=""
BOUNCER_PID=""
cleanup() {
  [[ -n "$ROUTER_PID" ]] && kill "$ROUTER_PID" 2>/dev/null && wait "$ROUTER_PID" 2>/dev/null || true
  [[ -n "$BOUNCER_PID" ]] && kill "$BOUNCER_PID" 2>/dev/null || true
  [[ -n "$SERVERS_PID" ]] && kill "$SERVERS_PID" 2>/dev/null && wait "$SERVERS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> starting 2 PostgreSQL servers"
"$PY" bench/pgbench_setup.py servers "$WORK" >"$WORK/servers.log" 2>&1 &
SERVERS_PID=$!
for _ in $(seq 600); do [[ -s "$WORK/servers.json" ]] && break; sleep 0.2; done
[[ -s "$WORK/servers.json" ]] || { cat "$WORK/servers.log" >&2; exit 1; }
"$PY" bench/pgbench_setup.py config "$WORK"
read -r DB_PORT DB_USER DB_PASS < <("$PY" -c "import json; s=json.load(open('$WORK/servers.json'))[0]; \
print(s['port'], s['user'], s['password'])")

echo "==> starting PgBouncer (transaction pooling) on $PGBOUNCER_PORT"
chown postgres "$WORK" "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
runuser -u postgres -- pgbouncer "$WORK/pgbouncer.ini" >"$WORK/pgbouncer.out" 2>&1 &
BOUNCER_PID=$!

echo "==> starting the router ($WORKERS worker(s))"
"$PY" -m router.serve --config "$WORK/cluster.yaml" --pg-listen 127.0.0.1:0 --no-mysql --workers "$WORKERS" \
  --pool-size "$POOL_SIZE" --topology \
  --ready-file "$WORK/ready.json" --log-level warning >"$WORK/router.log" 2>&1 &
ROUTER_PID=$!
for _ in $(seq 300); do [[ -s "$WORK/ready.json" ]] && break; sleep 0.2; done
[[ -s "$WORK/ready.json" ]] || { cat "$WORK/router.log" >&2; exit 1; }
SG_PORT=$("$PY" -c "import json; print(json.load(open('$WORK/ready.json'))['postgres'])")
sleep 0.5

echo "==> loading pgbench scale $SCALE: directly, and through the router on 2 shards"
PGPASSWORD="$DB_PASS" pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$DB_PORT" -U "$DB_USER" bench >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; exit 1; }
PGPASSWORD=bench psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SG_PORT" -U bench -d sharded -c "
  ALTER VSCHEMA ON pgbench_accounts ADD VINDEX hash(aid) USING hash;
  ALTER VSCHEMA ON pgbench_history ADD VINDEX hash(aid) USING hash;
  ALTER VSCHEMA ON pgbench_branches ADD VINDEX hash(bid) USING hash;
  ALTER VSCHEMA ON pgbench_tellers ADD VINDEX hash(tid) USING hash;" >"$WORK/ddl.log" 2>&1 \
  || { cat "$WORK/ddl.log" >&2; exit 1; }
sleep 1  # other workers see the VSchema change through the topology store
PGPASSWORD=bench pgbench -i -q -s "$SCALE" -h 127.0.0.1 -p "$SG_PORT" -U bench sharded >"$WORK/init2.log" 2>&1 \
  || { cat "$WORK/init2.log" >&2; exit 1; }

cpu() { "$PY" bench/pgbench_setup.py cpu "$ROUTER_PID"; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
run_one() {  # run_one TARGET MODE CLIENTS -> appends "target mode clients tps avg p95 cpu_us_per_tx"
  local target=$1 mode=$2 clients=$3 out before after tps avg p95 tx cpu_us jobs
  local port user pass db
  case "$target" in
    direct) port=$DB_PORT; user=$DB_USER; pass=$DB_PASS; db=bench ;;
    pgbouncer) port=$PGBOUNCER_PORT; user=bench; pass=bench; db=bench ;;
    unsharded) port=$SG_PORT; user=bench; pass=bench; db=direct ;;
    sharded) port=$SG_PORT; user=bench; pass=bench; db=sharded ;;
  esac
  jobs=$(( clients < 2 ? 1 : 2 ))
  rm -f "$WORK"/lat.*
  before=$(cpu)
  out=$(cd "$WORK" && PGPASSWORD="$pass" pgbench -n -S -M "$mode" -c "$clients" -j "$jobs" -T "$DURATION" \
        -h 127.0.0.1 -p "$port" -U "$user" -l --log-prefix=lat "$db" 2>&1) || true
  after=$(cpu)
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  avg=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out" | head -1)
  tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out" | head -1)
  if [[ -z "$tps" || -z "$tx" || "$tx" == 0 ]] || grep -q "aborted" <<<"$out"; then
    local why
    why=$(grep -m1 -o 'ERROR: .*' <<<"$out" | cut -c1-70 || true)
    echo -e "$target\t$mode\t$clients\tFAILED\t${why:-no result}\t-\t-" >>"$RESULTS"
    return
  fi
  p95=$("$PY" bench/pgbench_setup.py p95 "$WORK/lat")
  cpu_us="-"
  if [[ "$target" == unsharded || "$target" == sharded ]]; then
    cpu_us=$("$PY" -c "print(f'{($after - $before) * 1e6 / $tx:.0f}')")
  fi
  echo -e "$target\t$mode\t$clients\t$tps\t$avg\t$p95\t$cpu_us" >>"$RESULTS"
}

for mode in $MODES; do
  for clients in $CLIENTS; do
    for _ in $(seq "$REPEAT"); do
      for target in direct pgbouncer unsharded sharded; do
        echo "    $mode, $clients client(s), $target"
        run_one "$target" "$mode" "$clients"
      done
    done
  done
done

"$PY" - "$RESULTS" <<'EOF'
import statistics
import sys
from collections import defaultdict

cells = defaultdict(list)
failures = {}
for line in open(sys.argv[1]):
    target, mode, clients, tps, avg, p95, cpu = line.rstrip("\n").split("\t")
    if tps == "FAILED":
        failures[(target, mode, int(clients))] = avg
        continue
    cells[(target, mode, int(clients))].append((float(tps), float(avg), float(p95), None if cpu == "-" else float(cpu)))


def median(key, i):
    values = [r[i] for r in cells.get(key, []) if r[i] is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "-".rjust(int(spec.split(".")[0])) if v is None else format(v, spec)


targets = ("direct", "pgbouncer", "unsharded", "sharded")
print()
print(f"{'mode':<9}{'clients':>8}  {'target':<10}{'TPS':>10}{'avg ms':>9}{'p95 ms':>9}{'CPU µs/tx':>11}"
      f"{'x direct':>10}{'x bouncer':>11}")
for mode in sorted({k[1] for k in list(cells) + list(failures)}, key=lambda m: ("simple", "prepared").index(m)
                   if m in ("simple", "prepared") else 9):
    for clients in sorted({k[2] for k in list(cells) + list(failures) if k[1] == mode}):
        direct = median(("direct", mode, clients), 0)
        bouncer = median(("pgbouncer", mode, clients), 0)
        for target in targets:
            key = (target, mode, clients)
            if key in failures and key not in cells:
                print(f"{mode:<9}{clients:>8}  {target:<10}  failed: {failures[key]}")
                continue
            tps = median(key, 0)
            ratio_d = tps / direct if tps and direct and target in ("unsharded", "sharded") else None
            ratio_b = tps / bouncer if tps and bouncer and target in ("unsharded", "sharded") else None
            print(f"{mode:<9}{clients:>8}  {target:<10}{fmt(tps, '10.0f')}{fmt(median(key, 1), '9.3f')}"
                  f"{fmt(median(key, 2), '9.3f')}{fmt(median(key, 3), '11.0f')}{fmt(ratio_d, '10.2f')}"
                  f"{fmt(ratio_b, '11.2f')}")
        d1, s1 = median(("direct", mode, clients), 1), median(("unsharded", mode, clients), 1)
        if clients == 1 and d1 is not None and s1 is not None:
            print(f"{'':<19}added latency at 1 client: {s1 - d1:.3f} ms over direct")
EOF
