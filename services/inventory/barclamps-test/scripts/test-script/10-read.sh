written=$(read_attribute test/written)
[ -n "$written" ] || { echo "no data from test-writer"; exit 3; }
echo "$written" > "$TMPDIR/seen"
write_attribute test/seen "$written"
