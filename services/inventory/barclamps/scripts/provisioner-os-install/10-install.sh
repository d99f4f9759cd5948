# Marks the node for installation; the provisioner's boot databases do the rest (bootenv flow).
if [ -x /usr/local/bin/crowbar-join ]; then
  echo "already installed"
  exit 0
fi
write_attribute crowbar_wall/install/requested true
