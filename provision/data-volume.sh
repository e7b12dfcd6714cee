#!/usr/bin/env bash
# kiln step "data-volume": finds the data disk the target attached (never the disk holding /),
# waits for it with a deadline, formats it only when it is blank, labels it, mounts it by label
# from /etc/fstab (nofail) and binds the directories listed in KILN_DATA_LINKS_FILE onto it, so
# the product's state lives on the data volume and survives reboots and root-volume swaps.
#
# Changes on the host:
#   - the data disk: a file system (KILN_DATA_FS, label KILN_DATA_LABEL) when it had none, and one
#     directory per link on it;
#   - /etc/fstab: a block between "# BEGIN kiln data volume" and "# END kiln data volume" with the
#     LABEL= mount and one bind mount per link (each after the data mount);
#   - the mount point and each link path on the root volume (created; their existing contents are
#     moved onto the data volume when its directory is empty); the mounts themselves, now;
#   - /etc/systemd/system/k3s.service.d/10-kiln-data.conf: K3s requires those mounts;
#   - /etc/kiln/data-volume.conf and /etc/kiln/data-links.tsv: the same settings for the boot script.
#
# Environment: KILN_DATA_LABEL, KILN_DATA_FS (ext4|xfs), KILN_DATA_MOUNT, KILN_DATA_DISK_KIND
# (aws-ebs|azure-lun|gcp-device|virtio-serial), KILN_DATA_DISK_REF (EBS volume id, LUN, GCE device
# name, virtio serial), KILN_DATA_LINKS_FILE (lines "<absolute path>\t<directory on the volume>").
# Optional: KILN_DATA_DISK_TIMEOUT (seconds to wait for the disk, default 300).
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_DATA_LABEL KILN_DATA_FS KILN_DATA_MOUNT KILN_DATA_DISK_KIND KILN_DATA_DISK_REF KILN_DATA_LINKS_FILE
kiln_require_file "$KILN_DATA_LINKS_FILE"

label=$KILN_DATA_LABEL
fs=$KILN_DATA_FS
mount_point=$KILN_DATA_MOUNT
timeout=${KILN_DATA_DISK_TIMEOUT:-300}
[[ $label =~ ^[A-Za-z0-9_-]{1,16}$ ]] || kiln_die "KILN_DATA_LABEL \"$label\" must be 1-16 letters, digits, \"_\" or \"-\""
case "$fs" in
  ext4) ;;
  xfs) [ "${#label}" -le 12 ] || kiln_die "xfs labels are at most 12 characters: \"$label\"" ;;
  *) kiln_die "KILN_DATA_FS must be ext4 or xfs, found \"$fs\"" ;;
esac
if ! kiln_is_abs_path "$mount_point" || [ "$mount_point" = / ]; then kiln_die "KILN_DATA_MOUNT \"$mount_point\" must be an absolute path other than /"; fi
mount_point=${mount_point%/}
kiln_is_uint "$timeout" || kiln_die "KILN_DATA_DISK_TIMEOUT must be a number of seconds"

