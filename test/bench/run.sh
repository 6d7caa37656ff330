#!/usr/bin/env bash
# test/bench/run.sh: steerdns under dnsperf, steer against CoreDNS's own file plugin, in one binary
# (`make bench` runs it from the repository root). Three scenarios:
#   a  the file plugin serving a static A record                      (the yardstick)
#   b  steer: one failover service, 3 pools x 2 endpoints, HTTP checks running
#   c  steer: 1,000 failover services (5 pools x 2 endpoints each: 10,000 endpoints), one check
#      definition per service (path /sN), so 10,000 distinct (check, target) pairs probed every
#      5 s (2,000 probes/s) against listeners on 127.0.0.1-127.0.0.10; queries over all services
#   c0 (diagnostic) the zone of (c) with `check: none`: the query path at that scale without the
#      probes, so that the cost of the probes and the cost of the size show apart
#   g  steer: a geo service (3 regions, 1,000 networks rules), asked with an ECS option
#      (dnsperf -E: one /24 for every query, which a networks rule covers), checks running
#   gf steer: the failover service of (g)'s zone, asked with the same ECS option: (g)/(gf) is
#      the cost of locating the client, with the ECS echo paid by both
#
# The server runs pinned to CPU SERVER_CPU with GOMAXPROCS=1, dnsperf and the check listeners on
# CLIENT_CPU. Each measurement starts a fresh server process holding only its own scenario, so that
# the 2,000 probes/s of (c) are paid by (c) alone, and never by (a) or (b) (see RESULTS.md).
#
# Steps (each can be skipped):
#   1. throughput: ROUNDS interleaved rounds (a b c a b c ...) of DURATION s of closed-loop dnsperf
#      (-q OUTSTANDING); medians and ratios to (a)
#   2. SWEEP scenarios: the highest rate without a lost query (a dnsperf -Q bisection of
#      SWEEP_ITER steps of SWEEP_STEP s), p50/p99 latency at half of it (dnsperf -v), at half of
#      (a)'s maximum, and the loss at 80% of it
#   2b. LAT_ROUNDS interleaved rounds (a b c a b c ...) of DURATION s of open-loop dnsperf at
#      half of (a)'s highest rate without loss, one fresh server each: the same offered load for
#      all, and p50/p99/p99.9 as medians over the rounds (one latency run alone is mostly noise);
#      with CAPTURE=1 also the server's part of each query's latency, from a tcpdump of lo
#      (query packet to response packet: test/bench/serverlat), which dnsperf's CPU does not blur
#   3. SCALING=1: 2 cores, GOMAXPROCS=2 and no taskset, without and with `multisocket`; dnsperf
#      (-T 2) then shares the two cores with the server
#   4. COMPILE=1: a policy file of 100,000 services loaded by the real binary: time to the first
#      answer and peak RSS (VmHWM)
#
# Knobs (environment): SCENARIOS ("a b c c0 g gf") ROUNDS (5) DURATION (8) WARMUP (1) OUTSTANDING (200)
# IDLE (5: seconds of measuring each server's CPU with no query, in round 1; 0 = skip) SWEEP ("a b c")
# SWEEP_STEP (4) SWEEP_ITER (6) LAT_ROUNDS (5) LAT_SCENARIOS ("a b c") CAPTURE (0) SCALING (1) SCALING_ROUNDS (2) SCALING_SCENARIOS ("a b c")
# COMPILE (1) BIG_SERVICES (100000) PORT_BASE (15300) SERVER_CPU (0) CLIENT_CPU (1)
# OUT (test/bench/out) GO (go).
# With the defaults it takes about 12 minutes on 2 CPUs. Output: the summary table on stdout
# and in OUT/summary-<time>.txt (OUT/summary.txt is the latest), raw output in OUT/<time>/.
set -euo pipefail

SCENARIOS=${SCENARIOS:-a b c c0 g gf}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-1}
OUTSTANDING=${OUTSTANDING:-200}
IDLE=${IDLE:-5}
SWEEP=${SWEEP-a b c}
SWEEP_STEP=${SWEEP_STEP:-4}
SWEEP_ITER=${SWEEP_ITER:-6}
LAT_ROUNDS=${LAT_ROUNDS:-5}
CAPTURE=${CAPTURE:-0}
LAT_SCENARIOS=${LAT_SCENARIOS-a b c}
SCALING=${SCALING:-1}
SCALING_ROUNDS=${SCALING_ROUNDS:-2}
SCALING_SCENARIOS=${SCALING_SCENARIOS-a b c}
COMPILE=${COMPILE:-1}
BIG_SERVICES=${BIG_SERVICES:-100000}
PORT_BASE=${PORT_BASE:-15300}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
GO=${GO:-go}

cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/test/bench/out}
STAMP=$(date +%Y%m%d-%H%M%S)
RAW=$OUT/$STAMP
mkdir -p "$RAW"
TMP=$(mktemp -d /tmp/steerdns-bench.XXXXXX)
SUMMARY=$OUT/summary-$STAMP.txt

