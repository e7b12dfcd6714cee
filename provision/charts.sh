#!/usr/bin/env bash
# kiln step "charts": puts everything the boot script deploys into the image, so that deploying
# and upgrading need no network: the pinned chart archives (verified against their repository
# index digest), the size's values files, and the charts' container images as OCI archives that
# K3s imports at every start.
#
# Changes on the host:
#   - <KILN_IMAGE_DIR>/charts/<chart>-<version>.tgz (0644), fetched with `helm pull --repo` (no
#     repository state is kept: Helm's cache and config live in a temporary directory), checked
#     against the index.yaml digest; archives of charts no longer listed are removed;
#   - <KILN_IMAGE_DIR>/charts.tsv: release, chart, version, namespace, archive, sha256 per line;
#   - <KILN_IMAGE_DIR>/values/<release>/NN.yaml: copies of KILN_VALUES_DIR/<release>/ (stale files
#     and releases removed);
#   - <KILN_K3S_DATA_DIR>/agent/images/kiln-image-<name>.tar: one OCI image archive (OCI layout
#     plus a docker-style manifest.json) per line of KILN_IMAGES_FILE, for linux/amd64, every blob
#     verified against its digest; archives of images no longer listed are removed;
#   - <KILN_IMAGE_DIR>/images.tsv: image reference, manifest digest, archive, archive sha256.
#
# Images are pulled over the OCI distribution API with curl: from KILN_REGISTRY_MIRROR when the
# image's registry is one of KILN_REGISTRY_MIRRORED (as K3s's registries.yaml would, with
# ?ns=<registry>), else from the registry itself (anonymous bearer tokens are handled).
#
# In an offline build (KILN_BUNDLE_DIR set) nothing is downloaded: the chart archives and the image
# archives (made by kiln bundle with skopeo) come from the verified bundle, charts/ and images/, each
# checked against the bundle's manifest.
#
# Environment: KILN_CHARTS_FILE (tsv: release, chart, version, repository, namespace),
# KILN_VALUES_DIR, KILN_IMAGES_FILE (one image reference per line), KILN_IMAGE_DIR,
# KILN_K3S_DATA_DIR; optional KILN_REGISTRY_MIRROR, KILN_REGISTRY_MIRRORED (space-separated
# registry hosts), KILN_REGISTRY_CA_FILE (CA bundle for the mirror), KILN_BUNDLE_DIR.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_CHARTS_FILE KILN_VALUES_DIR KILN_IMAGES_FILE KILN_IMAGE_DIR KILN_K3S_DATA_DIR
kiln_require_file "$KILN_CHARTS_FILE"
kiln_require_file "$KILN_IMAGES_FILE"
kiln_is_abs_path "$KILN_IMAGE_DIR" || kiln_die "KILN_IMAGE_DIR must be an absolute path"
kiln_is_abs_path "$KILN_K3S_DATA_DIR" || kiln_die "KILN_K3S_DATA_DIR must be an absolute path"
command -v helm >/dev/null 2>&1 || kiln_die "helm is not installed (the helm step runs before this one)"
image_dir=${KILN_IMAGE_DIR%/}
mirror=${KILN_REGISTRY_MIRROR:-}
mirrored=${KILN_REGISTRY_MIRRORED:-}
mirror_ca=${KILN_REGISTRY_CA_FILE:-}
[ -z "$mirror" ] || kiln_is_url "$mirror" || kiln_die "KILN_REGISTRY_MIRROR \"$mirror\" is not an http(s) URL"
[ -z "$mirror_ca" ] || kiln_require_file "$mirror_ca"
bundle=${KILN_BUNDLE_DIR:-}
[ -z "$bundle" ] || kiln_bundle_check "$bundle"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data

kiln_ensure_dir "$image_dir" 0755
kiln_ensure_dir "$image_dir/charts" 0755
kiln_ensure_dir "$image_dir/values" 0755

