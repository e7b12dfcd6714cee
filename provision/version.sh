#!/usr/bin/env bash
# kiln step "version": pins the product version on the root volume and installs the boot unit that
# deploys it on first boot and upgrades the data volume when a newer root is attached.
#
# Changes on the host:
#   - /usr/local/lib/kiln/lib.sh and /usr/local/lib/kiln/kiln-boot.sh (the boot script, 0755),
#     copied from this folder (lib.sh, boot/kiln-boot.sh);
#   - /etc/systemd/system/kiln-boot.service (from boot/kiln-boot.service), enabled;
#   - /etc/kiln/boot.conf: the settings below, read by the boot script (KEY=VALUE, never executed);
#   - KILN_VERSION_ROOT_FILE: KILN_PRODUCT_VERSION, written last and atomically (temp file, fsync,
#     rename).
#
# Environment: KILN_PRODUCT_VERSION (semantic version), KILN_VERSION_ROOT_FILE (absolute path),
# KILN_VERSION_DATA_FILE and KILN_OVERRIDE_VALUES_FILE (relative to the data mount),
# KILN_DATA_MOUNT, KILN_DATA_LABEL, KILN_K3S_TOKEN_FILE (absolute, on the data volume: the boot
# script creates the cluster token there on first boot), KILN_IMAGE_DIR.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

kiln_require_root
kiln_require_nonempty KILN_PRODUCT_VERSION KILN_VERSION_ROOT_FILE KILN_VERSION_DATA_FILE KILN_OVERRIDE_VALUES_FILE \
  KILN_DATA_MOUNT KILN_DATA_LABEL KILN_K3S_TOKEN_FILE KILN_IMAGE_DIR

kiln_semver_valid "$KILN_PRODUCT_VERSION" || kiln_die "KILN_PRODUCT_VERSION \"$KILN_PRODUCT_VERSION\" is not a semantic version"
kiln_is_abs_path "$KILN_VERSION_ROOT_FILE" || kiln_die "KILN_VERSION_ROOT_FILE must be an absolute path"
kiln_is_rel_path "$KILN_VERSION_DATA_FILE" || kiln_die "KILN_VERSION_DATA_FILE must be a path relative to the data mount"
kiln_is_rel_path "$KILN_OVERRIDE_VALUES_FILE" || kiln_die "KILN_OVERRIDE_VALUES_FILE must be a path relative to the data mount"
kiln_is_abs_path "$KILN_DATA_MOUNT" || kiln_die "KILN_DATA_MOUNT must be an absolute path"
kiln_is_abs_path "$KILN_K3S_TOKEN_FILE" || kiln_die "KILN_K3S_TOKEN_FILE must be an absolute path"
kiln_is_abs_path "$KILN_IMAGE_DIR" || kiln_die "KILN_IMAGE_DIR must be an absolute path"
[[ $KILN_DATA_LABEL =~ ^[A-Za-z0-9_-]{1,16}$ ]] || kiln_die "KILN_DATA_LABEL \"$KILN_DATA_LABEL\" is not a file system label"
for file in "$here/lib.sh" "$here/boot/kiln-boot.sh" "$here/boot/kiln-boot.service"; do
  kiln_require_file "$file"
done
[ -f "${KILN_IMAGE_DIR%/}/charts.tsv" ] || kiln_die "${KILN_IMAGE_DIR%/}/charts.tsv is missing: the charts step runs before this one"

kiln_install_file "$here/lib.sh" /usr/local/lib/kiln/lib.sh 0644
kiln_install_file "$here/boot/kiln-boot.sh" /usr/local/lib/kiln/kiln-boot.sh 0755

{
  printf '# Written by kiln (version step); read by /usr/local/lib/kiln/kiln-boot.sh. KEY=VALUE, never executed.\n'
  printf 'ROOT_VERSION_FILE=%s\n' "$KILN_VERSION_ROOT_FILE"
  printf 'DATA_VERSION_FILE=%s\n' "$KILN_VERSION_DATA_FILE"
  printf 'OVERRIDE_VALUES_FILE=%s\n' "$KILN_OVERRIDE_VALUES_FILE"
  printf 'DATA_MOUNT=%s\n' "${KILN_DATA_MOUNT%/}"
  printf 'DATA_LABEL=%s\n' "$KILN_DATA_LABEL"
  printf 'K3S_TOKEN_FILE=%s\n' "$KILN_K3S_TOKEN_FILE"
  printf 'IMAGE_DIR=%s\n' "${KILN_IMAGE_DIR%/}"
} | kiln_write_file /etc/kiln/boot.conf 0644

KILN_CHANGED=0
kiln_install_file "$here/boot/kiln-boot.service" /etc/systemd/system/kiln-boot.service 0644
[ "$KILN_CHANGED" = 0 ] || kiln_daemon_reload
kiln_enable kiln-boot.service

# Last, and atomically: the version this root volume carries.
before=$(kiln_read_value "$KILN_VERSION_ROOT_FILE")
kiln_write_durable "$KILN_VERSION_ROOT_FILE" "$KILN_PRODUCT_VERSION"
if [ "$before" != "$KILN_PRODUCT_VERSION" ]; then
  kiln_log "root version $KILN_PRODUCT_VERSION written to $KILN_VERSION_ROOT_FILE"
else
  kiln_log "root version is already $KILN_PRODUCT_VERSION"
fi
