#!/usr/bin/env bash
# Registry benchmark: Skiff's registry and Debian's docker-registry (distribution 2.8) side
# by side in one run, both storing on the same disk, both driven by skopeo pinned to CPU 0
# while the registry under test runs on CPU 1; then the same with skiff-load, a client
# whose own work cannot cap the registries (BIN_DIR holds skiffd and skiff-load). Prints
# table rows for run.sh.
#
#   deploy/bench/registry.sh BIN_DIR RUNS
set -euo pipefail
bin=$1
runs=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing skopeo:skopeo docker-registry:docker-registry python3:python3 bc:bc

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"

# Skiff's registry alone, with a known service token as the push credential.
token=bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SKIFF_DATA_DIR="$work/skiff" SKIFF_SERVICE_TOKEN="$token" SKIFF_REGISTRY_LISTEN=127.0.0.1:15001 \
  taskset -c 1 "$bin/skiffd" registry >"$work/skiff.log" 2>&1 &
skiff_pids+=($!)
skiff_pid=$!
mkdir -p "$work/distribution"
cat >"$work/distribution.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/distribution}, delete: {enabled: true}}
http: {addr: 127.0.0.1:15000}
YAML
env -u AWS_CA_BUNDLE taskset -c 1 docker-registry serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
skiff_pids+=($!)
declare -A pid=([distribution]=$! [skiff]=$skiff_pid)
# And a registry that does no work at all (answers pushes, throws the bytes away): what a
# push costs the client alone, the ceiling for any registry.
taskset -c 1 python3 "$here/null_registry.py" 15002 >"$work/null.log" 2>&1 &
skiff_pids+=($!)
skiff_wait_http http://127.0.0.1:15000/v2/ 30
skiff_wait_http http://127.0.0.1:15002/v2/ 30
until curl -s -o /dev/null http://127.0.0.1:15001/v2/; do sleep 0.1; done

python3 "$here/oci_layouts.py" big "$work/big" 100
python3 "$here/oci_layouts.py" small "$work/small" 500

declare -A creds=([distribution]="" [skiff]="--creds skiff:$token")
declare -A port=([distribution]=15000 [skiff]=15001)

# Runs skopeo on CPU 0 with no blob-info cache (so every run really uploads).
copy() {
  rm -rf /var/lib/containers/cache "$HOME/.local/share/containers/cache" 2>/dev/null || true
  taskset -c 0 skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "$@"
}

# Prints seconds taken by the given command.
seconds() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  printf "%.3f\n" "$(echo "scale=3; ($end - $start) / 1000000000" | bc)"
}

# The registry's own CPU time (clock ticks), per system and operation, over every run.
declare -A cpu
# Runs "$@" and adds the CPU time SYSTEM's registry spent meanwhile to cpu[SYSTEM,WHAT].
charged() {
  local system=$1 what=$2 before
  shift 2
  before=$(skiff_cpu_ticks "${pid[$system]}")
  "$@"
  cpu[$system,$what]=$(( ${cpu[$system,$what]:-0} + $(skiff_cpu_ticks "${pid[$system]}") - before ))
}

