#!/usr/bin/env bash
# The cluster: a real three-node swarm on this machine (deploy/swarm.sh), a platform with
# SKIFF_RUNTIME=swarm, and the router benchmark's upstream (a 12-byte page, static binary)
# deployed as `web=4`. Prints:
#
# - req/s through one router (one worker, on CPU 1) to the four replicas spread over three
#   nodes, and to the same four replicas on one node (the two workers drained);
# - the seconds from `skiff nodes:drain` to every container moved (and the requests that
#   failed meanwhile, under a steady load of sequential requests);
# - the requests that failed while a node was lost under that load (its engine killed, its
#   link cut), and the seconds until four replicas served again.
#
#   deploy/bench/cluster.sh BIN_DIR RUNS APP_BINARY
#
# Runs as root (network namespaces); leaves no swarm behind.
set -euo pipefail
bin=$1
runs=$2
app_binary=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing wrk:wrk bc:bc ip:iproute2 nsenter:util-linux

work=$(mktemp -d)
swarm=$(mktemp -d)
registry=10.250.0.1:18743
certs="/etc/docker/certs.d/$registry"
# The swarm goes first (its engines hold mounts under its directory), then the platform.
finish() {
  bash "$here/../swarm.sh" down "$swarm" || true
  skiff_clean_up
  rm -rf "$certs"
}
trap finish EXIT
skiff_work=$work
if docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active; then
  echo "cluster.sh: this host's engine is in a swarm already; leave it first" >&2
  exit 1
fi
bash "$here/../swarm.sh" up "$swarm" >/dev/null
export SKIFF_RUNTIME=swarm SKIFF_REGISTRY_TLS_LISTEN=$registry SKIFF_REGISTRY_ADDRESS=$registry
skiff_bench_platform "$bin" "$work" 184
taskset -apc 0 "${skiff_pids[-1]}" >/dev/null
mkdir -p "$certs" && cp "$SKIFF_DATA_DIR/router/ca.crt" "$certs/ca.crt"
skiff="$bin/skiff"

# The app: one static binary answering on $PORT's default, 5000.
mkdir -p "$work/image"
cp "$app_binary" "$work/image/app"
image=$(tar -C "$work/image" -c . | docker import -c 'CMD ["/app", "0.0.0.0:5000"]' -)
skiff_images+=("$image")
"$skiff" apps:create spread >/dev/null
docker --config "$work/docker" login -u bench -p bench-password "$registry" >/dev/null 2>&1
docker tag "$image" "$registry/spread:v1"
docker --config "$work/docker" push -q "$registry/spread:v1" >/dev/null
skiff_images+=("$registry/spread:v1")
"$skiff" deploy -a spread --image "$registry/spread:v1" --wait >/dev/null
"$skiff" ps:scale web=4 -a spread --wait >/dev/null

# One router with one worker on CPU 1, following the platform's routes.
token=$(cat "$SKIFF_DATA_DIR/service-token")
env SKIFF_DATA_DIR="$work/router" SKIFF_ROUTER_LISTEN=127.0.0.1:18460 SKIFF_ROUTER_TLS_LISTEN=127.0.0.1:18461 \
  SKIFF_ROUTER_THREADS=1 TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=false \
  SKIFF_CONTROLLER_URL="http://$SKIFF_CONTROLLER_LISTEN" SKIFF_SERVICE_TOKEN="$token" \
  taskset -c 1 "$bin/skiffd" router >"$work/router.log" 2>&1 &
skiff_pids+=($!)
router_pid=$!
url=http://127.0.0.1:18460/
for _ in $(seq 1 100); do curl -fs -o /dev/null "$url" -H 'Host: spread.localhost' && break; sleep 0.1; done
kill -0 "$router_pid" 2>/dev/null || { echo "cluster.sh: the router did not start: $(tail -3 "$work/router.log")" >&2; exit 1; }
load() { taskset -c 0 wrk -t1 -c32 -d"$1" --latency -H 'Host: spread.localhost' "$url"; }
# Each running web container's node, as `skiff ps` names it.
placement() { "$skiff" ps -a spread | awk '$1 == "web" && /running/ {gsub(/[()]/, "", $NF); print $NF}' | sort | uniq -c | awk '{print $1 " on " $2}' | paste -sd',' | sed 's/,/, /g'; }
spread_placement=$(placement)

