#!/usr/bin/env bash
# Makes an upgrade fixture: the state a released version of Skiff wrote, by that version
# itself (never by hand), for deploy/tests/it/upgrades.rs to start the current skiffd on.
# Run it with the last released commit each time the schema changes:
#
#   deploy/upgrade/make-fixture.sh COMMIT
#
# It builds COMMIT's skiffd and skiff, runs them (apps on the in-memory engine) on SQLite
# and on a private Postgres, makes users, apps, releases, config, domains, scale, sharing,
# keys and a pipeline with that version's CLI, and keeps in
# deploy/tests/fixtures/upgrade/<commit>/: `data/` (the SQLite data directory's database
# and identity files), `postgres.sql` (pg_dump of the Postgres database) and `made-by`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"
[ $# -eq 1 ] || { echo "usage: $0 COMMIT" >&2; exit 2; }
skiff_install_missing git:git ssh-keygen:openssh-client curl:curl
skiff_require_cargo
commit=$(git -C "$root" rev-parse --short=7 "$1^{commit}")
out="$root/deploy/tests/fixtures/upgrade/$commit"
work=$(mktemp -d)
# Postgres runs as its own user, which must reach its directory inside.
chmod 755 "$work"
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  skiff_stop_postgres "$work/pg" 2>/dev/null || true
  git -C "$root" worktree remove --force "$work/src" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> building skiffd and skiff at $commit"
git -C "$root" worktree add --detach "$work/src" "$commit" >/dev/null
# A target directory of the commit's own (see deploy/upgrade/build-previous.sh for why not
# the workspace's).
target="$root/target/previous/$commit"
(cd "$work/src" && CARGO_TARGET_DIR="$target" cargo build --locked -q -p skiffd -p skiff-cli)
mkdir -p "$work/bin"
cp "$target/debug/skiffd" "$target/debug/skiff" "$work/bin/"

# Runs that version on DATA_DIR (and DATABASE_URL, if given) and makes its state.
populate() {
  local data=$1 database=${2:-}
  export SKIFF_DATA_DIR=$data XDG_CONFIG_HOME=$work/config SKIFF_RUNTIME=memory SKIFF_ALLOWED_REGISTRIES='*'
  export SKIFF_CONTROLLER_LISTEN=127.0.0.1:27700 SKIFF_REGISTRY_LISTEN=127.0.0.1:27701 \
    SKIFF_LOGGER_LISTEN=127.0.0.1:27702 SKIFF_LOGGER_SYSLOG_LISTEN=127.0.0.1:27703 \
    SKIFF_LOGGER_SYSLOG_TLS_LISTEN=127.0.0.1:27704 SKIFF_BUILDER_LISTEN=127.0.0.1:27705 \
    SKIFF_BUILDER_HTTP_LISTEN=127.0.0.1:27706 SKIFF_ROUTER_LISTEN=127.0.0.1:27780 \
    SKIFF_ROUTER_TLS_LISTEN=127.0.0.1:27743
  if [ -n "$database" ]; then export SKIFF_DATABASE_URL=$database; else unset SKIFF_DATABASE_URL; fi
  rm -rf "$XDG_CONFIG_HOME"
  "$work/bin/skiffd" all >"$work/skiffd.log" 2>&1 &
  pid=$!
  skiff_wait_http "http://$SKIFF_CONTROLLER_LISTEN/healthz" 60
  local skiff=$work/bin/skiff
  $skiff auth:register --url "http://$SKIFF_CONTROLLER_LISTEN" -u admin -p correct-horse >/dev/null
  [ -f "$work/key" ] || ssh-keygen -q -t ed25519 -N '' -C fixture -f "$work/key"
  $skiff keys:add "$work/key.pub" >/dev/null
  $skiff apps:create shop --no-remote >/dev/null
  $skiff deploy -a shop --image registry.example/shop/web:1 --wait >/dev/null
  $skiff config:set -a shop GREETING=hello 'MOTTO=upgrades keep data' >/dev/null
  $skiff ps:scale -a shop web=2 --wait >/dev/null
  $skiff domains:add -a shop www.shop.test >/dev/null
  $skiff apps:create shop-staging --no-remote >/dev/null
  $skiff deploy -a shop-staging --image registry.example/shop/web:2 --wait >/dev/null
  $skiff pipelines:create line >/dev/null
  $skiff pipelines:add line -a shop-staging --stage staging >/dev/null
  $skiff pipelines:add line -a shop --stage production >/dev/null
  $skiff auth:register -u bob -p bobs-password >/dev/null
  $skiff auth:login -u admin -p correct-horse >/dev/null
  $skiff perms:add -a shop bob >/dev/null
  kill "$pid"
  wait "$pid" || true
  pid=
}

echo "==> making the SQLite data directory"
populate "$work/sqlite"
rm -rf "$out"
mkdir -p "$out/data"
# The database with its write-ahead log, as that version left them: the new one replays
# the log when it opens the file.
cp "$work/sqlite/service-token" "$work/sqlite/platform-id" "$work/sqlite"/skiff.db{,-wal} "$out/data/"

echo "==> making the Postgres database"
url=$(skiff_start_postgres "$work/pg" 27732)
populate "$work/sqlite-pg" "$url"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
"$pgbin/pg_dump" --no-owner --no-privileges --dbname "$url" >"$out/postgres.sql"

echo "skiff $(git -C "$root" log -1 --format='%h %ad %s' --date=short "$commit")" >"$out/made-by"
echo "==> $out"
