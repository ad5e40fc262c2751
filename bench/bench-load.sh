#!/usr/bin/env bash
# bench-load.sh: run the ccsbench scenarios against a FRESH ccsd (temp data
# directory, ports 0, loopback only) and print one summary: a table on
# stdout and summary.json in the output directory. Needs only the two
# binaries, bash, awk and coreutils (no jq, no python).
#
#   bench/bench-load.sh [OUTDIR]          (make bench-load builds and runs it)
#
# Environment (defaults in brackets):
#   CCSD [bin/ccsd], CCSBENCH [bin/ccsbench]   the binaries
#   CCSD_BEFORE                 a second ccsd binary (e.g. an older commit):
#                               every step then runs on both servers, one
#                               after the other, and the table gives the ratio
#   BENCH_MESSAGES [50000]      downstream and upstream messages
#   BENCH_GROUP_MESSAGES [5000] group messages (x10 device copies)
#   BENCH_IDLE [2000]           idle device sessions
#   BENCH_QUEUED [100000]       messages queued to offline devices (disk, restart)
#   BENCH_OFFLINE [100000]      messages of the offline step (queue, restart, drain)
#   BENCH_CAP [60s]             --duration cap of each message run
#   BENCH_HOLD [10s]            length of the idle and login runs
#   BENCH_KEEP [0]              1: keep the servers' data directories
#   BENCH_START_WAIT [120]      seconds a start may take to listen (an old
#                               ccsd opening 1,000,000 queued, uncached, is slow)
#   BENCH_STEPS [idle login downstream rate group upstream queue offline]
#                               the steps to run (rate needs downstream), e.g.
#                               BENCH_STEPS=queue BENCH_QUEUED=1000000
#
# Every wait is bounded; every server started is stopped on exit.
set -u

CCSD=${CCSD:-bin/ccsd}
CCSBENCH=${CCSBENCH:-bin/ccsbench}
MESSAGES=${BENCH_MESSAGES:-50000}
GROUP_MESSAGES=${BENCH_GROUP_MESSAGES:-5000}
IDLE=${BENCH_IDLE:-2000}
QUEUED=${BENCH_QUEUED:-100000}
OFFLINE=${BENCH_OFFLINE:-100000}
CAP=${BENCH_CAP:-60s}
HOLD=${BENCH_HOLD:-10s}
START_WAIT=${BENCH_START_WAIT:-120}
STEPS=" ${BENCH_STEPS:-idle login downstream rate group upstream queue offline} "
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$(mktemp -d "${TMPDIR:-/tmp}/bench-load.XXXXXX")}
mkdir -p "$OUT"

labels=(after)
declare -A bin pid data
bin[after]=$CCSD
if [ -n "${CCSD_BEFORE:-}" ]; then
	labels=(after before)
	bin[before]=$CCSD_BEFORE
fi

log() { echo "bench-load: $*" >&2; }
want() { case $STEPS in *" $1 "*) return 0 ;; esac; return 1; }

# limit_flags BIN: the flags that lift ccsd's per-address and
# per-registration limits (see go doc ./cmd/ccsbench), those BIN knows:
# an older ccsd has fewer limits and fewer flags.
limit_flags() {
	local help f
	help=$("$1" serve -h 2>&1)
	for f in checkin-burst=0 register-burst=0 downstream-rate=0 upstream-rate=0 \
		max-queued-per-registration=0 max-upstream-queued=0 max-upstream-queued-bytes=0 \
		max-unauth-per-addr=-1 max-http-conns-per-addr=-1; do
		if printf '%s\n' "$help" | grep -Eq -- "^[[:space:]]+-${f%%=*}( |$)"; then
			printf -- '--%s ' "$f"
		fi
	done
}

# serve_cmd LABEL: the command line that serves LABEL's ccsd (shell-quoted).
serve_cmd() {
	local l=$1
	# shellcheck disable=SC2046
	printf '%q ' "${bin[$l]}" serve --data "${data[$l]}" --log-level warn \
		--xmpp-addr 127.0.0.1:0 --device-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
		$(limit_flags "${bin[$l]}")
}

