# shellcheck shell=bash
# shellcheck disable=SC2034 # KILN_CHANGED and KILN_DISTRO* are set here for the sourcing scripts
# kiln provisioning helpers, sourced by every provision/*.sh script and by the boot script (which
# finds an installed copy in /usr/local/lib/kiln/lib.sh). Sourcing this file changes nothing on
# the host: it only defines functions and sets the shell options (errexit, nounset, pipefail).
#
# Supported distributions: Debian 12, Ubuntu 22.04 and 24.04 (apt, nftables), Amazon Linux 2023
# (dnf, nftables or firewalld), all on x86_64 with systemd. Anything else fails in kiln_detect_distro.
#
# Conventions: values come only from environment variables and files, never through eval or
# `sh -c`; every write goes through kiln_install_file / kiln_write_file, which leave the file alone
# (contents, mode, owner and mtime) when it is already right and set KILN_CHANGED=1 when they
# changed something, so a second run of any script changes nothing.

set -euo pipefail
# inherit_errexit: errors inside $(...) stop the script too. lastpipe: in `producer | consumer`
# the consumer runs in this shell, so `... | kiln_write_file` can report KILN_CHANGED.
shopt -s inherit_errexit lastpipe

KILN_SCRIPT=${KILN_SCRIPT:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}
# Set to 1 by every helper that changed the host; scripts use it to decide on reloads.
KILN_CHANGED=0
export LC_ALL=C
umask 022

# ---------------------------------------------------------------------------------------------
# Logging

kiln_log() { printf '%s kiln/%s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$KILN_SCRIPT" "$*"; }
kiln_warn() { printf '%s kiln/%s: WARNING: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$KILN_SCRIPT" "$*" >&2; }
kiln_die() {
  printf '%s kiln/%s: ERROR: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$KILN_SCRIPT" "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Inputs

kiln_require_root() {
  [ "$(id -u)" -eq 0 ] || kiln_die "must run as root"
}

# kiln_require_env NAME...: each variable must be set (it may be empty).
kiln_require_env() {
  local name
  for name in "$@"; do
    [ -n "${!name+x}" ] || kiln_die "environment variable $name is not set (kiln passes it from the plan)"
  done
}

# kiln_require_nonempty NAME...: each variable must be set and non-empty.
kiln_require_nonempty() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || kiln_die "environment variable $name is empty or not set"
  done
}

kiln_require_file() {
  [ -f "$1" ] || kiln_die "file $1 is missing (kiln uploads it before this step)"
}

kiln_is_abs_path() { [[ $1 =~ ^/[A-Za-z0-9._/-]*$ ]] && [[ ! $1 =~ (^|/)\.\.(/|$) ]]; }
kiln_is_rel_path() { [[ $1 =~ ^[A-Za-z0-9._-][A-Za-z0-9._/-]*$ ]] && [[ ! $1 =~ (^|/)\.\.(/|$) ]]; }
kiln_is_dns_label() { [[ $1 =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]]; }
kiln_is_sha256() { [[ $1 =~ ^[a-f0-9]{64}$ ]]; }
kiln_is_url() { [[ $1 =~ ^https?://[^[:space:]\"\'\`\\$]+$ ]]; }
kiln_is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

kiln_bool() {
  case "$1" in
    true | 1 | yes) return 0 ;;
    false | 0 | no | '') return 1 ;;
    *) kiln_die "expected true or false, found \"$1\"" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Distribution

# Sets KILN_DISTRO (debian|ubuntu|amzn), KILN_DISTRO_VERSION, KILN_PKG (apt|dnf) and
# KILN_DISTRO_NAME; dies with the list of supported distributions on anything else.
kiln_detect_distro() {
  local os_release=${KILN_OS_RELEASE:-/etc/os-release} id='' version='' name=''
  [ -r "$os_release" ] || kiln_die "cannot read $os_release: unsupported distribution (supported: Debian 12, Ubuntu 22.04, Ubuntu 24.04, Amazon Linux 2023)"
  local key value
  while IFS='=' read -r key value; do
    value=${value#\"}
    value=${value%\"}
    case "$key" in
      ID) id=$value ;;
      VERSION_ID) version=$value ;;
      PRETTY_NAME) name=$value ;;
    esac
  done <"$os_release"
  case "$id:$version" in
    debian:12) KILN_PKG=apt ;;
    ubuntu:22.04 | ubuntu:24.04) KILN_PKG=apt ;;
    amzn:2023) KILN_PKG=dnf ;;
    *) kiln_die "unsupported distribution ${name:-$id $version} (supported: Debian 12, Ubuntu 22.04, Ubuntu 24.04, Amazon Linux 2023)" ;;
  esac
  KILN_DISTRO=$id
  KILN_DISTRO_VERSION=$version
  KILN_DISTRO_NAME=${name:-$id $version}
  local arch
  arch=$(uname -m)
  [ "$arch" = x86_64 ] || kiln_die "unsupported architecture $arch: kiln installs amd64 builds of K3s and Helm"
}