load 2s >/dev/null
spread_rps=""
for _ in $(seq 1 "$runs"); do spread_rps+="$(load 5s | skiff_wrk_summary | awk '{print $1}') "; done

# A steady load beside the operations: sequential requests (curl), each answer's status
# in FILE, until STOP exists.
steady() {
  local file=$1 stop=$2
  while [ ! -e "$stop" ]; do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 -H 'Host: spread.localhost' "$url" >>"$file" || echo 000 >>"$file"
  done
}
# "FAILED of TOTAL" in a steady load's file.
# "N of M", and the failed answers by status (000: no answer within curl's 5 s).
tally() {
  local failed codes
  failed=$(grep -vc '^200$' "$1" || true)
  codes=$(grep -v '^200$' "$1" | sort | uniq -c | awk '{printf "%s%s ×%s", sep, $2, $1; sep=", "}')
  echo "$failed of $(wc -l <"$1")${codes:+ ($codes)}"
}
running_web() { "$skiff" ps -a spread | awk '$1 == "web" && /running/' | wc -l; }

# Drain both workers: seconds until every container moved.
node_id() { "$skiff" nodes | awk -v a="$1" '$3 == a {print $1}'; }
on_node() { "$skiff" ps -a spread | awk -v a="($1)" '$1 == "web" && /running/ && $NF == a' | wc -l; }
steady "$work/drain.codes" "$work/drain.stop" &
drain_load=$!
start=$(skiff_now_ms)
"$skiff" nodes:drain "$(node_id 10.250.0.2)" >/dev/null
"$skiff" nodes:drain "$(node_id 10.250.0.3)" >/dev/null
for _ in $(seq 1 1200); do
  [ "$(on_node 10.250.0.1)" = 4 ] && [ "$(running_web)" = 4 ] && break
  sleep 0.1
done
drain_seconds=$(echo "scale=1; ($(skiff_now_ms) - $start) / 1000" | bc)
touch "$work/drain.stop"
wait "$drain_load" || true
drain_failed=$(tally "$work/drain.codes")
one_node_placement=$(placement)
load 2s >/dev/null
one_rps=""
for _ in $(seq 1 "$runs"); do one_rps+="$(load 5s | skiff_wrk_summary | awk '{print $1}') "; done

# Spread again, then lose node 3.
"$skiff" nodes:activate "$(node_id 10.250.0.2)" >/dev/null
"$skiff" nodes:activate "$(node_id 10.250.0.3)" >/dev/null
"$skiff" ps:restart web -a spread >/dev/null
for _ in $(seq 1 600); do
  [ "$(on_node 10.250.0.3)" -ge 1 ] && [ "$(on_node 10.250.0.2)" -ge 1 ] && [ "$(running_web)" = 4 ] && break
  sleep 0.1
done
steady "$work/lost.codes" "$work/lost.stop" &
lost_load=$!
sleep 2
start=$(skiff_now_ms)
kill -9 "$(cat "$swarm/n3.pid")"
ip link set skv3 down
for _ in $(seq 1 1200); do
  [ "$(running_web)" = 4 ] && [ "$(on_node 10.250.0.3)" = 0 ] && break
  sleep 0.1
done
recovered_seconds=$(echo "scale=1; ($(skiff_now_ms) - $start) / 1000" | bc)
sleep 2
touch "$work/lost.stop"
wait "$lost_load" || true
lost_failed=$(tally "$work/lost.codes")

echo
echo "| cluster (web=4 of a 12-byte page, one router on CPU 1, wrk -t1 -c32, median of $runs) | value |"
echo "|---|---|"
spread=$(skiff_median "$spread_rps")
one=$(skiff_median "$one_rps")
echo "| req/s, four replicas over three nodes ($spread_placement) | $(printf '%.0f' "$spread") |"
echo "| req/s, four replicas on one node ($one_node_placement) | $(printf '%.0f' "$one") ($(skiff_ratio "$spread" "$one")× spread vs one) |"
echo "| seconds from nodes:drain of two nodes to four replicas on the third; requests failed meanwhile (sequential) | $drain_seconds; $drain_failed |"
echo "| a node lost (engine killed, link cut): seconds until four replicas serve on the others; requests failed (sequential) | $recovered_seconds; $lost_failed |"