PORT_A=$((PORT_BASE + 1)) PORT_B=$((PORT_BASE + 2)) PORT_C=$((PORT_BASE + 3)) PORT_BIG=$((PORT_BASE + 4)) PORT_C0=$((PORT_BASE + 5))
PORT_G=$((PORT_BASE + 6)) PORT_GF=$((PORT_BASE + 7))
PORT_READY=$((PORT_BASE + 81)) PORT_BACKEND=$((PORT_BASE + 80))

for tool in dnsperf taskset dig curl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install dnsperf dnsutils curl util-linux)" >&2; exit 1; }
done
if [ "$CAPTURE" = 1 ] && ! command -v tcpdump >/dev/null; then
	echo "bench: CAPTURE=1 needs tcpdump (apt-get install tcpdump)" >&2
	exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "bench: needs 2 CPUs (server on one, dnsperf on the other); this machine has $(nproc)" >&2
	exit 1
fi
for p in $PORT_A $PORT_B $PORT_C $PORT_C0 $PORT_G $PORT_GF $PORT_BIG $PORT_READY $PORT_BACKEND; do
	if ss -Hlntu "( sport = :$p )" | grep -q .; then
		echo "bench: port $p is in use; set PORT_BASE to another base (now $PORT_BASE)" >&2
		exit 1
	fi
done

SERVER_PID= BACKEND_PID= CAP_PID=
cleanup() {
	local rc=$?
	local pid
	for pid in $SERVER_PID $BACKEND_PID $CAP_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }

# ---- build ---------------------------------------------------------------------------------
log "building bin/steerdns and the check listener"
mkdir -p bin
$GO build -o bin/steerdns ./cmd/steerdns
$GO build -o "$TMP/backend" ./test/bench/backend
$GO build -o "$TMP/serverlat" ./test/bench/serverlat

# ---- the scenarios -------------------------------------------------------------------------
cat >"$TMP/a.db" <<EOF
\$ORIGIN a.bench.
@    3600 IN SOA ns1.a.bench. hostmaster.a.bench. 1 7200 3600 1209600 60
@    3600 IN NS  ns1
ns1  3600 IN A   127.0.0.1
www    30 IN A   192.0.2.1
EOF
echo "www.a.bench. A" >"$TMP/qa"

cat >"$TMP/b.yaml" <<EOF
zone: b.bench.
ns: [ns1.b.bench.]
records: |
  ns1 A 127.0.0.1
checks:
  web: {type: http, port: $PORT_BACKEND, path: /healthz, interval: 5s, timeout: 2s}
services:
  www:
    policy: failover
    check: web
    pools:
      - {region: r1, endpoints: [127.0.0.1, 127.0.0.2]}
      - {region: r2, endpoints: [127.0.0.3, 127.0.0.4]}
      - {region: r3, endpoints: [127.0.0.5, 127.0.0.6]}
EOF
echo "www.b.bench. A" >"$TMP/qb"

{
	printf 'zone: c.bench.\nns: [ns1.c.bench.]\nrecords: |\n  ns1 A 127.0.0.1\nchecks:\n'
	for ((i = 0; i < 1000; i++)); do
		printf '  c%d: {type: http, port: %d, path: /s%d, interval: 5s, timeout: 2s}\n' $i "$PORT_BACKEND" $i
	done
	printf 'services:\n'
	for ((i = 0; i < 1000; i++)); do
		printf '  s%d:\n    policy: failover\n    check: c%d\n    pools:\n' $i $i
		for ((p = 0; p < 5; p++)); do
			printf '      - {region: r%d, endpoints: [127.0.0.%d, 127.0.0.%d]}\n' $p $((2 * p + 1)) $((2 * p + 2))
		done
	done
} >"$TMP/c.yaml"
sed -e 's/^zone: c.bench./zone: c0.bench./' -e 's/^ns: .*/ns: [ns1.c0.bench.]/' -e 's/^    check: c[0-9]*$/    check: none/' "$TMP/c.yaml" >"$TMP/c0.yaml"
# Every service, in an order fixed by a seed, so that consecutive queries hit unrelated services.
for ((i = 0; i < 1000; i++)); do echo "s$i.c.bench. A"; done | shuf --random-source=<(yes) >"$TMP/qc"
sed 's/\.c\.bench\./.c0.bench./' "$TMP/qc" >"$TMP/qc0"