# ---------------------------------------------------------------------------------------------
# Files

# kiln_ensure_dir DIR [MODE]: creates DIR (and parents) and sets its mode.
kiln_ensure_dir() {
  local dir=$1 mode=${2:-0755}
  if [ ! -d "$dir" ]; then
    mkdir -p -- "$dir"
    KILN_CHANGED=1
  fi
  if [ "$(stat -c %a -- "$dir")" != "${mode#0}" ]; then
    chmod -- "$mode" "$dir"
    KILN_CHANGED=1
  fi
}

# kiln_install_file SRC DEST MODE: makes DEST a copy of SRC with MODE, owned by root. Leaves DEST
# untouched when it already is; otherwise replaces it atomically (temp file + rename).
kiln_install_file() {
  local src=$1 dest=$2 mode=$3
  [ -f "$src" ] || kiln_die "kiln_install_file: $src is not a file"
  kiln_ensure_dir "$(dirname -- "$dest")" 0755
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s -- "$src" "$dest"; then
    if [ "$(stat -c '%a %u %g' -- "$dest")" != "${mode#0} 0 0" ]; then
      chown 0:0 -- "$dest"
      chmod -- "$mode" "$dest"
      KILN_CHANGED=1
      kiln_log "set mode $mode on $dest"
    fi
    return 0
  fi
  local tmp
  tmp=$(mktemp -- "$dest.kiln-XXXXXX")
  cat -- "$src" >"$tmp"
  chown 0:0 -- "$tmp"
  chmod -- "$mode" "$tmp"
  mv -f -- "$tmp" "$dest"
  KILN_CHANGED=1
  kiln_log "wrote $dest"
}

# kiln_write_file DEST MODE <<<CONTENT: like kiln_install_file with the content on stdin.
kiln_write_file() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  kiln_install_file "$tmp" "$dest" "$mode"
  rm -f -- "$tmp"
}

# kiln_remove PATH...: removes files or directory trees that exist.
kiln_remove() {
  local p
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then
      rm -rf -- "$p"
      KILN_CHANGED=1
      kiln_log "removed $p"
    fi
  done
}

# kiln_symlink TARGET LINK: makes LINK a symlink to TARGET unless it already is one.
kiln_symlink() {
  local target=$1 link=$2
  if [ -L "$link" ] && [ "$(readlink -- "$link")" = "$target" ]; then return 0; fi
  [ ! -e "$link" ] || [ -L "$link" ] || kiln_die "$link exists and is not a symlink: not replacing it"
  ln -sfn -- "$target" "$link"
  KILN_CHANGED=1
  kiln_log "linked $link -> $target"
}

# kiln_write_durable DEST VALUE [MODE]: writes VALUE and a newline to DEST (mode 0644 unless
# given) so that after a power cut DEST holds either the old or the new value in full: temp file
# in the same directory, fsync, rename, fsync of the directory.
kiln_write_durable() {
  local dest=$1 value=$2 mode=${3:-0644} dir tmp
  dir=$(dirname -- "$dest")
  mkdir -p -- "$dir"
  if [ -f "$dest" ] && [ "$(cat -- "$dest")" = "$value" ] && [ "$(stat -c %a -- "$dest")" = "${mode#0}" ]; then return 0; fi
  tmp=$(mktemp -- "$dir/.$(basename -- "$dest").kiln-XXXXXX")
  chmod -- "$mode" "$tmp"
  printf '%s\n' "$value" >"$tmp"
  sync -- "$tmp"
  mv -f -- "$tmp" "$dest"
  sync -- "$dir"
  KILN_CHANGED=1
}

