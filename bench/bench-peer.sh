#!/usr/bin/env bash
# bench-peer.sh: ccsd against Prosody, the same basic work, interleaved in
# one run: one message from one TLS XMPP session to another and back.
#   ccsd:    app server -> ccsd -> device, device ack (ccsbench downstream,
#            N app-server connections and N devices: connection i sends to
#            device i)
#   Prosody: user a -> Prosody -> user b, b's echo back to a (ccsbench peer)
# with 1 and 8 pairs and a window of 32, first on both cores, then with each
# server pinned to core 0 and the client to core 1 (taskset). Loopback only.
#
#   bench/bench-peer.sh [OUTDIR]          (make bench-peer builds and runs it)
#
# Prosody comes from Debian's packages (apt-get install -y prosody, once, as
# root); without apt the script says so and exits 0. Environment:
#   CCSD [bin/ccsd], CCSBENCH [bin/ccsbench]
#   PEER_MESSAGES [20000]   round trips per run; PEER_CAP [60s] cap of a run
#   PEER_ROUNDS [2]         how many times each (server, pairs) run is repeated
set -u

CCSD=${CCSD:-bin/ccsd}
CCSBENCH=${CCSBENCH:-bin/ccsbench}
MESSAGES=${PEER_MESSAGES:-20000}
CAP=${PEER_CAP:-60s}
ROUNDS=${PEER_ROUNDS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$(mktemp -d "${TMPDIR:-/tmp}/bench-peer.XXXXXX")}
mkdir -p "$OUT"
PASS=bench-peer-secret
log() { echo "bench-peer: $*" >&2; }

# Prosody, once.
if ! command -v prosody >/dev/null 2>&1; then
	if ! command -v apt-get >/dev/null 2>&1; then
		log "SKIPPED: prosody is not installed and apt-get is not available (install Prosody 0.12 and run again)"
		exit 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		log "SKIPPED: prosody is not installed; run as root (apt-get install -y prosody) or install it first"
		exit 0
	fi
	log "installing prosody from the Debian packages"
	DEBIAN_FRONTEND=noninteractive apt-get install -y prosody >"$OUT/apt.log" 2>&1 || {
		log "SKIPPED: apt-get install prosody failed (see $OUT/apt.log)"
		exit 0
	}
fi
for tool in openssl taskset prosodyctl; do
	command -v "$tool" >/dev/null 2>&1 || { log "SKIPPED: $tool is missing"; exit 0; }
done

