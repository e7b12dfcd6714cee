#!/usr/bin/env bash
# kiln step "k3s": installs the pinned K3s release, verified, with its configuration and the
# airgap images, without starting it and without creating any cluster identity.
#
# Changes on the host:
#   - /usr/local/bin/k3s (0755; replaced only when its sha256 differs from the release's) and the
#     kubectl, crictl and ctr symlinks to it, as the official installer makes;
#   - <KILN_K3S_DATA_DIR>/agent/images/k3s-airgap-images-amd64.tar.zst: the release's system images,
#     imported by K3s at every start (on the root volume, so a new root brings its own);
#   - /etc/rancher/k3s/config.yaml (0600) from KILN_K3S_CONFIG_FILE; registries.yaml (0600) and
#     registry-ca.pem when given, removed when not;
#   - /etc/systemd/system/k3s.service and k3s.service.env (0600, empty): the official installer's
#     unit, left disabled: the kiln boot unit starts K3s once the data volume is ready.
#   Never created here: <data-dir>/server/{tls,token,cred,db}, /etc/rancher/node/password,
#   /etc/rancher/k3s/k3s.yaml (the script fails if it finds them; generalize removes them).
#
# Environment: KILN_K3S_VERSION (v1.29.6+k3s2), KILN_K3S_BASE_URL (release site or mirror:
# <base>/<version with + as %2B>/{k3s,sha256sum-amd64.txt,k3s-airgap-images-amd64.tar.zst}),
# KILN_K3S_SHA256 (pinned sha256 of the binary, or empty: use the release's sha256sum file),
# KILN_K3S_CONFIG_FILE, KILN_K3S_REGISTRIES_FILE and KILN_K3S_REGISTRY_CA_FILE (may be empty),
# KILN_K3S_DATA_DIR; optional KILN_BUNDLE_DIR (an offline build: the binary and airgap images come
# from the verified bundle, k3s/<version>/, checked against its manifest; nothing is downloaded).
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_K3S_VERSION KILN_K3S_BASE_URL KILN_K3S_CONFIG_FILE KILN_K3S_DATA_DIR
kiln_require_env KILN_K3S_SHA256 KILN_K3S_REGISTRIES_FILE KILN_K3S_REGISTRY_CA_FILE
kiln_require_file "$KILN_K3S_CONFIG_FILE"

version=$KILN_K3S_VERSION
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$ ]] || kiln_die "KILN_K3S_VERSION \"$version\" is not a K3s version like v1.29.6+k3s2"
kiln_is_url "$KILN_K3S_BASE_URL" || kiln_die "KILN_K3S_BASE_URL \"$KILN_K3S_BASE_URL\" is not an http(s) URL"
[ -z "$KILN_K3S_SHA256" ] || kiln_is_sha256 "$KILN_K3S_SHA256" || kiln_die "KILN_K3S_SHA256 is not a sha256"
kiln_is_abs_path "$KILN_K3S_DATA_DIR" || kiln_die "KILN_K3S_DATA_DIR must be an absolute path"
data_dir=${KILN_K3S_DATA_DIR%/}

release_url="${KILN_K3S_BASE_URL%/}/${version//+/%2B}"
bundle=${KILN_BUNDLE_DIR:-}
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

airgap_name=k3s-airgap-images-amd64.tar.zst
binary_sha=$KILN_K3S_SHA256
if [ -n "$bundle" ]; then
  kiln_bundle_check "$bundle"
  kiln_log "K3s $version from the offline bundle"
  [ -n "$binary_sha" ] || binary_sha=$(kiln_bundle_sha256 "$bundle" "k3s/$version/k3s")
  airgap_sha=$(kiln_bundle_sha256 "$bundle" "k3s/$version/$airgap_name")
else
  kiln_log "K3s $version from $release_url"
  kiln_download "$release_url/sha256sum-amd64.txt" "$work/sha256sum-amd64.txt"
  [ -n "$binary_sha" ] || binary_sha=$(kiln_checksum_for "$work/sha256sum-amd64.txt" k3s)
  airgap_sha=$(kiln_checksum_for "$work/sha256sum-amd64.txt" "$airgap_name")
fi

