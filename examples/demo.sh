#!/usr/bin/env bash
# `npm run demo`: boots a real Linux guest under hostinfo-qemu (TCG, no KVM needed) with the sample
# host config and the demo policy; the guest asks the host a handful of questions over /dev/ttyS1,
# prints the replies on its console, and powers off.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

echo "== building the demo guest (Debian cloud kernel + busybox initramfs, cached after the first run)"
guest=$("$root/examples/guest/build.sh" | tail -n1)

work=$(mktemp -d "${TMPDIR:-/tmp}/hostinfo-demo.XXXXXX")
cleanup() {
  # The launcher starts a hostinfod that outlives the VM on purpose; this one was only for the demo.
  pkill -TERM -f -- "--runtime-dir $work/run" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/guest.sh" <<'GUEST'
. /lib/hostinfo.sh
port=$(hostinfo_port)
echo "guest: asking the host through $port (no driver, no stty: exec 3<> / echo / head)"
for request in 'PING "hello from the guest"' VERSION HELP physcpus physcores sockets cpumodel loadavg cpuusage physmem vcpudelay hypervisor hostname; do
  printf '  %-28s %s\n' "$request" "$(hostinfo_ask "$port" "$request")"
done
GUEST
"$root/examples/guest/with-script.sh" "$work/guest.sh" "$work/initrd.gz"

echo "== hostinfo-qemu --config examples/hostinfo.toml -- -name demo -nographic ... (policy: examples/policies/demo.toml)"
"$root/bin/hostinfo-qemu" --config "$root/examples/hostinfo.toml" --runtime-dir "$work/run" -- \
  -name demo -accel tcg -M pc -m 256 -nographic -no-reboot \
  -kernel "$guest/vmlinuz" -initrd "$work/initrd.gz" -append 'console=ttyS0 panic=-1 quiet'
echo "== the guest powered off; QEMU exited 0"
