# Shared shell helpers for Skiff's scripts (sourced, not run).

# Installs missing Debian packages; arguments are "command:package" pairs (or
# "/path/of/a/file:package" for packages without a command).
skiff_install_missing() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -e "${pair%%:*}" ] || missing+=("${pair#*:}")
  done
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "skiff: missing packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "==> installing ${missing[*]}"
  apt-get update -qq
  # Packages that ship a service (prometheus, rsyslog) must not start it: Skiff's tests
  # start what they need themselves, on loopback.
  local no_services=false
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && no_services=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ! $no_services || rm -f /usr/sbin/policy-rc.d
}

# Makes sure a Docker engine answers, installing and starting one if there is none.
skiff_ensure_docker() {
  # Skiff runs containers with an init process (the engine's docker-init, from tini).
  command -v docker-init >/dev/null 2>&1 || skiff_install_missing tini:tini
  docker info >/dev/null 2>&1 && return 0
  if [ ! -S /var/run/docker.sock ]; then
    command -v dockerd >/dev/null 2>&1 || skiff_install_missing dockerd:docker.io docker:docker.io
    echo "==> starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/skiff-dockerd.log 2>&1 &
  fi
  local i
  for i in $(seq 1 150); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "skiff: the Docker engine did not come up; see /var/log/skiff-dockerd.log" >&2
  return 1
}

# Checks for a Rust toolchain new enough to build Skiff.
skiff_require_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "skiff: building needs Rust 1.89 or newer (cargo); install it with rustup" >&2
    return 1
  fi
}

# Waits until URL answers 2xx, for at most SECONDS (default 30).
skiff_wait_http() {
  local url=$1 limit=${2:-30} i
  for i in $(seq 1 $((limit * 10))); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A self-signed certificate for NAME, KIND ecdsa (P-256) or rsa (RSA-2048), valid two days:
# DIR/KIND.crt, DIR/KIND.key, and both in DIR/KIND.pem (as HAProxy takes them).
skiff_self_signed() {
  local dir=$1 kind=$2 name=$3 key
  if [ "$kind" = ecdsa ]; then key=(ec -pkeyopt ec_paramgen_curve:P-256); else key=(rsa:2048); fi
  openssl req -x509 -newkey "${key[@]}" -nodes -keyout "$dir/$kind.key" -out "$dir/$kind.crt" -subj "/CN=$name" \
    -addext "subjectAltName=DNS:$name" -addext "basicConstraints=critical,CA:FALSE" -days 2 2>/dev/null
  cat "$dir/$kind.crt" "$dir/$kind.key" >"$dir/$kind.pem"
}

# The median of a space-separated list of numbers.
skiff_median() {
  printf '%s\n' $1 | sort -g | sed -n "$(( ($(printf '%s\n' $1 | wc -l) + 1) / 2 ))p"
}

# A / B with two decimals and a leading zero (bc leaves it out below 1).
skiff_ratio() {
  printf '%.2f' "$(echo "scale=4; $1 / $2" | bc)"
}

# wrk's output (run with --latency) as "REQ/S P50_MS P99_MS FAILED REQUESTS", where FAILED
# counts answers other than 2xx/3xx and socket errors.
skiff_wrk_summary() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v }
      if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 }
      return v
    }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { requests = $1 }
    /Non-2xx or 3xx responses/ { failed += $NF }
    /Socket errors/ { gsub(/,/, ""); failed += $4 + $6 + $8 + $10 }
    END { printf "%d %.2f %.2f %d %d\n", rps, p50, p99, failed, requests }'
}

# CPU time (in clock ticks) used so far by process PID and its children: user + system,
# or with a second argument `system`, only the time spent in the kernel on their behalf.
skiff_cpu_ticks() {
  local pid fields='$14 + $15'
  [ "${2:-}" != system ] || fields='$15'
  for pid in $1 $(pgrep -P "$1" || true); do
    awk "{print $fields}" "/proc/$pid/stat" 2>/dev/null || true
  done | awk '{s += $1} END {print s + 0}'
}

