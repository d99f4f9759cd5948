#!/bin/sh
# Joins an installed machine that did not come through discovery (the seed's "manage other nodes that
# are not in Sledgehammer"), run as root on it:
#   curl -fsS {{provisioner}}/join.sh | sh -s -- <join token>
# Installers of other OSes (the preseed bootenv's late_command) end with it too, in the installed
# system before its first boot: `… | sh -s -- <the node's token> --installed` registers the new host
# key, enables crowbar-join for the first boot, sets bootenv local and waits until the provisioner
# serves it, so the installer's reboot reaches the disk.
# The join token comes from `POST /api/v2/join_tokens`. The machine registers its MACs, SSH host key and
# a few facts; Crowbar makes it a node with bootenv local and crowbar-joined-node bound, quarantined until
# an operator commits it. The node's credential goes to /etc/crowbar/node.env and crowbar-join (a
# systemd unit where systemd runs) reports the node alive now and at every boot.
set -eu
API='{{api}}'
PROVISIONER='{{provisioner}}'
TOKEN=${1:-}
INSTALLED=false
[ "${2:-}" = --installed ] && INSTALLED=true
say() { echo "crowbar join: $*" >&2; }
fail() {
  say "error: $*"
  exit 1
}
[ -n "$TOKEN" ] || fail "usage: curl -fsS $PROVISIONER/join.sh | sh -s -- <join token from POST /api/v2/join_tokens>"
[ "$(id -u)" = 0 ] || fail "run it as root"
command -v curl >/dev/null || fail "curl is not installed"
key=/etc/ssh/ssh_host_ed25519_key.pub
[ -r "$key" ] || fail "no $key: install and start openssh-server first"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

json() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'; }
nic=$(ip -o route show default 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
[ -n "$nic" ] || nic=$(ip -o -4 addr show scope global | awk '{ print $2; exit }')
[ -n "$nic" ] || fail "no NIC with an IPv4 address"
boot_mac=$(cat "/sys/class/net/$nic/address")
address=$(ip -o -4 addr show dev "$nic" scope global | awk '{ print $4; exit }')
macs=''
for dev in /sys/class/net/*; do
  [ -e "$dev/device" ] || [ "${dev##*/}" = "$nic" ] || continue
  macs="$macs${macs:+,}\"$(cat "$dev/address")\""
done
name=$(hostname -f 2>/dev/null || hostname)
mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}")
facts=$(printf '{"joined":true,"hostname":"%s","cpus":%s,"memoryMb":%s,"kernel":"%s","os":"%s"}' "$(json "$name")" \
  "$(grep -c ^processor /proc/cpuinfo)" "$((${mem_kb:-0} / 1024))" "$(uname -r)" "$(json "$os")")
# An installed node keeps the facts its discovery gathered (a registration without facts).
[ "$INSTALLED" = true ] && facts='{}'
printf '{"macs":[%s],"bootMac":"%s","hostKey":"%s","address":"%s","name":"%s","facts":%s}\n' \
  "$macs" "$boot_mac" "$(cut -d ' ' -f 1,2 "$key")" "$address" "$(json "$name")" "$facts" >"$work/register.json"

status=$(curl -sS -m 30 -o "$work/out" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data-binary "@$work/register.json" "$API/api/v2/node-api/register") ||
  fail "cannot reach Crowbar at $API"
case $status in 2??) ;; *) fail "registration refused (HTTP $status): $(head -c 300 "$work/out")" ;; esac
node_id=$(sed -n 's/.*"node"[[:space:]]*:[[:space:]]*{[^}]*"id"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$work/out")
node_name=$(sed -n 's/.*"node"[[:space:]]*:[[:space:]]*{[^}]*"name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$work/out")
credential=$(sed -n 's/.*"credential"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$work/out")
[ -n "$node_id" ] && [ -n "$credential" ] || fail "the registration answer has no node id or credential"
say "registered as node $node_id ($node_name)"

mkdir -p /etc/crowbar /usr/local/sbin
chmod 700 /etc/crowbar
(
  umask 077
  printf 'API=%s\nNODE_ID=%s\nNODE_NAME=%s\nCREDENTIAL=%s\n' "$API" "$node_id" "$node_name" "$credential" >/etc/crowbar/node.env
)
curl -fsS -m 30 -o /usr/local/sbin/crowbar-join "$PROVISIONER/join/crowbar-join" || fail "cannot fetch crowbar-join"
chmod 755 /usr/local/sbin/crowbar-join
if [ "$INSTALLED" = true ]; then
  # In an installer's target: enable crowbar-join for the first boot, set bootenv local and wait
  # until the provisioner serves it.
  if command -v systemctl >/dev/null; then
    curl -fsS -m 30 -o /etc/systemd/system/crowbar-join.service "$PROVISIONER/join/crowbar-join.service" ||
      fail "cannot fetch crowbar-join.service"
    systemctl enable crowbar-join.service >/dev/null 2>&1 || fail "systemctl enable crowbar-join.service failed"
  fi
  printf '{"bootenv":"local"}' >"$work/bootenv.json"
  status=$(curl -sS -m 30 -o "$work/out" -w '%{http_code}' -X PUT -H "Authorization: Bearer $credential" \
    -H 'Content-Type: application/json' --data-binary "@$work/bootenv.json" \
    "$API/api/v2/node-api/nodes/$node_id/bootenv") || fail "cannot reach Crowbar at $API"
  case $status in 2??) ;; *) fail "bootenv local refused (HTTP $status): $(head -c 300 "$work/out")" ;; esac
  i=0
  until [ "$(curl -fsS -m 10 "$PROVISIONER/nodes/$node_name/bootstate" 2>/dev/null)" = local ]; do
    [ "$i" -ge 120 ] && fail "the provisioner still does not serve bootstate local after 120 s"
    sleep 1
    i=$((i + 1))
  done
  say "installed: bootenv local; the first boot reports node $node_id alive"
  exit 0
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  curl -fsS -m 30 -o /etc/systemd/system/crowbar-join.service "$PROVISIONER/join/crowbar-join.service" ||
    fail "cannot fetch crowbar-join.service"
  systemctl daemon-reload
  systemctl enable --now crowbar-join.service
  say "crowbar-join.service enabled and started"
else
  say "no systemd here: run /usr/local/sbin/crowbar-join start at boot"
  /usr/local/sbin/crowbar-join start
fi
say "joined: node $node_id is quarantined until an operator commits it"