declare -A push pull small one_by_one
floor="" null_push="" null_small=""
# 500 small images copied by skopeo, 8 at a time on CPU 0, to DESTINATION-PREFIX{} (an
# image reference ending where the image's number goes); prints images per second.
small_copies() {
  local start end
  start=$(date +%s%N)
  seq 0 499 | xargs -P 8 -I{} bash -c "rm -rf /var/lib/containers/cache 2>/dev/null; taskset -c 0 skopeo copy -q $1 oci:$work/small/{}:latest $2"
  end=$(date +%s%N)
  echo "scale=1; 500 * 1000000000 / ($end - $start)" | bc
}
for run in $(seq 1 "$runs"); do
  # The client's own share of a pull: skopeo copying the same image with no registry.
  rm -rf "$work/local"
  floor+="$(seconds copy "oci:$work/big:latest" "dir:$work/local") "
  # The client's own share of a push: the same pushes to the registry that does no work.
  null_push+="$(seconds copy "oci:$work/big:latest" "docker://127.0.0.1:15002/bench/big$run:latest") "
  null_small+="$(small_copies --dest-tls-verify=false "docker://127.0.0.1:15002/bench/small$run-{}:latest") "
  for system in distribution skiff; do
    c=${creds[$system]}
    p=${port[$system]}
    charged "$system" push eval 'push[$system]+="$(seconds copy ${c:+--dest-creds ${c#--creds }} "oci:$work/big:latest" "docker://127.0.0.1:$p/bench/big$run:latest") "'
    rm -rf "$work/pulled"
    charged "$system" pull eval 'pull[$system]+="$(seconds copy ${c:+--src-creds ${c#--creds }} "docker://127.0.0.1:$p/bench/big$run:latest" "dir:$work/pulled") "'
    charged "$system" small eval 'small[$system]+="$(small_copies "--dest-tls-verify=false ${c:+--dest-creds ${c#--creds }}" "docker://127.0.0.1:$p/bench/small$run-{}:latest") "'
    # One at a time, where the registry's answers, not the client's work, set the pace.
    start=$(date +%s%N)
    for image in $(seq 0 19); do
      copy ${c:+--dest-creds ${c#--creds }} "oci:$work/small/$image:latest" "docker://127.0.0.1:$p/bench/single$run-$image:latest"
    done
    end=$(date +%s%N)
    one_by_one[$system]+="$(echo "scale=1; ($end - $start) / 20000000" | bc) "
  done
done

# The registries on their own: curl, which does little work of its own, moving the
# 100 MiB layer as one blob (POST then a streamed PUT; GET to /dev/null).
layer_digest=$(python3 -c 'import json, sys
index = json.load(open(sys.argv[1] + "/index.json"))
manifest = index["manifests"][0]["digest"].split(":")[1]
print(json.load(open(sys.argv[1] + "/blobs/sha256/" + manifest))["layers"][0]["digest"])' "$work/big")
layer_file="$work/big/blobs/sha256/${layer_digest#sha256:}"
declare -A blob_put blob_get
for run in $(seq 1 "$runs"); do
  for system in distribution skiff; do
    base="http://127.0.0.1:${port[$system]}"
    auth=()
    [ "$system" = distribution ] || auth=(-u "skiff:$token")
    location=$(curl -fsS "${auth[@]}" -X POST -D - -o /dev/null "$base/v2/bench/blob$run/blobs/uploads/" |
      awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
    case $location in http*) ;; *) location="$base$location" ;; esac
    case $location in *\?*) location+="&digest=$layer_digest" ;; *) location+="?digest=$layer_digest" ;; esac
    blob_put[$system]+="$(seconds taskset -c 0 curl -fsS "${auth[@]}" -T "$layer_file" "$location") "
    blob_get[$system]+="$(seconds taskset -c 0 curl -fsS "${auth[@]}" -o /dev/null "$base/v2/bench/blob$run/blobs/$layer_digest") "
  done
done

# The registries with a client that costs little beside them: skiff-load on CPU 0, many
# images at once over kept-alive connections, uploads sent by the kernel (sendfile),
# downloads read and dropped; Docker's token flow with Skiff as before. Each push goes to
# repositories of its own, so every blob is uploaded.
small_layouts=()
for image in $(seq 0 499); do small_layouts+=(--layout "$work/small/$image"); done
declare -A load_push load_pull load_small
# Prints FIELD of skiff-load's line ("mib_per_s", "images_per_s").
load() {
  local field=$1 line
  shift
  line=$(taskset -c 0 "$bin/skiff-load" registry "$@")
  echo "$line" >>"$work/load.log"
  sed -n "s/.* $field=\([^ ]*\).*/\1/p" <<<"$line"
}
for run in $(seq 1 "$runs"); do
  for system in distribution skiff; do
    url=http://127.0.0.1:${port[$system]}
    user=()
    [ "$system" = distribution ] || user=(--user "skiff:$token")
    charged "$system" load_push eval 'load_push[$system]+="$(load mib_per_s push "$url" "${user[@]}" --repository bench/load-big$run --layout "$work/big" --concurrency 4 --images 8) "'
    charged "$system" load_pull eval 'load_pull[$system]+="$(load mib_per_s pull "$url" "${user[@]}" --repository bench/load-big$run-0 --concurrency 4 --images 16) "'
    charged "$system" load_small eval 'load_small[$system]+="$(load images_per_s push "$url" "${user[@]}" --repository bench/load-small$run "${small_layouts[@]}" --concurrency 16 --images 500) "'
  done
