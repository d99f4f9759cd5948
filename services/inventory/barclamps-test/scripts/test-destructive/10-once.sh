# Appends to a marker file so a test can count how often this ran, then optionally lingers.
marker=$(read_attribute test/marker)
echo "run" >> "${marker:-/tmp/crowbar-destructive-marker}"
pause=$(read_attribute test/sleep)
sleep "${pause:-0}"