# ---------------------------------------------------------------------------------------------
# The links: validated before anything changes.
link_paths=()
link_targets=()
while IFS=$'\t' read -r path target rest || [ -n "$path" ]; do
  [ -n "$path" ] || continue
  [ -z "${rest:-}" ] || kiln_die "$KILN_DATA_LINKS_FILE: more than two fields in \"$path\""
  if ! kiln_is_abs_path "$path" || [ "$path" = / ]; then kiln_die "link path \"$path\" must be an absolute path other than /"; fi
  kiln_is_rel_path "${target:-}" || kiln_die "link target \"${target:-}\" must be a relative path on the data volume"
  case "${path%/}/" in "$mount_point"/*) kiln_die "link path $path is inside the data mount $mount_point" ;; esac
  case "$mount_point/" in "${path%/}"/*) kiln_die "link path $path contains the data mount $mount_point" ;; esac
  link_paths+=("${path%/}")
  link_targets+=("${target%/}")
done <"$KILN_DATA_LINKS_FILE"

# ---------------------------------------------------------------------------------------------
# Finding the disk.

ref=$KILN_DATA_DISK_REF
case "$KILN_DATA_DISK_KIND" in
  aws-ebs) [[ $ref =~ ^vol-[0-9a-f]{8,17}$ ]] || kiln_die "aws-ebs: KILN_DATA_DISK_REF \"$ref\" is not an EBS volume id (vol-...)" ;;
  azure-lun) [[ $ref =~ ^([0-9]|[1-5][0-9]|6[0-3])$ ]] || kiln_die "azure-lun: KILN_DATA_DISK_REF \"$ref\" is not a LUN (0-63)" ;;
  gcp-device) [[ $ref =~ ^[a-z]([-a-z0-9]{0,62})$ ]] || kiln_die "gcp-device: KILN_DATA_DISK_REF \"$ref\" is not a device name" ;;
  virtio-serial) [[ $ref =~ ^[A-Za-z0-9_.-]{1,20}$ ]] || kiln_die "virtio-serial: KILN_DATA_DISK_REF \"$ref\" is not a virtio serial" ;;
  *) kiln_die "unknown KILN_DATA_DISK_KIND \"$KILN_DATA_DISK_KIND\" (aws-ebs, azure-lun, gcp-device, virtio-serial)" ;;
esac

# Lets udev finish creating /dev/disk/* links (when udev runs at all).
settle() {
  if command -v udevadm >/dev/null 2>&1; then udevadm settle --timeout=30 || true; fi
}

# Prints the device the locator names, or fails when it is not (yet) there.
locate_disk() {
  local candidate
  local -a links=()
  case "$KILN_DATA_DISK_KIND" in
    aws-ebs)
      # NVMe (Nitro) instances: the controller's serial is the volume id without its dash.
      links=("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${ref/-/}")
      ;;
    azure-lun)
      links=("/dev/disk/azure/data/by-lun/$ref" "/dev/disk/azure/scsi1/lun$ref")
      ;;
    gcp-device)
      links=("/dev/disk/by-id/google-$ref" "/dev/disk/by-id/scsi-0Google_PersistentDisk_$ref" "/dev/disk/by-id/nvme-Google_PersistentDisk_$ref")
      ;;
    virtio-serial)
      links=("/dev/disk/by-id/virtio-$ref")
      ;;
  esac
  for candidate in "${links[@]}"; do
    if [ -b "$candidate" ]; then
      readlink -f -- "$candidate"
      return 0
    fi
  done
  locate_in_sys
}

# The same lookups through /sys, for images without the cloud's udev rules.
locate_in_sys() {
  local block name serial
  for block in /sys/block/*; do
    [ -e "$block" ] || continue
    name=${block##*/}
    case "$KILN_DATA_DISK_KIND:$name" in
      aws-ebs:nvme*n*)
        serial=$(tr -d '[:space:]' <"$block/device/serial" 2>/dev/null || true)
        [ "$serial" = "${ref/-/}" ] || continue
        ;;
      virtio-serial:vd*)
        serial=$(cat "$block/serial" 2>/dev/null || true)
        [ "$serial" = "$ref" ] || continue
        ;;
      azure-lun:sd*)
        # Data disks sit on the VMBus SCSI controller {f8b3781b-...} (the OS disk on ...781a-...).
        local device address controller=''
        device=$(readlink -f -- "$block/device") || continue
        address=${device##*/}
        [ "${address##*:}" = "$ref" ] || continue
        local dir=$device
        while [ "$dir" != / ] && [ -z "$controller" ]; do
          dir=$(dirname -- "$dir")
          [ ! -r "$dir/device_id" ] || controller=$(tr 'A-F' 'a-f' <"$dir/device_id")
        done
        [ "$controller" = "{f8b3781b-1e82-4818-a1c3-63d806ec15bb}" ] || continue
        ;;
      *) continue ;;
    esac
    [ -b "/dev/$name" ] || continue
    printf '/dev/%s\n' "$name"
    return 0
  done
  return 1
}

found_disk=''
poll_disk() {
  found_disk=$(locate_disk) || return 1
  [ -n "$found_disk" ]
}

