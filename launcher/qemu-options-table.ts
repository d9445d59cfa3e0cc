// Which QEMU command-line options take a value. QEMU's parser (softmmu/vl.c lookup_opt) takes the
// next argv word as the value of an option declared HAS_ARG, whatever that word looks like
// (`-append -nographic` is a kernel command line, not -nographic), so the launcher must know this
// for every option or it would misread the user's arguments. Sources: `qemu-system-x86_64 -help`
// of QEMU 7.2 (an option shown with an argument takes one) and qemu-options.hx for the options
// that help hides or shows only for other targets; plus Proxmox's pve-qemu `-id VMID`.
//
// An option in neither list (a newer QEMU's, or a typo QEMU itself will refuse) is treated as a
// flag and reported in the plan's `unknownOptions`. Why flag: if it really takes a value, that
// value is read as a disk image or an unknown option, which the launcher ignores either way;
// whereas guessing "takes a value" for a real flag would swallow the next option (`-newflag
// -serial stdio`) and the launcher would pick a serial index that is already taken.

const VALUE_OPTIONS: ReadonlySet<string> = new Set([
  'D', 'L', 'accel', 'acpitable', 'action', 'add-fd', 'append', 'audio', 'audiodev', 'bios', 'blockdev', 'boot',
  'cdrom', 'chardev', 'chroot', 'compat', 'cpu', 'd', 'debugcon', 'device', 'dfilter', 'display', 'drive', 'dtb',
  'dump-vmstate', 'echr', 'fda', 'fdb', 'fsdev', 'fw_cfg', 'g', 'gdb', 'global', 'hda', 'hdb', 'hdc', 'hdd',
  'icount', 'id', 'incoming', 'initrd', 'iscsi', 'k', 'kernel', 'loadvm', 'm', 'M', 'machine', 'mem-path', 'mon',
  'monitor', 'msg', 'mtdblock', 'name', 'net', 'netdev', 'nic', 'numa', 'object', 'option-rom', 'overcommit',
  'parallel', 'pflash', 'pidfile', 'plugin', 'prom-env', 'qmp', 'qmp-pretty', 'qtest', 'qtest-log', 'readconfig',
  'rotate', 'rtc', 'runas', 'sandbox', 'sd', 'seed', 'semihosting-config', 'serial', 'set', 'smbios', 'smp',
  'spice', 'tb-size', 'tpmdev', 'trace', 'usbdevice', 'uuid', 'vga', 'virtfs', 'vnc', 'watchdog-action',
  'xen-domid',
]);

const FLAG_OPTIONS: ReadonlySet<string> = new Set([
  'S', 'alt-grab', 'async-teardown', 'audio-help', 'ctrl-grab', 'daemonize', 'enable-kvm', 'enable-sync-profile',
  'full-screen', 'h', 'help', 'mem-prealloc', 'no-acpi', 'no-fd-bootchk', 'no-hpet', 'no-quit', 'no-reboot',
  'no-shutdown', 'no-user-config', 'nodefaults', 'nographic', 'old-param', 'only-migratable', 'portrait',
  'preconfig', 's', 'semihosting', 'singlestep', 'snapshot', 'usb', 'version', 'virtfs_synth', 'win2k-hack',
  'xen-attach', 'xen-domid-restrict',
]);

export type OptionArity = 'value' | 'flag' | 'unknown';

/** `name` without its leading dashes, as QEMU compares it. */
export function optionArity(name: string): OptionArity {
  if (VALUE_OPTIONS.has(name)) return 'value';
  if (FLAG_OPTIONS.has(name)) return 'flag';
  return 'unknown';
}