# ---------------------------------------------------------------------------------------------
# Charts
table=$work/charts.tsv
: >"$table"
releases=()
archives=()
while IFS=$'\t' read -r release chart version repository namespace rest || [ -n "$release" ]; do
  [ -n "$release" ] || continue
  [ -z "${rest:-}" ] || kiln_die "$KILN_CHARTS_FILE: more than five fields for release \"$release\""
  kiln_is_dns_label "$release" || kiln_die "release name \"$release\" is not a DNS label"
  [[ ${chart:-} =~ ^[a-z0-9][a-z0-9._-]*$ ]] || kiln_die "chart name \"${chart:-}\" for $release is not valid"
  kiln_semver_valid "${version:-}" || kiln_die "chart version \"${version:-}\" for $release is not a semantic version"
  kiln_is_url "${repository:-}" || kiln_die "repository \"${repository:-}\" for $release is not an http(s) URL"
  kiln_is_dns_label "${namespace:-}" || kiln_die "namespace \"${namespace:-}\" for $release is not a DNS label"
  case " ${releases[*]} " in *" $release "*) kiln_die "release $release is listed twice" ;; esac
  releases+=("$release")

  repo=${repository%/}
  name=$chart-$version.tgz
  if [ -n "$bundle" ]; then
    from="the offline bundle"
    digest=$(kiln_bundle_sha256 "$bundle" "charts/$name")
  else
    from=$repo
    kiln_download "$repo/index.yaml" "$work/index.yaml"
    entry=$(kiln_index_lookup "$work/index.yaml" "$chart" "$version") || kiln_die "chart $chart version $version is not in $repo/index.yaml"
    digest=${entry%% *}
    [ -z "$digest" ] || kiln_is_sha256 "$digest" || kiln_die "$repo/index.yaml: bad digest \"$digest\" for $chart $version"
  fi

  dest=$image_dir/charts/$name
  archives+=("$name")
  if [ -f "$dest" ] && { [ -z "$digest" ] || [ "$(kiln_sha256 "$dest")" = "$digest" ]; }; then
    kiln_log "$release: $chart $version already in $dest"
  else
    rm -rf -- "$work/pull"
    mkdir -p -- "$work/pull"
    if [ -n "$bundle" ]; then
      kiln_require_file "$bundle/charts/$name"
      cp -- "$bundle/charts/$name" "$work/pull/$name"
    else
      helm pull "$chart" --repo "$repo" --version "$version" --destination "$work/pull"
    fi
    [ -f "$work/pull/$name" ] || kiln_die "helm pull did not produce $name"
    if [ -n "$digest" ]; then
      kiln_verify_sha256 "$work/pull/$name" "$digest" "chart $chart $version from $from"
    else
      kiln_warn "$repo/index.yaml lists no digest for $chart $version: recording its sha256 unverified"
    fi
    meta=$(tar -xzOf "$work/pull/$name" "$chart/Chart.yaml") || kiln_die "$name holds no $chart/Chart.yaml"
    grep -Eq "^version:[[:space:]]*[\"']?${version//./\\.}[\"']?[[:space:]]*\$" <<<"$meta" || kiln_die "$name is not version $version of $chart"
    kiln_install_file "$work/pull/$name" "$dest" 0644
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$release" "$chart" "$version" "$namespace" "$dest" "$(kiln_sha256 "$dest")" >>"$table"

  # Values, in the order kiln numbered them.
  kiln_ensure_dir "$image_dir/values/$release" 0755
  keep=()
  if [ -d "$KILN_VALUES_DIR/$release" ]; then
    for file in "$KILN_VALUES_DIR/$release"/*.yaml; do
      [ -f "$file" ] || continue
      kiln_install_file "$file" "$image_dir/values/$release/${file##*/}" 0644
      keep+=("${file##*/}")
    done
  fi
  for file in "$image_dir/values/$release"/*; do
    [ -e "$file" ] || continue
    case " ${keep[*]} " in *" ${file##*/} "*) ;; *) kiln_remove "$file" ;; esac
  done
done <"$KILN_CHARTS_FILE"

