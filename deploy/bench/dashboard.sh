#!/usr/bin/env bash
# Dashboard benchmark: the pages people open most, full. The controller runs alone
# (SKIFF_RUNTIME=memory) on SQLite with 1,000 apps of one release each and one app with
# 10,000 releases; a signed-in session asks for the apps page and for that app's page.
# Prints, per page: time to the first byte and to the whole page (curl, median of RUNS), the
# server's p50/p99 under wrk (one connection, 5 s), and what the page weighs (its HTML; the
# stylesheet, and the log page's script, come on top once and are cached); then the same
# pages in headless Chromium (page_load.py): first byte and fully loaded, as a person waits.
#
#   deploy/bench/dashboard.sh BIN_DIR RUNS
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing wrk:wrk curl:curl python3:python3 bc:bc chromium:chromium chromedriver:chromium-driver

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"
url=http://127.0.0.1:17850
SKIFF_DATA_DIR="$work" SKIFF_RUNTIME=memory SKIFF_LOG=warn SKIFF_ALLOWED_REGISTRIES=docker.io \
  SKIFF_CONTROLLER_LISTEN=127.0.0.1:17850 SKIFF_LOGGER_SYSLOG_LISTEN=127.0.0.1:17899 \
  SKIFF_REGISTRY_URL=http://127.0.0.1:17898 SKIFF_GC_INTERVAL=86400 \
  "$bin/skiffd" controller >"$work/skiffd.log" 2>&1 &
skiff_pids+=($!)
skiff_wait_http "$url/healthz" 30
token=$(curl -fsS -H 'Content-Type: application/json' -d '{"username":"bench","password":"bench-password"}' \
  "$url/v2/auth/register" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
python3 "$here/controller_seed.py" "$url" "$token" 1000 1000 >/dev/null
python3 "$here/controller_seed.py" "$url" "$token" 1 10000 big >/dev/null
cookie=$(curl -fsS -o /dev/null -D - -d 'username=bench&password=bench-password' "$url/dashboard/login" |
  sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
[ -n "$cookie" ] || { echo "dashboard.sh: could not sign in" >&2; exit 1; }
cat >"$work/page.lua" <<LUA
wrk.headers["Cookie"] = "$cookie"
LUA
asset_bytes=$(( $(curl -fsS "$url/dashboard/assets/skiff.css" | wc -c) + $(curl -fsS "$url/dashboard/assets/logs.js" | wc -c) ))

measure() {
  local label=$1 path=$2 first=() whole=() size r p50 p99 failed
  curl -fsS -o /dev/null -H "Cookie: $cookie" "$url$path"
  for _ in $(seq 1 "$runs"); do
    read -r t w size < <(curl -fsS -o /dev/null -H "Cookie: $cookie" \
      -w '%{time_starttransfer} %{time_total} %{size_download}\n' "$url$path")
    first+=("$(printf '%.1f' "$(echo "$t * 1000" | bc)")") whole+=("$(printf '%.1f' "$(echo "$w * 1000" | bc)")")
  done
  read -r r p50 p99 failed _ < <(wrk -t1 -c1 -d5s --latency -s "$work/page.lua" "$url$path" | skiff_wrk_summary)
  echo "| dashboard: $label, first byte / whole page (curl) | $(skiff_median "${first[*]}") ms / $(skiff_median "${whole[*]}") ms | | | $runs |"
  echo "| dashboard: $label one request after another: req/s, p50, p99 (wrk -c1; $failed failed) | $r, $p50 ms, $p99 ms | | | 1 |"
  echo "| dashboard: $label weight (HTML; + stylesheet and script $asset_bytes B, cached) | $(( size / 1024 )) KiB | | | 1 |"
}
measure "apps page, 1,000 apps" /dashboard
measure "app page, 10,000 releases" /dashboard/apps/big0000
python3 "$here/page_load.py" "$url" "$cookie" "$runs" \
  "apps page, 1,000 apps=/dashboard" "app page, 10,000 releases=/dashboard/apps/big0000"
