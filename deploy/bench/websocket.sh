#!/usr/bin/env bash
# WebSocket benchmark: Skiff's router, nginx and HAProxy side by side in one run, each alone
# on CPU 1 (one worker), in front of the same echo upstream (router/examples/echo_upstream.rs,
# on CPU 0), driven by skiff-load on CPU 0 over 32 upgraded connections with 32-byte
# messages. Prints, per proxy: echoed messages per second (closed loop: each connection
# sends its next message when the last one came back), and p50/p99/p99.9 of the echo at
# the same offered rate for all three (open loop, half the slowest one's maximum).
#
#   deploy/bench/websocket.sh BIN_DIR RUNS
#
# BIN_DIR holds skiffd, skiff-load and examples/echo_upstream (deploy/bench/run.sh builds them).
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing nginx:nginx haproxy:haproxy bc:bc

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"
mkdir -p "$work"/nginx/{logs,tmp}
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1; pid $work/nginx/nginx.pid; error_log $work/nginx/logs/error.log warn;
events { worker_connections 4000; }
http { access_log off; client_body_temp_path $work/nginx/tmp/b; proxy_temp_path $work/nginx/tmp/p;
  fastcgi_temp_path $work/nginx/tmp/f; uwsgi_temp_path $work/nginx/tmp/u; scgi_temp_path $work/nginx/tmp/s;
  server { listen 127.0.0.1:18881;
    location / { proxy_pass http://127.0.0.1:18890; proxy_http_version 1.1; proxy_read_timeout 600s;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection "upgrade"; proxy_set_header Host \$host; } } }
CONF
printf '%s\n' global '  nbthread 1' defaults '  mode http' '  timeout connect 2s' '  timeout client 600s' \
  '  timeout server 600s' '  timeout tunnel 600s' frontend\ fe '  bind 127.0.0.1:18883' '  default_backend be' \
  backend\ be '  server app 127.0.0.1:18890' >"$work/haproxy.cfg"

taskset -c 0 "$bin/examples/echo_upstream" 127.0.0.1:18890 &
skiff_pids+=($!)
taskset -c 1 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx/" -g 'daemon off;' &
skiff_pids+=($!)
taskset -c 1 haproxy -db -f "$work/haproxy.cfg" &
skiff_pids+=($!)
env SKIFF_DATA_DIR="$work/skiff" SKIFF_ROUTER_LISTEN=127.0.0.1:18884 SKIFF_ROUTER_TLS_LISTEN=127.0.0.1:18885 \
  SKIFF_ROUTER_ROUTES="bench.localhost=127.0.0.1:18890" SKIFF_ROUTER_IDLE_TIMEOUT=600 SKIFF_ROUTER_THREADS=1 \
  TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=false taskset -c 1 "$bin/skiffd" router \
  >"$work/skiff.log" 2>&1 &
skiff_pids+=($!)
declare -A port=([nginx]=18881 [haproxy]=18883 [skiff]=18884)

# skiff-load over WebSockets against SYSTEM at RATE (0: closed loop); prints its line.
echo_load() {
  taskset -c 0 "$bin/skiff-load" http --websocket --message-size 32 --rate "$2" --connections 32 --duration 5 \
    --warmup 1 -H 'Host: bench.localhost' "http://127.0.0.1:${port[$1]}/echo"
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
for system in nginx haproxy skiff; do
  for _ in $(seq 1 100); do echo_load "$system" 100 >/dev/null 2>&1 && break; sleep 0.2; done
done
declare -A rate p50 p99 p999 failed
for _ in $(seq 1 "$runs"); do
  for system in nginx haproxy skiff; do
    line=$(echo_load "$system" 0)
    rate[$system]+="$(field "$line" achieved) "
  done
done
slowest=$(for system in nginx haproxy skiff; do skiff_median "${rate[$system]}"; done | sort -g | head -1)
offered=$(echo "$slowest / 2" | bc)
for _ in $(seq 1 "$runs"); do
  for system in nginx haproxy skiff; do
    line=$(echo_load "$system" "$offered")
    p50[$system]+="$(field "$line" p50) " p99[$system]+="$(field "$line" p99) " p999[$system]+="$(field "$line" p999) "
    failed[$system]=$(( ${failed[$system]:-0} + $(field "$line" errors) ))
  done
done

echo
echo "| WebSocket benchmark (skiff-load, 32 connections, 32-byte messages, median of $runs) | echoes/s (closed loop) | skiff vs it | at $offered/s for all (open loop): p50 | p99 | p99.9 | failed |"
echo "|---|---|---|---|---|---|---|"
skiff=$(skiff_median "${rate[skiff]}")
for system in nginx haproxy skiff; do
  r=$(skiff_median "${rate[$system]}")
  echo "| $system | $r | $(skiff_ratio "$skiff" "$r")× | $(skiff_median "${p50[$system]}") ms | $(skiff_median "${p99[$system]}") ms | $(skiff_median "${p999[$system]}") ms | ${failed[$system]} |"
done
