#!/usr/bin/env bash
# kiln step "kernel": kernel parameters and resource limits for K3s and the product.
#
# Changes on the host:
#   - /etc/sysctl.d/90-kiln.conf: a copy of KILN_SYSCTL_FILE, applied now with `sysctl -p` and at
#     every boot by systemd-sysctl;
#   - /etc/modules-load.d/90-kiln.conf: overlay and br_netfilter, loaded now and at every boot (K3s
#     needs them, and net.bridge.* sysctls only exist once br_netfilter is loaded);
#   - /etc/security/limits.d/90-kiln.conf: nofile/nproc for login sessions (all users and root);
#   - /etc/systemd/system.conf.d/90-kiln.conf: DefaultLimitNOFILE=1024:<nofile> for services (the
#     hard limit is raised; the soft limit stays at 1024 so that programs using select() keep
#     working, as systemd recommends, and services that need more raise it themselves, K3s does);
#     DefaultLimitNPROC likewise. Takes effect at the next boot.
#   Files for an empty limit are removed.
#
# Environment: KILN_SYSCTL_FILE (sysctl.conf lines "key = value"), KILN_LIMIT_NOFILE and
# KILN_LIMIT_NPROC (numbers, or empty for "leave the distribution's default").
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_SYSCTL_FILE
kiln_require_env KILN_LIMIT_NOFILE KILN_LIMIT_NPROC
kiln_require_file "$KILN_SYSCTL_FILE"
nofile=$KILN_LIMIT_NOFILE
nproc=$KILN_LIMIT_NPROC
[ -z "$nofile" ] || kiln_is_uint "$nofile" || kiln_die "KILN_LIMIT_NOFILE must be a number, found \"$nofile\""
[ -z "$nproc" ] || kiln_is_uint "$nproc" || kiln_die "KILN_LIMIT_NPROC must be a number, found \"$nproc\""

# A hard nofile above fs.nr_open makes PAM refuse every login: check it, counting this file's value.
if [ -n "$nofile" ]; then
  nr_open=$(awk -F= '$1 ~ /^[[:space:]]*fs\.nr_open[[:space:]]*$/ { gsub(/[[:space:]]/, "", $2); v = $2 } END { print v }' "$KILN_SYSCTL_FILE")
  [ -n "$nr_open" ] || nr_open=$(cat /proc/sys/fs/nr_open)
  [ "$nofile" -le "$nr_open" ] || kiln_die "KILN_LIMIT_NOFILE $nofile is above fs.nr_open ($nr_open): raise fs.nr_open in the sysctls too"
fi

# Only "key = value" lines and comments: sysctl.d files are not a place for anything else.
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '' | '#'* | ';'*) continue ;; esac
  [[ $line =~ ^-?[a-z0-9_]+(\.[a-z0-9_*-]+)+[[:space:]]*=[[:space:]]*[A-Za-z0-9\ ._:/-]+$ ]] ||
    kiln_die "$KILN_SYSCTL_FILE: not a sysctl setting: \"$line\""
done <"$KILN_SYSCTL_FILE"

kiln_write_file /etc/modules-load.d/90-kiln.conf 0644 <<'EOF'
# Written by kiln: kernel modules K3s needs, loaded at boot.
overlay
br_netfilter
EOF
for module in overlay br_netfilter; do
  modprobe -- "$module" || kiln_warn "could not load kernel module $module now (it is loaded at boot)"
done

kiln_install_file "$KILN_SYSCTL_FILE" /etc/sysctl.d/90-kiln.conf 0644
# Applying is idempotent and makes the values live for the rest of the build.
sysctl -q -p /etc/sysctl.d/90-kiln.conf
kiln_log "sysctls applied from /etc/sysctl.d/90-kiln.conf"

if [ -n "$nofile$nproc" ]; then
  {
    printf '# Written by kiln: resource limits for login sessions ("*" does not cover root).\n'
    for who in '*' root; do
      [ -z "$nofile" ] || printf '%-5s soft nofile %s\n%-5s hard nofile %s\n' "$who" "$nofile" "$who" "$nofile"
      [ -z "$nproc" ] || printf '%-5s soft nproc  %s\n%-5s hard nproc  %s\n' "$who" "$nproc" "$who" "$nproc"
    done
  } | kiln_write_file /etc/security/limits.d/90-kiln.conf 0644
  {
    printf '# Written by kiln: raise the hard limits of services; soft limits stay select()-safe.\n'
    printf '[Manager]\n'
    [ -z "$nofile" ] || printf 'DefaultLimitNOFILE=1024:%s\n' "$nofile"
    [ -z "$nproc" ] || printf 'DefaultLimitNPROC=%s:%s\n' "$nproc" "$nproc"
  } | kiln_write_file /etc/systemd/system.conf.d/90-kiln.conf 0644
else
  kiln_remove /etc/security/limits.d/90-kiln.conf /etc/systemd/system.conf.d/90-kiln.conf
fi
kiln_log "limits: nofile=${nofile:-default} nproc=${nproc:-default}"