# fetch NAME SHA DEST MODE: DEST becomes the verified release file NAME (from the bundle, or
# downloaded) unless it already is.
fetch() {
  local name=$1 sha=$2 dest=$3 mode=$4 src
  if [ -f "$dest" ] && [ "$(kiln_sha256 "$dest")" = "$sha" ]; then
    kiln_log "$dest is already $name (sha256 $sha)"
    [ "$(stat -c %a -- "$dest")" = "${mode#0}" ] || { chmod -- "$mode" "$dest"; KILN_CHANGED=1; }
    return 0
  fi
  if [ -n "$bundle" ]; then
    src=$bundle/k3s/$version/$name
    kiln_require_file "$src"
    kiln_verify_sha256 "$src" "$sha" "$name from the offline bundle"
  else
    src=$work/$name
    kiln_download "$release_url/$name" "$src"
    kiln_verify_sha256 "$src" "$sha" "$release_url/$name"
  fi
  kiln_install_file "$src" "$dest" "$mode"
  rm -f -- "$work/$name"
}

fetch k3s "$binary_sha" /usr/local/bin/k3s 0755
installed=$(/usr/local/bin/k3s --version)
installed=${installed%%$'\n'*}
case "$installed" in
  "k3s version $version "*) kiln_log "installed: $installed" ;;
  *) kiln_die "/usr/local/bin/k3s reports \"$installed\", expected version $version" ;;
esac
for tool in kubectl crictl ctr; do
  if [ -e "/usr/local/bin/$tool" ] && [ ! -L "/usr/local/bin/$tool" ]; then
    kiln_warn "/usr/local/bin/$tool exists and is not a link to k3s: leaving it"
    continue
  fi
  kiln_symlink k3s "/usr/local/bin/$tool"
done

kiln_ensure_dir "$data_dir/agent/images" 0755
fetch "$airgap_name" "$airgap_sha" "$data_dir/agent/images/$airgap_name" 0644

# ---------------------------------------------------------------------------------------------
# Configuration
kiln_ensure_dir /etc/rancher/k3s 0755
kiln_install_file "$KILN_K3S_CONFIG_FILE" /etc/rancher/k3s/config.yaml 0600
if [ -n "$KILN_K3S_REGISTRIES_FILE" ]; then
  kiln_require_file "$KILN_K3S_REGISTRIES_FILE"
  kiln_install_file "$KILN_K3S_REGISTRIES_FILE" /etc/rancher/k3s/registries.yaml 0600
else
  kiln_remove /etc/rancher/k3s/registries.yaml
fi
if [ -n "$KILN_K3S_REGISTRY_CA_FILE" ]; then
  kiln_require_file "$KILN_K3S_REGISTRY_CA_FILE"
  kiln_install_file "$KILN_K3S_REGISTRY_CA_FILE" /etc/rancher/k3s/registry-ca.pem 0644
else
  kiln_remove /etc/rancher/k3s/registry-ca.pem
fi

# ---------------------------------------------------------------------------------------------
# The unit the official installer writes for a server (https://get.k3s.io), not enabled.
KILN_CHANGED=0
kiln_write_file /etc/systemd/system/k3s.service 0644 <<'EOF'
# Written by kiln (k3s step), as the official K3s installer writes it. Not enabled: the kiln boot
# unit (kiln-boot.service) starts K3s once the data volume is mounted and the version is checked.
[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/k3s.service.env
KillMode=process
Delegate=yes
# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/k3s server
EOF
unit_changed=$KILN_CHANGED
if [ ! -f /etc/systemd/system/k3s.service.env ]; then
  kiln_write_file /etc/systemd/system/k3s.service.env 0600 </dev/null
fi
[ "$unit_changed" = 0 ] || kiln_daemon_reload
kiln_disable k3s.service

# ---------------------------------------------------------------------------------------------
# No cluster identity may be baked into the image.
identity=()
for path in "$data_dir/server/tls" "$data_dir/server/token" "$data_dir/server/node-token" "$data_dir/server/cred" \
  /etc/rancher/node/password /etc/rancher/k3s/k3s.yaml; do
  [ ! -e "$path" ] || identity+=("$path")
done
if [ -d "$data_dir/server/db" ] && [ -n "$(ls -A -- "$data_dir/server/db")" ]; then identity+=("$data_dir/server/db/*"); fi
[ "${#identity[@]}" -eq 0 ] || kiln_die "cluster identity found (was K3s started on this machine?): ${identity[*]}"
kiln_log "K3s $version installed, not started, no cluster identity"
