marker=$(read_attribute test/marker)
[ -z "$marker" ] || echo "test-writer ran" >> "$marker"
pause=$(read_attribute test/sleep)
sleep "${pause:-0}"
greeting=$(read_attribute test/greeting)
write_attribute test/written "$greeting from $(hostname)"
write_attribute test/count 42
write_attribute test/flag TRUE
write_attribute test/word face
