#!/usr/bin/env bash
# One table of linehub's performance figures, each against its bound or baseline measured in the
# same run: runs the three benchmarks and measures the daemon's idle memory.
#
#   benches/report.sh                  # full: 1M-friend import (about 10 minutes)
#   FRIENDS=20000 benches/report.sh    # quick
set -euo pipefail
cd "$(dirname "$0")/.."
FRIENDS="${FRIENDS:-1000000}"
out="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

echo "building and running the benchmarks (output in $out) …" >&2
cargo bench --bench ingest > "$out/ingest.txt" 2>&1
cargo bench --bench writer > "$out/writer.txt" 2>&1
cargo bench --bench pipelines -- --friends "$FRIENDS" --reloads 20 > "$out/pipelines.txt" 2>&1

# Idle RSS: the release daemon on one account, pointed at the standalone sandbox, after 5 s idle.
cargo build --release --quiet
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sp=$(port); dp=$(port)
target/release/linehub sandbox --listen "127.0.0.1:$sp" > /dev/null &
cat > "$out/config.yaml" <<YAML
server: { listen: "127.0.0.1:$dp", public_base_url: "https://bench.test" }
store: { path: "$out/idle.db" }
plan: trial
hubspot: { base_url: "http://127.0.0.1:$sp", token: sandbox-hubspot-token }
line: { api_base_url: "http://127.0.0.1:$sp" }
pipelines_dir: "$out/pipelines"
accounts:
  - { id: idle, channel_secret: s, channel_access_token: t }
YAML
mkdir -p "$out/pipelines"
sleep 1
LINEHUB_LOG=error target/release/linehub run --config "$out/config.yaml" &
daemon=$!
sleep 5
idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$daemon/status")
kill "$daemon"

get() { grep -m1 "$2" "$out/$1.txt" || echo "(missing: $2)"; }
ingest_tp=$(get ingest 'max throughput')
ingest_p99=$(get ingest 'p99 latency')
w_share=$(get writer 'share of rate-limit ceiling')
w_429=$(get writer 'share of requests that got 429')
w_lat=$(get writer 'p95')
p_wall=$(get pipelines 'wall time until every contact')
p_bound=$(get pipelines 'rate-limit bound')
p_rss=$(get pipelines 'peak RSS')
p_reload=$(get pipelines 'reloads: min')

printf '\nlinehub benchmark report (%s, %s cores)\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)"
printf '%-44s %s\n' "figure" "measured (same run as its bound or baseline)"
printf '%-44s %s\n' "--------------------------------------------" "---------------------------------------------"
printf '%-44s %s\n' "ingest vs bare hyper (goal ratio >= 0.5)" "$(echo "$ingest_tp" | awk '{print "bare " $4 " req/s, linehub " $5 " req/s, ratio " $6}')"
printf '%-44s %s\n' "ingest p99 at 1,000 req/s (goal <= 10 ms)" "$(echo "$ingest_p99" | awk '{print "bare " $4 " ms, linehub " $5 " ms"}')"
printf '%-44s %s\n' "writer share of ceiling (goal >= 0.95)" "$(echo "$w_share" | sed 's/.*ceiling *//')"
printf '%-44s %s\n' "writer share answered 429 (goal <= 0.005)" "$(echo "$w_429" | sed 's/.*got 429 *//')"
printf '%-44s %s\n' "webhook -> contact (goal p95 <= 2 s)" "$(echo "$w_lat" | sed 's/^ *//')"
printf '%-44s %s\n' "import_friends of $FRIENDS" "$(echo "$p_wall" | sed 's/.*written: //'); $(echo "$p_bound" | sed 's/^ *//')"
printf '%-44s %s\n' "import peak RSS (goal <= 150 MB)" "$(echo "$p_rss" | sed 's/^ *peak RSS: //')"
printf '%-44s %s\n' "reload, 50 accounts + 20 pipelines (<=100ms)" "$(echo "$p_reload" | sed 's/^ *//')"
printf '%-44s %s\n' "idle RSS, daemon with one account" "$((idle_kb / 1024)) MB"
