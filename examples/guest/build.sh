#!/usr/bin/env bash
# Builds the tiny Linux guest used by `npm run demo` and the end-to-end tests:
#   <cache>/vmlinuz             kernel of the current Debian linux-image-*-cloud-amd64 package
#   <cache>/initramfs.cpio.gz   busybox-static, the virtio-serial modules, /init, /lib/hostinfo.sh
# The cache lives outside git: ${HOSTINFO_GUEST_CACHE:-$HOME/.cache/hostinfo-qemu/guest}.
# Idempotent and quiet: the kernel is downloaded again only when apt's current version differs
# from the cached one, the initramfs is rewritten only when its (reproducible) bytes change.
# On success the last line on stdout is the cache directory.
# Exit status 75 (EX_TEMPFAIL) means: no kernel could be fetched because apt has no network.
# Usage: examples/guest/build.sh
set -euo pipefail

readonly EX_NONET=75
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${HOSTINFO_GUEST_CACHE:-$HOME/.cache/hostinfo-qemu/guest}
meta=linux-image-cloud-amd64
# The top-level modules the guest needs; their dependencies come from modules.dep.
# virtio_pci is the PCI transport (virtio-serial-pci is a PCI device), virtio_console the driver
# for virtio-serial ports (/dev/vportNpM, /sys/class/virtio-ports/*/name).
readonly wanted_modules=(virtio_pci virtio_console)

log=
die() {
  local code=$1
  shift
  printf 'build.sh: %s\n' "$*" >&2
  if [[ -n $log && -s $log ]]; then
    printf -- '--- output of the failed step:\n' >&2
    cat "$log" >&2
  fi
  exit "$code"
}
# Runs a step with its output captured; shows it only when the step fails.
quietly() {
  local rc=0
  "$@" >"$log" 2>&1 || rc=$?
  [[ $rc -ne 0 ]] || : >"$log"
  return "$rc"
}
is_network_error() {
  grep -Eqi 'could not resolve|temporary failure resolving|failed to fetch|unable to connect|could not connect|connection (failed|refused|timed out)|network is unreachable|no route to host|unable to fetch' "$log"
}

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
exec 9>"$cache/.lock"
flock 9 # two builds at once (demo and tests) take turns
work=$(mktemp -d "$cache/.work.XXXXXX")
log=$work/step.log
trap 'rm -rf "$work"' EXIT
# A step that fails outside an explicit check: say where, and show what it printed.
trap 'rc=$?; echo "build.sh: command failed (status $rc) at line $LINENO" >&2; [[ -s $log ]] && cat "$log" >&2' ERR

# ---------------------------------------------------------------- kernel
# Each apt-cache call costs about a second where apt keeps no binary cache (Docker images), so
# ask once: the metapackage's Depends names the versioned image and pins its version, e.g.
# "Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)".
apt_show() { apt-cache show --no-all-versions "$1" 2>/dev/null || true; }

meta_info=$(apt_show "$meta")
if [[ $meta_info != *Package:* ]]; then
  # apt knows nothing (fresh machine, lists never downloaded): fetch the lists once.
  if [[ $(id -u) -ne 0 ]]; then
    die 1 "apt-cache knows no $meta; run 'apt-get update' as root first"
  fi
  if ! quietly apt-get update; then
    is_network_error && die "$EX_NONET" "apt-get update failed: apt has no network"
    die 1 "apt-get update failed"
  fi
  meta_info=$(apt_show "$meta")
  [[ $meta_info == *Package:* ]] || die 1 "apt knows no package $meta even after apt-get update"
fi