{
	printf 'zone: g.bench.\nns: [ns1.g.bench.]\nrecords: |\n  ns1 A 127.0.0.1\n'
	printf 'checks:\n  web: {type: http, port: %d, path: /healthz, interval: 5s, timeout: 2s}\n' "$PORT_BACKEND"
	printf 'regions:\n  r1: {continent: NA, countries: [US], location: [38.9, -77.0], fallback: [r2]}\n'
	printf '  r2: {continent: EU, countries: [GB], location: [53.3, -6.3], fallback: [r1]}\n'
	printf '  r3: {continent: AS, countries: [JP], location: [35.7, 139.7], fallback: [r1]}\nnetworks:\n'
	for ((i = 0; i < 1000; i++)); do printf '  10.%d.%d.0/24: r%d\n' $((i / 256)) $((i % 256)) $((i % 3 + 1)); done
	printf 'services:\n'
	for svc in geo:geo fo:failover; do
		printf '  %s:\n    policy: %s\n    check: web\n    pools:\n' "${svc%%:*}" "${svc##*:}"
		printf '      - {region: r1, endpoints: [127.0.0.1, 127.0.0.2]}\n      - {region: r2, endpoints: [127.0.0.3, 127.0.0.4]}\n'
		printf '      - {region: r3, endpoints: [127.0.0.5, 127.0.0.6]}\n'
	done
} >"$TMP/g.yaml"
echo "geo.g.bench. A" >"$TMP/qg"
echo "fo.g.bench. A" >"$TMP/qgf"
# ECS 10.0.3.0/24 (family 1, source 24, scope 0): the networks rule of r1.
ECS_OPT=8:0001180a000003

port_of() { case $1 in a) echo $PORT_A ;; b) echo $PORT_B ;; c) echo $PORT_C ;; c0) echo $PORT_C0 ;; g) echo $PORT_G ;; gf) echo $PORT_GF ;; esac; }
# dnsperf options of a scenario: (g) and (gf) send ECS.
opts_of() { case $1 in g | gf) echo "-E $ECS_OPT" ;; esac; }
# the answer to the first query of a scenario when every endpoint is up
want_of() { case $1 in a) echo 192.0.2.1 ;; *) echo 127.0.0.1 ;; esac; }

# corefile SCENARIO MULTISOCKET(0|1)
corefile() {
	local s=$1 ms=$2 serve
	case $s in
	a) serve="file $TMP/a.db" ;;
	b) serve="steer $TMP/b.yaml" ;;
	c) serve="steer $TMP/c.yaml" ;;
	c0) serve="steer $TMP/c0.yaml" ;;
	g | gf) serve="steer $TMP/g.yaml" ;;
	esac
	local zone=$s.bench.
	[ "$s" = gf ] && zone=g.bench.
	cat <<EOF
$zone:$(port_of "$s") {
    bind 127.0.0.1
$([ "$ms" = 1 ] && echo "    multisocket")
    $serve
    ready 127.0.0.1:$PORT_READY
}
EOF
}

# start_server SCENARIO CORES(1|2) MULTISOCKET(0|1): a fresh server, ready and answering.
start_server() {
	local s=$1 cores=$2 ms=$3 conf=$TMP/Corefile.$1.$2.$3 t0 pin=()
	corefile "$s" "$ms" >"$conf"
	[ "$cores" = 1 ] && pin=(taskset -c "$SERVER_CPU")
	t0=$(date +%s.%N)
	echo "=== $(date +%T) start ($s) on $cores core(s), multisocket=$ms" >>"$RAW/server-$s.log"
	GOMAXPROCS=$cores "${pin[@]}" "$ROOT/bin/steerdns" -conf "$conf" >>"$RAW/server-$s.log" 2>&1 &
	SERVER_PID=$!
	# Ready once the plugin's checks have all run once (every check is spread over one interval).
	local deadline=$((SECONDS + 60))
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_READY/ready" || true)" = 200 ]; do
		if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "bench: server for ($s) did not become ready; see $RAW/server-$s.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	# Then for the healthy first choice: a probe that timed out at start-up (the machine busy)
	# marks its target down until rise (2) probes pass, fast_interval (1.25 s) apart.
	local got
	until got=$(dig +short +time=1 +tries=3 @127.0.0.1 -p "$(port_of "$s")" +subnet=10.0.3.0/24 "$(head -1 "$TMP/q$s" | cut -d' ' -f1)" A | head -1) &&
		[ "$got" = "$(want_of "$s")" ]; do
		if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			echo "bench: ($s) answered '$got', want $(want_of "$s"); see $RAW/server-$s.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	READY_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
}

# downs SCENARIO: state changes to down logged since the server last started (none is expected:
# every listener is up).
downs() { awk '/^=== / {n = 0} /-> down/ {n++} END {print n + 0}' "$RAW/server-$1.log"; }

