#!/usr/bin/env bash
# Push-to-first-200: the time from starting `git push` to the first 200 through the router
# that serves the pushed content, with the time of every stage (read off the push's
# `remote:` lines as they arrive), beside a minimal baseline in the same run: the real
# OpenSSH server, a bare repository and a pre-receive hook that only reads the updates.
# The first and second pushes follow each other at once (the engine may still be starting
# the app's warm container); two more rows leave two seconds before the push, as a
# developer would: after `apps:create`, and after the last deploy.
# Then promote-to-first-200: `skiff pipelines:promote` of the pushed build to a production
# app of the same pipeline (no build) until that app serves it.
# Prints table rows for run.sh.
#
#   deploy/bench/push.sh BIN_DIR RUNS
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"
skiff_bench_platform "$bin" "$work" 177
skiff="$bin/skiff"

# Times a push until the router serves a body containing MARKER; prints the milliseconds
# from the start to the end of each stage: SSH + receive, build, image push, release,
# container start + healthy, routed.
push_until_served() {
  local app=$1 marker=$2 start i log
  log=$(mktemp -p "$work")
  start=$(skiff_now_ms)
  # Each line of the push, stamped with its arrival in milliseconds.
  git push --progress skiff main 2>&1 | perl -MTime::HiRes=time -ne 'printf("%d %s", time() * 1000, $_)' >"$log"
  for i in $(seq 1 600); do
    if curl -fsS "http://$SKIFF_ROUTER_LISTEN/" -H "Host: $app.localhost" 2>/dev/null | grep -q "$marker"; then
      local routed
      routed=$(( $(skiff_now_ms) - start ))
      at() { awk -v start="$start" -v pattern="$1" 'index($0, pattern) { print $1 - start; exit }' "$log"; }
      echo "$(at '-----> Building') $(at 'Compressed app layer') $(at 'Pushed image') $(at 'Released v') $(at ' is up in') $routed"
      return 0
    fi
    sleep 0.02
  done
  echo "push.sh: $app never served $marker" >&2
  return 1
}

# The baseline: OpenSSH's sshd on loopback, a bare repository, a hook that only reads.
if ! command -v sshd >/dev/null 2>&1; then
  # Installed without letting the package start a system sshd: the baseline runs its own.
  guard=/usr/sbin/policy-rc.d
  if [ ! -e "$guard" ] && [ "$(id -u)" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$guard" && chmod +x "$guard"
    skiff_install_missing sshd:openssh-server
    rm -f "$guard"
  else
    skiff_install_missing sshd:openssh-server
  fi
fi
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host_key"
cp "$work/key.pub" "$work/authorized_keys"
cat >"$work/sshd_config" <<CONF
ListenAddress 127.0.0.1:12022
HostKey $work/sshd_host_key
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
CONF
"$(command -v sshd)" -f "$work/sshd_config" -D -e 2>"$work/sshd.log" &
skiff_pids+=($!)
baseline_push() {
  local n=$1 start bare="$work/baseline-$1.git"
  git init -q --bare "$bare"
  printf '#!/bin/sh\ncat >/dev/null\n' >"$bare/hooks/pre-receive" && chmod +x "$bare/hooks/pre-receive"
  start=$(skiff_now_ms)
  git push -q "ssh://$(id -un)@127.0.0.1:12022$bare" main 2>/dev/null
  echo $(( $(skiff_now_ms) - start ))
}

# Times `pipelines:promote` of APP's build until PROD serves a body containing MARKER.
promote_until_served() {
  local app=$1 prod=$2 marker=$3 start i
  start=$(skiff_now_ms)
  "$skiff" pipelines:promote -a "$app" >/dev/null
  for i in $(seq 1 600); do
    if curl -fsS "http://$SKIFF_ROUTER_LISTEN/" -H "Host: $prod.localhost" 2>/dev/null | grep -q "$marker"; then
      echo $(( $(skiff_now_ms) - start ))
      return 0
    fi
    sleep 0.02
  done
  echo "push.sh: $prod never served $marker" >&2
  return 1
}

# A repository of the example app at REPO whose page says MARKER, committed, and its app.
example_app() {
  local repo=$1 marker=$2 app
  app=$(basename "$repo")
  cp -r "$here/../example" "$repo"
  echo "<p>$marker</p>" >>"$repo/public/index.html"
  git -C "$repo" init -q -b main && git -C "$repo" add -A
  git -C "$repo" -c user.name=b -c user.email=b@localhost commit -qm first
  (cd "$repo" && "$skiff" apps:create "$app" >/dev/null)
}

first=() second=() paused_first=() paused=() baseline=() promoted=()
declare -a stages_first=() stages_second=() stages_paused=()
for n in $(seq 1 "$runs"); do
  app="bench-$n"
  repo="$work/$app"
  example_app "$repo" "run $n first"
  stages=$(cd "$repo" && push_until_served "$app" "run $n first")
  stages_first+=("$stages")
  first+=("${stages##* }")
  echo "<p>run $n second</p>" >>"$repo/public/index.html"
  git -C "$repo" -c user.name=b -c user.email=b@localhost commit -qam second
  stages=$(cd "$repo" && push_until_served "$app" "run $n second")
  stages_second+=("$stages")
  second+=("${stages##* }")
  # As a developer pushes: a few seconds after the last deploy, after making the app.
  sleep 2
  echo "<p>run $n third</p>" >>"$repo/public/index.html"
  git -C "$repo" -c user.name=b -c user.email=b@localhost commit -qam third
  stages=$(cd "$repo" && push_until_served "$app" "run $n third")
  stages_paused+=("$stages")
  paused+=("${stages##* }")
  paused_repo="$work/$app-paused"
  example_app "$paused_repo" "run $n paused"
  sleep 2
  stages=$(cd "$paused_repo" && push_until_served "$app-paused" "run $n paused")
  paused_first+=("${stages##* }")
  baseline+=("$(cd "$repo" && baseline_push "$n")")
  "$skiff" apps:create "$app-prod" --no-remote >/dev/null
  "$skiff" pipelines:create "line-$n" >/dev/null
  "$skiff" pipelines:add "line-$n" -a "$app" --stage staging >/dev/null
  "$skiff" pipelines:add "line-$n" -a "$app-prod" --stage production >/dev/null
  promoted+=("$(promote_until_served "$app" "$app-prod" "run $n second")")
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
row "push-to-first-200, first push 2 s after apps:create" "${paused_first[@]}"
row "push-to-first-200, one file changed, 2 s after the last deploy" "${paused[@]}"
row "baseline: OpenSSH + bare repository + receive-only hook" "${baseline[@]}"
row "promote-to-first-200 (pipelines:promote to production, no build)" "${promoted[@]}"

# Stage ends (medians, ms from the start of the push) and the stages' own lengths.
stage_table() {
  local title=$1; shift
  local names=("SSH + receive" "build" "image push" "release" "container start + healthy" "routed")
  echo
  echo "| $title | ends at (median) | takes |"
  echo "|---|---|---|"
  local column previous=0 end
  for column in 1 2 3 4 5 6; do
    end=$(printf '%s\n' "$@" | awk -v c="$column" '{print $c}' | sort -n | sed -n "$(( ($# + 1) / 2 ))p")
    echo "| ${names[$((column - 1))]} | ${end} ms | $(( end - previous )) ms |"
    previous=$end
  done
}
stage_table "stages, first push" "${stages_first[@]}"
stage_table "stages, second push" "${stages_second[@]}"
stage_table "stages, a push 2 s after the last deploy" "${stages_paused[@]}"
