#!/usr/bin/env bash
# The deployed path: what an app deployed on Skiff gets from the router, against nginx set
# up the way Dokku sets it up, in one run. The app is the router benchmark's upstream
# (`router/examples/tiny_upstream.rs`, a 12-byte page) built static into a one-file image,
# deployed on a real platform (`skiff deploy --image` from the platform's registry) as a
# real container. Rows:
#
# - app alone: wrk straight to the container's address (the ceiling);
# - skiff: a router following the platform's route feed, reaching the container at its
#   address on its app's network (Skiff's default);
# - nginx: upstream = the same container's address, keepalive on (Dokku's layout);
# - skiff via published port: a router in front of a second container of the same image
#   reached through a port published on 127.0.0.1, as Skiff did before containers were
#   reached directly (Docker's userland proxy carries every request).
#
# Both proxies log every request: the routers send their access lines to the platform's
# logger (which files them in the app's log stream), nginx sends its access log over
# syslog to Debian's rsyslog, which writes it to a file. Each proxy runs alone on CPU 1
# with one worker; wrk, the app, the platform and rsyslog share CPU 0.
#
#   deploy/bench/deployed.sh BIN_DIR RUNS APP_BINARY
#
# BIN_DIR holds skiffd and skiff; APP_BINARY is tiny_upstream linked statically
# (deploy/bench/run.sh builds all three).
set -euo pipefail
bin=$1
runs=$2
app_binary=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing nginx:nginx wrk:wrk bc:bc rsyslogd:rsyslog

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"
skiff_bench_platform "$bin" "$work" 183
taskset -apc 0 "${skiff_pids[-1]}" >/dev/null
skiff="$bin/skiff"
registry=$SKIFF_REGISTRY_LISTEN

# The app's image: the one static binary, listening on $PORT's default (5000).
mkdir -p "$work/image"
cp "$app_binary" "$work/image/app"
image=$(tar -C "$work/image" -c . | docker import -c 'CMD ["/app", "0.0.0.0:5000"]' -)
skiff_images+=("$image")
"$skiff" apps:create deployed >/dev/null
docker_config="$work/docker"
docker --config "$docker_config" login -u bench -p bench-password "$registry" >/dev/null 2>&1
docker tag "$image" "$registry/deployed:v1"
docker --config "$docker_config" push -q "$registry/deployed:v1" >/dev/null
skiff_images+=("$registry/deployed:v1")
"$skiff" deploy -a deployed --image "$registry/deployed:v1" --wait >/dev/null
container=""
for _ in $(seq 1 300); do
  container=$(docker ps -q --filter label=skiff.app=deployed --filter label=skiff.process=web | head -1)
  [ -n "$container" ] && curl -fs -o /dev/null "http://$SKIFF_ROUTER_LISTEN/" -H 'Host: deployed.localhost' && break
  sleep 0.1
done
[ -n "$container" ] || { echo "deployed.sh: the app never came up" >&2; exit 1; }
docker update --cpuset-cpus 0 "$container" >/dev/null
address=$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$container"):5000

# The old path: the same image, its port published on 127.0.0.1.
published=$(docker run -d --cpuset-cpus 0 -p 127.0.0.1::5000 "$image")
skiff_containers+=("$published")
published_port=$(docker port "$published" 5000/tcp | head -1 | sed 's/.*://')

# Routers with one worker on CPU 1, logging every request to the platform's logger.
router() {
  local listen=$1 data=$2; shift 2
  env SKIFF_DATA_DIR="$work/$data" SKIFF_ROUTER_LISTEN="127.0.0.1:$listen" SKIFF_ROUTER_TLS_LISTEN="127.0.0.1:$((listen + 1))" \
    SKIFF_ROUTER_THREADS=1 TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=true \
    SKIFF_LOGGER_SYSLOG_LISTEN="$SKIFF_LOGGER_SYSLOG_LISTEN" "$@" taskset -c 1 "$bin/skiffd" router >"$work/$data.log" 2>&1 &
  skiff_pids+=($!)
  routers+=($!)
}
routers=()
token=$(cat "$SKIFF_DATA_DIR/service-token")
router 18360 router-direct SKIFF_CONTROLLER_URL="http://$SKIFF_CONTROLLER_LISTEN" SKIFF_SERVICE_TOKEN="$token"
router 18362 router-published SKIFF_ROUTER_ROUTES="deployed.localhost=127.0.0.1:$published_port"

