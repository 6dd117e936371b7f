#!/usr/bin/env bash
# Router benchmark: Skiff's router, nginx (upstream keepalive on) and HAProxy side by side
# in one run, in front of the same upstream (nginx serving a 12-byte file), driven by the
# same wrk, none of them writing access logs. The proxy under test runs alone on CPU 1 (one
# worker thread each); wrk and the upstream share CPU 0. Prints table rows for run.sh.
#
#   deploy/bench/router.sh BIN_DIR RUNS
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing nginx:nginx haproxy:haproxy wrk:wrk bc:bc

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"

mkdir -p "$work"/{upstream,proxy}/{logs,tmp} "$work/upstream/html"
printf 'hello world\n' >"$work/upstream/html/index.html"
temps() { echo "client_body_temp_path $1/tmp/b; proxy_temp_path $1/tmp/p; fastcgi_temp_path $1/tmp/f; uwsgi_temp_path $1/tmp/u; scgi_temp_path $1/tmp/s;"; }
cat >"$work/upstream/nginx.conf" <<CONF
worker_processes 1; pid $work/upstream/nginx.pid; error_log $work/upstream/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; $(temps "$work/upstream")
  server { listen 127.0.0.1:18090; root $work/upstream/html; } }
CONF
cat >"$work/proxy/nginx.conf" <<CONF
worker_processes 1; pid $work/proxy/nginx.pid; error_log $work/proxy/logs/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; $(temps "$work/proxy")
  upstream app { server 127.0.0.1:18090; keepalive 64; }
  server { listen 127.0.0.1:18081;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
printf '%s\n' global '  maxconn 4096' '  nbthread 1' defaults '  mode http' '  timeout connect 2s' \
  '  timeout client 30s' '  timeout server 30s' '  option http-keep-alive' frontend\ fe \
  '  bind 127.0.0.1:18083' '  default_backend be' backend\ be '  http-reuse always' \
  '  server app 127.0.0.1:18090' >"$work/haproxy.cfg"

taskset -c 0 nginx -c "$work/upstream/nginx.conf" -p "$work/upstream/" -g 'daemon off;' &
skiff_pids+=($!)
taskset -c 1 nginx -c "$work/proxy/nginx.conf" -p "$work/proxy/" -g 'daemon off;' &
skiff_pids+=($!)
taskset -c 1 haproxy -db -f "$work/haproxy.cfg" &
skiff_pids+=($!)
SKIFF_DATA_DIR="$work/skiff" SKIFF_ROUTER_LISTEN=127.0.0.1:18084 SKIFF_ROUTER_TLS_LISTEN=127.0.0.1:18444 SKIFF_ROUTER_ROUTES="bench.localhost=127.0.0.1:18090" \
  TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=false taskset -c 1 "$bin/skiffd" router >"$work/skiff.log" 2>&1 &
skiff_pids+=($!)
for port in 18090 18081 18083 18084; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" -H 'Host: bench.localhost' && break; sleep 0.1; done
done

declare -A port=([direct]=18090 [nginx]=18081 [haproxy]=18083 [skiff]=18084)
declare -A rps p99
load() {
  taskset -c 0 wrk -t1 -c32 -d"$2" --latency -H 'Host: bench.localhost' "http://127.0.0.1:${port[$1]}/"
}
for system in direct nginx haproxy skiff; do load "$system" 2s >/dev/null; done
for _ in $(seq 1 "$runs"); do
  for system in direct nginx haproxy skiff; do
    out=$(load "$system" 5s)
    rps[$system]+="$(echo "$out" | awk '/Requests\/sec/ {print $2}') "
    p99[$system]+="$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/, "", v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v=v*1000} print v}') "
  done
done

echo
echo "| router benchmark (wrk -t1 -c32, 12-byte page, median of $runs) | req/s | p99 | vs direct | skiff vs it |"
echo "|---|---|---|---|---|"
skiff=$(skiff_median "${rps[skiff]}")
direct=$(skiff_median "${rps[direct]}")
for system in direct nginx haproxy skiff; do
  r=$(skiff_median "${rps[$system]}")
  echo "| $system | $(printf '%.0f' "$r") | $(skiff_median "${p99[$system]}") ms | $(echo "scale=2; $r / $direct" | bc)× | $(echo "scale=2; $skiff / $r" | bc)× |"
done
