#!/usr/bin/env bash
# kiln step "firewall": a host firewall that lets in SSH, the listed TCP/UDP ports and everything
# from the K3s pod and service networks (KILN_CLUSTER_CIDR, KILN_SERVICE_CIDR, the same values K3s
# is configured with), and drops the rest of the inbound traffic. Applied now and at every boot.
#
# Changes on the host, nftables (Debian, Ubuntu, and Amazon Linux 2023 without firewalld):
#   - the rule file /etc/nftables.d/kiln.nft (Debian/Ubuntu) or /etc/nftables/kiln.nft (AL2023):
#     one table "inet kiln" that replaces itself when loaded; no other table is touched, so K3s's
#     own rules (kube-proxy, flannel, network policies) survive reloads;
#   - /etc/nftables.conf (Debian/Ubuntu) is replaced by one that includes /etc/nftables.d/*.nft and
#     does not "flush ruleset"; /etc/sysconfig/nftables.conf (AL2023) gains an include line;
#   - nftables.service is enabled; the table is loaded now; on Ubuntu an active ufw is disabled.
# With firewalld enabled (Amazon Linux 2023 only): permanent firewalld settings instead (the CIDRs
# as sources of the "trusted" zone, ports in the default zone), then a reload.
# With KILN_FIREWALL_ENABLED=false: removes the kiln rule file and table, changes nothing else.
#
# Environment: KILN_FIREWALL_ENABLED, KILN_FIREWALL_TCP_PORTS and KILN_FIREWALL_UDP_PORTS
# (space-separated numbers, may be empty), KILN_CLUSTER_CIDR, KILN_SERVICE_CIDR.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_FIREWALL_ENABLED KILN_CLUSTER_CIDR KILN_SERVICE_CIDR
kiln_require_env KILN_FIREWALL_TCP_PORTS KILN_FIREWALL_UDP_PORTS
kiln_detect_distro

cidr_re='^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$'
for cidr in "$KILN_CLUSTER_CIDR" "$KILN_SERVICE_CIDR"; do
  [[ $cidr =~ $cidr_re ]] || kiln_die "\"$cidr\" is not an IPv4 CIDR"