# kiln_copy_durable SRC DEST MODE: kiln_write_durable for a whole file, byte for byte.
kiln_copy_durable() {
  local src=$1 dest=$2 mode=$3 dir tmp
  dir=$(dirname -- "$dest")
  mkdir -p -- "$dir"
  if [ -f "$dest" ] && cmp -s -- "$src" "$dest" && [ "$(stat -c %a -- "$dest")" = "${mode#0}" ]; then return 0; fi
  tmp=$(mktemp -- "$dir/.$(basename -- "$dest").kiln-XXXXXX")
  chmod -- "$mode" "$tmp"
  cat -- "$src" >"$tmp"
  sync -- "$tmp"
  mv -f -- "$tmp" "$dest"
  sync -- "$dir"
  KILN_CHANGED=1
}

kiln_sha256() { sha256sum -- "$1" | cut -d' ' -f1; }

# kiln_read_value FILE: the first line of FILE, without surrounding white space ('' if absent).
kiln_read_value() {
  local line=''
  [ -f "$1" ] || { printf ''; return 0; }
  IFS= read -r line <"$1" || true
  line=${line//[[:space:]]/}
  printf '%s' "$line"
}

# kiln_read_conf FILE PREFIX: reads KEY=VALUE lines (no quoting, no expansion, # comments) and sets
# PREFIX<KEY> for keys made of capitals, digits and "_". Never executes the file.
kiln_read_conf() {
  local file=$1 prefix=$2 key value
  [ -r "$file" ] || kiln_die "cannot read $file"
  while IFS='=' read -r key value || [ -n "$key" ]; do
    case "$key" in '' | '#'*) continue ;; esac
    [[ $key =~ ^[A-Z][A-Z0-9_]*$ ]] || kiln_die "$file: bad key \"$key\""
    printf -v "$prefix$key" '%s' "$value"
  done <"$file"
}

# ---------------------------------------------------------------------------------------------
# Waiting: poll a condition with backoff until a deadline. Never a fixed sleep.

# kiln_wait_until SECONDS WHAT COMMAND...: runs COMMAND until it succeeds; returns 1 (after a
# message) when SECONDS pass first. Delays between polls grow from 0.1 s to 5 s.
kiln_wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout)) delay=0.1
  while :; do
    if "$@"; then return 0; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kiln_warn "gave up after ${timeout}s waiting for $what"
      return 1
    fi
    sleep "$delay"
    case "$delay" in
      0.1) delay=0.2 ;; 0.2) delay=0.5 ;; 0.5) delay=1 ;; 1) delay=2 ;; *) delay=5 ;;
    esac
  done
}

# ---------------------------------------------------------------------------------------------
# Downloads

# kiln_download URL DEST: downloads URL to DEST (replacing it). Retries transport errors and 5xx
# with backoff for up to KILN_DOWNLOAD_TIMEOUT seconds (default 900); fails at once on 4xx.
kiln_download() {
  local url=$1 dest=$2 deadline=$((SECONDS + ${KILN_DOWNLOAD_TIMEOUT:-900})) delay=1 code rc attempt=0
  kiln_is_url "$url" || kiln_die "refusing to download \"$url\": not a plain http(s) URL"
  local -a tls=()
  [ -z "${KILN_CURL_CA_FILE:-}" ] || tls=(--cacert "$KILN_CURL_CA_FILE")
  while :; do
    attempt=$((attempt + 1))
    rc=0
    code=$(curl -sS -L --proto '=http,https' --connect-timeout 20 --speed-limit 1024 --speed-time 60 \
      "${tls[@]}" -o "$dest" -w '%{http_code}' -- "$url") || rc=$?
    if [ "$rc" -eq 0 ] && [ "$code" -ge 200 ] && [ "$code" -lt 300 ]; then return 0; fi
    if [ "$rc" -eq 0 ] && [ "$code" -ge 400 ] && [ "$code" -lt 500 ] && [ "$code" != 408 ] && [ "$code" != 429 ]; then
      rm -f -- "$dest"
      kiln_die "download of $url failed: HTTP $code"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      rm -f -- "$dest"
      kiln_die "download of $url failed after $attempt attempts (curl exit $rc, HTTP ${code:-none})"
    fi
    kiln_warn "download of $url failed (curl exit $rc, HTTP ${code:-none}), retrying in ${delay}s"
    sleep "$delay"
    delay=$((delay < 16 ? delay * 2 : 30))
  done
}

# kiln_verify_sha256 FILE EXPECTED WHAT: dies unless FILE's sha256 is EXPECTED.
kiln_verify_sha256() {
  local file=$1 expected=$2 what=$3 actual
  kiln_is_sha256 "$expected" || kiln_die "no valid sha256 to verify $what against (got \"$expected\")"
  actual=$(kiln_sha256 "$file")
  [ "$actual" = "$expected" ] || kiln_die "checksum mismatch for $what: expected sha256 $expected, got $actual"
}

