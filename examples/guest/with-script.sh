#!/usr/bin/env bash
# Writes OUT = the base initramfs built by build.sh + a small gzip'ed newc cpio holding SCRIPT as
# /guest.sh (mode 0755). Linux unpacks concatenated archives in order, so nothing is rebuilt: this
# takes milliseconds.
# Usage: examples/guest/with-script.sh SCRIPT OUT [BASE]
#   BASE defaults to ${HOSTINFO_GUEST_CACHE:-$HOME/.cache/hostinfo-qemu/guest}/initramfs.cpio.gz
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 SCRIPT OUT [BASE]" >&2
  exit 2
fi
script=$1 out=$2
base=${3:-${HOSTINFO_GUEST_CACHE:-$HOME/.cache/hostinfo-qemu/guest}/initramfs.cpio.gz}
[[ -r $script ]] || { echo "with-script.sh: cannot read $script" >&2; exit 1; }
[[ -r $base ]] || { echo "with-script.sh: no base initramfs $base (run examples/guest/build.sh)" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$script" "$stage/guest.sh"
tmp="$out.tmp.$$"
{
  cat "$base"
  (cd "$stage" && echo guest.sh | cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -1
} >"$tmp"
mv -f "$tmp" "$out"
