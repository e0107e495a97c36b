#!/usr/bin/env bash
# sysbench through shardgate's MySQL port, compared in one run with MariaDB directly (run by hand, not a test).
#
#   bench/sysbench.sh                      oltp_point_select and oltp_read_only, 1/8/64 threads, 20 s each
#   DURATION=5 THREADS="1 8" bench/sysbench.sh
#   PASSTHROUGH=0 bench/sysbench.sh        the router without the single-shard fast path (engine only)
#
# Targets: (a) MariaDB directly; (b) shardgate over that same server and database (keyspace "direct", unsharded);
# (c) shardgate over 2 shards on 2 servers (keyspace "sharded", sbtest sharded by id with hash, made with VSchema
# DDL). The router runs the gateway and the MySQL listener on uvloop in one process, with backend pools large
# enough for 64 threads' transactions (ROUTER=serve uses `python -m router.serve`). Prints QPS, average and p95
# latency, the ratio shardgate/direct, and the router's CPU time per query (from /proc). sysbench, the router and
# MariaDB share this machine's cores: compare within one run (REPEAT=3 repeats each cell, interleaved, and reports
# the median).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
DURATION=${DURATION:-20}
THREADS=${THREADS:-"1 8 64"}
TESTS=${TESTS:-"oltp_point_select oltp_read_only"}
TABLES=${TABLES:-1}
TABLE_SIZE=${TABLE_SIZE:-10000}
REPEAT=${REPEAT:-1}
WORKERS=${WORKERS:-1}
ROUTER=${ROUTER:-bench}   # bench: bench/sysbench_setup.py router (large pools); serve: python -m router.serve
POOL_SIZE=${POOL_SIZE:-80}

command -v sysbench >/dev/null || { echo "sysbench is not installed" >&2; exit 1; }
command -v mysql >/dev/null || { echo "the mysql client is not installed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/shardgate-sysbench.XXXXXX)
chmod 755 "$WORK"
SERVERS_PID=""
ROUTER_PID=""
cleanup() {
  [[ -n "$ROUTER_PID" ]] && kill "$ROUTER_PID" 2>/dev/null && wait "$ROUTER_PID" 2>/dev/null || true
  [[ -n "$SERVERS_PID" ]] && kill "$SERVERS_PID" 2>/dev/null && wait "$SERVERS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "==> starting 2 MariaDB servers"
"$PY" bench/sysbench_setup.py servers "$WORK" >"$WORK/servers.log" 2>&1 &
SERVERS_PID=$!
for _ in $(seq 600); do [[ -s "$WORK/servers.json" ]] && break; sleep 0.2; done
[[ -s "$WORK/servers.json" ]] || { cat "$WORK/servers.log" >&2; exit 1; }
"$PY" bench/sysbench_setup.py config "$WORK"
read -r DB_PORT DB_USER DB_PASS < <("$PY" -c "import json,sys; s=json.load(open('$WORK/servers.json'))[0]; \
print(s['port'], s['user'], s['password'])")

if [[ "$ROUTER" == serve ]]; then
  echo "==> starting the router (python -m router.serve, $WORKERS worker(s))"
  "$PY" -m router.serve --config "$WORK/cluster.yaml" --pg-listen 127.0.0.1:0 --mysql-listen 127.0.0.1:0 \
    --workers "$WORKERS" --ready-file "$WORK/ready.json" --log-level warning >"$WORK/router.log" 2>&1 &
else
  echo "==> starting the router (gateway + MySQL listener on uvloop, pools of $POOL_SIZE, passthrough ${PASSTHROUGH:-1})"
  POOL_SIZE=$POOL_SIZE PASSTHROUGH=${PASSTHROUGH:-1} "$PY" bench/sysbench_setup.py router "$WORK" >"$WORK/router.log" 2>&1 &
fi
ROUTER_PID=$!
for _ in $(seq 300); do [[ -s "$WORK/ready.json" ]] && break; sleep 0.2; done
[[ -s "$WORK/ready.json" ]] || { cat "$WORK/router.log" >&2; exit 1; }
SG_PORT=$("$PY" -c "import json; print(json.load(open('$WORK/ready.json'))['mysql'])")

sb() {  # sb PORT USER PASSWORD DB TEST COMMAND [args...]
  local port=$1 user=$2 pass=$3 db=$4 test=$5 cmd=$6
  shift 6
  sysbench "$test" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user="$user" \
    --mysql-password="$pass" --mysql-db="$db" --tables="$TABLES" --table-size="$TABLE_SIZE" "$@" "$cmd"
}

echo "==> loading: $TABLES table(s) of $TABLE_SIZE rows, directly and through the router (2 shards)"
sb "$DB_PORT" "$DB_USER" "$DB_PASS" sb_direct oltp_read_only prepare >/dev/null
DDL=""
for i in $(seq "$TABLES"); do DDL="$DDL ALTER VSCHEMA ON sbtest$i ADD VINDEX hash(id) USING hash;"; done
mysql -h127.0.0.1 -P"$SG_PORT" -ubench -pbench sharded -e "$DDL"
sb "$SG_PORT" bench bench sharded oltp_read_only prepare --auto-inc=off >/dev/null

cpu() { "$PY" bench/sysbench_setup.py cpu "$ROUTER_PID"; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
run_one() {  # run_one TARGET TEST THREADS -> appends "target test threads qps avg p95 cpu_us_per_query"
  local target=$1 test=$2 threads=$3 out before after qps avg p95 queries cpu_us
  case "$target" in
    direct) set -- "$DB_PORT" "$DB_USER" "$DB_PASS" sb_direct ;;
    unsharded) set -- "$SG_PORT" bench bench direct ;;
    sharded) set -- "$SG_PORT" bench bench sharded ;;
  esac
  before=$(cpu)
  out=$(sb "$1" "$2" "$3" "$4" "$test" run --threads="$threads" --time="$DURATION" --report-interval=0 2>&1) || {
    echo "$out" >&2; echo "--- router log:" >&2; tail -n 40 "$WORK/router.log" >&2; return 1; }
  after=$(cpu)
  if grep -q FATAL <<<"$out"; then
    echo "$out" >&2; echo "--- router log:" >&2; tail -n 40 "$WORK/router.log" >&2; return 1
  fi
  qps=$(sed -n 's/.*queries: *[0-9]* *(\([0-9.]*\) per sec.*/\1/p' <<<"$out")
  queries=$(sed -n 's/.*queries: *\([0-9]*\) .*/\1/p' <<<"$out")
  avg=$(awk '/avg:/ {print $2; exit}' <<<"$out")
  p95=$(awk '/95th percentile:/ {print $3; exit}' <<<"$out")
  cpu_us="-"
  if [[ "$target" != direct && "$queries" -gt 0 ]]; then
    cpu_us=$(awk -v a="$after" -v b="$before" -v q="$queries" 'BEGIN {printf "%.1f", (a - b) * 1e6 / q}')
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$test" "$threads" "$qps" "$avg" "$p95" "$cpu_us" >>"$RESULTS"
}

