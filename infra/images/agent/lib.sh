# Shared by the agent's scripts (sourced, POSIX sh): console lines, kernel command line settings, an
# HTTP client over busybox nc (wget cannot PUT) and JSON string quoting.

PATH=/usr/sbin:/usr/bin
export PATH
STATE=/run/crowbar
AGENT_VERSION=$(cat /etc/crowbar-discovery-version 2>/dev/null || echo unknown)

say() { echo "crowbar-agent: $*"; }

# Reads crowbar.api, crowbar.token, crowbar.provisioner, crowbar.node, BOOTIF and, for an install
# (bootenv <os>-install), crowbar.mode=install, crowbar.image and crowbar.disk from /proc/cmdline.
read_settings() {
  API='' TOKEN='' PROVISIONER='' NODE_FQDN='' BOOTIF='' MODE=discovery IMAGE='' DISK=''
  set -f
  for word in $(cat /proc/cmdline); do
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

# Physical NICs: those with a device behind them (not lo, bridges, bonds, tunnels).
physical_nics() {
  for _n in /sys/class/net/*; do
    [ -e "$_n/device" ] && echo "${_n##*/}"
  done
}
