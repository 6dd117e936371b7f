#!/usr/bin/env bash
# Push-to-first-200: the time from starting `git push` to the first 200 through the router
# that serves the pushed content. Prints table rows for run.sh.
#
#   deploy/bench/push.sh BIN_DIR RUNS
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

work=$(mktemp -d)
export SKIFF_DATA_DIR="$work/data" XDG_CONFIG_HOME="$work/config"
export SKIFF_CONTROLLER_LISTEN=127.0.0.1:17700 SKIFF_REGISTRY_LISTEN=127.0.0.1:17701 \
  SKIFF_LOGGER_LISTEN=127.0.0.1:17702 SKIFF_LOGGER_SYSLOG_LISTEN=127.0.0.1:17514 \
  SKIFF_BUILDER_LISTEN=127.0.0.1:12222 SKIFF_ROUTER_LISTEN=127.0.0.1:18080
mkdir -p "$SKIFF_DATA_DIR"
"$bin/skiffd" all >"$work/skiffd.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ids=$(docker ps -aq --filter "label=skiff.platform=$(cat "$SKIFF_DATA_DIR/platform-id" 2>/dev/null || echo none)")
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
skiff_wait_http http://127.0.0.1:17700/healthz 30
skiff="$bin/skiff"
"$skiff" auth:register --url http://127.0.0.1:17700 -u bench -p bench-password >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
"$skiff" keys:add "$work/key.pub" >/dev/null
SKIFF="$skiff" "$here/../stacks/busybox.sh" busybox >/dev/null
export GIT_SSH_COMMAND="ssh -i $work/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

# Times a push until the router serves a body containing MARKER; prints milliseconds.
push_until_served() {
  local app=$1 marker=$2 start i
  start=$(skiff_now_ms)
  git push -q skiff main 2>/dev/null
  for i in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:18080/" -H "Host: $app.localhost" 2>/dev/null | grep -q "$marker"; then
      echo $(( $(skiff_now_ms) - start ))
      return 0
    fi
    sleep 0.02
  done
  echo "push.sh: $app never served $marker" >&2
  return 1
}

first=() second=()
for n in $(seq 1 "$runs"); do
  app="bench-$n"
  repo="$work/$app"
  cp -r "$here/../example" "$repo"
  echo "<p>run $n first</p>" >>"$repo/public/index.html"
  git -C "$repo" init -q -b main && git -C "$repo" add -A
  git -C "$repo" -c user.name=b -c user.email=b@localhost commit -qm first
  (cd "$repo" && "$skiff" apps:create "$app" >/dev/null)
  first+=("$(cd "$repo" && push_until_served "$app" "run $n first")")
  echo "<p>run $n second</p>" >>"$repo/public/index.html"
  git -C "$repo" -c user.name=b -c user.email=b@localhost commit -qam second
  second+=("$(cd "$repo" && push_until_served "$app" "run $n second")")
done

row() {
  local name=$1; shift
  local sorted
  sorted=$(printf '%s\n' "$@" | sort -n)
  local count=$# median min max
  median=$(echo "$sorted" | sed -n "$(( (count + 1) / 2 ))p")
  min=$(echo "$sorted" | head -1)
  max=$(echo "$sorted" | tail -1)
  echo "| $name | ${median} ms | ${min} ms | ${max} ms | $count |"
}
row "push-to-first-200, first push (busybox example)" "${first[@]}"
row "push-to-first-200, second push, one file changed" "${second[@]}"
