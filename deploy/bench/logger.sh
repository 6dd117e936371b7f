#!/usr/bin/env bash
# Logger benchmark: Skiff's logger and Debian's rsyslog side by side in one run, fed by
# the same generator (logger/examples/syslog_flood.rs): sequence-numbered RFC 5424
# messages of 100 bytes over one TCP connection with octet counting, then over UDP at
# rising rates. Each receiver runs alone on CPU 1 (Skiff with one worker thread; rsyslog
# writing every message to a file); the generator runs on CPU 0. Lines lost are the
# messages sent minus the messages each receiver counted (Skiff's /metrics, rsyslog's
# output file). Prints table rows for run.sh.
#
#   deploy/bench/logger.sh BIN_DIR RUNS [MESSAGES]
set -euo pipefail
bin=$1
runs=$2
messages=${3:-1000000}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
skiff_install_missing rsyslogd:rsyslog bc:bc curl:curl
flood=$bin/examples/syslog_flood
[ -x "$flood" ] || { echo "skiff: $flood is missing; build it with cargo build --release --example syslog_flood" >&2; exit 1; }

work=$(mktemp -d)
skiff_clean_up_on_exit "$work"

cat >"$work/rsyslog.conf" <<CONF
global(workDirectory="$work")
module(load="imtcp")
module(load="imudp")
template(name="message" type="string" string="%msg%\n")
ruleset(name="bench") { action(type="omfile" file="$work/rsyslog.out" template="message") }
input(type="imtcp" address="127.0.0.1" port="18514" ruleset="bench")
input(type="imudp" address="127.0.0.1" port="18514" ruleset="bench")
CONF
taskset -c 1 rsyslogd -n -f "$work/rsyslog.conf" -i "$work/rsyslog.pid" >"$work/rsyslog.log" 2>&1 &
skiff_pids+=($!)
SKIFF_DATA_DIR="$work/skiff" SKIFF_PLATFORM_ID=bench SKIFF_LOGGER_LISTEN=127.0.0.1:18702 \
  SKIFF_LOGGER_SYSLOG_LISTEN=127.0.0.1:18515 SKIFF_CONTROLLER_URL=http://127.0.0.1:9 \
  TOKIO_WORKER_THREADS=1 SKIFF_LOG=warn taskset -c 1 "$bin/skiffd" logger >"$work/skiff.log" 2>&1 &
skiff_pids+=($!)
skiff_wait_http http://127.0.0.1:18702/healthz 30
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18514) 2>/dev/null && break; sleep 0.1; done

declare -A address=([rsyslog]=127.0.0.1:18514 [skiff]=127.0.0.1:18515)
# Messages each receiver has counted so far.
received() {
  case $1 in
    rsyslog) if [ -f "$work/rsyslog.out" ]; then wc -l <"$work/rsyslog.out"; else echo 0; fi ;;
    skiff) curl -fsS http://127.0.0.1:18702/metrics | awk '$1 == "skiff_logger_lines_total" {print $2}' ;;
  esac
}
# Waits until the count stops moving (or reaches `target`); prints the count.
settle() {
  local target=$2 last=-1 now
  for _ in $(seq 1 600); do
    now=$(received "$1")
    [ "$now" -ge "$target" ] && break
    [ "$now" -eq "$last" ] && break
    last=$now
    sleep 0.2
  done
  received "$1"
}
now_s() { date +%s.%N; }

declare -A rate lost
for _ in $(seq 1 "$runs"); do
  for system in rsyslog skiff; do
    before=$(received "$system")
    start=$(now_s)
    taskset -c 0 "$flood" tcp "${address[$system]}" "$messages" >/dev/null
    # Done when every message is counted; a receiver that lost some settles below.
    for _ in $(seq 1 3000); do [ "$(received "$system")" -ge $((before + messages)) ] && break; sleep 0.01; done
    end=$(now_s)
    got=$(( $(settle "$system" $((before + messages))) - before ))
    rate[$system]+="$(echo "$got / ($end - $start)" | bc -l) "
    lost[$system]+="$((messages - got)) "
  done
done

echo
echo "| logger benchmark (TCP, octet counting, 100-byte messages, $messages per run, median of $runs) | msgs/s | lines lost (all runs) | skiff vs it |"
echo "|---|---|---|---|"
skiff=$(skiff_median "${rate[skiff]}")
for system in rsyslog skiff; do
  r=$(skiff_median "${rate[$system]}")
  total_lost=$(printf '%s\n' ${lost[$system]} | awk '{s += $1} END {print s}')
  echo "| $system | $(printf '%.0f' "$r") | $total_lost | $(skiff_ratio "$skiff" "$r")× |"
done

echo
echo "| UDP loss (100,000 messages at each rate) | rsyslog | skiff |"
echo "|---|---|---|"
for udp_rate in 50000 100000 200000 400000 800000; do
  row="| $udp_rate msgs/s |"
  for system in rsyslog skiff; do
    before=$(received "$system")
    taskset -c 0 "$flood" udp "${address[$system]}" 100000 "$udp_rate" >/dev/null
    got=$(( $(settle "$system" $((before + 100000))) - before ))
    row+=" $(skiff_ratio "(100000 - $got) * 100" 100000)% |"
  done
  echo "$row"
done