stop_server() {
	[ -z "$SERVER_PID" ] && return
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# probes: the number of probes (HTTP requests) the check listener has served so far.
probes() {
	local n
	n=$(grep -c '^served ' "$RAW/backend.log" || true)
	kill -USR1 "$BACKEND_PID"
	for _ in $(seq 50); do
		[ "$(grep -c '^served ' "$RAW/backend.log" || true)" -gt "$n" ] && break
		sleep 0.02
	done
	grep '^served ' "$RAW/backend.log" | tail -1 | cut -d' ' -f2
}

# perf SCENARIO OUTFILE SECONDS [dnsperf options...]: dnsperf pinned to the client CPU, bounded.
# Each output ends with the machine's count of UDP datagrams dropped because a socket's receive
# buffer was full, over the run: where the lost queries went.
perf() {
	local s=$1 out=$2 secs=$3 e0
	shift 3
	e0=$(rcvbuf_errors)
	# shellcheck disable=SC2046 # opts_of is words
	timeout $((secs + 20)) taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$(port_of "$s")" -d "$TMP/q$s" \
		-l "$secs" $(opts_of "$s") "$@" >"$out" 2>&1 || { echo "bench: dnsperf failed, see $out" >&2; exit 1; }
	echo "UDP receive buffer errors: $(($(rcvbuf_errors) - e0))" >>"$out"
}
rcvbuf_errors() { awk '/^Udp:/ && $2 ~ /^[0-9]+$/ {print $6}' /proc/net/snmp; }
rcvbuf_of() { awk '/^UDP receive buffer errors:/ {print $NF}' "$1"; }
# field FILE: dnsperf's figures
qps_of() { awk '/Queries per second:/ {printf "%.0f", $4}' "$1"; }
lost_of() { awk '/Queries lost:/ {print $3}' "$1"; }
sent_of() { awk '/Queries sent:/ {print $3}' "$1"; }

medf() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.0f", v[(NR + 1) / 2]; else printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

RESULTS=$RAW/results.tsv # kind scenario ... one line per measurement
: >"$RESULTS"

log "starting the check listener on 127.0.0.1-127.0.0.10:$PORT_BACKEND (CPU $CLIENT_CPU)"
taskset -c "$CLIENT_CPU" "$TMP/backend" -addrs 127.0.0.1-127.0.0.10 -port "$PORT_BACKEND" -max 30m >"$RAW/backend.log" 2>&1 &
BACKEND_PID=$!
until grep -q '^backend:' "$RAW/backend.log"; do
	kill -0 "$BACKEND_PID" 2>/dev/null || { cat "$RAW/backend.log" >&2; exit 1; }
	sleep 0.05
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PSI_BEFORE=$(sed -n 's/^some avg10=\([^ ]*\) avg60=\([^ ]*\).*/avg10 \1% avg60 \2%/p' /proc/pressure/cpu 2>/dev/null || echo n/a)
T_START=$SECONDS

# ---- 1. throughput, interleaved ------------------------------------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
	for s in $SCENARIOS; do
		start_server "$s" 1 0
		if [ "$r" = 1 ] && [ "$IDLE" -gt 0 ]; then
			# The cost of the server with no query: its health checks. CPU time from /proc.
			read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")
			sleep "$IDLE"
			read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$SERVER_PID/stat")
			printf 'idle\t%s\t%s\t%s\t%s\n' "$s" \
				"$(awk -v u=$((u1 - u0)) -v k=$((s1 - s0)) -v hz="$(getconf CLK_TCK)" -v s="$IDLE" 'BEGIN {printf "%.1f%% (user %.1f%%, system %.1f%%)", (u + k) / hz / s * 100, u / hz / s * 100, k / hz / s * 100}')" \
				"$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status")" "$(ls "/proc/$SERVER_PID/task" | wc -l)" >>"$RESULTS"
		fi
		perf "$s" "$RAW/warm-$s-$r.txt" "$WARMUP" -q "$OUTSTANDING" -t 2
		p0=$(probes)
		perf "$s" "$RAW/qps-$s-$r.txt" "$DURATION" -q "$OUTSTANDING" -t 2
		p1=$(probes)
		stop_server
		q=$(qps_of "$RAW/qps-$s-$r.txt")
		printf 'qps\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$q" "$(lost_of "$RAW/qps-$s-$r.txt")" \
			"$(((p1 - p0) / DURATION))" "$READY_SECS" "$(downs "$s")" "$(awk '/Average packet size/ {print $NF}' "$RAW/qps-$s-$r.txt")" >>"$RESULTS"
		log "round $r ($s): $q qps, $(lost_of "$RAW/qps-$s-$r.txt") lost, $(((p1 - p0) / DURATION)) probes/s, ready in ${READY_SECS}s, $(downs "$s") targets seen down"
	done
done
medqps() { awk -F'\t' -v s="$1" '$1 == "qps" && $2 == s {print $4}' "$RESULTS" | median; }
QPS_A=$(medqps a)

