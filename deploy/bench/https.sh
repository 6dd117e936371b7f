#!/usr/bin/env bash
# HTTPS benchmark: Skiff's router, nginx and HAProxy side by side in one run, each alone on
# CPU 1 (one worker), in front of the same upstream (tiny_upstream, on CPU 0), with an
# ECDSA P-256 and an RSA-2048 certificate, driven by skiff-load on CPU 0 (rustls, closed
# loop, 32 connections). Prints, per certificate and proxy:
#   - keep-alive requests per second over TLS 1.3 (each proxy's two loads of a run
#     straddling the others', see below) and over TLS 1.2;
#   - new connections per second, each a full handshake and one request, and each a
#     resumed session (TLS 1.3 tickets; each of the 32 clients resumes its own) and one
#     request, with the share that did resume;
#   - the proxy's CPU time per kept-alive request (and how much of it the kernel's) and per
#     full handshake: what the proxy spends, whoever the client (CPU 0, the client's and the
#     upstream's, is near saturation at the fastest proxy's rate, which caps the rates);
#   - memory with 2,000 idle TLS connections (python's ssl, TLS 1.3), measured first.
# Each proxy keeps a session cache and issues tickets (nginx: a shared 10 MB cache;
# HAProxy: its default cache; Skiff: rustls's, with tickets).
#
#   deploy/bench/https.sh BIN_DIR RUNS
#
# BIN_DIR holds skiffd, skiff-load and examples/tiny_upstream (deploy/bench/run.sh builds them).
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing nginx:nginx haproxy:haproxy openssl:openssl python3:python3 bc:bc
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"
name=bench.localhost
for kind in ecdsa rsa; do skiff_self_signed "$work" "$kind" "$name"; done

mkdir -p "$work"/nginx/{logs,tmp}
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1; pid $work/nginx/nginx.pid; error_log $work/nginx/logs/error.log warn;
events { worker_connections 8000; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s;
  client_body_temp_path $work/nginx/tmp/b; proxy_temp_path $work/nginx/tmp/p; fastcgi_temp_path $work/nginx/tmp/f;
  uwsgi_temp_path $work/nginx/tmp/u; scgi_temp_path $work/nginx/tmp/s;
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;
  upstream app { server 127.0.0.1:18490; keepalive 64; }
  server { listen 127.0.0.1:18481 ssl; ssl_certificate $work/ecdsa.crt; ssl_certificate_key $work/ecdsa.key;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:18482 ssl; ssl_certificate $work/rsa.crt; ssl_certificate_key $work/rsa.key;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
printf '%s\n' global '  maxconn 8000' '  nbthread 1' '  ssl-default-bind-options ssl-min-ver TLSv1.2' defaults \
  '  mode http' '  timeout connect 2s' '  timeout client 600s' '  timeout server 30s' '  option http-keep-alive' \
  frontend\ fe "  bind 127.0.0.1:18483 ssl crt $work/ecdsa.pem alpn http/1.1" \
  "  bind 127.0.0.1:18484 ssl crt $work/rsa.pem alpn http/1.1" '  default_backend be' \
  backend\ be '  http-reuse always' '  server app 127.0.0.1:18490' >"$work/haproxy.cfg"

taskset -c 0 "$bin/examples/tiny_upstream" 127.0.0.1:18490 127.0.0.1:18491 &
skiff_pids+=($!)
taskset -c 1 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx/" -g 'daemon off;' &
skiff_pids+=($!)
declare -A pid=([nginx]=$!)
taskset -c 1 haproxy -db -f "$work/haproxy.cfg" &
skiff_pids+=($!)
pid[haproxy]=$!
for kind in ecdsa rsa; do
  [ "$kind" = ecdsa ] && tls=18485 http=18487 || { tls=18486; http=18488; }
  env SKIFF_DATA_DIR="$work/skiff-$kind" SKIFF_ROUTER_LISTEN="127.0.0.1:$http" SKIFF_ROUTER_TLS_LISTEN="127.0.0.1:$tls" \
    SKIFF_ROUTER_TLS_CERT="$work/$kind.crt" SKIFF_ROUTER_TLS_KEY="$work/$kind.key" \
    SKIFF_ROUTER_ROUTES="$name=127.0.0.1:18490" SKIFF_ROUTER_IDLE_TIMEOUT=600 SKIFF_ROUTER_THREADS=1 \
    TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=false taskset -c 1 "$bin/skiffd" router \
    >"$work/skiff-$kind.log" 2>&1 &
  skiff_pids+=($!)
  pid[skiff-$kind]=$!
done
declare -A port=([nginx-ecdsa]=18481 [nginx-rsa]=18482 [haproxy-ecdsa]=18483 [haproxy-rsa]=18484 [skiff-ecdsa]=18485 [skiff-rsa]=18486)
for key in "${!port[@]}"; do
  for _ in $(seq 1 100); do
    curl -fsk -o /dev/null --resolve "$name:${port[$key]}:127.0.0.1" "https://$name:${port[$key]}/" && break
    sleep 0.1
  done
done
# The process serving SYSTEM-KIND (nginx and HAProxy serve both certificates).
server_pid() { case $1 in skiff-*) echo "${pid[$1]}" ;; *) echo "${pid[${1%-*}]}" ;; esac; }