# start LABEL: start LABEL's ccsd on its data directory (made on first
# use) and wait, at most START_WAIT seconds, for run.json, which it writes
# once it listens.
start() {
	local l=$1 i
	[ -n "${data[$l]:-}" ] || data[$l]=$(mktemp -d "$OUT/data-$l.XXXXXX")
	rm -f "${data[$l]}/run.json"
	# exec: the background job becomes ccsd, so $! is its pid.
	eval "exec $(serve_cmd "$l")" >>"$OUT/ccsd-$l.log" 2>&1 &
	pid[$l]=$!
	for i in $(seq 1 $((START_WAIT * 20))); do
		[ -s "${data[$l]}/run.json" ] && return 0
		kill -0 "${pid[$l]}" 2>/dev/null || break
		sleep 0.05
	done
	log "ccsd $l did not start; see $OUT/ccsd-$l.log"
	return 1
}

# restart_script LABEL: writes OUT/restart-LABEL.sh, the --restart-cmd of
# the offline step: SIGTERM to the ccsd whose pid is in OUT/pid-LABEL, at
# most 30s for it to exit (then SIGKILL), ccsd.db dropped from the page
# cache, and the same ccsd started again in the background (its pid written
# back), returning at once: ccsbench times the start itself, up to
# /readyz. The new ccsd is not this script's child; stop finds it by pid.
restart_script() {
	local l=$1 f=$OUT/restart-$1.sh
	{
		echo '#!/usr/bin/env bash'
		printf 'p=$(cat %q)\n' "$OUT/pid-$l"
		echo 'kill -TERM "$p" 2>/dev/null'
		echo 'for i in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done'
		echo 'kill -KILL "$p" 2>/dev/null'
		printf 'dd if=%q iflag=nocache count=0 status=none 2>/dev/null\n' "${data[$l]}/ccsd.db"
		printf 'rm -f %q\n' "${data[$l]}/run.json"
		printf '%s >>%q 2>&1 </dev/null &\n' "$(serve_cmd "$l")" "$OUT/ccsd-$l.log"
		printf 'echo $! >%q\n' "$OUT/pid-$l"
	} >"$f"
	chmod +x "$f"
}

# stop LABEL: SIGTERM, then at most 30s for a clean exit, then SIGKILL.
stop() {
	local l=$1 p=${pid[$1]:-} i
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2>/dev/null
	for i in $(seq 1 300); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	pid[$l]=
}