done
# SSH is always allowed, whatever the list says: losing it would lock the builder out.
read -r -a tcp_ports <<<"22 $KILN_FIREWALL_TCP_PORTS"
read -r -a udp_ports <<<"$KILN_FIREWALL_UDP_PORTS"
for port in "${tcp_ports[@]}" "${udp_ports[@]}"; do
  if ! [[ $port =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then kiln_die "\"$port\" is not a port number"; fi
done
# Sorted, without duplicates, for a stable rule file.
mapfile -t tcp_ports < <(printf '%s\n' "${tcp_ports[@]}" | sort -n -u)
mapfile -t udp_ports < <(printf '%s\n' "${udp_ports[@]}" | sed '/^$/d' | sort -n -u)
join() {
  local IFS=,
  printf '%s' "$*" | sed 's/,/, /g'
}

if [ "$KILN_PKG" = dnf ]; then
  rule_file=/etc/nftables/kiln.nft
  main_conf=/etc/sysconfig/nftables.conf
else
  rule_file=/etc/nftables.d/kiln.nft
  main_conf=/etc/nftables.conf
fi

# ---------------------------------------------------------------------------------------------
if ! kiln_bool "$KILN_FIREWALL_ENABLED"; then
  kiln_remove "$rule_file"
  if command -v nft >/dev/null 2>&1 && nft list table inet kiln >/dev/null 2>&1; then
    nft delete table inet kiln
    kiln_log "removed the live table inet kiln"
  fi
  kiln_log "firewall disabled by the definition: the distribution's firewall settings are left as they are"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
if [ "$KILN_PKG" = dnf ] && systemctl is-enabled --quiet firewalld.service 2>/dev/null; then
  command -v firewall-cmd >/dev/null 2>&1 || kiln_die "firewalld is enabled but firewall-cmd is missing"
  changed=0
  permanent() {
    if ! firewall-cmd --permanent "--query-$1" >/dev/null 2>&1; then
      firewall-cmd --permanent "--add-$1" >/dev/null
      changed=1
      kiln_log "firewalld: added $1"
    fi
  }
  for cidr in "$KILN_CLUSTER_CIDR" "$KILN_SERVICE_CIDR"; do
    if ! firewall-cmd --permanent --zone=trusted --query-source="$cidr" >/dev/null 2>&1; then
      firewall-cmd --permanent --zone=trusted --add-source="$cidr" >/dev/null
      changed=1
      kiln_log "firewalld: trusted source $cidr"
    fi
  done
  for port in "${tcp_ports[@]}"; do permanent "port=$port/tcp"; done
  for port in "${udp_ports[@]}"; do permanent "port=$port/udp"; done
  if [ "$changed" = 1 ] && systemctl is-active --quiet firewalld.service; then firewall-cmd --reload >/dev/null; fi
  kiln_log "firewalld allows tcp ${tcp_ports[*]} udp ${udp_ports[*]:-none} and trusts $KILN_CLUSTER_CIDR $KILN_SERVICE_CIDR"
  exit 0
fi

command -v nft >/dev/null 2>&1 || kiln_die "nft is missing: the base step installs nftables"

if [ "$KILN_DISTRO" = ubuntu ] && command -v ufw >/dev/null 2>&1 && ufw status 2>/dev/null | grep -q '^Status: active'; then
  kiln_log "disabling ufw: kiln manages the firewall with nftables"
  ufw --force disable >/dev/null
  KILN_CHANGED=1
fi
[ "$KILN_DISTRO" != ubuntu ] || kiln_disable ufw.service

rules=$(mktemp)
{
  cat <<EOF
# Written by kiln (firewall step): inbound traffic the appliance accepts. Loading this file
# replaces the table "inet kiln" and nothing else.
table inet kiln
delete table inet kiln
table inet kiln {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		# DHCP and DHCPv6 replies
		udp sport 67 udp dport 68 accept
		udp sport 547 udp dport 546 accept
		# K3s pod network and service network
		ip saddr { $KILN_CLUSTER_CIDR, $KILN_SERVICE_CIDR } accept
		tcp dport { $(join "${tcp_ports[@]}") } accept
EOF
  [ "${#udp_ports[@]}" -eq 0 ] || printf '\t\tudp dport { %s } accept\n' "$(join "${udp_ports[@]}")"
  printf '\t}\n}\n'
} >"$rules"
nft -c -f "$rules" || kiln_die "nft rejected the generated rules (see above)"
KILN_CHANGED=0
kiln_install_file "$rules" "$rule_file" 0644
rm -f -- "$rules"
rules_changed=$KILN_CHANGED

if [ "$KILN_PKG" = dnf ]; then
  include_line="include \"$rule_file\""
  if ! grep -qxF -- "$include_line" "$main_conf" 2>/dev/null; then
    { cat -- "$main_conf" 2>/dev/null || true; printf '%s\n' "$include_line"; } | kiln_write_file "$main_conf" 0600
  fi
else
  kiln_write_file "$main_conf" 0755 <<'EOF'
#!/usr/sbin/nft -f
# Written by kiln (firewall step): loads every rule file in /etc/nftables.d. There is deliberately
# no "flush ruleset": K3s keeps its own tables in the same ruleset and a reload must not drop them.
include "/etc/nftables.d/*.nft"
EOF
fi

# Load now when the file changed or the live table is missing (idempotent either way: the file
# replaces only its own table, atomically).
if [ "$rules_changed" = 1 ] || ! nft list table inet kiln >/dev/null 2>&1; then
  nft -f "$rule_file"
  kiln_log "loaded $rule_file"
fi
kiln_enable nftables.service
kiln_log "firewall allows tcp ${tcp_ports[*]} udp ${udp_ports[*]:-none} and the K3s networks $KILN_CLUSTER_CIDR $KILN_SERVICE_CIDR"
