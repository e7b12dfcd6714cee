#!/usr/bin/env bash
# kiln boot script, run by kiln-boot.service on every boot (installed by the version step as
# /usr/local/lib/kiln/kiln-boot.sh). It makes the appliance converge on the version of its root
# volume, with all state on the data volume:
#
#   data volume holds no version     first boot: start K3s, install every chart from the local
#                                    archives with the size's values (+ the override file from
#                                    the data volume if present), then write the data version
#   same version as the root         start K3s, nothing else
#   root newer than the data         upgrade: start K3s, `helm upgrade` every release to the
#                                    root's charts, then write the new data version
#   data newer than the root         refuse to downgrade: start K3s (the existing release keeps
#                                    running), touch no release, log why, exit 3 (unit failed)
#
# The data version is written last and atomically (temp file, fsync, rename, fsync), so a power
# cut at any point leaves the old version, and the next boot does the whole deploy again (Helm
# releases left pending by the cut are rolled back first). Versions compare by Semantic
# Versioning. Every run appends what it did to /var/log/kiln-boot.log.
#
# Changes on the host: mounts the data volume and its bind mounts when boot did not; creates the
# K3s cluster token (K3S_TOKEN_FILE, on the data volume) on first boot and keeps a copy of the
# node password on the data volume (<mount>/.kiln/node-password), restoring it onto a new root
# volume; starts k3s.service; installs/upgrades Helm releases; writes <mount>/<DATA_VERSION_FILE>;
# appends to /var/log/kiln-boot.log. Settings come from /etc/kiln/boot.conf, /etc/kiln/data-links.tsv
# and <IMAGE_DIR>/charts.tsv (written by the build).
# shellcheck disable=SC2034 # used by lib.sh's logging
KILN_SCRIPT=kiln-boot
lib=${KILN_LIB:-/usr/local/lib/kiln/lib.sh}
# shellcheck source=SCRIPTDIR/../lib.sh
source "$lib"

log_file=${KILN_BOOT_LOG:-/var/log/kiln-boot.log}
mkdir -p -- "$(dirname -- "$log_file")"
exec > >(tee -a -- "$log_file") 2>&1

kiln_require_root
exec 9>/run/kiln-boot.lock
flock -n 9 || kiln_die "another kiln-boot is running"

boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
kiln_log "boot $boot_id: start"

kiln_read_conf "${KILN_BOOT_CONF:-/etc/kiln/boot.conf}" CONF_
for key in ROOT_VERSION_FILE DATA_VERSION_FILE OVERRIDE_VALUES_FILE DATA_MOUNT DATA_LABEL K3S_TOKEN_FILE IMAGE_DIR; do
  var=CONF_$key
  [ -n "${!var:-}" ] || kiln_die "boot.conf has no $key"
done
mount_point=$CONF_DATA_MOUNT
label=$CONF_DATA_LABEL
data_timeout=${KILN_BOOT_DATA_TIMEOUT:-180}
k3s_timeout=${KILN_BOOT_K3S_TIMEOUT:-900}
helm_timeout=${KILN_BOOT_HELM_TIMEOUT:-30m}
export KUBECONFIG=/etc/rancher/k3s/k3s.yaml
export HELM_CACHE_HOME=/run/kiln/helm/cache HELM_CONFIG_HOME=/run/kiln/helm/config HELM_DATA_HOME=/run/kiln/helm/data

# ---------------------------------------------------------------------------------------------
# 1. The data volume, mounted by label, with every bind mount in place. Without it K3s would
#    write its state to the root volume: never start it then.

data_ok() {
  local source
  if ! mountpoint -q -- "$mount_point"; then
    # systemd gives up on a late disk (nofail); mount it ourselves once its label shows up.
    if blkid -L "$label" >/dev/null 2>&1; then mount -- "$mount_point" 2>/dev/null || true; fi
    mountpoint -q -- "$mount_point" || return 1
    kiln_log "mounted $mount_point (label $label)"
  fi
  source=$(findmnt -n -v -o SOURCE --mountpoint "$mount_point")
  source=${source%%\[*}
  [ "$(blkid -s LABEL -o value -- "$source" 2>/dev/null || true)" = "$label" ] || kiln_die "$mount_point is mounted from $source, which is not labelled $label"
  return 0
}

links_ok() {
  local path target
  [ -f /etc/kiln/data-links.tsv ] || return 0
  while IFS=$'\t' read -r path target || [ -n "$path" ]; do
    [ -n "$path" ] || continue
    if ! mountpoint -q -- "$path"; then
      mkdir -p -- "$mount_point/$target" "$path"
      mount -- "$path" || kiln_die "cannot bind $mount_point/$target on $path"
      kiln_log "bound $mount_point/$target on $path"
    fi
    [ "$(findmnt -n -v -o FSROOT --mountpoint "$path")" = "/$target" ] || kiln_die "$path is mounted, but not from $mount_point/$target"
  done </etc/kiln/data-links.tsv
}

kiln_wait_until "$data_timeout" "the data volume (label $label) at $mount_point" data_ok ||
  kiln_die "the data volume labelled $label is not mounted at $mount_point: K3s not started (attach the data volume and reboot)"
links_ok

# ---------------------------------------------------------------------------------------------
# 2. What to do.
root_version=$(kiln_read_value "$CONF_ROOT_VERSION_FILE")
kiln_semver_valid "$root_version" || kiln_die "root version file $CONF_ROOT_VERSION_FILE holds \"$root_version\", not a version"
data_version_file=$mount_point/$CONF_DATA_VERSION_FILE
data_version=$(kiln_read_value "$data_version_file")
if [ -z "$data_version" ]; then
  action=first-boot
elif ! kiln_semver_valid "$data_version"; then
  action=unreadable
else
  case "$(kiln_semver_cmp "$root_version" "$data_version")" in
    0) action=same ;;
    1) action=upgrade ;;
    -1) action=downgrade ;;
  esac
