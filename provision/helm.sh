#!/usr/bin/env bash
# kiln step "helm": installs the pinned Helm release, verified.
#
# Changes on the host: /usr/local/bin/helm (0755), replaced only when the verified release's binary
# differs from the installed one. Nothing else (no repositories, no plugins).
#
# Environment: KILN_HELM_VERSION (v3.14.4), KILN_HELM_BASE_URL (release site or mirror:
# <base>/helm-<version>-linux-amd64.tar.gz and <same>.sha256sum), KILN_HELM_SHA256 (pinned sha256
# of the archive, or empty: use the published .sha256sum file); optional KILN_BUNDLE_DIR (an offline
# build: the archive comes from the verified bundle, helm/<archive>, checked against its manifest).
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_HELM_VERSION KILN_HELM_BASE_URL
kiln_require_env KILN_HELM_SHA256

version=$KILN_HELM_VERSION
[[ $version =~ ^v3\.[0-9]+\.[0-9]+$ ]] || kiln_die "KILN_HELM_VERSION \"$version\" is not a Helm 3 version like v3.14.4"
kiln_is_url "$KILN_HELM_BASE_URL" || kiln_die "KILN_HELM_BASE_URL \"$KILN_HELM_BASE_URL\" is not an http(s) URL"
[ -z "$KILN_HELM_SHA256" ] || kiln_is_sha256 "$KILN_HELM_SHA256" || kiln_die "KILN_HELM_SHA256 is not a sha256"

archive=helm-$version-linux-amd64.tar.gz
url=${KILN_HELM_BASE_URL%/}/$archive
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

sha=$KILN_HELM_SHA256
bundle=${KILN_BUNDLE_DIR:-}
if [ -n "$bundle" ]; then
  kiln_bundle_check "$bundle"
  [ -n "$sha" ] || sha=$(kiln_bundle_sha256 "$bundle" "helm/$archive")
  src=$bundle/helm/$archive
  kiln_require_file "$src"
  kiln_verify_sha256 "$src" "$sha" "$archive from the offline bundle"
else
  if [ -z "$sha" ]; then
    kiln_download "$url.sha256sum" "$work/$archive.sha256sum"
    # The file holds "<sha256>  <name>", or just the hash.
    read -r sha _ <"$work/$archive.sha256sum" || true
    sha=$(printf '%s' "$sha" | tr 'A-F' 'a-f')
  fi
  src=$work/$archive
  kiln_download "$url" "$src"
  kiln_verify_sha256 "$src" "$sha" "$url"
fi
tar -xzf "$src" -C "$work" linux-amd64/helm
kiln_install_file "$work/linux-amd64/helm" /usr/local/bin/helm 0755

installed=$(/usr/local/bin/helm version --template '{{.Version}}')
[ "$installed" = "$version" ] || kiln_die "/usr/local/bin/helm reports version \"$installed\", expected $version"
kiln_log "Helm $installed installed (archive sha256 $sha)"
