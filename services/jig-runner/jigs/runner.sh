#!/bin/bash
# Crowbar's script-jig runner, copied to the node with each run: runs a role's scripts in name order with
# the run's attributes in $TMPDIR/attrs.json (and attrs.flat for the helpers below); scripts write results
# with write_attribute.
# Usage: runner <run dir> <role>
set -o errexit -o pipefail
export TMPDIR="$1" ROLE="$2" DEBIAN_FRONTEND=noninteractive LC_ALL=C
shopt -s nullglob extglob globstar
mkdir -p "$TMPDIR/attrs" "$TMPDIR/logs"

# Attributes come as attrs.flat: one line per path, `<path>\t<base64 value>`; only awk and base64 needed.
__attr_line() { awk -F '\t' -v p="$1" '$1 == p { print $2; exit }' "$TMPDIR/attrs.flat"; }
read_attribute() { local v; v=$(__attr_line "$1"); [ -z "$v" ] || printf '%s\n' "$v" | base64 -d; }
has_attribute() { [ -n "$(__attr_line "$1")" ]; }
get_keys() {
  awk -F '\t' -v p="${1:+$1/}" 'index($1, p) == 1 { rest = substr($1, length(p) + 1); if (rest != "" && rest !~ /\//) print rest }' "$TMPDIR/attrs.flat"
}
read_attribute_file_content() { read_attribute "$1" > "$2"; }
write_attribute() {
  mkdir -p "$TMPDIR/attrs/$1"
  printf '%s' "$2" > "$TMPDIR/attrs/$1/wall"
}
write_attribute_file_content() { write_attribute "$1" "$(cat "$2")"; }
export -f __attr_line read_attribute has_attribute get_keys read_attribute_file_content write_attribute write_attribute_file_content

for script in "$TMPDIR/$ROLE"/*.sh; do
  name=$(basename "$script")
  echo "== $name"
  set +o errexit
  ( set -o errexit -o xtrace; . "$script" ) 2>&1 | tee "$TMPDIR/logs/$name.log"
  rc=${PIPESTATUS[0]}
  set -o errexit
  if [ "$rc" -ne 0 ]; then
    echo "== $name failed with exit code $rc"
    exit "$rc"
  fi
done
echo "== done"
