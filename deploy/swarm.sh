#!/usr/bin/env bash
# A real three-node Docker Swarm on one machine, for the cluster tests: this host's engine
# is the manager; two more `dockerd`s run in network namespaces of their own (skn2 and
# skn3, at 10.250.0.2 and 10.250.0.3 on the bridge skbr, the host being 10.250.0.1), each
# with its own data root, socket and config file.
#
#   deploy/swarm.sh up DIR      makes the nodes and the swarm; prints the nodes' sockets
#   deploy/swarm.sh down DIR    leaves the swarm and removes everything `up` made
#
# Every engine on the machine reads /etc/docker/certs.d: `up` leaves it alone; tests put
# the platform CA there for the registry address they use and remove it afterwards.
set -euo pipefail
action=$1
dir=$2
nodes=(2 3)

up() {
  mkdir -p "$dir"
  command -v ip >/dev/null || skiff_install_missing ip:iproute2
  command -v nsenter >/dev/null || skiff_install_missing nsenter:util-linux
  ip link add skbr type bridge
  ip addr add 10.250.0.1/24 dev skbr
  ip link set skbr up
  local driver n
  driver=$(python3 -c "import json;print(json.load(open('/etc/docker/daemon.json')).get('storage-driver','overlay2'))" 2>/dev/null || echo overlay2)
  for n in "${nodes[@]}"; do
    ip netns add "skn$n"
    ip link add "skv$n" type veth peer name eth0 netns "skn$n"
    ip link set "skv$n" master skbr up
    ip netns exec "skn$n" ip addr add "10.250.0.$n/24" dev eth0
    ip netns exec "skn$n" ip link set eth0 up
    ip netns exec "skn$n" ip link set lo up
    ip netns exec "skn$n" ip route add default via 10.250.0.1
    mkdir -p "$dir/n$n"
    echo "{\"storage-driver\": \"$driver\", \"mtu\": 1400}" >"$dir/n$n.json"
    # nsenter --net, not `ip netns exec`: the latter remounts /sys, and dockerd then finds
    # no cgroups.
    nsenter --net="/var/run/netns/skn$n" dockerd --config-file "$dir/n$n.json" --data-root "$dir/n$n/data" \
      --exec-root "$dir/n$n/exec" -H "unix://$dir/n$n.sock" --pidfile "$dir/n$n.pid" >"$dir/n$n.log" 2>&1 &
  done
  for n in "${nodes[@]}"; do
    for _ in $(seq 1 150); do docker -H "unix://$dir/n$n.sock" info >/dev/null 2>&1 && break; sleep 0.2; done
    docker -H "unix://$dir/n$n.sock" info >/dev/null
  done
  docker swarm init --advertise-addr 10.250.0.1 --listen-addr 10.250.0.1:2377 --dispatcher-heartbeat 1s >/dev/null
  local token
  token=$(docker swarm join-token -q worker)
  for n in "${nodes[@]}"; do
    docker -H "unix://$dir/n$n.sock" swarm join --token "$token" --advertise-addr "10.250.0.$n" 10.250.0.1:2377 >/dev/null
  done
  for n in "${nodes[@]}"; do echo "unix://$dir/n$n.sock"; done
}

down() {
  local n pid
  for n in "${nodes[@]}"; do
    docker -H "unix://$dir/n$n.sock" swarm leave --force >/dev/null 2>&1 || true
    [ ! -f "$dir/n$n.pid" ] || kill "$(cat "$dir/n$n.pid")" 2>/dev/null || true
  done
  docker swarm leave --force >/dev/null 2>&1 || true
  # What a killed engine leaves behind (its shims) keeps its namespace alive.
  for n in "${nodes[@]}"; do
    for pid in $(ip netns pids "skn$n" 2>/dev/null) $(pgrep -f "$dir/n$n/" || true); do kill -9 "$pid" 2>/dev/null || true; done
  done
  # The routing mesh's sandbox can outlive the swarm on its bridge.
  docker network disconnect -f docker_gwbridge gateway_ingress-sbox >/dev/null 2>&1 || true
  docker network rm docker_gwbridge >/dev/null 2>&1 || true
  for n in "${nodes[@]}"; do
    ip netns del "skn$n" 2>/dev/null || true
    ip link del "skv$n" 2>/dev/null || true
  done
  ip link del skbr 2>/dev/null || true
  grep -o "$dir/[^ ]*" /proc/mounts | sort -r | while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
  rm -rf "$dir"
}

. "$(dirname "$0")/lib.sh"
"$action"