# ---- 2. rate sweep, latency, loss at 80% ---------------------------------------------------
# pass SCENARIO RATE FILE: no query lost and (nearly) the rate asked for was sent.
pass() {
	perf "$1" "$3" "$SWEEP_STEP" -Q "$2" -q 20000 -t 1
	local lost qps
	lost=$(lost_of "$3") qps=$(qps_of "$3")
	[ "$lost" = 0 ] && [ "$qps" -ge $(($2 * 97 / 100)) ]
}
# latency SCENARIO RATE TAG: p50, p99, p99.9 and the mean of every answered query (dnsperf -v).
latency() {
	local f=$RAW/lat-$1-$3.txt
	perf "$1" "$f" "$DURATION" -Q "$2" -q 20000 -t 1 -v
	# Answered queries only: a lost one is "> T name type", with no time.
	grep '^> ' "$f" | awk '$2 != "T" && $NF ~ /^[0-9.]+$/ {print $NF}' | sort -g | awk -v lost="$(lost_of "$f")" -v qps="$(qps_of "$f")" '
		{v[NR] = $1; sum += $1}
		END {
			if (NR == 0) {print "-\t-\t-\t-\t" lost "\t" qps; exit}
			i50 = int(NR * 0.50 + 0.5); i99 = int(NR * 0.99 + 0.5); i999 = int(NR * 0.999 + 0.5)
			if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1; if (i999 < 1) i999 = 1
			printf "%.3f\t%.3f\t%.3f\t%.3f\t%s\t%s\n", v[i50] * 1000, v[i99] * 1000, v[i999] * 1000, sum / NR * 1000, lost, qps
		}'
	rm -f "$f" # the per-query lines are large; the figures are kept in results.tsv
}

for s in $SWEEP; do
	if [ "$(medqps "$s")" = - ]; then
		log "sweep ($s): skipped, ($s) is not in SCENARIOS (its throughput bounds the search)"
		continue
	fi
	start_server "$s" 1 0
	lo=0 hi=$(($(medqps "$s") * 12 / 10))
	log "sweep ($s): bisecting the highest rate without loss in (0, $hi]"
	for ((i = 1; i <= SWEEP_ITER; i++)); do
		mid=$(((lo + hi) / 2))
		if pass "$s" "$mid" "$RAW/sweep-$s-$mid.txt"; then lo=$mid r=pass; else hi=$mid r=fail; fi
		log "  -Q $mid: $r (lost $(lost_of "$RAW/sweep-$s-$mid.txt"), $(qps_of "$RAW/sweep-$s-$mid.txt") qps, $(rcvbuf_of "$RAW/sweep-$s-$mid.txt") receive buffer overflows)"
	done
	MAX=$lo
	if [ "$MAX" -gt 0 ]; then
		half=$((MAX / 2))
		printf 'lat\t%s\thalf\t%s\t%s\n' "$s" "$half" "$(latency "$s" "$half" half)" >>"$RESULTS"
		log "  latency at $half qps: $(tail -1 "$RESULTS" | cut -f4-)"
		f=$RAW/loss80-$s.txt
		perf "$s" "$f" "$DURATION" -Q $((MAX * 8 / 10)) -q 20000 -t 1
		printf 'loss80\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" $((MAX * 8 / 10)) "$(sent_of "$f")" "$(lost_of "$f")" "$(qps_of "$f")" "$(rcvbuf_of "$f")" >>"$RESULTS"
		log "  at 80% ($((MAX * 8 / 10)) qps): $(lost_of "$f") of $(sent_of "$f") lost ($(rcvbuf_of "$f") receive buffer overflows)"
	fi
	if [ "$s" != a ] && [ -n "${MAX_A:-}" ] && [ "$MAX_A" -gt 0 ]; then
		printf 'lat\t%s\tahalf\t%s\t%s\n' "$s" $((MAX_A / 2)) "$(latency "$s" $((MAX_A / 2)) ahalf)" >>"$RESULTS"
		log "  latency at (a)'s half rate $((MAX_A / 2)) qps: $(tail -1 "$RESULTS" | cut -f4-)"
	fi
	[ "$s" = a ] && MAX_A=$MAX
	printf 'max\t%s\t%s\t%s\n' "$s" "$MAX" "$(downs "$s")" >>"$RESULTS"
	stop_server
done

# ---- 2b. latency, interleaved, at one offered load ------------------------------------------
if [ "$LAT_ROUNDS" -gt 0 ] && [ "${MAX_A:-0}" -gt 0 ]; then
	rate=$((MAX_A / 2))
	for ((r = 1; r <= LAT_ROUNDS; r++)); do
		for s in $LAT_SCENARIOS; do
			start_server "$s" 1 0
			cap=
			if [ "$CAPTURE" = 1 ]; then
				cap=$RAW/lat-$s-r$r.pcap
				taskset -c "$CLIENT_CPU" tcpdump -i lo -n -B 32768 --time-stamp-precision=nano -w "$cap" "udp port $(port_of "$s")" 2>/dev/null &
				CAP_PID=$!
				sleep 1
			fi
			printf 'latr\t%s\t%s\t%s\t%s\n' "$s" "$r" "$rate" "$(latency "$s" "$rate" "r$r")" >>"$RESULTS"
			log "latency round $r ($s) at $rate qps: $(tail -1 "$RESULTS" | cut -f5-)"
			if [ -n "$cap" ]; then
				sleep 0.5
				kill "$CAP_PID" && wait "$CAP_PID" 2>/dev/null || true
				srv=$("$TMP/serverlat" -port "$(port_of "$s")" "$cap")
				printf 'lats\t%s\t%s\t%s\n' "$s" "$r" "$(echo "$srv" | sed 's/.* p99 \([0-9.]*\) .*/\1/')" >>"$RESULTS"
				log "  the server's part (loopback capture): $srv"
				rm -f "$cap"
			fi
			stop_server
		done
	done
