#!/usr/bin/env bash
# The cluster: a real three-node swarm on this machine (deploy/swarm.sh), a platform with
# SKIFF_RUNTIME=swarm, and the router benchmark's upstream (a 12-byte page, static binary)
# deployed as `web=4`. Prints:
#
# - req/s through one router (one worker, on CPU 1) to the four replicas spread over three
#   nodes, and to the same four replicas on one node (the two workers drained);
# - the seconds from `skiff nodes:drain` to every container moved (and the requests that
#   failed meanwhile, under load);
# - the requests that failed while a node was lost under load (its engine killed, its link
#   cut), and the seconds until four replicas served again.
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
swarm="$work/swarm"
registry=10.250.0.1:18743
certs="/etc/docker/certs.d/$registry"
finish() {
  skiff_clean_up
  bash "$here/../swarm.sh" down "$swarm" || true
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
env SKIFF_DATA_DIR="$work/router" SKIFF_ROUTER_LISTEN=127.0.0.1:18480 SKIFF_ROUTER_TLS_LISTEN=127.0.0.1:18481 \
  SKIFF_ROUTER_THREADS=1 TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn SKIFF_ROUTER_ACCESS_LOG=false \
  SKIFF_CONTROLLER_URL="http://$SKIFF_CONTROLLER_LISTEN" SKIFF_SERVICE_TOKEN="$token" \
  taskset -c 1 "$bin/skiffd" router >"$work/router.log" 2>&1 &
skiff_pids+=($!)
url=http://127.0.0.1:18480/
for _ in $(seq 1 100); do curl -fs -o /dev/null "$url" -H 'Host: spread.localhost' && break; sleep 0.1; done
load() { taskset -c 0 wrk -t1 -c32 -d"$1" --latency -H 'Host: spread.localhost' "$url"; }
# Each running web container's node, as `skiff ps` names it.
placement() { "$skiff" ps -a spread | awk '$1 == "web" && /running/ {print $NF}' | sort | uniq -c | awk '{print $1 "×" $2}' | paste -sd' '; }
spread_placement=$(placement)

load 2s >/dev/null
spread_rps=""
for _ in $(seq 1 "$runs"); do spread_rps+="$(load 5s | skiff_wrk_summary | awk '{print $1}') "; done

# Drain both workers under load: seconds until every container moved.
node_id() { "$skiff" nodes | awk -v a="$1" '$3 == a {print $1}'; }
on_node() { "$skiff" ps -a spread | awk -v a="($1)" '$1 == "web" && /running/ && $NF == a' | wc -l; }
load 60s >"$work/drain.wrk" &
drain_load=$!
start=$(skiff_now_ms)
"$skiff" nodes:drain "$(node_id 10.250.0.2)" >/dev/null
"$skiff" nodes:drain "$(node_id 10.250.0.3)" >/dev/null
for _ in $(seq 1 1200); do
  [ "$(on_node 10.250.0.1)" = 4 ] && break
  sleep 0.1
done
drain_seconds=$(echo "scale=1; ($(skiff_now_ms) - start) / 1000" | bc)
kill -INT "$drain_load" 2>/dev/null || true
wait "$drain_load" || true
read -r _ _ _ drain_failed drain_total < <(skiff_wrk_summary <"$work/drain.wrk")
one_node_placement=$(placement)
load 2s >/dev/null
one_rps=""
for _ in $(seq 1 "$runs"); do one_rps+="$(load 5s | skiff_wrk_summary | awk '{print $1}') "; done

# Spread again, then lose node 3 under load.
"$skiff" nodes:activate "$(node_id 10.250.0.2)" >/dev/null
"$skiff" nodes:activate "$(node_id 10.250.0.3)" >/dev/null
"$skiff" ps:restart web -a spread >/dev/null
for _ in $(seq 1 600); do [ "$(on_node 10.250.0.3)" -ge 1 ] && [ "$(on_node 10.250.0.2)" -ge 1 ] && break; sleep 0.1; done
load 40s >"$work/lost.wrk" &
lost_load=$!
sleep 2
start=$(skiff_now_ms)
kill -9 "$(cat "$swarm/n3.pid")"
ip link set skv3 down
for _ in $(seq 1 1200); do
  running=$("$skiff" ps -a spread | awk '$1 == "web" && /running/' | wc -l)
  [ "$running" = 4 ] && [ "$(on_node 10.250.0.3)" = 0 ] && break
  sleep 0.1
done
recovered_seconds=$(echo "scale=1; ($(skiff_now_ms) - start) / 1000" | bc)
kill -INT "$lost_load" 2>/dev/null || true
wait "$lost_load" || true
read -r _ _ _ lost_failed lost_total < <(skiff_wrk_summary <"$work/lost.wrk")

echo
echo "| cluster (web=4 of a 12-byte page, one router on CPU 1, wrk -t1 -c32, median of $runs) | value |"
echo "|---|---|"
spread=$(skiff_median "$spread_rps")
one=$(skiff_median "$one_rps")
echo "| req/s, four replicas over three nodes ($spread_placement) | $(printf '%.0f' "$spread") |"
echo "| req/s, four replicas on one node ($one_node_placement) | $(printf '%.0f' "$one") ($(skiff_ratio "$spread" "$one")× spread vs one) |"
echo "| seconds from nodes:drain of two nodes to four replicas on the third | $drain_seconds ($drain_failed of $drain_total requests failed) |"
echo "| a node lost under load: failed requests | $lost_failed of $lost_total |"
echo "| a node lost: seconds until four replicas serve on the others | $recovered_seconds |"