# Memory with 2,000 idle TLS connections, each system's from its own source address, first,
# while each proxy has served nothing else (what an allocator keeps after a load would
# count otherwise).
declare -A memory
source=30
for key in nginx-ecdsa haproxy-ecdsa skiff-ecdsa; do
  source=$((source + 1))
  kib=$(skiff_idle_memory "${port[$key]}" 2000 "$source" "$(server_pid "$key")" tls "$work/ecdsa.crt")
  memory[$key]=$(echo "scale=1; $kib / 1024" | bc)
done

# skiff-load's closed-loop rate against SYSTEM-KIND with extra arguments; sets $achieved.
load() {
  local key=$1 kind=${1##*-} line
  shift
  line=$(taskset -c 0 "$bin/skiff-load" http --rate 0 --connections 32 --duration 4 --warmup 1 \
    --ca "$work/$kind.crt" -H "Host: $name" "$@" "https://127.0.0.1:${port[$key]}/")
  achieved=$(echo "$line" | tr ' ' '\n' | sed -n 's/^achieved=//p')
  share=$(echo "$line" | tr ' ' '\n' | awk -F= '$1 == "requests" {n = $2} $1 == "resumed" {r = $2} END {printf "%.0f", n ? r * 100 / n : 0}')
  [ "$(echo "$line" | tr ' ' '\n' | sed -n 's/^errors=//p')" = 0 ] || echo "https.sh: $key $*: $line" >&2
}
# load, and what it cost the proxy: sets $cpu and $kernel (microseconds of the proxy's CPU,
# and of it in the kernel, per request or new connection over the 5 s run) and $busy (how
# busy CPU 0, the client's and the upstream's, was: at 100% the client caps the rate).
cpu0_idle() { awk '/^cpu0 / {print $5 + $6}' /proc/stat; }
measured_load() {
  local key=$1 proxy ticks kernel_ticks idle hz
  proxy=$(server_pid "$key") hz=$(getconf CLK_TCK)
  ticks=$(skiff_cpu_ticks "$proxy") kernel_ticks=$(skiff_cpu_ticks "$proxy" system) idle=$(cpu0_idle)
  load "$@"
  busy=$(( 100 - ($(cpu0_idle) - idle) * 100 / (5 * hz) ))
  cpu=$(echo "scale=1; ($(skiff_cpu_ticks "$proxy") - $ticks) * 1000000 / $hz / ($achieved * 5)" | bc)
  kernel=$(echo "scale=1; ($(skiff_cpu_ticks "$proxy" system) - $kernel_ticks) * 1000000 / $hz / ($achieved * 5)" | bc)
}
# Kept alive over TLS 1.3, each run measures the three proxies of a certificate back to
# back twice, in turned order (nginx, HAProxy, Skiff, Skiff, HAProxy, nginx): what the
# machine's loopback path costs drifts by more than the margins measured, over tens of
# seconds, and each proxy's two loads straddle the others'. A run's ratio is of the means of
# its two loads; the table gives the medians of the runs' means and of their ratios.
declare -A keep13 keep13_cpu keep13_kernel keep13_busy keep13_ratio keep13_cpu_ratio keep12 full resumed resumed_share per_handshake
mean() { echo "scale=1; ($1 + $2) / 2" | bc; }
for _ in $(seq 1 "$runs"); do
  for kind in ecdsa rsa; do
    declare -A rates=() cpus=() kernels=() busies=()
    for system in nginx haproxy skiff skiff haproxy nginx; do
      measured_load "$system-$kind" --tls-version 1.3
      rates[$system]+="$achieved " cpus[$system]+="$cpu " kernels[$system]+="$kernel " busies[$system]+="$busy "
    done
    for system in nginx haproxy skiff; do
      key=$system-$kind
      keep13[$key]+="$(mean ${rates[$system]}) " keep13_cpu[$key]+="$(mean ${cpus[$system]}) "
      keep13_kernel[$key]+="$(mean ${kernels[$system]}) " keep13_busy[$key]+="$(mean ${busies[$system]}) "
      keep13_ratio[$key]+="$(skiff_ratio "$(mean ${rates[skiff]})" "$(mean ${rates[$system]})") "
      keep13_cpu_ratio[$key]+="$(skiff_ratio "$(mean ${cpus[$system]})" "$(mean ${cpus[skiff]})") "
    done
    for system in nginx haproxy skiff; do
      key=$system-$kind
      load "$key" --tls-version 1.2
      keep12[$key]+="$achieved "
      measured_load "$key" --tls-version 1.3 --reconnect
      full[$key]+="$achieved " per_handshake[$key]+="$cpu "
      load "$key" --tls-version 1.3 --reconnect --resume
      resumed[$key]+="$achieved " resumed_share[$key]+="$share "
    done
  done
done

echo
echo "| HTTPS benchmark (skiff-load, closed loop, 32 connections, median of $runs) | keep-alive req/s, TLS 1.3 | proxy CPU per kept-alive request (of it in the kernel), CPU 0 busy | TLS 1.2 | new connections/s, full handshake | resumed | proxy CPU per full handshake | memory, 2,000 idle TLS connections | skiff vs it (keep-alive 1.3 / its CPU per kept-alive request, medians of the runs' ratios / full handshakes) |"
echo "|---|---|---|---|---|---|---|---|---|"
for kind in ecdsa rsa; do
  for system in nginx haproxy skiff; do
    key=$system-$kind
    k13=$(skiff_median "${keep13[$key]}") f=$(skiff_median "${full[$key]}") c13=$(skiff_median "${keep13_cpu[$key]}")
    mem="-"
    [ "$kind" = rsa ] || mem="${memory[$key]} MiB"
    echo "| $system, $kind | $k13 | $c13 µs ($(skiff_median "${keep13_kernel[$key]}") µs), $(skiff_median "${keep13_busy[$key]}")% | $(skiff_median "${keep12[$key]}") | $f | $(skiff_median "${resumed[$key]}") ($(skiff_median "${resumed_share[$key]}")% resumed) | $(skiff_median "${per_handshake[$key]}") µs | $mem | $(skiff_median "${keep13_ratio[$key]}")× / $(skiff_median "${keep13_cpu_ratio[$key]}")× / $(skiff_ratio "$(skiff_median "${full[skiff-$kind]}")" "$f")× |"
  done
done