# Is something already mounted at the mount point with our label? Then that is the volume.
mounted_device() {
  local source
  source=$(findmnt -n -v -o SOURCE --mountpoint "$mount_point" 2>/dev/null) || return 1
  source=${source%%\[*}
  [ -b "$source" ] || return 1
  [ "$(blkid -s LABEL -o value -- "$source" 2>/dev/null || true)" = "$label" ] || kiln_die "$mount_point is already mounted from $source, which is not labelled $label"
  printf '%s' "$source"
}

fs_device=''
if fs_device=$(mounted_device); then
  kiln_log "data volume already mounted: $fs_device on $mount_point"
else
  settle
  kiln_wait_until "$timeout" "the data disk ($KILN_DATA_DISK_KIND $ref)" poll_disk ||
    kiln_die "no data disk found for $KILN_DATA_DISK_KIND $ref after ${timeout}s: is the disk attached?"
  disk=$found_disk
  kiln_log "data disk ($KILN_DATA_DISK_KIND $ref): $disk"

  case "$(lsblk -n -d -r -o TYPE -- "$disk")" in
    disk | loop) ;;
    *) kiln_die "$disk is not a whole disk" ;;
  esac
  disk_name=$(kiln_disk_of "$disk")
  while read -r root_disk; do
    [ "$root_disk" != "$disk_name" ] || kiln_die "$disk holds the root file system: refusing to use it as the data disk"
  done < <(kiln_root_disks)
  while read -r used; do
    [ -z "$used" ] || [ "$used" = "$mount_point" ] || kiln_die "$disk (or a partition of it) is in use at $used: refusing to touch it"
  done < <(lsblk -n -r -o MOUNTPOINT -- "$disk")

  # Which block device carries (or will carry) the file system: a partition already labelled
  # ours, or the whole disk.
  partitions=$(lsblk -n -r -o NAME,TYPE -- "$disk" | awk '$2 == "part" { print $1 }')
  if [ -n "$partitions" ]; then
    for part in $partitions; do
      if [ "$(blkid -p -s LABEL -o value -- "/dev/$part" 2>/dev/null || true)" = "$label" ]; then fs_device=/dev/$part; fi
    done
    [ -n "$fs_device" ] || kiln_die "$disk has partitions ($partitions) and none is labelled $label: refusing to format it"
  else
    fs_device=$disk
  fi

  rc=0
  found_type=$(blkid -p -s TYPE -o value -- "$fs_device" 2>/dev/null) || rc=$?
  found_label=$(blkid -p -s LABEL -o value -- "$fs_device" 2>/dev/null || true)
  if [ "$rc" -eq 2 ] && [ -z "$found_type" ] && [ -z "$(wipefs -n -- "$fs_device" 2>/dev/null | tail -n +2)" ]; then
    # blkid found no signature at all; insist the start of the disk is zeros before formatting.
    cmp -s -n 1048576 -- "$fs_device" /dev/zero || kiln_die "$fs_device has no known signature but is not blank: refusing to format it"
    kiln_log "formatting blank $fs_device as $fs, label $label"
    case "$fs" in
      ext4) mkfs.ext4 -q -F -m 1 -L "$label" -- "$fs_device" ;;
      xfs) mkfs.xfs -q -f -L "$label" -- "$fs_device" ;;
    esac
    KILN_CHANGED=1
    settle
  elif [ "$found_label" = "$label" ]; then
    [ "$found_type" = "$fs" ] || kiln_warn "$fs_device holds a $found_type file system labelled $label (expected $fs): keeping it"
    kiln_log "$fs_device already holds the data file system ($found_type, label $label)"
  else
    kiln_die "$fs_device holds ${found_type:-unknown data} labelled \"$found_label\", not a blank disk or one labelled $label: refusing to format it"
  fi
fi

fs_type=$(blkid -s TYPE -o value -- "$fs_device" 2>/dev/null || true)
[ -n "$fs_type" ] || fs_type=$fs

# ---------------------------------------------------------------------------------------------
# /etc/fstab: our block, rewritten in place; every other line kept as it is.
begin='# BEGIN kiln data volume (written by kiln; edits are replaced)'
end='# END kiln data volume'
others=$(mktemp)
block=$(mktemp)
if [ -f /etc/fstab ]; then
  awk -v b="$begin" -v e="$end" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' /etc/fstab >"$others"
