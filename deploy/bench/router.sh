#!/usr/bin/env bash
# Router benchmark: Skiff's router, nginx (upstream keepalive on) and HAProxy side by side
# in one run, in front of the same upstream, driven by the same wrk, none of them writing
# access logs, each adding the same headers (X-Forwarded-For, -Proto, -Port and -Host,
# X-Request-Id, Via). The upstream is `router/examples/tiny_upstream.rs`, which answers a
# 12-byte page doing as little as it can, so that the proxy, not the upstream, is what
# limits a run. The proxy under test runs alone on CPU 1 (one worker thread each: Skiff with
# SKIFF_ROUTER_THREADS=1); wrk and the upstream share CPU 0. Prints, for each: req/s, p50
# and p99 latency, how busy CPU 0 was (wrk and the upstream), CPU time per request,
# memory while 10,000 idle keep-alive connections are open, the ratio to the upstream
# served directly; p50/p99/p99.9 of all three at the same offered rates (open loop, 50% and
# 80% of the slowest one's maximum, with skiff-load); then the failed requests while the
# route changes every 100 ms (Skiff: its route feed; nginx: a rewritten config and
# `nginx -s reload`, as Deis and Dokku did; HAProxy: its runtime API).
#
#   deploy/bench/router.sh BIN_DIR RUNS
#
# BIN_DIR holds skiffd, skiff-load and examples/tiny_upstream (cargo build --release -p skiffd
# -p skiff-load; cargo build --release -p skiff-router --example tiny_upstream;
# deploy/bench/run.sh builds them).
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client bc:bc python3:python3
# 10,000 held connections per proxy, on both ends (fewer where the hard limit is lower).
# HAProxy asks for two descriptors per connection it may take.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
files=$(ulimit -n)
idle=$(( files / 2 - 1000 ))
[ "$idle" -le 10000 ] || idle=10000

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"

mkdir -p "$work"/proxy/{logs,tmp}
temps() { echo "client_body_temp_path $1/tmp/b; proxy_temp_path $1/tmp/p; fastcgi_temp_path $1/tmp/f; uwsgi_temp_path $1/tmp/u; scgi_temp_path $1/tmp/s;"; }
# The proxy's config with its upstream on PORT.
proxy_conf() {
  cat <<CONF
worker_processes 1; worker_rlimit_nofile $files; pid $work/proxy/nginx.pid; error_log $work/proxy/logs/error.log warn;
events { worker_connections $((idle + 1000)); }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s; $(temps "$work/proxy")
  upstream app { server 127.0.0.1:$1; keepalive 64; }
  server { listen 127.0.0.1:18081; listen 127.0.0.1:18082 http2;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Port \$server_port;
      proxy_set_header X-Forwarded-Host \$host; proxy_set_header X-Request-Id \$request_id; proxy_set_header Via "1.1 nginx"; } } }
CONF
}
proxy_conf 18090 >"$work/proxy/nginx.conf"
printf '%s\n' global "  maxconn $((idle + 500))" '  nbthread 1' "  stats socket $work/haproxy.sock level admin" defaults \
  '  mode http' '  timeout connect 2s' '  timeout client 600s' '  timeout server 30s' '  option http-keep-alive' \
  frontend\ fe '  bind 127.0.0.1:18083' '  bind 127.0.0.1:18086 proto h2' '  option forwardfor' \
  '  http-request set-header X-Forwarded-Proto http' '  http-request set-header X-Forwarded-Port %[dst_port]' \
  '  http-request set-header X-Forwarded-Host %[req.hdr(host)]' '  unique-id-format %{+X}o%ci%cp%fp%Ts%rt%pid' \
  '  unique-id-header X-Request-Id' '  http-request add-header Via "1.1 haproxy"' '  default_backend be' backend\ be '  http-reuse always' \
  '  server app 127.0.0.1:18090' >"$work/haproxy.cfg"

taskset -c 0 "$bin/examples/tiny_upstream" 127.0.0.1:18090 127.0.0.1:18091 &
skiff_pids+=($!)
taskset -c 1 nginx -c "$work/proxy/nginx.conf" -p "$work/proxy/" -g 'daemon off;' &
skiff_pids+=($!)
nginx_pid=$!
taskset -c 1 haproxy -db -f "$work/haproxy.cfg" &
skiff_pids+=($!)
haproxy_pid=$!
router() {
  local listen=$1 tls=$2 data=$3; shift 3
  env SKIFF_DATA_DIR="$work/$data" SKIFF_ROUTER_LISTEN="127.0.0.1:$listen" SKIFF_ROUTER_TLS_LISTEN="127.0.0.1:$tls" \
    SKIFF_ROUTER_IDLE_TIMEOUT=600 SKIFF_ROUTER_THREADS=1 TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=false "$@" \
    taskset -c 1 "$bin/skiffd" router >"$work/$data.log" 2>&1 &
  skiff_pids+=($!)
}
router 18084 18444 skiff SKIFF_ROUTER_ROUTES="bench.localhost=127.0.0.1:18090"
skiff_pid=$!
for port in 18090 18091 18081 18083 18084; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" -H 'Host: bench.localhost' && break; sleep 0.1; done
done

