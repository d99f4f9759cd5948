# Shared by the agent's scripts (sourced, POSIX sh): console lines, kernel command line settings, an
# HTTP client over busybox nc (wget cannot PUT) and JSON string quoting.
#
# The same agent runs in the discovery image and in a lab node (infra/lab/): the few things that differ
# are switched by environment, all unset in the image:
#   CROWBAR_AGENT_PATH     directories put ahead of PATH (the lab's busybox applets and reboot)
#   CROWBAR_AGENT_CMDLINE  file read instead of /proc/cmdline (the lab's firmware writes the kernel line)
#   CROWBAR_AGENT_NICS     the NICs, instead of those with a device in /sys (veths have none); drivers
#                          are then not loaded either
#   CROWBAR_AGENT_SSHD     `openssh` for OpenSSH's sshd instead of dropbear
#   CROWBAR_AGENT_DMI, CROWBAR_AGENT_BLOCK  directories read instead of /sys/class/dmi/id and /sys/block
#   CROWBAR_AGENT_INSTALL  `overlay`: install into / (a lab node's overlay) without partitioning

PATH=${CROWBAR_AGENT_PATH:+$CROWBAR_AGENT_PATH:}/usr/sbin:/usr/bin
export PATH
STATE=/run/crowbar
AGENT_VERSION=$(cat /etc/crowbar-discovery-version 2>/dev/null || echo unknown)

say() { echo "crowbar-agent: $*"; }

# Reads crowbar.api, crowbar.token, crowbar.provisioner, crowbar.node, BOOTIF and, for an install
# (bootenv <os>-install), crowbar.mode=install, crowbar.image and crowbar.disk from /proc/cmdline
# (or $CROWBAR_AGENT_CMDLINE).
read_settings() {
  API='' TOKEN='' PROVISIONER='' NODE_FQDN='' BOOTIF='' MODE=discovery IMAGE='' DISK=''
  set -f
  for word in $(cat "${CROWBAR_AGENT_CMDLINE:-/proc/cmdline}"); do
    case $word in
    crowbar.api=*) API=${word#*=} ;;
    crowbar.token=*) TOKEN=${word#*=} ;;
    crowbar.provisioner=*) PROVISIONER=${word#*=} ;;
    crowbar.node=*) NODE_FQDN=${word#*=} ;;
    BOOTIF=*) BOOTIF=${word#*=} ;;
    crowbar.mode=*) MODE=${word#*=} ;;
    crowbar.image=*) IMAGE=${word#*=} ;;
    crowbar.disk=*) DISK=${word#*=} ;;
    esac
  done
  set +f
  API=${API%/} PROVISIONER=${PROVISIONER%/}
}

# `BOOTIF=01-52-54-00-12-34-56` (iPXE's hardware type 01 + MAC) -> 52:54:00:12:34:56.
bootif_mac() {
  printf '%s' "${1#01-}" | tr 'A-F-' 'a-f:'
}

# http METHOD URL BEARER BODYFILE OUTFILE: prints the HTTP status (000 when there was no answer) and
# leaves the response body in OUTFILE. HTTP/1.0 so the server neither keeps the connection open nor
# chunks its answer. Plain http:// with an address or a name /etc/hosts knows; no TLS.
http() {
  _method=$1 _url=$2 _bearer=$3 _body=$4 _out=$5
  case $_url in
  http://*) _rest=${_url#http://} ;;
  *)
    echo 000
    return 1
    ;;
  esac
  _hostport=${_rest%%/*}
  _path=/${_rest#*/}
  [ "$_rest" = "$_hostport" ] && _path=/
  _host=${_hostport%:*}
  _port=${_hostport##*:}
  [ "$_host" = "$_hostport" ] && _port=80
  {
    printf '%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: crowbar-discovery/%s\r\n' \
      "$_method" "$_path" "$_hostport" "$AGENT_VERSION"
    printf 'Accept: application/json\r\nConnection: close\r\n'
    [ -n "$_bearer" ] && printf 'Authorization: Bearer %s\r\n' "$_bearer"
    if [ -n "$_body" ]; then
      printf 'Content-Type: application/json\r\nContent-Length: %s\r\n\r\n' "$(wc -c <"$_body")"
      cat "$_body"
    else
      printf '\r\n'
    fi
  } | timeout "${HTTP_TIMEOUT:-30}" nc -w 10 "$_host" "$_port" 2>/dev/null | tr -d '\r' >"$_out.raw"
  sed '1,/^$/d' "$_out.raw" >"$_out"
  _status=$(head -n 1 "$_out.raw" | sed -n 's|^HTTP/[0-9.]* \([0-9][0-9][0-9]\).*|\1|p')
  rm -f "$_out.raw"
  echo "${_status:-000}"
}

# A JSON string for $1 (null when empty): backslashes and quotes escaped, control characters and
# surrounding blanks dropped (sysfs pads model names with spaces).
json_str() {
  _v=$(printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
    -e 's/\\/\\\\/g' -e 's/"/\\"/g')
  if [ -z "$_v" ]; then printf 'null'; else printf '"%s"' "$_v"; fi
}

# The string value of "key" in the JSON on stdin (first occurrence; values without escaped quotes).
json_get_str() {
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" | head -n 1
}

# sysfs attribute or empty.
attr() { cat "$1" 2>/dev/null; }

# Physical NICs: those with a device behind them (not lo, bridges, bonds, tunnels), or $CROWBAR_AGENT_NICS.
physical_nics() {
  if [ -n "${CROWBAR_AGENT_NICS:-}" ]; then
    # shellcheck disable=SC2086 # one word per NIC
    printf '%s\n' $CROWBAR_AGENT_NICS
    return
  fi
  for _n in /sys/class/net/*; do
    [ -e "$_n/device" ] && echo "${_n##*/}"
  done
}

# ssh_host_key FILE: a fresh ed25519 host key in FILE; prints its public line (`ssh-ed25519 AAAA…`).
ssh_host_key() {
  rm -f "$1" "$1.pub"
  if [ "${CROWBAR_AGENT_SSHD:-dropbear}" = openssh ]; then
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$1" >/dev/null 2>&1 || return 1
    cut -d ' ' -f 1,2 "$1.pub"
  else
    dropbearkey -t ed25519 -f "$1" >/dev/null 2>&1 || return 1
    dropbearkey -y -f "$1" | sed -n 's/^\(ssh-ed25519 [A-Za-z0-9+/=]*\).*/\1/p'
  fi
}

# ssh_serve FILE: SSH on port 22 with host key FILE, keys only, in the background; its log on the console.
ssh_serve() {
  if [ "${CROWBAR_AGENT_SSHD:-dropbear}" = openssh ]; then
    mkdir -p /run/sshd
    printf '%s\n' 'Port 22' "HostKey $1" "PidFile $STATE/sshd.pid" 'AuthorizedKeysFile /root/.ssh/authorized_keys' \
      'PermitRootLogin prohibit-password' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
      'UsePAM no' 'StrictModes no' 'UseDNS no' 'MaxStartups 200' 'LogLevel ERROR' \
      'Subsystem sftp internal-sftp' >"$STATE/sshd_config"
    /usr/sbin/sshd -D -e -f "$STATE/sshd_config" 2>&1 | sed 's/^/sshd: /' &
  else
    # -s: no passwords at all; in the foreground (-F) so its log reaches the console.
    dropbear -F -E -s -p 22 -r "$1" -P /run/dropbear.pid 2>&1 | sed 's/^/dropbear: /' &
  fi
}