fi

# ---- 3. two cores --------------------------------------------------------------------------
if [ "$SCALING" = 1 ]; then
	for ((r = 1; r <= SCALING_ROUNDS; r++)); do
		for ms in 0 1; do
			for s in $SCALING_SCENARIOS; do
				start_server "$s" 2 "$ms"
				f=$RAW/scale-$s-$ms-$r.txt
				timeout $((DURATION + WARMUP + 40)) dnsperf -s 127.0.0.1 -p "$(port_of "$s")" -d "$TMP/q$s" -l "$WARMUP" -T 2 -c 8 -q "$OUTSTANDING" -t 2 >/dev/null 2>&1 || true
				timeout $((DURATION + 20)) dnsperf -s 127.0.0.1 -p "$(port_of "$s")" -d "$TMP/q$s" -l "$DURATION" -T 2 -c 8 -q $((OUTSTANDING * 2)) -t 2 >"$f" 2>&1 ||
					{ echo "bench: dnsperf failed, see $f" >&2; exit 1; }
				stop_server
				printf 'scale\t%s\t%s\t%s\t%s\n' "$s" "$ms" "$r" "$(qps_of "$f")" >>"$RESULTS"
				log "2 cores, multisocket=$ms, round $r ($s): $(qps_of "$f") qps"
			done
		done
	done
fi

# ---- 4. 100,000 services -------------------------------------------------------------------
if [ "$COMPILE" = 1 ]; then
	log "compile: a policy file of $BIG_SERVICES services x 5 endpoints"
	awk -v n="$BIG_SERVICES" 'BEGIN {
		print "zone: big.bench.\nns: [ns1.big.bench.]\nrecords: |\n  ns1 A 127.0.0.1\nservices:"
		for (i = 0; i < n; i++) {
			printf "  s%d:\n    policy: %s\n    check: none\n    pools:\n", i, (i % 3 == 0 ? "failover" : (i % 3 == 1 ? "weighted" : "multivalue"))
			printf "      - {region: r0, endpoints: [10.%d.%d.1, 10.%d.%d.2, 10.%d.%d.3]}\n", i / 256 % 256, i % 256, i / 256 % 256, i % 256, i / 256 % 256, i % 256
			printf "      - {region: r1, endpoints: [10.%d.%d.4, \"2001:db8::%x:%x:5\"]}\n", i / 256 % 256, i % 256, int(i / 65536), i % 65536
		}
	}' >"$TMP/big.yaml"
	cat >"$TMP/Corefile.big" <<EOF
big.bench.:$PORT_BIG {
    bind 127.0.0.1
    steer $TMP/big.yaml
}
EOF
	last=s$((BIG_SERVICES - 1)).big.bench.
	t0=$(date +%s.%N)
	GOMAXPROCS=2 "$ROOT/bin/steerdns" -conf "$TMP/Corefile.big" >"$RAW/server-big.log" 2>&1 &
	SERVER_PID=$!
	deadline=$((SECONDS + 120))
	until dig +short +time=1 +tries=1 @127.0.0.1 -p $PORT_BIG "$last" A 2>/dev/null | grep -Eq '^[0-9.]+$'; do
		kill -0 "$SERVER_PID" 2>/dev/null && [ $SECONDS -lt $deadline ] || { echo "bench: the big zone did not load; see $RAW/server-big.log" >&2; exit 1; }
		sleep 0.05
	done
	BIG_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
	BIG_RSS=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$SERVER_PID/status)
	BIG_MB=$(du -m "$TMP/big.yaml" | cut -f1)
	stop_server
	printf 'big\t%s\t%s\t%s\t%s\n' "$BIG_SERVICES" "$BIG_SECS" "$BIG_RSS" "$BIG_MB" >>"$RESULTS"
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
PSI_AFTER=$(sed -n 's/^some avg10=\([^ ]*\) avg60=\([^ ]*\).*/avg10 \1% avg60 \2%/p' /proc/pressure/cpu 2>/dev/null || echo n/a)
ELAPSED=$((SECONDS - T_START))