declare -A port=([direct]=18090 [nginx]=18081 [haproxy]=18083 [skiff]=18084)
declare -A rps p50 p99 requests
declare -A pid=([nginx]=$nginx_pid [haproxy]=$haproxy_pid [skiff]=$skiff_pid)
load() {
  taskset -c 0 wrk -t1 -c32 -d"$2" --latency -H 'Host: bench.localhost' "http://127.0.0.1:${port[$1]}/"
}
for system in direct nginx haproxy skiff; do load "$system" 2s >/dev/null; done
# HTTP/2 with prior knowledge (h2c): h2load, 32 connections, 10 streams each.
declare -A h2port=([nginx]=18082 [haproxy]=18086 [skiff]=18084) h2rps h2mean
for _ in $(seq 1 "$runs"); do
  for system in nginx haproxy skiff; do
    out=$(taskset -c 0 h2load -n 100000 -c 32 -m 10 -H ':authority: bench.localhost' "http://127.0.0.1:${h2port[$system]}/")
    if [ "$(echo "$out" | awk '/^status codes:/ {print $3}')" != 100000 ]; then
      echo "router.sh: $system did not answer every HTTP/2 request with 2xx: $(echo "$out" | grep -E '^(requests|status codes):')" >&2
      exit 1
    fi
    h2rps[$system]+="$(echo "$out" | awk '/^finished in/ {print $4}') "
    h2mean[$system]+="$(echo "$out" | awk '$1 == "time" && $3 == "request:" {v=$6; if (v ~ /us$/) {sub(/us$/, "", v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} print v}') "
  done
done

declare -A ticks_before kernel_ticks_before
for system in nginx haproxy skiff; do
  ticks_before[$system]=$(skiff_cpu_ticks "${pid[$system]}")
  kernel_ticks_before[$system]=$(skiff_cpu_ticks "${pid[$system]}" system)
done
# CPU 0's idle ticks: how busy wrk and the upstream were during a run (at 100%, the
# client side sets the pace and its queueing shows in the latencies).
cpu0_idle() { awk '/^cpu0 / {print $5 + $6}' /proc/stat; }
declare -A busy
for _ in $(seq 1 "$runs"); do
  for system in direct nginx haproxy skiff; do
    idle_before=$(cpu0_idle)
    read -r r a b _ n < <(load "$system" 5s | skiff_wrk_summary)
    busy[$system]+="$(( 100 - ($(cpu0_idle) - idle_before) * 100 / (5 * $(getconf CLK_TCK)) )) "
    rps[$system]+="$r " p50[$system]+="$a " p99[$system]+="$b " requests[$system]=$(( ${requests[$system]:-0} + n ))
  done
done
# Latency at equal load: every proxy offered the same requests at the same times (open
# loop, skiff-load), at 50% and 80% of the slowest proxy's maximum above; latency counts
# from when each request was due, so a stall is not hidden by a client that waits.
slowest=$(for system in nginx haproxy skiff; do skiff_median "${rps[$system]}"; done | sort -g | head -1)
declare -A open_p50 open_p99 open_p999 open_errors open_late
for share in 50 80; do
  rate=$(echo "$slowest * $share / 100" | bc)
  for _ in $(seq 1 "$runs"); do
    for system in nginx haproxy skiff; do
      line=$(taskset -c 0 "$bin/skiff-load" http --rate "$rate" --connections 32 --duration 5 --warmup 1 \
        -H 'Host: bench.localhost' "http://127.0.0.1:${port[$system]}/")
      field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
      key="$system $share"
      open_p50[$key]+="$(field p50) " open_p99[$key]+="$(field p99) " open_p999[$key]+="$(field p999) "
      open_errors[$key]=$(( ${open_errors[$key]:-0} + $(field errors) )) open_late[$key]+="$(field client_late_p99) "
    done
  done
done

declare -A cpu kernel memory
# Microseconds per request from clock ticks.
per_request() { echo "scale=2; $1 * 1000000 / $(getconf CLK_TCK) / $2" | bc; }
for system in nginx haproxy skiff; do
  cpu[$system]=$(per_request $(( $(skiff_cpu_ticks "${pid[$system]}") - ticks_before[$system] )) "${requests[$system]}")
  kernel[$system]=$(per_request $(( $(skiff_cpu_ticks "${pid[$system]}" system) - kernel_ticks_before[$system] )) "${requests[$system]}")
