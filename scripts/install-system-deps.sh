#!/usr/bin/env bash
# Installs the system packages kiln and its tests need on Debian 12 / Ubuntu 22.04+ (run as root).
# Changes the host: apt package lists and the packages below; and docker-registry's own service,
# which the package enables on all interfaces, is stopped and disabled (the tests start their own
# registries on loopback). Nothing else.
set -euo pipefail

packages=(
  qemu-system-x86 qemu-utils   # local target: build VMs and disk conversion
  debootstrap                  # local target: base images from Debian's mirror
  genisoimage                  # cloud-init NoCloud seeds
  grub-pc-bin                  # BIOS GRUB for base images built without loop devices
  e2fsprogs xfsprogs dosfstools fdisk # file systems and partition tables in image files
  openssh-client openssh-server # SSH to build VMs; a real sshd for the SSH tests
  sudo                         # the SSH tests run commands with sudo -n, as on a build VM
  socat                        # relays QEMU guest forwards to loopback servers (artifact mirrors)
  shellcheck                   # lint of provision/*.sh
  skopeo                       # kiln bundle: copies container images into OCI archives
  docker-registry              # a real registry on loopback for the bundle tests
  tar gzip xz-utils zstd curl ca-certificates
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: run as root (sudo $0)" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet docker-registry.service 2>/dev/null; then
  systemctl disable --now --quiet docker-registry.service
fi
echo "install-system-deps: installed ${#packages[@]} packages"