done

row() {
  local name=$1 unit=$2 d s better=$4
  d=$(skiff_median "${3%%|*}")
  s=$(skiff_median "${3##*|}")
  if [ "$better" = higher ]; then ratio=$(skiff_ratio "$s" "$d"); else ratio=$(skiff_ratio "$d" "$s"); fi
  echo "| $name | $s $unit | $d $unit | ${ratio}× |"
}
echo
echo "| registry benchmark (median of $runs) | skiff | docker-registry 2.8 | skiff advantage |"
echo "|---|---|---|---|"
row "push 100 MiB single-layer image (skopeo)" s "${push[distribution]}|${push[skiff]}" lower
f=$(skiff_median "$null_push")
echo "| the same push to a registry that does no work (no hashing, no disk): the floor under any push | $f s | $f s | at most $(skiff_ratio "$(skiff_median "${push[distribution]}")" "$f")× |"
row "pull 100 MiB single-layer image (skopeo)" s "${pull[distribution]}|${pull[skiff]}" lower
f=$(skiff_median "$floor")
echo "| skopeo alone, the same image from a local layout (no registry): the floor under any pull | $f s | $f s | at most $(skiff_ratio "$(skiff_median "${pull[distribution]}")" "$f")× |"
row "push 500 small images, 8 at a time (skopeo)" "images/s" "${small[distribution]}|${small[skiff]}" higher
f=$(skiff_median "$null_small")
echo "| the same pushes to a registry that does no work: the ceiling for any registry | $f images/s | $f images/s | at most $(skiff_ratio "$f" "$(skiff_median "${small[distribution]}")")× |"
row "push 20 small images one at a time (skopeo), per image" ms "${one_by_one[distribution]}|${one_by_one[skiff]}" lower
row "upload the 100 MiB layer as one blob (curl, streamed PUT)" s "${blob_put[distribution]}|${blob_put[skiff]}" lower
row "download the 100 MiB layer (curl to /dev/null)" s "${blob_get[distribution]}|${blob_get[skiff]}" lower
row "push 100 MiB images, 4 at a time (skiff-load, 8 images)" MiB/s "${load_push[distribution]}|${load_push[skiff]}" higher
row "pull 100 MiB images, 4 at a time (skiff-load, 16 pulls)" MiB/s "${load_pull[distribution]}|${load_pull[skiff]}" higher
row "push 500 small images, 16 at a time (skiff-load)" images/s "${load_small[distribution]}|${load_small[skiff]}" higher
# The registries' own work, which the client's does not hide: CPU time per operation.
hz=$(getconf CLK_TCK)
per() { echo "scale=1; ${cpu[$1,$2]} * 1000 / $hz / $3" | bc; }
for what in "push:100 MiB push:$runs:ms" "pull:100 MiB pull:$runs:ms" "small:small image pushed:$((runs * 500)):ms" \
  "load_push:100 MiB push (skiff-load):$((runs * 8)):ms" "load_pull:100 MiB pull (skiff-load):$((runs * 16)):ms" \
  "load_small:small image pushed (skiff-load):$((runs * 500)):ms"; do
  IFS=: read -r key label count unit <<<"$what"
  d=$(per distribution "$key" "$count")
  s=$(per skiff "$key" "$count")
  echo "| registry CPU time per $label | $s $unit | $d $unit | $(skiff_ratio "$d" "$s")× |"
done