echo "==> running: $TESTS at threads $THREADS, ${DURATION}s each, $REPEAT time(s)"
for test in $TESTS; do
  for threads in $THREADS; do
    for _ in $(seq "$REPEAT"); do
      for target in direct unsharded sharded; do
        run_one "$target" "$test" "$threads"
        echo "    $(tail -n1 "$RESULTS" | tr '\t' ' ')"
      done
    done
  done
done

echo
"$PY" - "$RESULTS" <<'EOF'
import statistics
import sys

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
cells = {}
for target, test, threads, qps, avg, p95, cpu in rows:
    cells.setdefault((test, int(threads), target), []).append((float(qps), float(avg), float(p95), cpu))
print(f"{'test':<18} {'threads':>7} {'target':<10} {'QPS':>10} {'avg ms':>8} {'p95 ms':>8} {'x direct':>9} "
      f"{'+avg ms':>8} {'router CPU us/q':>16}")
for (test, threads, target) in sorted(cells, key=lambda k: (k[0], k[1], ["direct", "unsharded", "sharded"]
                                                            .index(k[2]))):
    runs = cells[(test, threads, target)]
    qps = statistics.median(r[0] for r in runs)
    avg = statistics.median(r[1] for r in runs)
    p95 = statistics.median(r[2] for r in runs)
    cpus = [float(r[3]) for r in runs if r[3] != "-"]
    base = cells.get((test, threads, "direct"))
    ratio = qps / statistics.median(r[0] for r in base) if base else float("nan")
    added = avg - statistics.median(r[1] for r in base) if base else float("nan")
    cpu = f"{statistics.median(cpus):.1f}" if cpus else "-"
    print(f"{test:<18} {threads:>7} {target:<10} {qps:>10.0f} {avg:>8.2f} {p95:>8.2f} {ratio:>9.2f} "
          f"{added:>8.2f} {cpu:>16}")
EOF
