#!/usr/bin/env bash
# kiln step "base": checks that the host is a supported distribution (Debian 12, Ubuntu 22.04 or
# 24.04, Amazon Linux 2023; x86_64; systemd) and installs the tools the later steps and the boot
# script need, only those that are missing.
#
# Changes on the host: installs packages with apt-get (Debian/Ubuntu; refreshes the package lists
# only when something is missing) or dnf (Amazon Linux 2023): curl, ca-certificates, jq, tar, gzip,
# zstd, util-linux, procps, kmod, e2fsprogs or xfsprogs (KILN_DATA_FS), nftables (when
# KILN_FIREWALL_ENABLED=true and firewalld is not the active firewall). Nothing else.
#
# Environment: KILN_DATA_FS (ext4|xfs), KILN_FIREWALL_ENABLED (true|false); optional KILN_OFFLINE
# (true in an offline build, kiln build --bundle: a missing tool is an error, nothing is installed).
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_DATA_FS KILN_FIREWALL_ENABLED
kiln_detect_distro
kiln_log "distribution: $KILN_DISTRO_NAME ($KILN_PKG)"
[ -d /run/systemd/system ] || kiln_die "systemd is not running: kiln images need systemd as init"

# Each requirement is a command (or file) and the package that provides it, per package manager.
# Checking commands rather than package names copes with variants (curl vs curl-minimal on AL2023).
needs=(
  "curl curl curl"
  "jq jq jq"
  "tar tar tar"
  "gzip gzip gzip"
  "zstd zstd zstd"
  "sha256sum coreutils coreutils"
  "findmnt util-linux util-linux"
  "lsblk util-linux util-linux"
  "blkid util-linux util-linux"
  "wipefs util-linux util-linux"
  "mountpoint util-linux util-linux"
  "flock util-linux util-linux"
  "fstrim util-linux util-linux"
  "sysctl procps procps-ng"
  "modprobe kmod kmod"
  "awk mawk gawk"
)
case "$KILN_DATA_FS" in
  ext4) needs+=("mkfs.ext4 e2fsprogs e2fsprogs") ;;
  xfs) needs+=("mkfs.xfs xfsprogs xfsprogs") ;;
  *) kiln_die "KILN_DATA_FS must be ext4 or xfs, found \"$KILN_DATA_FS\"" ;;
esac
if kiln_bool "$KILN_FIREWALL_ENABLED"; then
  if [ "$KILN_PKG" = dnf ] && systemctl is-enabled --quiet firewalld.service 2>/dev/null; then
    kiln_log "firewalld is enabled: the firewall step will use it"
  else
    needs+=("nft nftables nftables")
  fi
fi

missing=()
for need in "${needs[@]}"; do
  read -r command apt_pkg dnf_pkg <<<"$need"
  if ! command -v "$command" >/dev/null 2>&1; then
    if [ "$KILN_PKG" = apt ]; then pkg=$apt_pkg; else pkg=$dnf_pkg; fi
    case " ${missing[*]} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
  fi
done
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ "$KILN_PKG" = apt ] || ca_bundle=/etc/pki/tls/certs/ca-bundle.crt
[ -s "$ca_bundle" ] || missing+=(ca-certificates)

if [ "${#missing[@]}" -eq 0 ]; then
  kiln_log "every required tool is installed"
  exit 0
fi

if kiln_bool "${KILN_OFFLINE:-false}"; then
  kiln_die "offline build: the base image lacks ${missing[*]}, and an offline build downloads nothing, packages included: use a base image that carries them (kiln's local debian-12 base image does)"
fi
kiln_log "installing: ${missing[*]}"
case "$KILN_PKG" in
  apt)
    export DEBIAN_FRONTEND=noninteractive
    # Cloud images may run unattended-upgrades at first boot: wait for the dpkg lock, don't fail.
    apt_opts=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    apt-get "${apt_opts[@]}" update -q
    apt-get "${apt_opts[@]}" install -y -q --no-install-recommends -- "${missing[@]}"
    ;;
  dnf)
    dnf install -y -q -- "${missing[@]}"
    ;;
esac

for need in "${needs[@]}"; do
  read -r command _ <<<"$need"
  command -v "$command" >/dev/null 2>&1 || kiln_die "$command is still missing after installing packages"
done
kiln_log "installed ${#missing[@]} packages"
