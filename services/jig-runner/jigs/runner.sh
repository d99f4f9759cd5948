#!/bin/bash
# Crowbar's script-jig runner, copied to the node with each run: runs a role's scripts in name order with
# the run's attributes in $TMPDIR/attrs.json; scripts write results with write_attribute.
# Usage: runner <run dir> <role>
set -o errexit -o pipefail
export TMPDIR="$1" ROLE="$2" DEBIAN_FRONTEND=noninteractive LC_ALL=C
shopt -s nullglob extglob globstar
mkdir -p "$TMPDIR/attrs" "$TMPDIR/logs"

__jq_path() {
  local out="" part
  local -a parts
  IFS=/ read -ra parts <<< "$1"
  for part in "${parts[@]}"; do
    if [[ $part =~ ^[0-9]+$ ]]; then out+="[$part]"; else out+="[\"$part\"]"; fi
  done
  printf '.%s' "$out"
}
read_attribute() { jq -r -c "$(__jq_path "$1") | if . == null then empty else . end" < "$TMPDIR/attrs.json"; }
has_attribute() { jq -e "$(__jq_path "$1") != null" < "$TMPDIR/attrs.json" > /dev/null; }
get_keys() { jq -r "$(__jq_path "$1") | if type == \"object\" then keys[] else empty end" < "$TMPDIR/attrs.json"; }
read_attribute_file_content() { read_attribute "$1" > "$2"; }
write_attribute() {
  mkdir -p "$TMPDIR/attrs/$1"
  printf '%s' "$2" > "$TMPDIR/attrs/$1/wall"
}
write_attribute_file_content() { write_attribute "$1" "$(cat "$2")"; }
export -f __jq_path read_attribute has_attribute get_keys read_attribute_file_content write_attribute write_attribute_file_content

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
