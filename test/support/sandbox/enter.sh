#!/usr/bin/env bash
# Test harness (runs on the test host, as root, inside namespaces sandbox.ts creates with
# `unshare --mount --pid --fork --propagation private [--net]`): assembles a throwaway root and runs
# one command in it with chroot. Everything it mounts lives in the private mount namespace and goes
# away with it; the only host-global object is a loop device for the data disk, detached at the end.
#
#   enter.sh LOWER UPPER WORK MERGED [options] -- COMMAND...
#     --bind HOST:GUEST     read-only bind mount of a host directory (GUEST under /run)
#     --data IMAGE:SERIAL   attach IMAGE to a loop device, shown in the root as
#                           /dev/disk/by-id/virtio-SERIAL (as udev names a virtio disk)
#     --mount-all           run `mount -a` in the root first (what boot does with /etc/fstab)
#     --guard-net           replace nft, iptables and ip with refusing stubs (the host network)
#
# The root: LOWER (the cached Debian tree, never written) + UPPER (this sandbox's changes) as an
# overlay; fresh /proc with /proc/sys read-only (sysctls are the host kernel's); /sys read-only;
# a tmpfs /dev with only null, zero, full, random, urandom, tty (and the data disk); tmpfs /run
# with /run/systemd/system (systemd is "running"); test fakes first on PATH (/run/kiln-test/bin).
set -euo pipefail

lower=$1 upper=$2 work=$3 merged=$4
shift 4
binds=()
data=''
mount_all=0
guard_net=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bind) binds+=("$2"); shift 2 ;;
    --data) data=$2; shift 2 ;;
    --mount-all) mount_all=1; shift ;;
    --guard-net) guard_net=1; shift ;;
    --) shift; break ;;
    *) echo "enter.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
mount -t proc -o nosuid,nodev,noexec proc "$merged/proc"
mount --bind "$merged/proc/sys" "$merged/proc/sys"
mount -o remount,bind,ro "$merged/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$merged/sys"

mount -t tmpfs -o mode=0755,nosuid tmpfs "$merged/dev"
for node in null zero full random urandom tty; do
  touch "$merged/dev/$node"
  mount --bind "/dev/$node" "$merged/dev/$node"
done
ln -s /proc/self/fd "$merged/dev/fd"
ln -s /proc/self/fd/0 "$merged/dev/stdin"
ln -s /proc/self/fd/1 "$merged/dev/stdout"
ln -s /proc/self/fd/2 "$merged/dev/stderr"
mkdir -p "$merged/dev/pts" "$merged/dev/shm"

mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$merged/run"
mkdir -p "$merged/run/systemd/system" "$merged/run/lock"

loop=''
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  umount -R -l "$merged" 2>/dev/null || true
  [ -z "$loop" ] || losetup -d "$loop" 2>/dev/null || true
}
trap cleanup EXIT

if [ -n "$data" ]; then
  image=${data%%:*}
  serial=${data#*:}
  loop=$(losetup --find --show -- "$image")
  read -r major minor < <(stat -c '%t %T' "$loop")
  mknod "$merged/dev/${loop#/dev/}" b "$((16#$major))" "$((16#$minor))"
  mkdir -p "$merged/dev/disk/by-id"
  ln -s "../../${loop#/dev/}" "$merged/dev/disk/by-id/virtio-$serial"
fi

for bind in "${binds[@]}"; do
  host=${bind%%:*}
  guest=${bind#*:}
  case "$guest" in /run/*) ;; *) echo "enter.sh: bind targets must be under /run: $guest" >&2; exit 2 ;; esac
  mkdir -p "$merged$guest"
  mount --bind "$host" "$merged$guest"
  mount -o remount,bind,ro "$merged$guest"
done

if [ "$guard_net" = 1 ]; then
  refuse=$merged/run/kiln-test/refuse
  mkdir -p "$(dirname "$refuse")"
  # shellcheck disable=SC2016 # $0 is for the stub
  printf '#!/bin/sh\necho "sandbox: $0 is disabled in the host network namespace" >&2\nexit 99\n' >"$refuse"
  chmod 0755 "$refuse"
  for tool in /usr/sbin/nft /usr/sbin/iptables /usr/sbin/ip6tables /sbin/ip /usr/sbin/ip /bin/ip; do
    if [ -e "$merged$tool" ] && [ ! -L "$merged$tool" ]; then mount --bind "$refuse" "$merged$tool"; fi
  done
fi

export PATH=/run/kiln-test/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ "$mount_all" = 1 ]; then
  chroot "$merged" /bin/mount -a
fi
rc=0
chroot "$merged" "$@" || rc=$?
exit "$rc"