fi
awk -v m="$mount_point" '$1 !~ /^#/ && NF >= 2 { print $2 }' "$others" | while read -r other; do
  [ "$other" != "$mount_point" ] || kiln_die "/etc/fstab already mounts something at $mount_point"
  for path in "${link_paths[@]}"; do
    [ "$other" != "$path" ] || kiln_die "/etc/fstab already mounts something at $path"
  done
done
{
  printf '%s\n' "$begin"
  printf 'LABEL=%s %s %s defaults,nofail,x-systemd.device-timeout=120s 0 2\n' "$label" "$mount_point" "$fs_type"
  for i in "${!link_paths[@]}"; do
    printf '%s/%s %s none bind,nofail,x-systemd.requires-mounts-for=%s 0 0\n' "$mount_point" "${link_targets[i]}" "${link_paths[i]}" "$mount_point"
  done
  printf '%s\n' "$end"
} >"$block"
fstab_changed=0
KILN_CHANGED=0
cat "$others" "$block" | kiln_write_file /etc/fstab 0644
[ "$KILN_CHANGED" = 0 ] || fstab_changed=1
rm -f -- "$others" "$block"

# ---------------------------------------------------------------------------------------------
# Mount now, exactly as boot will (from fstab).
kiln_ensure_dir "$mount_point" 0755
if ! mountpoint -q -- "$mount_point"; then
  mount -- "$mount_point"
  kiln_log "mounted $mount_point"
fi
mounted=$(mounted_device) || kiln_die "$mount_point is not mounted after mount"
[ "$(readlink -f -- "$mounted")" = "$(readlink -f -- "$fs_device")" ] || kiln_die "$mount_point is mounted from $mounted, expected $fs_device"

for i in "${!link_paths[@]}"; do
  path=${link_paths[i]}
  target=$mount_point/${link_targets[i]}
  kiln_ensure_dir "$target" 0700
  if mountpoint -q -- "$path"; then
    root=$(findmnt -n -v -o FSROOT --mountpoint "$path")
    source=$(findmnt -n -v -o SOURCE --mountpoint "$path")
    source=${source%%\[*}
    if [ "$(readlink -f -- "$source")" != "$(readlink -f -- "$fs_device")" ] || [ "$root" != "/${link_targets[i]}" ]; then
      kiln_die "$path is already a mount of $source$root, not of $target"
    fi
    continue
  fi
  if [ -d "$path" ] && [ -n "$(ls -A -- "$path")" ]; then
    [ -z "$(ls -A -- "$target")" ] || kiln_die "both $path and $target hold files: move one of them away first"
    kiln_log "moving the contents of $path onto the data volume ($target)"
    cp -a -- "$path/." "$target/"
    find "$path" -mindepth 1 -delete
  elif [ -e "$path" ] && [ ! -d "$path" ]; then
    kiln_die "$path exists and is not a directory"
  fi
  kiln_ensure_dir "$path" 0700
  mount -- "$path"
  KILN_CHANGED=1
  kiln_log "bound $target on $path"
done

# ---------------------------------------------------------------------------------------------
# K3s must not start without its state on the data volume.
units_changed=$fstab_changed
KILN_CHANGED=0
{
  printf '# Written by kiln: K3s keeps its state on the data volume, so it starts only once that is mounted.\n'
  printf '[Unit]\n'
  printf 'RequiresMountsFor=%s' "$mount_point"
  printf ' %s' "${link_paths[@]}"
  printf '\n'
} | kiln_write_file /etc/systemd/system/k3s.service.d/10-kiln-data.conf 0644
[ "$KILN_CHANGED" = 0 ] || units_changed=1

{
  printf '# Written by kiln (data-volume step); read by the boot script.\n'
  printf 'LABEL=%s\nFS=%s\nMOUNT=%s\n' "$label" "$fs_type" "$mount_point"
} | kiln_write_file /etc/kiln/data-volume.conf 0644
kiln_install_file "$KILN_DATA_LINKS_FILE" /etc/kiln/data-links.tsv 0644

[ "$units_changed" = 0 ] || kiln_daemon_reload
kiln_log "data volume $label ($fs_type on $fs_device) mounted at $mount_point with ${#link_paths[@]} bind mounts"
