greeting=$(read_attribute test/greeting)
write_attribute test/written "$greeting from $(hostname)"
write_attribute test/count 42
write_attribute test/flag TRUE
write_attribute test/word face
