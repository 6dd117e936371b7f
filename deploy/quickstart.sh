#!/usr/bin/env bash
# Skiff's first command: installs what is missing, builds, starts the platform on embedded
# defaults (SQLite, local files, the local Docker engine), deploys the example app with
# `git push`, and prints its URL.
#
#   deploy/quickstart.sh
#
# Environment: SKIFF_DATA_DIR (default ~/.local/share/skiff). The platform keeps running
# in the background; stop it with `kill $(cat "$SKIFF_DATA_DIR/skiffd.pid")`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib.sh"

export SKIFF_DATA_DIR=${SKIFF_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/skiff}
mkdir -p "$SKIFF_DATA_DIR"

skiff_install_missing git:git ssh:openssh-client ssh-keygen:openssh-client curl:curl tar:tar
skiff_ensure_docker
skiff_require_cargo

echo "==> building (release)"
(cd "$root" && cargo build --release --locked -p skiffd -p skiff-cli)
bin="$root/target/release"
skiff="$bin/skiff"

if curl -fsS -o /dev/null http://127.0.0.1:7700/healthz 2>/dev/null; then
  echo "==> a platform already answers on 127.0.0.1:7700; using it"
else
  echo "==> starting skiffd all (log: $SKIFF_DATA_DIR/skiffd.log)"
  nohup "$bin/skiffd" all >>"$SKIFF_DATA_DIR/skiffd.log" 2>&1 &
  echo $! >"$SKIFF_DATA_DIR/skiffd.pid"
  skiff_wait_http http://127.0.0.1:7700/healthz 30 || { tail -20 "$SKIFF_DATA_DIR/skiffd.log"; exit 1; }
fi

password_file="$SKIFF_DATA_DIR/admin-password"
if [ ! -s "$password_file" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$password_file")
  "$skiff" auth:register --url http://127.0.0.1:7700 -u admin -p "$(cat "$password_file")"
fi
# Logged in whatever the CLI held before (a token of an earlier platform makes the
# registration one of another user, and logs no one in).
"$skiff" auth:login --url http://127.0.0.1:7700 -u admin -p "$(cat "$password_file")"

key="$HOME/.ssh/id_ed25519"
if [ ! -f "$key.pub" ]; then
  echo "==> creating an SSH key for git pushes: $key"
  mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$key"
fi
"$skiff" keys:add "$key.pub" 2>/dev/null || true

# The builder's host key, read from its own file, goes into the user's known hosts: pushes
# then ask nothing, from a terminal or a script. An entry left by an earlier platform with
# another key would make ssh refuse; it is replaced.
host_key="$SKIFF_DATA_DIR/builder/ssh_host_ed25519_key"
builder_host="[127.0.0.1]:2222"
for _ in $(seq 1 100); do [ -f "$host_key" ] && break; sleep 0.1; done
if [ -f "$host_key" ]; then
  known="$HOME/.ssh/known_hosts"
  public=$(ssh-keygen -y -f "$host_key" | cut -d' ' -f1,2)
  # What the known hosts hold for the builder's address, hashed or not: "TYPE KEY" lines.
  held=$(ssh-keygen -F "$builder_host" -f "$known" 2>/dev/null | grep -v '^#' | cut -d' ' -f2,3 || true)
  if ! grep -qxF "$public" <<<"$held"; then
    mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
    if [ -n "$held" ]; then
      echo "==> replacing the builder's old host key in $known"
      ssh-keygen -q -R "$builder_host" -f "$known" >/dev/null 2>&1
    fi
    echo "$builder_host $public" >>"$known"
  fi
fi

if ! "$skiff" stacks | grep -q '^busybox '; then
  echo "==> importing the busybox stack"
  SKIFF="$skiff" "$here/stacks/busybox.sh" busybox
fi

app=example
repo="$SKIFF_DATA_DIR/example"
if [ ! -d "$repo/.git" ]; then
  cp -r "$here/example" "$repo"
  git -C "$repo" init -q -b main
  git -C "$repo" add -A
  git -C "$repo" -c user.name=Skiff -c user.email=skiff@localhost commit -qm "Example app"
fi
cd "$repo"
"$skiff" apps:info -a "$app" >/dev/null 2>&1 || "$skiff" apps:create "$app"
"$skiff" git:remote -a "$app" >/dev/null
echo "==> git push skiff main"
GIT_SSH_COMMAND="ssh -i $key -o IdentitiesOnly=yes" git push skiff main

url="http://$app.localhost:8080/"
skiff_wait_http "$url" 60 || { echo "skiff: $url did not answer; see $SKIFF_DATA_DIR/skiffd.log" >&2; exit 1; }
echo
echo "The example app is live: $url"
echo "Over HTTPS: curl --cacert $SKIFF_DATA_DIR/router/ca.crt https://$app.localhost:8443/"
echo "Use the CLI with: export PATH=\"$bin:\$PATH\"; skiff apps; skiff logs -a $app"