# ---- summary -------------------------------------------------------------------------------
ratio() { awk -v x="$1" -v y="$2" 'BEGIN {if (x == "-" || y == "-" || y == 0) print "-"; else printf "%.3f", x / y}'; }
get() { awk -F'\t' -v k="$1" -v s="$2" -v t="${3:-}" '$1 == k && $2 == s && (t == "" || $3 == t)' "$RESULTS"; }
verdict() { if awk "BEGIN {exit !($1)}" </dev/null 2>/dev/null; then echo met; else echo "NOT met"; fi; }
{
	echo "steerdns benchmark $STAMP: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $($GO version | cut -d' ' -f3), $(dnsperf -h 2>&1 | awk '/^Version/ {print "dnsperf " $2}')"
	echo "server: GOMAXPROCS=1 taskset -c $SERVER_CPU, one process per measurement; dnsperf and the check listener on CPU $CLIENT_CPU"
	echo "load average before $LOAD_BEFORE, after $LOAD_AFTER; CPU pressure (PSI some) before $PSI_BEFORE, after $PSI_AFTER; took ${ELAPSED}s"
	echo
	echo "1. Throughput: $ROUNDS interleaved rounds x ${DURATION}s, closed loop (-q $OUTSTANDING), median"
	echo "  ratio: of the medians; paired: the median of the per-round ratios to the (a) of the same round"
	printf '%-36s %8s %7s %7s  %-36s %5s %8s %6s %6s %6s\n' scenario "qps" "ratio" "paired" "per round" "lost" "probes/s" "ready" "downs" "resp B"
	for s in $SCENARIOS; do
		name=$(case $s in a) echo "(a) file, static A" ;; b) echo "(b) steer, failover 3x2, checks" ;;
			c) echo "(c) steer, 1,000 svc, 10,000 checks" ;; c0) echo "(c0) = (c) with check: none" ;;
			g) echo "(g) steer, geo + ECS, 1,000 rules" ;; gf) echo "(gf) steer, failover + ECS" ;; esac)
		m=$(medqps "$s")
		paired=$(awk -F'\t' -v s="$s" '$1 == "qps" && $2 == "a" {a[$3] = $4} $1 == "qps" && $2 == s {x[$3] = $4}
			END {for (r in x) if (a[r] > 0) printf "%.4f\n", x[r] / a[r]}' "$RESULTS" | sort -g |
			awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2}')
		printf '%-36s %8s %7s %7s  %-36s %5s %8s %6s %6s %6s\n' "$name" "$m" "$(ratio "$m" "$QPS_A")" "$paired" \
			"$(get qps "$s" | cut -f4 | paste -sd' ')" "$(get qps "$s" | awk -F'\t' '{n += $5} END {print n}')" \
			"$(get qps "$s" | cut -f6 | median)" "$(get qps "$s" | cut -f7 | sort -g | tail -1)s" \
			"$(get qps "$s" | awk -F'\t' '{n += $8} END {print n}')" "$(get qps "$s" | cut -f9 | head -1)"
	done
	if grep -q '^idle' "$RESULTS"; then
		echo "  idle (no query, ${IDLE}s, round 1): $(awk -F'\t' '$1 == "idle" {printf "\n    (%s) CPU %s of one core, %s MiB RSS, %s threads", $2, $3, $4, $5}' "$RESULTS")"
	fi
	echo "  (ready: the slowest start to a healthy answer; downs: targets seen down, over all rounds; none should be)"
	if [ -n "$SWEEP" ]; then
		echo
		echo "2. Open loop (dnsperf -Q): highest rate without loss (${SWEEP_ITER}-step bisection, ${SWEEP_STEP}s steps); latency over ${DURATION}s, ms"
		printf '%-6s %9s | %9s %8s %8s %8s %8s | %9s %8s %8s | %9s %9s %6s %7s\n' scen "max qps" "@half" p50 p99 p99.9 mean "@(a)half" p50 p99 "@80%" sent lost "rcvbuf"
		for s in $SWEEP; do
			mx=$(get max "$s" | cut -f3)
			h=$(get lat "$s" half) ah=$(get lat "$s" ahalf) l8=$(get loss80 "$s")
			printf '%-6s %9s | %9s %8s %8s %8s %8s | %9s %8s %8s | %9s %9s %6s %7s\n' "($s)" "$mx" \
				"$(echo "$h" | cut -f4)" "$(echo "$h" | cut -f5)" "$(echo "$h" | cut -f6)" "$(echo "$h" | cut -f7)" "$(echo "$h" | cut -f8)" \
				"$(echo "$ah" | cut -f4)" "$(echo "$ah" | cut -f5)" "$(echo "$ah" | cut -f6)" \
				"$(echo "$l8" | cut -f3)" "$(echo "$l8" | cut -f4)" "$(echo "$l8" | cut -f5)" "$(echo "$l8" | cut -f7)"
		done
		echo "  (rcvbuf: UDP datagrams the kernel dropped on a full socket receive buffer during the 80% run, machine-wide)"
		echo "  (targets seen down during the open-loop runs: $(awk -F'\t' '$1 == "max" {printf "(%s) %s  ", $2, $4}' "$RESULTS"))"
	fi
	if grep -q '^latr' "$RESULTS"; then
		echo
		echo "2b. Latency: $LAT_ROUNDS interleaved rounds x ${DURATION}s at $(grep -m1 '^latr' "$RESULTS" | cut -f4) qps (half of (a)'s max) each, ms; median over the rounds"
		printf '%-6s %8s %8s %8s %8s %6s  %s\n' scen p50 p99 p99.9 mean lost "p99 per round"
		for s in $LAT_SCENARIOS; do
			printf '%-6s %8s %8s %8s %8s %6s  %s\n' "($s)" "$(get latr "$s" | cut -f5 | medf)" "$(get latr "$s" | cut -f6 | medf)" \
				"$(get latr "$s" | cut -f7 | medf)" "$(get latr "$s" | cut -f8 | medf)" "$(get latr "$s" | awk -F'\t' '{n += $9} END {print n}')" \
				"$(get latr "$s" | cut -f6 | paste -sd' ')"
		done
		if grep -q '^lats' "$RESULTS"; then
			echo "The server's part (CAPTURE=1: query packet to response packet on lo, test/bench/serverlat), p99 ms:"
			for s in $LAT_SCENARIOS; do
				printf '%-6s %8s  %s\n' "($s)" "$(get lats "$s" | cut -f4 | medf)" "$(get lats "$s" | cut -f4 | paste -sd' ')"
			done
		fi
	fi
	if [ "$SCALING" = 1 ]; then
		echo
		echo "3. Two cores: GOMAXPROCS=2, no taskset, dnsperf -T 2 -c 8 sharing the cores; median of $SCALING_ROUNDS x ${DURATION}s"
		printf '%-6s %12s %14s %16s %10s\n' scen "1 core" "2 cores" "2 + multisocket" "scaling"
		for s in $SCALING_SCENARIOS; do
			one=$(medqps "$s")
			m0=$(get scale "$s" 0 | cut -f5 | median) m1=$(get scale "$s" 1 | cut -f5 | median)
			printf '%-6s %12s %14s %16s %10s\n' "($s)" "$one" "$m0" "$m1" "$(ratio "$m1" "$one")x"
		done
	fi
	if [ "$COMPILE" = 1 ]; then
		echo
		b=$(get big "$BIG_SERVICES")
		echo "4. $BIG_SERVICES services (500,000 endpoints, $(echo "$b" | cut -f5) MB of YAML): first answer after $(echo "$b" | cut -f3 | xargs printf '%.2f') s (process start, decode, compile), peak RSS $(echo "$b" | cut -f4) MiB"
	fi
	echo
	echo "Targets"
	qb=$(medqps b) qc=$(medqps c)
	echo "  (b) >= 1.00 x (a) in qps:                 $(ratio "$qb" "$QPS_A")  $(verdict "$(ratio "$qb" "$QPS_A") >= 1.0")"
	echo "  (c) >= 0.95 x (a) in qps:                 $(ratio "$qc" "$QPS_A")  $(verdict "$(ratio "$qc" "$QPS_A") >= 0.95")"
	if [[ " $SCENARIOS " == *" g "* && " $SCENARIOS " == *" gf "* ]]; then
		qg=$(medqps g) qgf=$(medqps gf)
		echo "  (g) >= 0.95 x (gf) in qps:                $(ratio "$qg" "$qgf")  $(verdict "$(ratio "$qg" "$qgf") >= 0.95")"
	fi
	if [[ " $SWEEP " == *" a "* && " $SWEEP " == *" b "* ]]; then
		pa=$(get lat a half | cut -f6) pb=$(get lat b half | cut -f6)
		echo "  p99 (b) <= p99 (a) at half max rate:      $pb ms vs $pa ms  $(verdict "$pb <= $pa")  (one run each, each at half its own max)"
		if [[ " $LAT_SCENARIOS " == *" a "* && " $LAT_SCENARIOS " == *" b "* ]] && grep -q '^latr' "$RESULTS"; then
			pa=$(get latr a | cut -f6 | medf) pb=$(get latr b | cut -f6 | medf)
			echo "  p99 (b) <= p99 (a), median of $LAT_ROUNDS rounds: $pb ms vs $pa ms  $(verdict "$pb <= $pa")  (at half of (a)'s max, interleaved)"
		fi
		for s in $SWEEP; do
			l=$(get loss80 "$s" | cut -f5)
			echo "  no loss at 80% of max ($s):                $l lost  $(verdict "${l:-1} == 0")"
		done
	fi
	if [ "$COMPILE" = 1 ]; then
		b=$(get big "$BIG_SERVICES")
		echo "  $BIG_SERVICES services: < 5 s and < 1 GiB RSS:  $(echo "$b" | cut -f3 | xargs printf '%.2f') s, $(echo "$b" | cut -f4) MiB  $(verdict "$(echo "$b" | cut -f3) < 5 && $(echo "$b" | cut -f4) < 1024")"
	fi
	echo
	echo "raw: $RAW"
} | tee "$SUMMARY"
cp "$SUMMARY" "$OUT/summary.txt"
