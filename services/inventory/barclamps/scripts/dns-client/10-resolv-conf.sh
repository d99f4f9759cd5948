# Points the resolver at the cluster's DNS servers.
domain=$(read_attribute dns/domain)
if has_attribute dns/servers; then
  {
    [ -z "$domain" ] || echo "search $domain"
    for i in $(get_keys dns/servers); do echo "nameserver $(read_attribute "dns/servers/$i")"; done
  } > "${RESOLV_CONF:-/etc/resolv.conf}"
fi
write_attribute crowbar_wall/dns/configured true
