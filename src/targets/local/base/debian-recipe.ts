/**
 * What goes into the Debian base image: the package set and the script that turns a fresh
 * debootstrap tree into a cloud-style guest. Everything here is hashed into the cache key, so any
 * edit to it produces a new image; bump RECIPE_VERSION when the build code around it changes.
 */

export const RECIPE_VERSION = 1;

export interface DebianRecipe {
  distro: 'debian-12';
  suite: string;
  packages: readonly string[];
  /** Virtual size of the image; cloud-init grows the root fs to the real disk on first boot. */
  diskSizeGiB: number;
  customizeScript: string;
}

// No Recommends: debootstrap resolves only Depends, which keeps the image small and predictable.
const PACKAGES = [
  'systemd',
  'systemd-sysv',
  'systemd-resolved',
  'systemd-timesyncd',
  'udev',
  'dbus',
  'kmod',
  'linux-image-amd64',
  'initramfs-tools',
  'zstd',
  'openssh-server',
  'cloud-init',
  // A virtual dependency of python3-cryptography (via cloud-init) that debootstrap cannot resolve.
  'python3-cffi-backend',
  'cloud-guest-utils',
  'e2fsprogs',
  'fdisk',
  'sudo',
  'ca-certificates',
  'curl',
  'procps',
  'iproute2',
  'netbase',
  // What provision/base.sh would otherwise install: a local build on a restricted network (an
  // air-gapped site, the tests) has no package mirror to install them from.
  'jq',
  'nftables',
  'xfsprogs',
] as const;

/**
 * Runs inside the chroot as root with KILN_ROOT_UUID, KILN_MIRROR, KILN_SECURITY_MIRROR and
 * KILN_SUITE set. Changes: apt sources, fstab, hostname, the GRUB menu (read by the hand-installed
 * BIOS GRUB), the initramfs, networkd fallback DHCP, sshd policy; removes host keys, machine-id, apt caches, logs.
 */
const CUSTOMIZE_SCRIPT = String.raw`set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

cat > /etc/apt/sources.list <<EOF
deb $KILN_MIRROR $KILN_SUITE main
deb $KILN_MIRROR $KILN_SUITE-updates main
deb $KILN_SECURITY_MIRROR $KILN_SUITE-security main
EOF

cat > /etc/fstab <<EOF
UUID=$KILN_ROOT_UUID / ext4 defaults,errors=remount-ro 0 1
EOF

echo localhost > /etc/hostname
cat > /etc/hosts <<EOF
127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
EOF

# The kernel package keeps /vmlinuz and /initrd.img pointing at the newest kernel, so this menu
# survives kernel upgrades without grub being installed in the guest.
test -e /vmlinuz && test -e /initrd.img
mkdir -p /boot/grub
cat > /boot/grub/grub.cfg <<EOF
set default=0
set timeout=0
menuentry 'Debian GNU/Linux' {
  linux /vmlinuz root=UUID=$KILN_ROOT_UUID ro console=tty0 console=ttyS0,115200n8
  initrd /initrd.img
}
EOF

# A small initramfs with only the disk drivers of the common hypervisors: the default (all
# modules, ~30 MB) takes most of a minute to load and unpack under TCG. FSTYPE and RESUME are set
# because nothing can be probed from inside a chroot.
cat > /etc/initramfs-tools/conf.d/kiln.conf <<EOF
MODULES=list
FSTYPE=ext4
RESUME=none
EOF
cat > /etc/initramfs-tools/modules <<EOF
virtio_pci
virtio_blk
virtio_scsi
nvme
xen_blkfront
hv_vmbus
hv_storvsc
ahci
ata_piix
sd_mod
ext4
EOF
update-initramfs -u -k all

# DHCP on any NIC even without cloud-init network config; cloud-init's own files sort first.
cat > /etc/systemd/network/99-kiln-dhcp.network <<EOF
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
systemctl enable systemd-networkd.service systemd-resolved.service
ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf

# Only NoCloud: probing cloud metadata services would just time out behind restrict=on.
# C.UTF-8 because cloud-init's default locale (en_US.UTF-8) is not generated and its module fails.
cat > /etc/cloud/cloud.cfg.d/90-kiln.cfg <<EOF
datasource_list: [ NoCloud, None ]
locale: C.UTF-8
EOF
echo 'LANG=C.UTF-8' > /etc/default/locale

mkdir -p /etc/ssh/sshd_config.d
echo 'PasswordAuthentication no' > /etc/ssh/sshd_config.d/50-kiln.conf
rm -f /etc/ssh/ssh_host_*

: > /etc/machine-id
rm -f /var/lib/systemd/random-seed

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
find /var/log -type f -delete
rm -rf /tmp/* /var/tmp/* /root/.bash_history
`;

export function debianRecipe(): DebianRecipe {
  return {
    distro: 'debian-12',
    suite: 'bookworm',
    packages: PACKAGES,
    diskSizeGiB: 2,
    customizeScript: CUSTOMIZE_SCRIPT,
  };
}