# kiln_checksum_for SUMFILE NAME: the sha256 listed for NAME in a sha256sum-format file.
kiln_checksum_for() {
  local sumfile=$1 name=$2 hash file
  while read -r hash file _; do
    file=${file#\*}
    if [ "$file" = "$name" ] || [ "$file" = "./$name" ]; then
      printf '%s' "$hash" | tr 'A-F' 'a-f'
      return 0
    fi
  done <"$sumfile"
  kiln_die "no checksum for $name in $(basename -- "$sumfile")"
}

# ---------------------------------------------------------------------------------------------
# Offline bundles (kiln build --bundle): unpacked and verified by the bundle step

# kiln_bundle_check DIR: dies unless the bundle step unpacked and verified a bundle in DIR.
kiln_bundle_check() {
  kiln_is_abs_path "$1" || kiln_die "KILN_BUNDLE_DIR must be an absolute path"
  if [ ! -f "$1/.kiln-verified" ] || [ ! -f "$1/kiln-bundle.json" ]; then
    kiln_die "no verified bundle in $1 (the bundle step runs before this one)"
  fi
}

# kiln_bundle_sha256 DIR PATH: the sha256 the bundle's manifest lists for the artifact at PATH;
# dies when the bundle has no such artifact.
kiln_bundle_sha256() {
  local sha
  sha=$(jq -r --arg path "$2" '[.artifacts[] | select(.path == $path)][0].sha256 // empty' "$1/kiln-bundle.json")
  kiln_is_sha256 "$sha" || kiln_die "the offline bundle has no $2 (make it with kiln bundle for this definition and version)"
  printf '%s' "$sha"
}

# ---------------------------------------------------------------------------------------------
# Versions

KILN_SEMVER_RE='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$'
kiln_semver_valid() { [[ $1 =~ $KILN_SEMVER_RE ]]; }

# kiln_semver_cmp A B: prints -1, 0 or 1 as A is lower than, equal to or higher than B, by
# Semantic Versioning 2.0 precedence (5.10.0 > 5.9.0, 5.2.0-rc.1 < 5.2.0).
kiln_semver_cmp() {
  local a=$1 b=$2
  kiln_semver_valid "$a" || kiln_die "not a semantic version: \"$a\""
  kiln_semver_valid "$b" || kiln_die "not a semantic version: \"$b\""
  local a_core=${a%%-*} b_core=${b%%-*} a_pre='' b_pre=''
  [ "$a_core" = "$a" ] || a_pre=${a#*-}
  [ "$b_core" = "$b" ] || b_pre=${b#*-}
  local -a an bn
  IFS=. read -r -a an <<<"$a_core"
  IFS=. read -r -a bn <<<"$b_core"
  local i
  for i in 0 1 2; do
    if _kiln_num_lt "${an[i]}" "${bn[i]}"; then echo -1; return 0; fi
    if _kiln_num_lt "${bn[i]}" "${an[i]}"; then echo 1; return 0; fi
  done
  if [ -z "$a_pre" ] && [ -z "$b_pre" ]; then echo 0; return 0; fi
  if [ -z "$a_pre" ]; then echo 1; return 0; fi
  if [ -z "$b_pre" ]; then echo -1; return 0; fi
  local -a ap bp
  IFS=. read -r -a ap <<<"$a_pre"
  IFS=. read -r -a bp <<<"$b_pre"
  for ((i = 0; i < ${#ap[@]} || i < ${#bp[@]}; i++)); do
    if [ "$i" -ge "${#ap[@]}" ]; then echo -1; return 0; fi
    if [ "$i" -ge "${#bp[@]}" ]; then echo 1; return 0; fi
    local x=${ap[i]} y=${bp[i]} xn=0 yn=0
    [[ $x =~ ^[0-9]+$ ]] && xn=1
    [[ $y =~ ^[0-9]+$ ]] && yn=1
    if [ "$xn" = 1 ] && [ "$yn" = 1 ]; then
      if _kiln_num_lt "$x" "$y"; then echo -1; return 0; fi
      if _kiln_num_lt "$y" "$x"; then echo 1; return 0; fi
    elif [ "$xn" = 1 ]; then
      echo -1; return 0
    elif [ "$yn" = 1 ]; then
      echo 1; return 0
    elif [[ $x < $y ]]; then
      echo -1; return 0
    elif [[ $x > $y ]]; then
      echo 1; return 0
    fi
  done
  echo 0
}

# Numeric "less than" for arbitrarily long digit strings (no leading zeros, as semver requires).
_kiln_num_lt() {
  local x=$1 y=$2
  if [ "${#x}" -ne "${#y}" ]; then [ "${#x}" -lt "${#y}" ]; return; fi
  [[ $x < $y ]]
}

# ---------------------------------------------------------------------------------------------
# systemd

kiln_daemon_reload() {
  systemctl daemon-reload
  kiln_log "reloaded systemd units"
}

# kiln_enable UNIT / kiln_disable UNIT: only when not already so.
kiln_enable() {
  if [ "$(systemctl is-enabled -- "$1" 2>/dev/null || true)" != enabled ]; then
    systemctl enable -- "$1"
    KILN_CHANGED=1
    kiln_log "enabled $1"
  fi
}

kiln_disable() {
  local state
  state=$(systemctl is-enabled -- "$1" 2>/dev/null || true)
  if [ "$state" = enabled ] || [ "$state" = enabled-runtime ]; then
    systemctl disable -- "$1"
    KILN_CHANGED=1
    kiln_log "disabled $1"
  fi
}

# ---------------------------------------------------------------------------------------------
# Block devices

# kiln_root_disks: the kernel names of the whole disks that hold the root file system (through
# partitions, LVM, dm-crypt or RAID); nothing when / is not on a block device (e.g. overlay).
kiln_root_disks() {
  local source
  source=$(findmnt -n -v -o SOURCE --target /) || return 0
  source=${source%%\[*}
  [ -b "$source" ] || return 0
  lsblk -n -s -r -o NAME,TYPE -- "$source" | awk '$2 == "disk" { print $1 }' | sort -u
}

# kiln_disk_of DEV: kernel name of the whole disk DEV is or is on.
kiln_disk_of() {
  local dev=$1 name parent
  name=$(lsblk -n -d -r -o NAME -- "$dev" | awk 'NR == 1')
  parent=$(lsblk -n -d -r -o PKNAME -- "$dev" | awk 'NR == 1')
  printf '%s' "${parent:-$name}"
}

# ---------------------------------------------------------------------------------------------
# Helm repositories

# kiln_index_lookup INDEX CHART VERSION: prints "<digest> <first url>" of CHART at VERSION in a
# Helm repository index.yaml (block style, as `helm repo index` writes it); fails when absent.
# The digest may be empty when the index has none.
kiln_index_lookup() {
  awk -v chart="$2" -v ver="$3" '
    function unq(s) {
      gsub(/^[ \t]+|[ \t]+$/, "", s)
      if (s ~ /^".*"$/ || s ~ /^\047.*\047$/) s = substr(s, 2, length(s) - 2)
      return s
    }
    function finish() {
      if (initem && v == ver && !found) { print d " " u; found = 1 }
      initem = 0; v = ""; d = ""; u = ""; inurls = 0
    }
    {
      sub(/\r$/, "")
      if ($0 ~ /^[ \t]*(#.*)?$/) next
      match($0, /^ */); ind = RLENGTH; text = substr($0, ind + 1)
      if (ind == 0) { finish(); inentries = (text ~ /^entries:[ \t]*$/); keyind = -1; inchart = 0; next }
      if (!inentries) next
      if (keyind < 0 && text !~ /^- /) keyind = ind
      if (ind == keyind && text !~ /^- /) {
        finish(); k = text; sub(/:[ \t]*$/, "", k); inchart = (unq(k) == chart); itemind = -1; next
      }
      if (!inchart) next
      if (text ~ /^- / && (itemind < 0 || ind == itemind)) {
        finish(); itemind = ind; fieldind = ind + 2; text = substr(text, 3); ind = fieldind; initem = 1
      }
      if (!initem) next
      if (ind == fieldind && text ~ /^[A-Za-z0-9_]+:/) {
        k = text; sub(/:.*/, "", k); val = text; sub(/^[^:]*:[ \t]*/, "", val); inurls = 0
        if (k == "version") v = unq(val)
        else if (k == "digest") d = unq(val)
        else if (k == "urls") {
          if (val ~ /^\[/) { gsub(/^\[|\].*$/, "", val); split(val, parts, ","); u = unq(parts[1]) }
          else inurls = 1
        }
        next
      }
      if (inurls && text ~ /^- / && u == "") u = unq(substr(text, 3))
    }
    END { finish(); exit(found ? 0 : 1) }
  ' "$1"
}
