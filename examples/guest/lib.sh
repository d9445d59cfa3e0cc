# Shell functions for hostinfo guest scripts (POSIX sh: busybox ash, dash, bash).
# In the demo/test initramfs this file is /lib/hostinfo.sh:   . /lib/hostinfo.sh
#
#   port=$(hostinfo_port)                # /dev/ttyS1, or the virtio-serial port org.hostinfo.0
#   hostinfo_ask "$port" physcpus        # prints one reply line, e.g. "1.0 200 16"
#
# Nothing here runs stty: the port stays in the stock cooked mode with echo on. The host side
# ignores the echo of its own reply that such a tty sends back.

# hostinfo_port [auto|isa-serial|virtio-serial]
# Prints the device to talk to. virtio-serial: the port whose /sys/class/virtio-ports/*/name is
# $HOSTINFO_PORT_NAME (default org.hostinfo.0); without udev its device node may be missing, so it
# is created from the port's sysfs "dev" (major:minor). auto (default): that virtio port if the VM
# has one, else /dev/ttyS1.
hostinfo_port() {
  _hi_mode=${1:-auto}
  _hi_name=${HOSTINFO_PORT_NAME:-org.hostinfo.0}
  case $_hi_mode in
  isa-serial | serial)
    echo /dev/ttyS1
    return 0
    ;;
  auto | virtio-serial | virtio) ;;
  *)
    echo "hostinfo_port: unknown transport '$_hi_mode' (auto, isa-serial, virtio-serial)" >&2
    return 2
    ;;
  esac
  if [ -e "/dev/virtio-ports/$_hi_name" ]; then # udev's stable link, where udev runs
    echo "/dev/virtio-ports/$_hi_name"
    return 0
  fi
  for _hi_d in /sys/class/virtio-ports/*; do
    [ -r "$_hi_d/name" ] || continue
    [ "$(cat "$_hi_d/name")" = "$_hi_name" ] || continue
    _hi_dev=/dev/${_hi_d##*/}
    if [ ! -c "$_hi_dev" ]; then
      IFS=: read -r _hi_major _hi_minor <"$_hi_d/dev" &&
        mknod "$_hi_dev" c "$_hi_major" "$_hi_minor" || {
        echo "hostinfo_port: cannot create $_hi_dev" >&2
        return 1
      }
    fi
    echo "$_hi_dev"
    return 0
  done
  if [ "$_hi_mode" = auto ] && [ -e /dev/ttyS1 ]; then
    echo /dev/ttyS1
    return 0
  fi
  echo "hostinfo_port: no virtio-serial port named $_hi_name" >&2
  return 1
}

# hostinfo_ask PORT COMMAND
# Sends one command and prints the one-line reply. One descriptor for both directions: writing and
# reading through separate opens loses the reply (a tty drops input while nobody has it open).
# Uses file descriptor 3 and closes it afterwards.
hostinfo_ask() {
  exec 3<>"$1" || return 1
  echo "$2" >&3
  head -n1 <&3
  _hi_rc=$?
  exec 3<&-
  return $_hi_rc
}
