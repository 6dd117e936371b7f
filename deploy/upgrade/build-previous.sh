#!/usr/bin/env bash
# Builds `skiffd` as the previous released version of Skiff (the commit named in
# deploy/upgrade/previous), for the test that upgrades a running platform from it
# (deploy/tests/it/upgrades.rs), and prints the binary's path. Built once per commit.
#
# It has a target directory of its own: in the workspace's, cargo would take the old
# sources' artifacts for the current ones' (it tells the workspace's packages apart by
# name, version and features, not by where their sources are).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"
skiff_require_cargo
commit=$(tr -d '[:space:]' <"$here/previous")
if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "the previous release, $commit, is not in this clone's history (a shallow clone?)" >&2
  exit 1
fi
target="$root/target/previous/$commit"
binary="$target/debug/skiffd"
if [ ! -x "$binary" ]; then
  echo "==> building skiffd at $commit (the previous release)" >&2
  work=$(mktemp -d)
  trap 'git -C "$root" worktree remove --force "$work/src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  git -C "$root" worktree add --detach "$work/src" "$commit" >/dev/null 2>&1
  (cd "$work/src" && CARGO_TARGET_DIR="$target" cargo build --locked -q -p skiffd) >&2
fi
echo "$binary"
