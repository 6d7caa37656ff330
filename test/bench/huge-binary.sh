#!/usr/bin/env bash
# test/bench/huge-binary.sh: the real binary on 100,000 services with a check each (500,000
# targets that it probes), process start to the first answer and peak RSS, then the peak RSS
# after WAIT more seconds of probing. Every endpoint is a loopback address (127.X.Y.1-4 and
# ::1) and every check an HTTP check of port 9 (nothing listens: refused at once), with a
# 300 s interval, so the first round spreads ~1,800 refused connects a second over 275 s.
#
#   bash test/bench/huge-binary.sh              # WAIT=30 PORT=15390 SERVICES=100000; GOMEMLIMIT etc. pass through
set -euo pipefail
WAIT=${WAIT:-30} PORT=${PORT:-15390} SERVICES=${SERVICES:-100000} GO=${GO:-go}
cd "$(dirname "$0")/../.."
TMP=$(mktemp -d /tmp/steerdns-huge.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
$GO build -o "$TMP/steerdns" ./cmd/steerdns
awk -v n="$SERVICES" 'BEGIN {
	print "zone: big.bench.\nns: [ns1.big.bench.]\nrecords: |\n  ns1 A 127.0.0.1\nchecks:"
	for (i = 0; i < n; i++) printf "  c%d: {type: http, port: 9, path: /s%d, interval: 300s, timeout: 1s}\n", i, i
	print "services:"
	split("failover weighted multivalue", p, " ")
	for (i = 0; i < n; i++) {
		x = int(i / 256) % 256; y = i % 256
		printf "  s%d:\n    policy: %s\n    check: c%d\n    pools:\n", i, p[i % 3 + 1], i
		printf "      - {region: r0, endpoints: [127.%d.%d.1, 127.%d.%d.2, 127.%d.%d.3]}\n", x, y, x, y, x, y
		printf "      - {region: r1, endpoints: [127.%d.%d.4, \"::1\"]}\n", x, y
	}
}' >"$TMP/big.yaml"
printf 'big.bench.:%d {\n    bind 127.0.0.1\n    steer %s/big.yaml\n}\n' "$PORT" "$TMP" >"$TMP/Corefile"
last=$((SERVICES - 1))
want="127.$((last / 256 % 256)).$((last % 256)).1"
t0=$(date +%s.%N)
"$TMP/steerdns" -conf "$TMP/Corefile" >"$TMP/server.log" 2>&1 &
PID=$!
until [ "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" "s$last.big.bench." A 2>/dev/null | head -1)" = "$want" ]; do
	kill -0 "$PID" 2>/dev/null || { echo "huge-binary: the server exited" >&2; tail "$TMP/server.log" >&2; exit 1; }
	sleep 0.05
done
t1=$(date +%s.%N)
hwm() { awk '$1 == "VmHWM:" {printf "%.0f MB", $2 * 1024 / 1e6}' "/proc/$PID/status"; }
echo "$SERVICES services, $((SERVICES * 5)) probed targets: first answer after $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s, peak RSS $(hwm)"
sleep "$WAIT"
echo "after $WAIT s of probing: peak RSS $(hwm), state changes logged $(grep -c -- '-> down' "$TMP/server.log" || true)"