fi
kiln_log "root version $root_version, data version ${data_version:-none}: $action"

# ---------------------------------------------------------------------------------------------
# 3. Cluster identity lives on the data volume, so a new root volume joins the same cluster.
state_dir=$mount_point/.kiln
mkdir -p -- "$state_dir"
chmod 0700 -- "$state_dir"
if [ ! -s "$CONF_K3S_TOKEN_FILE" ]; then
  mkdir -p -- "$(dirname -- "$CONF_K3S_TOKEN_FILE")"
  token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  kiln_write_durable "$CONF_K3S_TOKEN_FILE" "$token" 0600
  kiln_log "created the cluster token $CONF_K3S_TOKEN_FILE"
fi
if [ -s "$state_dir/node-password" ] && ! cmp -s -- "$state_dir/node-password" /etc/rancher/node/password; then
  kiln_copy_durable "$state_dir/node-password" /etc/rancher/node/password 0600
  kiln_log "restored the node password from the data volume"
fi

# ---------------------------------------------------------------------------------------------
# 4. K3s.
k3s_ready() {
  [ "$(k3s kubectl get --raw=/readyz 2>/dev/null)" = ok ] || return 1
  k3s kubectl get nodes --no-headers 2>/dev/null | awk '$2 == "Ready" { ready = 1 } END { exit !ready }'
}
kiln_log "starting K3s"
# --no-block: the unit's own TimeoutStartSec is infinite (as the installer writes it); readiness is
# polled below against our deadline instead.
systemctl start --no-block k3s.service
kiln_wait_until "$k3s_timeout" "K3s and its node to be ready" k3s_ready || kiln_die "K3s did not become ready within ${k3s_timeout}s"
kiln_log "K3s is ready"
if [ -s /etc/rancher/node/password ] && ! cmp -s -- /etc/rancher/node/password "$state_dir/node-password"; then
  kiln_copy_durable /etc/rancher/node/password "$state_dir/node-password" 0600
  kiln_log "saved the node password on the data volume"
fi

case "$action" in
  same)
    kiln_log "boot $boot_id: version $root_version already deployed; K3s started, nothing else to do"
    exit 0
    ;;
  downgrade)
    kiln_log "boot $boot_id: REFUSING TO DOWNGRADE: the data volume holds version $data_version, newer than this root volume's $root_version. K3s keeps running the existing release; attach a root volume of version $data_version or newer."
    exit 3
    ;;
  unreadable)
    kiln_log "boot $boot_id: REFUSING TO DEPLOY: $data_version_file holds \"$data_version\", not a version. K3s keeps running the existing release."
    exit 4
    ;;
esac

# ---------------------------------------------------------------------------------------------
# 5. Deploy (first boot) or upgrade, every release from the root's local chart archives.
charts_table=$CONF_IMAGE_DIR/charts.tsv
[ -f "$charts_table" ] || kiln_die "$charts_table is missing"
override=$mount_point/$CONF_OVERRIDE_VALUES_FILE
[ ! -e "$override" ] || [ -f "$override" ] || kiln_die "$override is not a file"
mkdir -p -- "$HELM_CACHE_HOME" "$HELM_CONFIG_HOME" "$HELM_DATA_HOME"

count=0
while IFS=$'\t' read -r release chart version namespace archive sha || [ -n "$release" ]; do
  [ -n "$release" ] || continue
  [ -f "$archive" ] || kiln_die "chart archive $archive of $release is missing"
  kiln_verify_sha256 "$archive" "$sha" "chart archive $archive"

  # A power cut during a previous boot can leave a release pending: roll that back first.
  status=$(helm status "$release" --namespace "$namespace" -o json 2>/dev/null | jq -r '.info.status // empty') || status=''
  case "$status" in
    pending-install)
      kiln_log "$release: install interrupted earlier (pending-install): uninstalling it to start over"
      helm uninstall "$release" --namespace "$namespace" --wait
      ;;
    pending-upgrade | pending-rollback)
      kiln_log "$release: $status left by an interrupted boot: rolling back to the previous revision"
      helm rollback "$release" --namespace "$namespace" --wait
      ;;
  esac

  values=()
  for file in "$CONF_IMAGE_DIR/values/$release"/*.yaml; do
    if [ -f "$file" ]; then values+=(--values "$file"); fi
  done
  if [ -f "$override" ]; then
    values+=(--values "$override")
    kiln_log "$release: with override values $override"
  fi
  kiln_log "$release: helm upgrade --install $chart $version in namespace $namespace (${status:-not installed})"
  helm upgrade --install "$release" "$archive" --namespace "$namespace" --create-namespace \
    "${values[@]}" --wait --timeout "$helm_timeout" --history-max 10 ||
    kiln_die "$release: helm upgrade --install failed; the data volume stays at version ${data_version:-none} and the next boot retries"
  kiln_log "$release: deployed $chart $version"
  count=$((count + 1))
done <"$charts_table"

kiln_write_durable "$data_version_file" "$root_version"
kiln_log "boot $boot_id: $action to $root_version done ($count releases); data version is now $root_version"