# nginx's syslog: rsyslog writing every line to a file.
cat >"$work/rsyslog.conf" <<CONF
global(workDirectory="$work")
module(load="imudp")
template(name="line" type="string" string="%timegenerated:::date-rfc3339% %syslogtag%%msg%\n")
ruleset(name="access") { action(type="omfile" file="$work/nginx-access.log" template="line") }
input(type="imudp" address="127.0.0.1" port="18389" ruleset="access")
CONF
taskset -c 0 rsyslogd -n -f "$work/rsyslog.conf" -i "$work/rsyslog.pid" >"$work/rsyslog.log" 2>&1 &
skiff_pids+=($!)

# nginx as Dokku writes it: upstream = the container's address, keepalive, the usual
# forwarding headers, the access log to syslog.
mkdir -p "$work/nginx"/{logs,tmp}
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1; pid $work/nginx/nginx.pid; error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http { client_body_temp_path $work/nginx/tmp/b; proxy_temp_path $work/nginx/tmp/p; fastcgi_temp_path $work/nginx/tmp/f;
  uwsgi_temp_path $work/nginx/tmp/u; scgi_temp_path $work/nginx/tmp/s;
  access_log syslog:server=127.0.0.1:18389,tag=nginx combined;
  keepalive_requests 1000000;
  upstream deployed-5000 { server $address; keepalive 64; }
  server { listen 127.0.0.1:18384;
    location / { proxy_pass http://deployed-5000; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Port \$server_port;
      proxy_set_header X-Request-Start \$msec; proxy_set_header X-Request-Id \$request_id; } } }
CONF
taskset -c 1 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx/" -g 'daemon off;' &
skiff_pids+=($!)

declare -A url=([app]="http://$address/" [skiff]="http://127.0.0.1:18360/" [nginx]="http://127.0.0.1:18384/"
  [published]="http://127.0.0.1:18362/")
for system in app skiff nginx published; do
  for _ in $(seq 1 100); do curl -fs -o /dev/null "${url[$system]}" -H 'Host: deployed.localhost' && break; sleep 0.1; done
  curl -fs -o /dev/null "${url[$system]}" -H 'Host: deployed.localhost' || { echo "deployed.sh: $system does not answer" >&2; exit 1; }
done
# The routers measured are the ones started here (a port taken elsewhere stops them).
for pid in "${routers[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "deployed.sh: a router did not start" >&2; exit 1; }; done
load() { taskset -c 0 wrk -t1 -c32 -d"$2" --latency -H 'Host: deployed.localhost' "${url[$1]}"; }
for system in app skiff nginx published; do load "$system" 2s >/dev/null; done
declare -A rps p50 p99 failed
for _ in $(seq 1 "$runs"); do
  for system in app skiff nginx published; do
    read -r r a b f _ < <(load "$system" 5s | skiff_wrk_summary)
    rps[$system]+="$r " p50[$system]+="$a " p99[$system]+="$b " failed[$system]=$(( ${failed[$system]:-0} + f ))
  done
done

echo
echo "| deployed path (wrk -t1 -c32 to an app container, access logs on, median of $runs) | req/s | p50 | p99 | failed | skiff vs it |"
echo "|---|---|---|---|---|---|"
skiff_rps=$(skiff_median "${rps[skiff]}")
declare -A label=([app]="app alone (its address, no proxy)" [skiff]="skiff → the container's address"
  [nginx]="nginx (Dokku's layout) → the container's address" [published]="skiff → a port published on 127.0.0.1 (before)")
for system in app skiff nginx published; do
  r=$(skiff_median "${rps[$system]}")
  echo "| ${label[$system]} | $(printf '%.0f' "$r") | $(skiff_median "${p50[$system]}") ms | $(skiff_median "${p99[$system]}") ms | ${failed[$system]} | $(skiff_ratio "$skiff_rps" "$r")× |"
done
# Both kept their logs: the app's stream has the router's lines, rsyslog's file nginx's.
routed=$("$skiff" logs -a deployed --source router -n 5 | grep -c 'status=200' || true)
echo "(access lines: the app's log stream ends with $routed of 5 router lines with status=200; rsyslog wrote $(wc -l <"$work/nginx-access.log") nginx lines)"