for file in "$image_dir/charts"/*; do
  [ -e "$file" ] || continue
  case " ${archives[*]} " in *" ${file##*/} "*) ;; *) kiln_remove "$file" ;; esac
done
for dir in "$image_dir/values"/*; do
  [ -e "$dir" ] || continue
  case " ${releases[*]} " in *" ${dir##*/} "*) ;; *) kiln_remove "$dir" ;; esac
done
kiln_install_file "$table" "$image_dir/charts.tsv" 0644

# ---------------------------------------------------------------------------------------------
# Container images

# Sets REF_REGISTRY, REF_REPO, REF_TAG, REF_DIGEST and REF_NAME (normalized) from a reference.
parse_ref() {
  local ref=$1 rest first
  [[ $ref =~ ^[a-z0-9][a-z0-9./:_@-]*$ ]] || kiln_die "image reference \"$ref\" is not valid"
  REF_DIGEST=''
  REF_TAG=''
  rest=$ref
  if [[ $rest == *@* ]]; then
    REF_DIGEST=${rest#*@}
    rest=${rest%%@*}
    [[ $REF_DIGEST =~ ^sha256:[a-f0-9]{64}$ ]] || kiln_die "image $ref: unsupported digest \"$REF_DIGEST\""
  fi
  first=${rest%%/*}
  if [ "$first" != "$rest" ] && { [[ $first == *.* ]] || [[ $first == *:* ]] || [ "$first" = localhost ]; }; then
    REF_REGISTRY=$first
    rest=${rest#*/}
  else
    REF_REGISTRY=docker.io
  fi
  if [[ ${rest##*/} == *:* ]]; then
    REF_TAG=${rest##*:}
    rest=${rest%:*}
  fi
  [ -n "$REF_TAG" ] || [ -n "$REF_DIGEST" ] || REF_TAG=latest
  if [ "$REF_REGISTRY" = docker.io ] && [[ $rest != */* ]]; then rest=library/$rest; fi
  REF_REPO=$rest
  REF_NAME=$REF_REGISTRY/$REF_REPO${REF_TAG:+:$REF_TAG}${REF_DIGEST:+@$REF_DIGEST}
}

# Registry state for the image being pulled.
reg_base=''
reg_query=''
reg_token=''
reg_tls=()

# reg_get PATH OUT [ACCEPT]: GET <registry>/v2/<PATH> into OUT, headers into OUT.headers; handles
# one bearer-token challenge. Fails on anything but 200.
reg_get() {
  local path=$1 out=$2 accept=${3:-*/*} code attempt
  for attempt in 1 2; do
    local -a auth=()
    [ -z "$reg_token" ] || auth=(-H "Authorization: Bearer $reg_token")
    code=$(curl -sS -L --proto '=http,https' --connect-timeout 20 --retry 5 --retry-connrefused "${reg_tls[@]}" \
      -H "Accept: $accept" "${auth[@]}" -D "$out.headers" -o "$out" -w '%{http_code}' -- "$reg_base/v2/$path$reg_query") ||
      kiln_die "image pull: GET $reg_base/v2/$path failed"
    if [ "$code" = 401 ] && [ "$attempt" = 1 ]; then
      reg_authenticate "$out.headers"
      continue
    fi
    [ "$code" = 200 ] || kiln_die "image pull: GET $reg_base/v2/$path answered HTTP $code"
    return 0
  done
}

# Anonymous bearer token from the realm a 401 named.
reg_authenticate() {
  local challenge realm service scope
  challenge=$(grep -i '^www-authenticate:' "$1" | tail -n1 | tr -d '\r')
  [[ $challenge =~ [Bb]earer ]] || kiln_die "image pull: $reg_base wants authentication kiln cannot provide: ${challenge:-no challenge}"
  realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")
  service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$challenge")
  scope=$(sed -n 's/.*scope="\([^"]*\)".*/\1/p' <<<"$challenge")
  kiln_is_url "$realm" || kiln_die "image pull: bad token realm \"$realm\""
  curl -sS -f -G --proto '=http,https' --connect-timeout 20 --retry 5 "${reg_tls[@]}" \
    --data-urlencode "service=$service" --data-urlencode "scope=$scope" -o "$work/token.json" -- "$realm" ||
    kiln_die "image pull: no token from $realm"
  reg_token=$(jq -r '.token // .access_token // empty' "$work/token.json")
  [ -n "$reg_token" ] || kiln_die "image pull: $realm returned no token"
}

MANIFEST_TYPES='application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

# pull_image REF ARCHIVE: writes the linux/amd64 image as an OCI archive; prints its manifest digest.
pull_image() {
  local ref=$1 archive=$2 layout=$work/layout manifest digest media
  parse_ref "$ref"
  reg_token=''
  reg_tls=()
  if [ -n "$mirror" ] && [[ " $mirrored " == *" $REF_REGISTRY "* ]]; then
    reg_base=${mirror%/}
    reg_query="?ns=$REF_REGISTRY"
    [ -z "$mirror_ca" ] || reg_tls=(--cacert "$mirror_ca")
  else
    reg_base=https://$REF_REGISTRY
    [ "$REF_REGISTRY" != docker.io ] || reg_base=https://registry-1.docker.io
    reg_query=''
  fi
  rm -rf -- "$layout"
  mkdir -p -- "$layout/blobs/sha256"
  manifest=$work/manifest.json
  reg_get "$REF_REPO/manifests/${REF_DIGEST:-$REF_TAG}" "$manifest" "$MANIFEST_TYPES"
  digest=sha256:$(kiln_sha256 "$manifest")
  [ -z "$REF_DIGEST" ] || [ "$digest" = "$REF_DIGEST" ] || kiln_die "image $ref: manifest digest is $digest"
  media=$(jq -r '.mediaType // empty' "$manifest")
  if jq -e '.manifests' "$manifest" >/dev/null; then
    local platform
    platform=$(jq -r '[.manifests[] | select(.platform.os == "linux" and .platform.architecture == "amd64")][0].digest // empty' "$manifest")
    [ -n "$platform" ] || kiln_die "image $ref has no linux/amd64 variant"
    reg_get "$REF_REPO/manifests/$platform" "$manifest" "$MANIFEST_TYPES"
    digest=sha256:$(kiln_sha256 "$manifest")
    [ "$digest" = "$platform" ] || kiln_die "image $ref: linux/amd64 manifest digest is $digest, expected $platform"
    media=$(jq -r '.mediaType // empty' "$manifest")
  fi
  [ -n "$media" ] || media=$(grep -i '^content-type:' "$manifest.headers" | tail -n1 | sed 's/^[^:]*:[[:space:]]*//; s/[;[:space:]].*//')
  case "$media" in
    application/vnd.oci.image.manifest.v1+json | application/vnd.docker.distribution.manifest.v2+json) ;;
    *) kiln_die "image $ref: unsupported manifest type \"$media\"" ;;
  esac
  cp -- "$manifest" "$layout/blobs/sha256/${digest#sha256:}"

  local blob config layers=()
  config=$(jq -r '.config.digest' "$manifest")
  mapfile -t layers < <(jq -r '.layers[].digest' "$manifest")
  for blob in "$config" "${layers[@]}"; do
    [[ $blob =~ ^sha256:[a-f0-9]{64}$ ]] || kiln_die "image $ref: unsupported blob digest \"$blob\""
    [ -f "$layout/blobs/sha256/${blob#sha256:}" ] && continue
    reg_get "$REF_REPO/blobs/$blob" "$layout/blobs/sha256/${blob#sha256:}"
    rm -f -- "$layout/blobs/sha256/${blob#sha256:}.headers"
    kiln_verify_sha256 "$layout/blobs/sha256/${blob#sha256:}" "${blob#sha256:}" "blob $blob of $ref"
  done

  local tag=${REF_TAG:-}
  printf '{"imageLayoutVersion":"1.0.0"}\n' >"$layout/oci-layout"
  jq -cn --arg media "$media" --arg digest "$digest" --argjson size "$(stat -c %s -- "$manifest")" --arg name "$REF_NAME" --arg tag "$tag" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: $media, digest: $digest, size: $size,
        annotations: ({"io.containerd.image.name": $name} + (if $tag == "" then {} else {"org.opencontainers.image.ref.name": $tag} end))}]}' \
    >"$layout/index.json"
  jq -cn --arg config "blobs/sha256/${config#sha256:}" --arg name "$REF_NAME" --arg tag "$tag" --args \
    '[{Config: $config, RepoTags: (if $tag == "" then [] else [$name] end), Layers: [$ARGS.positional[] | "blobs/sha256/" + ltrimstr("sha256:")]}]' \
    "${layers[@]}" >"$layout/manifest.json"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$layout" -cf "$archive" oci-layout index.json manifest.json blobs
  printf '%s' "$digest"
}

agent_images=${KILN_K3S_DATA_DIR%/}/agent/images
images_table=$work/images.tsv
: >"$images_table"
image_archives=()
declare -A recorded=()
if [ -f "$image_dir/images.tsv" ]; then
  while IFS=$'\t' read -r ref digest archive sha; do
    if [ -n "$ref" ]; then recorded[$ref]="$digest $archive $sha"; fi
  done <"$image_dir/images.tsv"
fi
while IFS= read -r ref || [ -n "$ref" ]; do
  ref=${ref//[[:space:]]/}
  [ -n "$ref" ] || continue
  parse_ref "$ref"
  archive=$agent_images/kiln-image-$(printf '%s' "$REF_NAME" | tr '/:@' '___').tar
  image_archives+=("${archive##*/}")
  kiln_ensure_dir "$agent_images" 0755
  read -r digest old_archive sha <<<"${recorded[$ref]:-}" || true
  if [ -n "$bundle" ]; then
    # The bundle's archive for this image has the same name, under images/.
    in_bundle=images/${archive##*/kiln-image-}
    sha=$(kiln_bundle_sha256 "$bundle" "$in_bundle")
    digest=$(jq -r --arg path "$in_bundle" '[.artifacts[] | select(.path == $path)][0].image.digest // empty' "$bundle/kiln-bundle.json")
    [[ $digest =~ ^sha256:[a-f0-9]{64}$ ]] || kiln_die "the offline bundle lists no manifest digest for $in_bundle"
    if [ -f "$archive" ] && [ "$(kiln_sha256 "$archive")" = "$sha" ]; then
      kiln_log "image $ref already in $archive ($digest)"
    else
      kiln_verify_sha256 "$bundle/$in_bundle" "$sha" "image $ref from the offline bundle"
      kiln_install_file "$bundle/$in_bundle" "$archive" 0644
      kiln_log "image $ref ($digest) from the offline bundle saved as $archive"
    fi
  elif [ -n "${sha:-}" ] && [ "$old_archive" = "$archive" ] && [ -f "$archive" ] && [ "$(kiln_sha256 "$archive")" = "$sha" ]; then
    kiln_log "image $ref already in $archive ($digest)"
  else
    kiln_log "pulling image $ref"
    digest=$(pull_image "$ref" "$work/image.tar")
    kiln_install_file "$work/image.tar" "$archive" 0644
    rm -f -- "$work/image.tar"
    kiln_log "image $ref ($digest) saved as $archive"
  fi
  printf '%s\t%s\t%s\t%s\n' "$ref" "$digest" "$archive" "$(kiln_sha256 "$archive")" >>"$images_table"
done <"$KILN_IMAGES_FILE"
if [ -d "$agent_images" ]; then
  for file in "$agent_images"/kiln-image-*.tar; do
    [ -e "$file" ] || continue
    case " ${image_archives[*]} " in *" ${file##*/} "*) ;; *) kiln_remove "$file" ;; esac
  done
fi
kiln_install_file "$images_table" "$image_dir/images.tsv" 0644
kiln_log "${#releases[@]} charts and ${#image_archives[@]} images are in the image"