# cleanup stops every server and removes their data directories (a queue of
# 1,000,000 is gigabytes) unless BENCH_KEEP=1.
cleanup() {
	for l in "${labels[@]}"; do
		stop "$l"
		[ "${BENCH_KEEP:-0}" = 1 ] || [ -z "${data[$l]:-}" ] || rm -rf "${data[$l]}"
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bench LABEL NAME ARGS...: one ccsbench run, its JSON in OUT/NAME-LABEL.json
# and flattened (key=value) in OUT/NAME-LABEL.kv.
bench() {
	local l=$1 name=$2
	shift 2
	log "$name on $l: ccsbench $*"
	"$CCSBENCH" --data "${data[$l]}" --json "$@" >"$OUT/$name-$l.json" 2>"$OUT/$name-$l.err"
	local rc=$?
	awk -f "$HERE/flatten.awk" "$OUT/$name-$l.json" >"$OUT/$name-$l.kv"
	[ $rc -eq 0 ] || log "$name on $l: ccsbench exit $rc (see $OUT/$name-$l.err)"
}

# get NAME LABEL KEY: one figure of a run ("" when absent).
get() { awk -F= -v k="$3" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$OUT/$1-$2.kv" 2>/dev/null; }

# calc EXPR: awk arithmetic, printed with up to 4 significant decimals.
calc() { awk "BEGIN { v = $1; if (v == int(v)) printf \"%d\", v; else printf \"%.4g\", v }" 2>/dev/null; }

# size FILE: bytes of FILE and bytes the file system allocated for it (bbolt
# grows its file sparsely, so the second is what it has written).
size() { printf '%s %s' "$(wc -c <"$1")" "$(($(du -k "$1" | cut -f1) * 1024))"; }

for l in "${labels[@]}"; do start "$l" || exit 1; done

# Idle first, while each ccsd is fresh (its RSS then shows the sessions).
want idle && for l in "${labels[@]}"; do bench "$l" idle --scenario idle --devices "$IDLE" --conns 1 --duration "$HOLD"; done
want login && for l in "${labels[@]}"; do bench "$l" login --scenario login --devices 8 --conns 8 --duration "$HOLD"; done
want downstream && for l in "${labels[@]}"; do bench "$l" downstream --devices 50 --conns 4 --messages "$MESSAGES" --duration "$CAP"; done
# Latency at half of the maximum just measured, for 10 seconds.
declare -A rate
want rate && for l in "${labels[@]}"; do
	rate[$l]=$(awk -v r="$(get downstream "$l" delivered_per_sec)" 'BEGIN { r = int(r / 2); print (r < 100 ? 100 : r) }')
	bench "$l" rate --devices 50 --conns 4 --rate "${rate[$l]}" --messages $((rate[$l] * 10)) --duration "$CAP"
done
want group && for l in "${labels[@]}"; do bench "$l" group --scenario group --devices 50 --group-size 10 --conns 4 --messages "$GROUP_MESSAGES" --duration "$CAP"; done
want upstream && for l in "${labels[@]}"; do bench "$l" upstream --scenario upstream --devices 50 --conns 4 --messages "$MESSAGES" --duration "$CAP"; done

# Disk per queued message and a restart with that queue: QUEUED messages
# of 200 data bytes to 1000 offline devices; the file before and after,
# then stop, start again and time until it listens, with the page cache
# warm and with the file dropped from it.
declare -A disk restart cold
want queue && for l in "${labels[@]}"; do
	db=${data[$l]}/ccsd.db
	read -r b0 a0 <<<"$(size "$db")"
	bench "$l" queue --scenario queue --devices 1000 --conns 4 --payload 200 --messages "$QUEUED" --duration 600s
	read -r b1 a1 <<<"$(size "$db")"
	n=$(get queue "$l" accepted)
	disk[$l]="$(calc "($b1 - $b0) / ($n > 0 ? $n : 1)") $(calc "($a1 - $a0) / ($n > 0 ? $n : 1)")"
	stop "$l"
	t0=$(date +%s%N)
	start "$l" || exit 1
	t1=$(date +%s%N)
	restart[$l]=$(calc "($t1 - $t0) / 1e9")
	# Again with the file dropped from the page cache (this file only:
	# dd's nocache asks the kernel to discard its cached pages).
	stop "$l"
	dd if="$db" iflag=nocache count=0 status=none 2>/dev/null
	t0=$(date +%s%N)
	start "$l" || exit 1
	t1=$(date +%s%N)
	cold[$l]=$(calc "($t1 - $t0) / 1e9")
	log "$l: $n queued, file +$((b1 - b0)) B (allocated +$((a1 - a0)) B); restart to listening ${restart[$l]}s warm, ${cold[$l]}s with the file out of the page cache"
done

# Offline: OFFLINE messages queued for 1000 devices that are not logged
# in, ccsd restarted by ccsbench through restart-LABEL.sh (ccsd.db dropped
# from the page cache), the devices logged in again and the queue drained.
want offline && for l in "${labels[@]}"; do
	echo "${pid[$l]}" >"$OUT/pid-$l"
	restart_script "$l"
	bench "$l" offline --scenario offline --devices 1000 --conns 4 --payload 200 --messages "$OFFLINE" \
		--restart-cmd "$OUT/restart-$l.sh" --duration 600s
	pid[$l]=$(cat "$OUT/pid-$l")
	log "$l: offline: ready $(get offline "$l" offline.ready_seconds)s after the restart, drained $(get offline "$l" offline.drained) at $(get offline "$l" offline.drain_per_sec)/s"
done

# The summary: one row per figure, one column per server.
row() { # NAME UNIT then one value per label
	local name=$1 unit=$2
	shift 2
	printf '%-44s %-14s' "$name" "$unit"
	local v
	for v in "$@"; do printf ' %14s' "${v:--}"; done
	if [ $# -eq 2 ] && [ -n "$1" ] && [ -n "$2" ]; then
		printf ' %10s' "$(calc "$2 > 0 ? $1 / $2 : 0")"
	fi
	printf '\n'
}
vals() { # NAME KEY [EXPR with v]: the figure of every label
	local l v out=()
	for l in "${labels[@]}"; do
		v=$(get "$1" "$l" "$2")
		[ -n "$v" ] && [ $# -ge 3 ] && v=$(calc "$(printf '%s' "$3" | sed "s/v/($v)/g")")
		out+=("$v")
	done
	printf '%s\n' "${out[@]}"
}
cpu1000() { # seconds of ccsd CPU per 1000 downstream messages
	local l c d out=()
	for l in "${labels[@]}"; do
		c=$(get downstream "$l" server_cpu_seconds)
		d=$(get downstream "$l" delivered)
		out+=("$( [ -n "$c" ] && [ -n "$d" ] && calc "$d > 0 ? $c * 1000 / $d : 0")")
	done
	printf '%s\n' "${out[@]}"
}
each() { local l; for l in "${labels[@]}"; do eval "printf '%s\n' \"\${$1[$l]:-}\""; done; }
disk_col() { local l d; for l in "${labels[@]}"; do d=${disk[$l]:-}; printf '%s\n' "${d% *}"; done; }
alloc_col() { local l d; for l in "${labels[@]}"; do d=${disk[$l]:-}; printf '%s\n' "${d#* }"; done; }

mapfile -t c_ds < <(vals downstream delivered_per_sec)
mapfile -t c_cpu < <(cpu1000)
mapfile -t c_dsp99 < <(vals downstream ack_latency_ms.p99)
mapfile -t c_grp < <(vals group delivered_per_sec)
mapfile -t c_grpm < <(vals group accepted_per_sec)
mapfile -t c_up < <(vals upstream delivered_per_sec)
mapfile -t c_rate < <(each rate)
mapfile -t c_sent < <(vals rate sent_per_sec)
mapfile -t c_p99a < <(vals rate ack_latency_ms.p99)
mapfile -t c_p99d < <(vals rate delivery_latency_ms.p99)
mapfile -t c_rss < <(vals idle idle.rss_per_session_bytes "v / 1024")
mapfile -t c_heap < <(vals idle idle.heap_per_session_bytes "v / 1024")
mapfile -t c_login < <(vals login login.logins_per_sec)
mapfile -t c_lcpu < <(vals login login.server_cpu_ms_per_login)
mapfile -t c_disk < <(disk_col)
mapfile -t c_alloc < <(alloc_col)
mapfile -t c_restart < <(each restart)
mapfile -t c_cold < <(each cold)
mapfile -t c_oready < <(vals offline offline.ready_seconds)
mapfile -t c_odrain < <(vals offline offline.drain_per_sec)
mapfile -t c_ocpu < <(vals offline offline.drain_server_cpu_per_1000)
load_col() { local l; for l in "${labels[@]}"; do printf '%s: %s; ' "$l" "$(get downstream "$l" machine.loadavg)"; done; }

{
	printf '%-44s %-14s' figure unit
	for l in "${labels[@]}"; do printf ' %14s' "$l"; done
	[ ${#labels[@]} -eq 2 ] && printf ' %10s' after/before
	printf '\n'
	row "downstream delivered" msgs/s "${c_ds[@]}"
	row "downstream ccsd CPU" "CPU-s/1000" "${c_cpu[@]}"
	row "downstream ack p99 at maximum" ms "${c_dsp99[@]}"
	row "group device copies" copies/s "${c_grp[@]}"
	row "group messages" msgs/s "${c_grpm[@]}"
	row "upstream delivered" msgs/s "${c_up[@]}"
	row "half-maximum rate offered" msgs/s "${c_rate[@]}"
	row "half-maximum rate achieved" msgs/s "${c_sent[@]}"
	row "ack p99 at half maximum" ms "${c_p99a[@]}"
	row "delivery p99 at half maximum" ms "${c_p99d[@]}"
	row "idle session RSS ($IDLE sessions)" KiB "${c_rss[@]}"
	row "idle session Go heap" KiB "${c_heap[@]}"
	row "logins (TLS+PLAIN+bind, 8 dialers)" logins/s "${c_login[@]}"
	row "ccsd CPU per login" ms "${c_lcpu[@]}"
	row "disk per queued message (file size)" B "${c_disk[@]}"
	row "disk per queued message (allocated)" B "${c_alloc[@]}"
	row "restart with $QUEUED queued (warm)" s "${c_restart[@]}"
	row "restart with $QUEUED queued (file uncached)" s "${c_cold[@]}"
	row "offline: ready after restart ($OFFLINE queued)" s "${c_oready[@]}"
	row "offline: drain to 1000 devices" msgs/s "${c_odrain[@]}"
	row "offline: drain ccsd CPU" "CPU-s/1000" "${c_ocpu[@]}"
	echo "load average at the start of the downstream runs: $(load_col)"
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(go version 2>/dev/null || echo go unknown)"
	echo "runs and logs: $OUT"
} | tee "$OUT/summary.txt"

# summary.json: the same figures, one object per server.
{
	printf '{"out":"%s","nproc":%s,"figures":{' "$OUT" "$(nproc)"
	first=1
	for i in "${!labels[@]}"; do
		l=${labels[$i]}
		[ $first -eq 1 ] || printf ','
		first=0
		printf '"%s":{' "$l"
		printf '"downstream_msgs_per_sec":%s,"downstream_cpu_s_per_1000":%s,"downstream_ack_p99_ms":%s,' \
			"${c_ds[$i]:-null}" "${c_cpu[$i]:-null}" "${c_dsp99[$i]:-null}"
		printf '"group_copies_per_sec":%s,"group_msgs_per_sec":%s,"upstream_msgs_per_sec":%s,' \
			"${c_grp[$i]:-null}" "${c_grpm[$i]:-null}" "${c_up[$i]:-null}"
		printf '"half_rate_offered":%s,"half_rate_achieved":%s,"half_rate_ack_p99_ms":%s,"half_rate_delivery_p99_ms":%s,' \
			"${c_rate[$i]:-null}" "${c_sent[$i]:-null}" "${c_p99a[$i]:-null}" "${c_p99d[$i]:-null}"
		printf '"idle_rss_kib_per_session":%s,"idle_heap_kib_per_session":%s,"logins_per_sec":%s,"ccsd_cpu_ms_per_login":%s,' \
			"${c_rss[$i]:-null}" "${c_heap[$i]:-null}" "${c_login[$i]:-null}" "${c_lcpu[$i]:-null}"
		printf '"disk_bytes_per_queued_msg":%s,"disk_allocated_bytes_per_queued_msg":%s,"restart_seconds":%s,"restart_uncached_seconds":%s,"queued":%s,' \
			"${c_disk[$i]:-null}" "${c_alloc[$i]:-null}" "${c_restart[$i]:-null}" "${c_cold[$i]:-null}" "$QUEUED"
		printf '"offline_ready_seconds":%s,"offline_drain_msgs_per_sec":%s,"offline_drain_cpu_s_per_1000":%s,"offline_queued":%s,"loadavg":"%s"}' \
			"${c_oready[$i]:-null}" "${c_odrain[$i]:-null}" "${c_ocpu[$i]:-null}" "$OFFLINE" "$(get downstream "$l" machine.loadavg)"
	done
	printf '}}\n'
} >"$OUT/summary.json"
log "summary: $OUT/summary.txt, $OUT/summary.json"
