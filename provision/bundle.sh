#!/usr/bin/env bash
# kiln step "bundle" (offline builds only): unpacks the offline bundle kiln uploaded and verifies
# it: its manifest (kiln-bundle.json) must have the sha256 kiln checked on the builder, every file
# the manifest lists must be there with its size and sha256, and nothing else may be. The k3s, helm
# and charts steps then take their files from the unpacked directory and download nothing.
#
# Changes on the host: KILN_BUNDLE_DIR (under the staging directory, which generalize removes):
# the bundle's files and a .kiln-verified marker holding the manifest's sha256; KILN_BUNDLE_FILE is
# removed once unpacked. Nothing else. Run again with no new upload, it only checks the marker.
#
# Environment: KILN_BUNDLE_FILE (the uploaded tar), KILN_BUNDLE_DIR, KILN_BUNDLE_MANIFEST_SHA256.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

kiln_require_root
kiln_require_nonempty KILN_BUNDLE_FILE KILN_BUNDLE_DIR KILN_BUNDLE_MANIFEST_SHA256
kiln_is_abs_path "$KILN_BUNDLE_FILE" || kiln_die "KILN_BUNDLE_FILE must be an absolute path"
kiln_is_abs_path "$KILN_BUNDLE_DIR" || kiln_die "KILN_BUNDLE_DIR must be an absolute path"
kiln_is_sha256 "$KILN_BUNDLE_MANIFEST_SHA256" || kiln_die "KILN_BUNDLE_MANIFEST_SHA256 is not a sha256"
dir=${KILN_BUNDLE_DIR%/}
manifest=$dir/kiln-bundle.json
marker=$dir/.kiln-verified

if [ ! -f "$KILN_BUNDLE_FILE" ]; then
  [ "$(kiln_read_value "$marker")" = "$KILN_BUNDLE_MANIFEST_SHA256" ] ||
    kiln_die "no bundle at $KILN_BUNDLE_FILE and no verified bundle in $dir (kiln uploads it before this step)"
  kiln_log "the bundle in $dir is unpacked and verified already"
  exit 0
fi

rm -rf -- "$dir"
mkdir -p -- "$dir"
chmod 0700 "$dir"
kiln_log "unpacking $KILN_BUNDLE_FILE ($(stat -c %s -- "$KILN_BUNDLE_FILE") bytes) into $dir"
tar -x -f "$KILN_BUNDLE_FILE" -C "$dir" --no-same-owner --no-same-permissions
kiln_require_file "$manifest"
actual=$(kiln_sha256 "$manifest")
[ "$actual" = "$KILN_BUNDLE_MANIFEST_SHA256" ] ||
  kiln_die "the bundle's manifest has sha256 $actual, not the $KILN_BUNDLE_MANIFEST_SHA256 kiln verified before the upload"

# Every listed artifact, with its size and sha256; then nothing unlisted.
artifacts=$(jq -r '.artifacts[] | [.path, (.size | tostring), .sha256, .name] | @tsv' "$manifest")
declare -A listed=([kiln-bundle.json]=1)
count=0
while IFS=$'\t' read -r path size sha name; do
  [ -n "$path" ] || continue
  if [[ ! $path =~ ^[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*$ ]] || [[ $path =~ (^|/)\.\.?(/|$) ]]; then
    kiln_die "the bundle's manifest lists a bad path \"$path\""
  fi
  kiln_is_uint "$size" || kiln_die "the bundle's manifest lists a bad size for $path"
  kiln_is_sha256 "$sha" || kiln_die "the bundle's manifest lists a bad sha256 for $path"
  file=$dir/$path
  if [ ! -f "$file" ] || [ -L "$file" ]; then kiln_die "artifact $path ($name) is missing from the bundle"; fi
  [ "$(stat -c %s -- "$file")" = "$size" ] || kiln_die "artifact $path ($name) has $(stat -c %s -- "$file") bytes, the bundle's manifest says $size"
  kiln_verify_sha256 "$file" "$sha" "artifact $path ($name)"
  listed[$path]=1
  count=$((count + 1))
done <<<"$artifacts"
unlisted=$(find "$dir" -mindepth 1 ! -type d -printf '%P\n')
while IFS= read -r rel; do
  [ -z "$rel" ] || [ -n "${listed[$rel]:-}" ] || kiln_die "$rel is in the bundle but not in its manifest"
done <<<"$unlisted"

printf '%s\n' "$KILN_BUNDLE_MANIFEST_SHA256" >"$marker"
rm -f -- "$KILN_BUNDLE_FILE"
kiln_log "bundle verified: $count artifacts match its manifest (sha256 $KILN_BUNDLE_MANIFEST_SHA256)"