# Resident memory (KiB) of a process and its children.
skiff_rss() {
  local pid
  for pid in $1 $(pgrep -P "$1" || true); do
    awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true
  done | awk '{s += $1} END {print s + 0}'
}

# The resident memory (KiB) of PID and its children while COUNT idle connections to
# 127.0.0.1:PORT are held open from 127.0.0.SOURCE, each after one request
# (deploy/bench/idle_connections.py, given the further arguments: h2, or tls CA_FILE);
# fails when they are not all taken.
skiff_idle_memory() {
  local port=$1 count=$2 source=$3 pid=$4 dir holder hold kib
  shift 4
  dir=$(mktemp -d)
  mkfifo "$dir/hold"
  taskset -c 0 python3 "$(dirname "${BASH_SOURCE[0]}")/bench/idle_connections.py" "$port" "$count" \
    "127.0.0.$source" "$@" <"$dir/hold" >"$dir/out" &
  holder=$!
  exec {hold}>"$dir/hold"
  for _ in $(seq 1 600); do
    grep -q ready "$dir/out" 2>/dev/null && break
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q ready "$dir/out"; then
    echo "could not hold $count idle connections to port $port ($*): $(cat "$dir/out")" >&2
    exec {hold}>&-
    rm -rf "$dir"
    return 1
  fi
  kib=$(skiff_rss "$pid")
  exec {hold}>&-
  wait "$holder" || true
  rm -rf "$dir"
  echo "$kib"
}

# Milliseconds since the epoch.
skiff_now_ms() {
  echo $(( $(date +%s%N) / 1000000 ))
}

# Starts a private Postgres server on 127.0.0.1:PORT (default 25432) with its data in DIR,
# installing the server if needed; prints the URL of its `postgres` database. Stop it with
# `skiff_stop_postgres DIR`.
skiff_start_postgres() {
  local dir=$1 port=${2:-25432} bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
    skiff_install_missing pg_ctlcluster:postgresql >&2
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  mkdir -p "$dir"
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" --auth=trust -U skiff >/dev/null
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null; then
    echo "skiff: Postgres did not start on 127.0.0.1:$port (is the port in use?); its log:" >&2
    tail -n 20 "$dir/log" >&2 || true
    return 1
  fi
  echo "postgres://skiff@127.0.0.1:$port/postgres"
}