done

# Memory with $idle idle keep-alive connections, each system's from its own source address:
# HTTP/1.1, then (once those are closed) HTTP/2 with prior knowledge.
declare -A h2memory
source=10
for system in nginx haproxy skiff; do
  source=$((source + 2))
  memory[$system]=$(( $(skiff_idle_memory "${port[$system]}" "$idle" "$source" "${pid[$system]}") / 1024 ))
  h2memory[$system]=$(( $(skiff_idle_memory "${h2port[$system]}" "$idle" $((source + 1)) "${pid[$system]}" h2) / 1024 ))
done

# Failed requests while the route changes every 100 ms.
python3 "$here/route_changes.py" feed 18099 bench.localhost 127.0.0.1:18090 127.0.0.1:18091 &
skiff_pids+=($!)
router 18085 18445 skiff-feed SKIFF_CONTROLLER_URL=http://127.0.0.1:18099 SKIFF_SERVICE_TOKEN=bench
port[skiff]=18085
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:18085/" -H 'Host: bench.localhost' && break; sleep 0.1; done
declare -A changes_failed changes_total
changing() {
  local system=$1
  read -r _ _ _ f n < <(load "$system" 5s | skiff_wrk_summary)
  changes_failed[$system]=$f changes_total[$system]=$n
}
changing skiff
proxy_conf 18091 >"$work/proxy/nginx-b.conf"
cp "$work/proxy/nginx.conf" "$work/proxy/nginx-a.conf"
(
  for n in $(seq 1 1000); do
    if [ $((n % 2)) -eq 1 ]; then cp "$work/proxy/nginx-b.conf" "$work/proxy/nginx.conf"; else cp "$work/proxy/nginx-a.conf" "$work/proxy/nginx.conf"; fi
    nginx -c "$work/proxy/nginx.conf" -p "$work/proxy/" -s reload 2>/dev/null || true
    sleep 0.1
  done
) &
reloads=$!
changing nginx
kill "$reloads" 2>/dev/null || true
wait "$reloads" 2>/dev/null || true
python3 "$here/route_changes.py" haproxy "$work/haproxy.sock" 127.0.0.1:18090 127.0.0.1:18091 &
switches=$!
changing haproxy
kill "$switches" 2>/dev/null || true

echo
echo "| router benchmark (wrk -t1 -c32, 12-byte page, median of $runs) | req/s | p50 | p99 | CPU 0 busy (wrk, upstream) | CPU per request (of it in the kernel) | memory, $idle idle connections | vs direct | skiff vs it | failed while routes change every 100 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
skiff=$(skiff_median "${rps[skiff]}")
direct=$(skiff_median "${rps[direct]}")
for system in direct nginx haproxy skiff; do
  r=$(skiff_median "${rps[$system]}")
  extra="| | |"
  [ "$system" = direct ] || extra="| ${cpu[$system]} µs (${kernel[$system]} µs) | ${memory[$system]} MiB (HTTP/2: ${h2memory[$system]} MiB) |"
  changes=""
  [ "$system" = direct ] || changes="${changes_failed[$system]} of ${changes_total[$system]}"
  echo "| $system | $(printf '%.0f' "$r") | $(skiff_median "${p50[$system]}") ms | $(skiff_median "${p99[$system]}") ms | $(skiff_median "${busy[$system]}")% $extra $(skiff_ratio "$r" "$direct")× | $(skiff_ratio "$skiff" "$r")× | $changes |"
done

echo
echo "| router benchmark, HTTP/2 (h2load -c32 -m10, h2c, median of $runs) | req/s | mean request time | skiff vs it |"
echo "|---|---|---|---|"
skiff=$(skiff_median "${h2rps[skiff]}")
for system in nginx haproxy skiff; do
  r=$(skiff_median "${h2rps[$system]}")
  echo "| $system | $(printf '%.0f' "$r") | $(skiff_median "${h2mean[$system]}") ms | $(skiff_ratio "$skiff" "$r")× |"
done

echo
echo "| router benchmark, latency at equal load (skiff-load, open loop, 32 connections, 5 s, median of $runs) | offered req/s | p50 | p99 | p99.9 | failed | client's own lateness, p99 |"
echo "|---|---|---|---|---|---|---|"
for share in 50 80; do
  for system in nginx haproxy skiff; do
    key="$system $share"
    echo "| $system at $share% of the slowest's maximum | $(echo "$slowest * $share / 100" | bc) | $(skiff_median "${open_p50[$key]}") ms | $(skiff_median "${open_p99[$key]}") ms | $(skiff_median "${open_p999[$key]}") ms | ${open_errors[$key]} | $(skiff_median "${open_late[$key]}") ms |"
  done
done