# free_port: a loopback TCP port nothing listens on (bounded tries).
free_port() {
	local i p
	for i in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

# Prosody's configuration: loopback, direct TLS only, no s2s, no HTTP,
# internal storage in the temp directory, log to a file.
P=$OUT/prosody
mkdir -p "$P/data"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
	-keyout "$P/key.pem" -out "$P/cert.pem" >"$P/openssl.log" 2>&1 || { log "openssl failed: $P/openssl.log"; exit 1; }
PORT=$(free_port) || { log "no free port"; exit 1; }
sed -e "s|@DIR@|$P|g" -e "s|@PORT@|$PORT|g" "$HERE/prosody.cfg.lua.in" >"$P/prosody.cfg.lua"
PCFG=$P/prosody.cfg.lua
for i in 1 2 3 4 5 6 7 8; do
	for side in a b; do
		prosodyctl --config "$PCFG" register "peer$side$i" localhost "$PASS" >>"$P/register.log" 2>&1 ||
			{ log "prosodyctl register failed: $P/register.log"; exit 1; }
	done
done

declare -A pid
# wait_port PORT PID: until PORT accepts a connection, at most 30s.
wait_port() {
	local i
	for i in $(seq 1 600); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# start_servers PIN: a fresh ccsd (new data directory) and Prosody, both
# under "taskset -c PIN" when PIN is given.
start_servers() {
	local pin=() help f lim=()
	[ -n "$1" ] && pin=(taskset -c "$1")
	D=$(mktemp -d "$OUT/ccsd-data.XXXXXX")
	help=$("$CCSD" serve -h 2>&1)
	for f in checkin-burst=0 register-burst=0 downstream-rate=0 upstream-rate=0 max-queued-per-registration=0 \
		max-unauth-per-addr=-1 max-http-conns-per-addr=-1; do
		printf '%s\n' "$help" | grep -Eq -- "^[[:space:]]+-${f%%=*}( |$)" && lim+=("--$f")
	done
	"${pin[@]}" "$CCSD" serve --data "$D" --log-level warn --xmpp-addr 127.0.0.1:0 --device-addr 127.0.0.1:0 \
		--http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 "${lim[@]}" >>"$OUT/ccsd.log" 2>&1 &
	pid[ccsd]=$!
	"${pin[@]}" prosody --config "$PCFG" -F >>"$P/stdout.log" 2>&1 &
	pid[prosody]=$!
	local i
	for i in $(seq 1 600); do
		[ -s "$D/run.json" ] && break
		sleep 0.05
	done
	[ -s "$D/run.json" ] || { log "ccsd did not start: $OUT/ccsd.log"; return 1; }
	wait_port "$PORT" "${pid[prosody]}" || { log "prosody did not start: $P/prosody.log, $P/stdout.log"; return 1; }
}
stop_servers() {
	local k i
	for k in ccsd prosody; do
		[ -n "${pid[$k]:-}" ] || continue
		kill -TERM "${pid[$k]}" 2>/dev/null
		for i in $(seq 1 300); do kill -0 "${pid[$k]}" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "${pid[$k]}" 2>/dev/null
		wait "${pid[$k]}" 2>/dev/null
		pid[$k]=
	done
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

get() { awk -F= -v k="$2" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$1" 2>/dev/null; }

# run MODE PAIRS ROUND CLIENTPIN: one ccsd run, then one Prosody run.
run() {
	local mode=$1 n=$2 r=$3 cpin=()
	[ -n "$4" ] && cpin=(taskset -c "$4")
	local base=$OUT/$mode-$n-$r
	log "$mode, $n pairs, round $r: ccsd"
	"${cpin[@]}" "$CCSBENCH" --data "$D" --json --devices "$n" --conns "$n" --window 32 --messages "$MESSAGES" \
		--duration "$CAP" >"$base-ccsd.json" 2>"$base-ccsd.err" || log "ccsd run failed: $base-ccsd.err"
	awk -f "$HERE/flatten.awk" "$base-ccsd.json" >"$base-ccsd.kv"
	log "$mode, $n pairs, round $r: prosody"
	"${cpin[@]}" "$CCSBENCH" peer --json --addr "127.0.0.1:$PORT" --ca "$P/cert.pem" --password "$PASS" \
		--pairs "$n" --window 32 --messages "$MESSAGES" --duration "$CAP" --server-pid "${pid[prosody]}" \
		>"$base-prosody.json" 2>"$base-prosody.err" || log "prosody run failed: $base-prosody.err"
	awk -f "$HERE/flatten.awk" "$base-prosody.json" >"$base-prosody.kv"
	local c p cc pc
	c=$(get "$base-ccsd.kv" delivered_per_sec)
	p=$(get "$base-prosody.kv" round_trips_per_sec)
	cc=$(get "$base-ccsd.kv" server_cpu_seconds)
	pc=$(get "$base-prosody.kv" server_cpu_seconds)
	awk -v m="$mode" -v n="$n" -v r="$r" -v c="${c:-0}" -v p="${p:-0}" -v cc="${cc:-0}" -v pc="${pc:-0}" -v N="$MESSAGES" \
		-v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
		printf "%-12s %5d %5d %12.1f %12.1f %8.2f %12.4f %12.4f %6s\n", m, n, r, c, p, (p > 0 ? c / p : 0), cc * 1000 / N, pc * 1000 / N, l
	}' >>"$OUT/rows.txt"
}

: >"$OUT/rows.txt"
for mode in both-cores pinned; do
	pin= cpin=
	[ "$mode" = pinned ] && pin=0 cpin=1
	start_servers "$pin" || exit 1
	for r in $(seq 1 "$ROUNDS"); do
		for n in 1 8; do run "$mode" "$n" "$r" "$cpin"; done
	done
	stop_servers
done

{
	echo "one message there and back, window 32, $MESSAGES per run; CPU-s per 1000 round trips (server only)"
	printf '%-12s %5s %5s %12s %12s %8s %12s %12s %6s\n' mode pairs round ccsd/s prosody/s ratio ccsd-CPU prosody-CPU load1
	cat "$OUT/rows.txt"
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); $(dpkg-query -W -f '${Package} ${Version}' prosody 2>/dev/null)"
	echo "runs and logs: $OUT"
} | tee "$OUT/summary.txt"
