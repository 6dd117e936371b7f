#!/usr/bin/env bash
# Controller benchmark, in two parts. Prints table rows for run.sh.
#
# 1. The API with 1,000 apps and 10,000 releases, on SQLite and on Postgres: wrk against
#    `GET /v2/apps/{app}` (a random app per request) and against a config change (each one
#    makes a release), req/s and p99. The controller runs alone with SKIFF_RUNTIME=memory
#    and the apps scaled to no containers, so this measures the API and the database.
# 2. On the Docker engine, the example app pushed over git: the time to scale it from 0 to
#    20 serving containers (all routed) and back to 0 (none routed; containers gone after
#    their drain period), and 20 consecutive rollouts (config changes, each waiting for
#    its release to be up) of 2 web containers under wrk at a constant rate through the
#    router, counting every failed request (non-2xx and socket errors).
#
#   deploy/bench/controller.sh BIN_DIR RUNS
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing wrk:wrk curl:curl python3:python3

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"
apps=1000
releases=10000

# A JSON field of standard input.
field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

api_part() {
  local backend=$1 database=$2 dir="$work/api-$1" url=http://127.0.0.1:17800 token
  mkdir -p "$dir"
  SKIFF_DATA_DIR="$dir" SKIFF_DATABASE_URL="$database" SKIFF_RUNTIME=memory SKIFF_LOG=warn SKIFF_ALLOWED_REGISTRIES=docker.io \
    SKIFF_CONTROLLER_LISTEN=127.0.0.1:17800 SKIFF_LOGGER_SYSLOG_LISTEN=127.0.0.1:17899 \
    SKIFF_REGISTRY_URL=http://127.0.0.1:17898 SKIFF_GC_INTERVAL=86400 \
    "$bin/skiffd" controller >"$dir/skiffd.log" 2>&1 &
  local pid=$!
  skiff_pids+=("$pid")
  skiff_wait_http "$url/healthz" 30
  token=$(curl -fsS -H 'Content-Type: application/json' -d '{"username":"bench","password":"bench-password"}' \
    "$url/v2/auth/register" | field '["token"]')
  local seeded_at
  seeded_at=$(skiff_now_ms)
  python3 "$here/controller_seed.py" "$url" "$token" "$apps" "$releases" >/dev/null
  echo "| controller on $backend: seeding $apps apps, $releases releases through the API | $(( ($(skiff_now_ms) - seeded_at) / 1000 )) s | | | 1 |"
  cat >"$dir/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
request = function() return wrk.format("GET", string.format("/v2/apps/bench%04d", math.random(0, $apps - 1))) end
LUA
  cat >"$dir/change.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format("PATCH", string.format("/v2/apps/bench%04d/config", math.random(0, $apps - 1)), nil, '{"BENCH":"' .. n .. '"}')
end
LUA
  local kind out
  declare -A rps=() p99=() failed=()
  for kind in get change; do
    wrk -t1 -c8 -d1s -s "$dir/$kind.lua" "$url" >/dev/null
    for _ in $(seq 1 "$runs"); do
      read -r r _ p f _ < <(wrk -t1 -c8 -d5s --latency -s "$dir/$kind.lua" "$url" | skiff_wrk_summary)
      rps[$kind]+="$r " p99[$kind]+="$p " failed[$kind]=$(( ${failed[$kind]:-0} + f ))
    done
  done
  local count
  count=$(curl -fsS -H "Authorization: Bearer $token" "$url/v2/apps/bench0000/releases" | field '[0]["version"]')
  echo "| controller on $backend: GET /v2/apps/{app}, req/s (p99) | $(skiff_median "${rps[get]}") ($(skiff_median "${p99[get]}") ms) | | | $runs |"
  echo "| controller on $backend: config change (a new release), req/s (p99) | $(skiff_median "${rps[change]}") ($(skiff_median "${p99[change]}") ms) | | | $runs |"
  echo "| controller on $backend: failed requests; bench0000 is at release | ${failed[get]} + ${failed[change]}; v$count | | | $runs |"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

api_part SQLite "sqlite://$work/api-sqlite.db?mode=rwc"
# Its own directory: the server runs as the postgres user, who cannot enter $work.
pg=$(mktemp -d)
skiff_postgres_dirs+=("$pg")
api_part Postgres "$(skiff_start_postgres "$pg" 25510)"

# Part 2: the whole platform on the Docker engine.
skiff_ensure_docker
export SKIFF_DRAIN_SECONDS=${SKIFF_DRAIN_SECONDS:-5}
mkdir -p "$work/platform"
skiff_bench_platform "$bin" "$work/platform" 176
app=roll
repo="$work/$app"
cp -r "$here/../example" "$repo"
git -C "$repo" init -q -b main && git -C "$repo" add -A
git -C "$repo" -c user.name=b -c user.email=b@localhost commit -qm first
(cd "$repo" && "$bin/skiff" apps:create "$app" >/dev/null && git push -q skiff main 2>/dev/null)
service_token=$(cat "$SKIFF_DATA_DIR/service-token")
# The app's routed backends, as the route feed says.
backends() {
  curl -fsS -H "Authorization: Bearer $service_token" "http://$SKIFF_CONTROLLER_LISTEN/v2/routes" |
    python3 -c "import json, sys; print(sum(len(r['backends']) for r in json.load(sys.stdin)['routes'] if r['app'] == '$app'))"
}
containers() { docker ps -q --filter "label=skiff.platform=$(cat "$SKIFF_DATA_DIR/platform-id")" --filter "label=skiff.app=$app" | wc -l; }
# Milliseconds until CHECK prints WANT (at most 120 s).
until_ms() {
  local want=$1 start=$2; shift 2
  for _ in $(seq 1 1200); do
    [ "$("$@")" = "$want" ] && { echo $(( $(skiff_now_ms) - start )); return 0; }
    sleep 0.1
  done
  echo "controller.sh: $* never reached $want" >&2
  return 1
}
until_ms 1 "$(skiff_now_ms)" backends >/dev/null
up=() routed_out=() gone=()
for _ in $(seq 1 "$runs"); do
  (cd "$repo" && "$bin/skiff" ps:scale web=0 >/dev/null)
  until_ms 0 "$(skiff_now_ms)" containers >/dev/null
  start=$(skiff_now_ms)
  (cd "$repo" && "$bin/skiff" ps:scale web=20 >/dev/null)
  up+=("$(until_ms 20 "$start" backends)")
  start=$(skiff_now_ms)
  (cd "$repo" && "$bin/skiff" ps:scale web=0 >/dev/null)
  routed_out+=("$(until_ms 0 "$start" backends)")
  gone+=("$(until_ms 0 "$start" containers)")
done
echo "| scale 0 → 20 web containers, all routed (Docker) | $(skiff_median "${up[*]}") ms | | | $runs |"
echo "| scale 20 → 0: none routed; containers gone (drain period $SKIFF_DRAIN_SECONDS s) | $(skiff_median "${routed_out[*]}") ms; $(skiff_median "${gone[*]}") ms | | | $runs |"

(cd "$repo" && "$bin/skiff" ps:scale web=2 >/dev/null)
until_ms 2 "$(skiff_now_ms)" backends >/dev/null
# Four connections, each sending a request every 10 ms: 400 requests a second.
cat >"$work/steady.lua" <<'LUA'
wrk.headers["Host"] = "roll.localhost"
delay = function() return 10 end
LUA
(
  for round in $(seq 1 20); do
    (cd "$repo" && "$bin/skiff" config:set "ROUND=$round" --wait >/dev/null 2>&1)
  done
) &
rollouts=$!
rollout_start=$(skiff_now_ms)
total=0 failed=0
while kill -0 "$rollouts" 2>/dev/null; do
  read -r _ _ _ f n < <(wrk -t1 -c4 -d3s --latency -s "$work/steady.lua" "http://$SKIFF_ROUTER_LISTEN/" | skiff_wrk_summary)
  total=$(( total + n )) failed=$(( failed + f ))
done
wait "$rollouts"
seconds=$(( ($(skiff_now_ms) - rollout_start) / 1000 ))
echo "| 20 rollouts of 2 web containers under 400 req/s through the router: failed requests | $failed of $total (${seconds} s) | | | 1 |"