dep=$(sed -n 's/^Depends: //p' <<<"$meta_info" | tr ',' '\n' | grep -E '^ *linux-image-[0-9][^ ]*-cloud-amd64' | sed -n 1p || true)
kpkg=$(sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' <<<"$dep")
kver=$(sed -n 's/.*(= *\([^ )]*\)).*/\1/p' <<<"$dep")
if [[ -z $kpkg ]]; then # fall back to apt-cache depends' view of the candidate
  kpkg=$(apt-cache depends "$meta" 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' | sed -n 1p)
fi
[[ -n $kpkg ]] || die 1 "cannot find the versioned kernel package $meta depends on"
if [[ -z $kver ]]; then # not pinned: the image's own candidate version
  kver=$(apt_show "$kpkg" | sed -n 's/^Version: //p' | sed -n 1p)
fi
[[ -n $kver ]] || die 1 "apt knows no version of $kpkg"
want_stamp="$kpkg $kver"

have_stamp=$(cat "$cache/kernel.stamp" 2>/dev/null || true)
if [[ $have_stamp != "$want_stamp" || ! -s $cache/vmlinuz || ! -s $cache/kernel/modules.load ]]; then
  mkdir "$work/deb"
  if ! (cd "$work/deb" && quietly apt-get download "$kpkg=$kver"); then
    if is_network_error; then
      if [[ -n $have_stamp && -s $cache/vmlinuz && -s $cache/kernel/modules.load ]]; then
        echo "build.sh: warning: cannot download $kpkg $kver (no network); keeping the cached $have_stamp" >&2
        want_stamp=$have_stamp
      else
        die "$EX_NONET" "cannot download $kpkg $kver: apt has no network"
      fi
    else
      die 1 "apt-get download $kpkg=$kver failed"
    fi
  fi
  if [[ $want_stamp != "$have_stamp" ]]; then
    deb=$(ls "$work"/deb/*.deb)
    quietly dpkg-deb -x "$deb" "$work/x"
    release=$(ls "$work/x/lib/modules")
    [[ $(wc -w <<<"$release") -eq 1 ]] || die 1 "expected one module tree in $deb, got: $release"
    mroot=$work/x/lib/modules/$release
    # Debian kernels ship compressed modules from trixie on; busybox insmod may not read them.
    while IFS= read -r -d '' f; do
      case $f in
      *.ko.xz) quietly xz -d "$f" ;;
      *.ko.zst) quietly zstd -q -d --rm "$f" ;;
      *.ko.gz) quietly gzip -d "$f" ;;
      esac
    done < <(find "$mroot" \( -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0)
    # Debian's package has no modules.dep (its postinst runs depmod): make one. busybox's depmod
    # does not need kmod on the host, and its modules.dep has the usual format.
    if [[ ! -s $mroot/modules.dep ]]; then
      quietly busybox depmod -b "$work/x" "$release" || die 1 "depmod failed"
    fi
    # Load order: each module after its dependencies (depth first over modules.dep), siblings in
    # modules.order (kernel link) order; built-in modules (modules.builtin) are skipped.
    order=$(awk -v wanted="${wanted_modules[*]}" '
      function base(p) { sub(/:$/, "", p); sub(/^.*\//, "", p); sub(/\.ko$/, "", p); gsub(/-/, "_", p); return p }
      FILENAME ~ /modules\.order$/ { rank[base($1)] = FNR; next }
      FILENAME ~ /modules\.builtin$/ { builtin[base($1)] = 1; next }
      {
        m = base($1); nd[m] = 0; have[m] = 1
        for (i = 2; i <= NF; i++) dep[m, ++nd[m]] = base($i)
      }
      function visit(m,   i, j, k, t, n, ds) {
        if (m in done) return
        done[m] = 1
        if (m in builtin) { print "builtin " m; return }
        if (!(m in have)) { print "missing " m; return }
        n = nd[m]
        for (i = 1; i <= n; i++) ds[i] = dep[m, i]
        for (i = 2; i <= n; i++) for (j = i; j > 1 && rank[ds[j]] < rank[ds[j-1]]; j--) { t = ds[j]; ds[j] = ds[j-1]; ds[j-1] = t }
        for (i = 1; i <= n; i++) visit(ds[i])
        print "module " m
      }
      END { k = split(wanted, w, " "); for (i = 1; i <= k; i++) visit(w[i]) }
    ' "$mroot/modules.order" "$mroot/modules.builtin" "$mroot/modules.dep")
    grep -q '^missing ' <<<"$order" && die 1 "modules neither built in nor in modules.dep: $(sed -n 's/^missing //p' <<<"$order" | tr '\n' ' ')"
    mkdir -p "$work/kernel/modules"
    : >"$work/kernel/modules.load"
    while read -r kind m; do
      if [[ $kind == builtin ]]; then
        echo "$m" >>"$work/kernel/modules.builtin-used"
        continue
      fi
      rel=$(awk -v m="$m" '{ p = $1; sub(/:$/, "", p); b = p; sub(/^.*\//, "", b); sub(/\.ko$/, "", b); gsub(/-/, "_", b); if (b == m) { print p; exit } }' "$mroot/modules.dep")
      cp "$mroot/$rel" "$work/kernel/modules/$m.ko"
      echo "$m" >>"$work/kernel/modules.load"
    done <<<"$order"
    echo "$release" >"$work/kernel/release"
    cp "$work/x/boot/vmlinuz-$release" "$work/vmlinuz"
    # Replace the cached kernel: vmlinuz and modules first, the stamp last.
    rm -f "$cache/kernel.stamp"
    rm -rf "$cache/kernel"
    mv "$work/kernel" "$cache/kernel"
    mv -f "$work/vmlinuz" "$cache/vmlinuz"
    echo "$want_stamp" >"$cache/kernel.stamp"
    rm -rf "$work/x" "$work/deb"
  fi
fi

# ---------------------------------------------------------------- busybox
bb=
if [[ $(dpkg-query -W -f '${Status}' busybox-static 2>/dev/null || true) == 'install ok installed' ]]; then
  bb=$(dpkg-query -L busybox-static | grep -E '/bin/busybox$' | sed -n 1p)
fi
if [[ -z $bb || ! -x $bb ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static ||
      { is_network_error && die "$EX_NONET" "cannot install busybox-static: apt has no network"; die 1 "apt-get install busybox-static failed"; }
    bb=$(dpkg-query -L busybox-static | grep -E '/bin/busybox$' | sed -n 1p)
  else
    # Not root: use the package without installing it.
    mkdir -p "$work/bb"
    (cd "$work/bb" && quietly apt-get download busybox-static) ||
      { is_network_error && die "$EX_NONET" "cannot download busybox-static: apt has no network"; die 1 "apt-get download busybox-static failed"; }
    quietly dpkg-deb -x "$work"/bb/*.deb "$work/bb/x"
    mkdir -p "$cache/busybox"
    cp "$work/bb/x/bin/busybox" "$cache/busybox/busybox"
    bb=$cache/busybox/busybox
  fi
fi

# ---------------------------------------------------------------- initramfs
# Skip the rebuild when nothing that goes into the archive changed.
inputs=$(cd "$cache" && sha256sum "$here/init" "$here/lib.sh" "$here/build.sh" "$bb" kernel/modules.load kernel/modules/* 2>/dev/null | sha256sum | cut -d' ' -f1)
if [[ -s $cache/initramfs.cpio.gz && $(cat "$cache/initramfs.stamp" 2>/dev/null || true) == "$inputs" ]]; then
  printf '%s\n' "$cache"
  exit 0
fi
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc,lib/modules}
cp "$bb" "$root/bin/busybox"
while read -r applet; do
  [[ $applet == bin/busybox || $applet != */* ]] && continue
  dir=${applet%/*}
  [[ -d $root/$dir ]] || mkdir -p "$root/$dir"
  # Relative links, so they also resolve when the tree is inspected from the host.
  slashes=${dir//[!\/]/}
  up=..
  for ((i = 0; i < ${#slashes}; i++)); do up=../$up; done
  ln -s "$up/bin/busybox" "$root/$applet"
done < <("$bb" --list-full)
install -m 0755 "$here/init" "$root/init"
install -m 0644 "$here/lib.sh" "$root/lib/hostinfo.sh"
cp "$cache"/kernel/modules/*.ko "$root/lib/modules/" 2>/dev/null || true
cp "$cache/kernel/modules.load" "$root/etc/hostinfo-modules"
chmod 0644 "$root"/lib/modules/* "$root/etc/hostinfo-modules"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
# Reproducible archive: fixed mtimes, sorted names, renumbered inodes, owner root, gzip -n.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
  cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -n -9 >"$work/initramfs.cpio.gz"
if ! cmp -s "$work/initramfs.cpio.gz" "$cache/initramfs.cpio.gz"; then
  mv -f "$work/initramfs.cpio.gz" "$cache/initramfs.cpio.gz"
fi
echo "$inputs" >"$cache/initramfs.stamp"

printf '%s\n' "$cache"
