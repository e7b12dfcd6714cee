# shellcheck shell=bash
# Shared by the sandbox's fake system tools: appends one JSON line per call (tool, argv) to
# /var/lib/kiln-test/fakes.jsonl inside the sandbox root. Test harness only.
fake_json() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}
fake_record() {
  local tool=$1 argv='' a extra=${FAKE_EXTRA:-}
  shift
  for a in "$@"; do argv+="${argv:+,}$(fake_json "$a")"; done
  mkdir -p /var/lib/kiln-test
  { flock 8; printf '{"tool":"%s","argv":[%s]%s}\n' "$tool" "$argv" "${extra:+,$extra}" >&8; } 8>>/var/lib/kiln-test/fakes.jsonl
}
