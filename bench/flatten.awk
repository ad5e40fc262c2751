# flatten.awk: turns ccsbench's indented --json output into key=value lines
# (nested keys joined with dots, e.g. ack_latency_ms.p99=12.3), so that the
# bench scripts need neither jq nor python. The per-second "timeline" is
# skipped. It relies on ccsbench's two-space indentation.
/^  "timeline": \[/ { skip = 1; next }
skip && /^  \]/     { skip = 0; next }
skip                { next }
match($0, /^ *"[^"]+": /) {
	match($0, /^ */); lvl = RLENGTH / 2
	k = $0; sub(/^ *"/, "", k); sub(/".*/, "", k)
	v = $0; sub(/^ *"[^"]+": /, "", v); sub(/,$/, "", v)
	path[lvl] = k
	p = ""
	for (i = 1; i < lvl; i++) p = p path[i] "."
	if (v == "{" || v == "[") next
	gsub(/"/, "", v)
	print p k "=" v
}
