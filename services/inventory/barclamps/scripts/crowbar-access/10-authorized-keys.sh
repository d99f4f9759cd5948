# Installs the cluster's access keys for root.
mkdir -p /root/.ssh && chmod 700 /root/.ssh
for k in $(get_keys crowbar/access/keys); do
  key=$(read_attribute "crowbar/access/keys/$k")
  grep -qxF "$key" /root/.ssh/authorized_keys 2>/dev/null || echo "$key" >> /root/.ssh/authorized_keys
done
write_attribute crowbar_wall/access/configured true
