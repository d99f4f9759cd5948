# Points the resolver at the cluster's DNS servers.
domain=$(read_attribute dns/domain)
servers=$(read_attribute dns/servers)
if [ -n "$servers" ]; then
  { [ -n "$domain" ] && echo "search $domain"; for s in $(echo "$servers" | jq -r '.[]'); do echo "nameserver $s"; done; } > "${RESOLV_CONF:-/etc/resolv.conf}"
fi
write_attribute crowbar_wall/dns/configured true
