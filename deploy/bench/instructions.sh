#!/usr/bin/env bash
# Instructions each proxy's own code (user space: the proxy, its TLS library, libc) runs per
# kept-alive request, counted by valgrind's callgrind: Skiff's router, nginx and HAProxy,
# one at a time, in front of the same upstream, over HTTPS (TLS 1.3, ECDSA P-256) and plain
# HTTP/1.1, driven by skiff-load at 2,000 requests/s on 32 connections. A count, not a
# time: the same for the same binaries and load whatever else the machine does, so it
# shows what a change to the router's code saves when the timed benchmarks' spread (the
# kernel's loopback path, four fifths of each proxy's time, moves from run to run) would
# hide it. The kernel's work is not counted; under valgrind the TLS libraries take their
# AVX2 paths, not AVX-512.
#
# Each proxy takes a short load and a long one on fresh connections; the difference of the
# counts over the difference of the requests is the cost of a request, the handshakes and
# the start left out.
#
#   deploy/bench/instructions.sh BIN_DIR
#
# BIN_DIR holds skiffd, skiff-load and examples/tiny_upstream (deploy/bench/run.sh builds them).
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing nginx:nginx haproxy:haproxy openssl:openssl valgrind:valgrind callgrind_control:valgrind bc:bc

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"
name=bench.localhost
skiff_self_signed "$work" ecdsa "$name"

mkdir -p "$work"/nginx/{logs,tmp}
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1; master_process off; pid $work/nginx/nginx.pid; error_log $work/nginx/logs/error.log warn;
events { worker_connections 1000; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s;
  client_body_temp_path $work/nginx/tmp/b; proxy_temp_path $work/nginx/tmp/p; fastcgi_temp_path $work/nginx/tmp/f;
  uwsgi_temp_path $work/nginx/tmp/u; scgi_temp_path $work/nginx/tmp/s;
  ssl_protocols TLSv1.2 TLSv1.3;
  upstream app { server 127.0.0.1:18490; keepalive 64; }
  server { listen 127.0.0.1:18481 ssl; listen 127.0.0.1:18471; ssl_certificate $work/ecdsa.crt; ssl_certificate_key $work/ecdsa.key;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
printf '%s\n' global '  maxconn 1000' '  nbthread 1' defaults '  mode http' '  timeout connect 2s' \
  '  timeout client 600s' '  timeout server 30s' '  option http-keep-alive' \
  frontend\ fe "  bind 127.0.0.1:18483 ssl crt $work/ecdsa.pem alpn http/1.1" '  bind 127.0.0.1:18473' \
  '  default_backend be' backend\ be '  http-reuse always' '  server app 127.0.0.1:18490' >"$work/haproxy.cfg"

taskset -c 0 "$bin/examples/tiny_upstream" 127.0.0.1:18490 127.0.0.1:18491 &
skiff_pids+=($!)

declare -A tls_port=([nginx]=18481 [haproxy]=18483 [skiff]=18485) plain_port=([nginx]=18471 [haproxy]=18473 [skiff]=18475)
# Starts SYSTEM under callgrind on CPU 1; sets $proxy to its process.
start() {
  local out="--callgrind-out-file=$work/$1.out"
  case $1 in
    nginx) exec taskset -c 1 valgrind --tool=callgrind "$out" nginx -c "$work/nginx/nginx.conf" -p "$work/nginx/" -g 'daemon off;' ;;
    haproxy) exec taskset -c 1 valgrind --tool=callgrind "$out" haproxy -db -f "$work/haproxy.cfg" ;;
    skiff) exec env SKIFF_DATA_DIR="$work/skiff" SKIFF_ROUTER_LISTEN="127.0.0.1:${plain_port[skiff]}" \
      SKIFF_ROUTER_TLS_LISTEN="127.0.0.1:${tls_port[skiff]}" SKIFF_ROUTER_TLS_CERT="$work/ecdsa.crt" \
      SKIFF_ROUTER_TLS_KEY="$work/ecdsa.key" SKIFF_ROUTER_ROUTES="$name=127.0.0.1:18490" SKIFF_ROUTER_IDLE_TIMEOUT=600 \
      SKIFF_ROUTER_THREADS=1 TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=false \
      taskset -c 1 valgrind --tool=callgrind "$out" "$bin/skiffd" router ;;
  esac >"$work/$1.log" 2>&1 &
  proxy=$!
  skiff_pids+=("$proxy")
  local i
  for i in $(seq 1 300); do
    curl -fsk -o /dev/null --resolve "$name:${tls_port[$1]}:127.0.0.1" "https://$name:${tls_port[$1]}/" && return 0
    sleep 0.2
  done
  echo "instructions.sh: $1 did not answer under valgrind; its output: $(tail -5 "$work/$1.log")" >&2
  return 1
}
# Requests skiff-load made in SECONDS against URL (with --tls-version 1.3 for https).
requests() {
  local url=$2 tls=() line
  [ "${url%%:*}" = https ] && tls=(--ca "$work/ecdsa.crt" --tls-version 1.3)
  line=$(taskset -c 0 "$bin/skiff-load" http --rate 2000 --connections 32 --duration "$1" --warmup 0 \
    -H "Host: $name" "${tls[@]}" "$url")
  [ "$(echo "$line" | tr ' ' '\n' | sed -n 's/^errors=//p')" = 0 ] || echo "instructions.sh: $url: $line" >&2
  echo "$line" | tr ' ' '\n' | sed -n 's/^requests=//p'
}
# The instructions counted since the last dump, dumped now to SYSTEM's file number N.
dumped() {
  callgrind_control -d "$proxy" >/dev/null 2>&1
  awk '/^totals:/ {print $2}' "$work/$1.out.$2"
}
declare -A per_request
for system in nginx haproxy skiff; do
  start "$system"
  dump=0
  for scheme in https http; do
    [ "$scheme" = https ] && port=${tls_port[$system]} || port=${plain_port[$system]}
    url="$scheme://127.0.0.1:$port/"
    callgrind_control -z "$proxy" >/dev/null 2>&1
    short=$(requests 2 "$url")
    dump=$((dump + 1))
    short_count=$(dumped "$system" "$dump")
    long=$(requests 6 "$url")
    dump=$((dump + 1))
    long_count=$(dumped "$system" "$dump")
    per_request[$system-$scheme]=$(( (long_count - short_count) / (long - short) ))
  done
  kill -INT "$proxy" 2>/dev/null || true
  wait "$proxy" 2>/dev/null || true
done

echo
echo "| instructions per kept-alive request in the proxy's own code (callgrind) | HTTPS (TLS 1.3, ECDSA) | plain HTTP/1.1 | skiff vs it (HTTPS / plain: its count over Skiff's) |"
echo "|---|---|---|---|"
for system in nginx haproxy skiff; do
  echo "| $system | ${per_request[$system-https]} | ${per_request[$system-http]} | $(skiff_ratio "${per_request[$system-https]}" "${per_request[skiff-https]}")× / $(skiff_ratio "${per_request[$system-http]}" "${per_request[skiff-http]}")× |"
done
