#!/usr/bin/env bash
# kiln step "generalize" (runs last): removes everything that identifies this build machine, so
# every instance launched from the image gets its own identity, and trims free space so the image
# is small.
#
# Changes on the host:
#   - removes the SSH authorized_keys of root and of KILN_BUILD_USER, the SSH host keys
#     (/etc/ssh/ssh_host_*; cloud-init makes new ones at first boot), shell histories of root and
#     every user under /home;
#   - empties /etc/machine-id (systemd makes a new one at boot) and removes
#     /var/lib/dbus/machine-id when it is a file, /var/lib/systemd/random-seed, DHCP leases;
#   - K3s: any cluster identity (<KILN_K3S_DATA_DIR>/server/{tls,token,node-token,cred}, the
#     contents of server/db, agent state except agent/images, /etc/rancher/node/password,
#     /etc/rancher/k3s/k3s.yaml) -- none should exist, K3s never ran;
#   - cloud-init: `cloud-init clean --logs --seed` (instance state, logs, seed) when installed;
#   - Azure (KILN_TARGET=azure) with waagent: `waagent -deprovision+user -force` (also removes the
#     build user);
#   - logs: rotated/compressed files under /var/log removed, the others truncated, the journal
#     vacuumed; package caches (apt lists and archives, or dnf caches);
#   - /tmp/*, /var/tmp/* (including KILN_STAGING_DIR);
#   - runs fstrim on every mounted file system that supports it.
#
# Environment: KILN_TARGET (aws|azure|gcp|local), KILN_BUILD_USER, KILN_STAGING_DIR,
# KILN_K3S_DATA_DIR.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_TARGET KILN_BUILD_USER KILN_STAGING_DIR KILN_K3S_DATA_DIR
case "$KILN_TARGET" in aws | azure | gcp | local) ;; *) kiln_die "unknown KILN_TARGET \"$KILN_TARGET\"" ;; esac
[[ $KILN_BUILD_USER =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || kiln_die "KILN_BUILD_USER \"$KILN_BUILD_USER\" is not a user name"
kiln_is_abs_path "$KILN_STAGING_DIR" || kiln_die "KILN_STAGING_DIR must be an absolute path"
kiln_is_abs_path "$KILN_K3S_DATA_DIR" || kiln_die "KILN_K3S_DATA_DIR must be an absolute path"
kiln_detect_distro
data_dir=${KILN_K3S_DATA_DIR%/}

# ---------------------------------------------------------------------------------------------
# Access and identity
homes=(/root)
if user_home=$(getent passwd "$KILN_BUILD_USER" | cut -d: -f6) && [ -n "$user_home" ]; then
  homes+=("$user_home")
else
  kiln_log "build user $KILN_BUILD_USER does not exist (already removed?)"
fi
for home in "${homes[@]}"; do
  kiln_remove "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2"
done
for home in /root /home/*; do
  [ -d "$home" ] || continue
  kiln_remove "$home/.bash_history" "$home/.zsh_history" "$home/.lesshst" "$home/.viminfo" "$home/.wget-hsts" "$home/.python_history"
done
for key in /etc/ssh/ssh_host_*; do
  if [ -e "$key" ]; then kiln_remove "$key"; fi
done

if [ -s /etc/machine-id ]; then
  : >/etc/machine-id
  kiln_log "emptied /etc/machine-id"
fi
[ -e /etc/machine-id ] || { : >/etc/machine-id; chmod 0444 /etc/machine-id; }
[ -L /var/lib/dbus/machine-id ] || kiln_remove /var/lib/dbus/machine-id
kiln_remove /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
for lease in /var/lib/dhcp/*.leases /var/lib/dhclient/*.leases /var/lib/NetworkManager/*.lease; do
  if [ -e "$lease" ]; then kiln_remove "$lease"; fi
done

# ---------------------------------------------------------------------------------------------
# K3s: nothing of a cluster may travel in the image.
kiln_remove "$data_dir/server/tls" "$data_dir/server/token" "$data_dir/server/node-token" "$data_dir/server/cred" \
  /etc/rancher/node/password /etc/rancher/k3s/k3s.yaml
if [ -d "$data_dir/server/db" ]; then
  for entry in "$data_dir/server/db"/* "$data_dir/server/db"/.[!.]*; do
    if [ -e "$entry" ]; then kiln_remove "$entry"; fi
  done
fi
if [ -d "$data_dir/agent" ]; then
  for entry in "$data_dir/agent"/* "$data_dir/agent"/.[!.]*; do
    [ -e "$entry" ] || continue
    [ "$entry" = "$data_dir/agent/images" ] || kiln_remove "$entry"
  done
fi

# ---------------------------------------------------------------------------------------------
# Cloud agents
if command -v cloud-init >/dev/null 2>&1; then
  if [ -e /var/lib/cloud/instance ] || [ -n "$(ls -A /var/lib/cloud 2>/dev/null)" ] || ls /var/log/cloud-init*.log >/dev/null 2>&1; then
    cloud-init clean --logs --seed
    kiln_log "cloud-init state, seed and logs cleaned"
  fi
fi
if [ "$KILN_TARGET" = azure ]; then
  if command -v waagent >/dev/null 2>&1; then
    waagent -deprovision+user -force
    kiln_log "Azure agent deprovisioned (build user removed)"
  else
    kiln_warn "waagent is not installed: skipping the Azure deprovisioning"
  fi
fi

# ---------------------------------------------------------------------------------------------
# Logs, caches, temporary files
find /var/log -xdev -type f \( -name '*.gz' -o -name '*.xz' -o -name '*.zst' -o -name '*.[0-9]' -o -name '*.old' \) \
  -not -path '/var/log/journal/*' -print -delete | while read -r gone; do kiln_log "removed $gone"; done
find /var/log -xdev -type f -size +0 -not -path '/var/log/journal/*' -print0 | while IFS= read -r -d '' file; do
  : >"$file"
  kiln_log "truncated $file"
done
if [ -d /var/log/journal ] && [ -d /run/systemd/system ]; then
  journalctl --rotate >/dev/null 2>&1 || true
  journalctl --vacuum-time=1s >/dev/null 2>&1 || true
fi

case "$KILN_PKG" in
  apt)
    apt-get clean
    for entry in /var/lib/apt/lists/*; do
      [ -e "$entry" ] || continue
      case "${entry##*/}" in partial | lock | auxfiles) ;; *) kiln_remove "$entry" ;; esac
    done
    ;;
  dnf)
    dnf clean all >/dev/null
    ;;
esac

for entry in /tmp/* /tmp/.[!.]* /var/tmp/* /var/tmp/.[!.]*; do
  [ -e "$entry" ] || [ -L "$entry" ] || continue
  case "$entry" in
    /tmp/.X11-unix | /tmp/.ICE-unix | /tmp/.font-unix | /tmp/.XIM-unix | /tmp/.Test-unix) continue ;;
    /tmp/.kiln-exec-*) continue ;; # the process-group file of the command running this script
  esac
  kiln_remove "$entry"
done
kiln_remove "$KILN_STAGING_DIR"

# ---------------------------------------------------------------------------------------------
sync
if out=$(fstrim --all --verbose 2>&1); then
  kiln_log "trimmed free space: ${out//$'\n'/; }"
else
  kiln_warn "fstrim could not trim every file system (${out//$'\n'/; }): the image may be larger"
fi
kiln_log "generalized"