skiff_stop_postgres() {
  local dir=$1 bin as=()
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
  [ -n "$bin" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
}

# Starts a private Redis server on 127.0.0.1:PORT (default 26379) with its files in DIR,
# installing it if needed; prints its URL. Stop it with `skiff_stop_redis DIR`.
skiff_start_redis() {
  local dir=$1 port=${2:-26379}
  command -v redis-server >/dev/null 2>&1 || skiff_install_missing redis-server:redis-server >&2
  mkdir -p "$dir"
  if ! redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null; then
    echo "skiff: Redis did not start on 127.0.0.1:$port ($dir/redis.log says why)" >&2
    return 1
  fi
  local _
  for _ in $(seq 1 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && { echo "redis://127.0.0.1:$port/"; return 0; }
    sleep 0.1
  done
  echo "skiff: Redis did not answer on 127.0.0.1:$port ($dir/redis.log says why)" >&2
  return 1
}

skiff_stop_redis() {
  local dir=$1
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
}

# Starts a private S3-compatible server (moto's, installed from PyPI if needed) on
# 127.0.0.1:PORT (default 25900) with its log in DIR; prints its endpoint. Stop it with
# `skiff_stop_s3 DIR`.
skiff_start_s3() {
  local dir=$1 port=${2:-25900} _
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "==> installing moto (an S3-compatible server) from PyPI" >&2
    python3 -m pip install --quiet 'moto[server]' >&2
  fi
  mkdir -p "$dir"
  moto_server -H 127.0.0.1 -p "$port" >"$dir/s3.log" 2>&1 &
  echo $! >"$dir/s3.pid"
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && { echo "http://127.0.0.1:$port"; return 0; }
    sleep 0.1
  done
  echo "skiff: the S3 server did not answer on 127.0.0.1:$port within 30 s; its log:" >&2
  cat "$dir/s3.log" >&2
  return 1
}

skiff_stop_s3() {
  local dir=$1
  [ -f "$dir/s3.pid" ] && kill "$(cat "$dir/s3.pid")" 2>/dev/null || true
}

# What a script started: background processes, Skiff data directories (whose platforms'
# containers and networks are removed), Postgres directories, and containers and images
# of its own. `skiff_clean_up_on_exit WORK` stops them all and removes WORK when the
# script ends.
skiff_pids=()
skiff_data_dirs=()
skiff_postgres_dirs=()
skiff_containers=()
skiff_images=()
skiff_clean_up_on_exit() {
  skiff_work=$1
  trap skiff_clean_up EXIT
}
skiff_clean_up() {
  local pid dir ids label
  for pid in "${skiff_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for dir in "${skiff_data_dirs[@]}"; do
    label="label=skiff.platform=$(cat "$dir/platform-id" 2>/dev/null || echo none)"
    ids=$(docker ps -aq --filter "$label")
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    docker network prune -f --filter "$label" >/dev/null
  done
  [ "${#skiff_containers[@]}" -eq 0 ] || docker rm -f "${skiff_containers[@]}" >/dev/null 2>&1 || true
  [ "${#skiff_images[@]}" -eq 0 ] || docker rmi -f "${skiff_images[@]}" >/dev/null 2>&1 || true
  for dir in "${skiff_postgres_dirs[@]}"; do skiff_stop_postgres "$dir" && rm -rf "$dir"; done
  rm -rf "$skiff_work"
}

# Starts `skiffd all` from BIN with its data in DIR, on 127.0.0.1 ports PREFIX00
# (controller), PREFIX01 (registry), PREFIX02 (logger), PREFIX03 and PREFIX04 (syslog, and
# over TLS), PREFIX05 (builder), PREFIX80 and PREFIX43 (router, and HTTPS); registers a
# user, adds an SSH key and imports the busybox stack. Exports the SKIFF_* settings and
# GIT_SSH_COMMAND, so that `skiff` and `git push skiff` reach it. Needs
# `skiff_clean_up_on_exit`.
skiff_bench_platform() {
  local bin=$1 dir=$2 p=$3
  export SKIFF_DATA_DIR="$dir/data" XDG_CONFIG_HOME="$dir/config"
  export SKIFF_CONTROLLER_LISTEN=127.0.0.1:${p}00 SKIFF_REGISTRY_LISTEN=127.0.0.1:${p}01 \
    SKIFF_LOGGER_LISTEN=127.0.0.1:${p}02 SKIFF_LOGGER_SYSLOG_LISTEN=127.0.0.1:${p}03 \
    SKIFF_LOGGER_SYSLOG_TLS_LISTEN=127.0.0.1:${p}04 SKIFF_BUILDER_LISTEN=127.0.0.1:${p}05 \
    SKIFF_ROUTER_LISTEN=127.0.0.1:${p}80 SKIFF_ROUTER_TLS_LISTEN=127.0.0.1:${p}43
  mkdir -p "$SKIFF_DATA_DIR"
  skiff_data_dirs+=("$SKIFF_DATA_DIR")
  "$bin/skiffd" all >"$dir/skiffd.log" 2>&1 &
  skiff_pids+=($!)
  skiff_wait_http "http://$SKIFF_CONTROLLER_LISTEN/healthz" 30
  "$bin/skiff" auth:register --url "http://$SKIFF_CONTROLLER_LISTEN" -u bench -p bench-password >/dev/null
  ssh-keygen -q -t ed25519 -N '' -f "$dir/key"
  "$bin/skiff" keys:add "$dir/key.pub" >/dev/null
  SKIFF="$bin/skiff" "$(dirname "${BASH_SOURCE[0]}")/stacks/busybox.sh" busybox >/dev/null
  export GIT_SSH_COMMAND="ssh -i $dir/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
}
