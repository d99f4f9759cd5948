if [ "$(read_attribute test/should_fail)" = "true" ]; then
  echo "failing because test/should_fail is true" >&2
  exit 7
fi
write_attribute test/passed true
