// Node opens its inspector on 127.0.0.1:9229 when the process gets SIGUSR1, and any local user can
// connect to that port and run code in the process: the daemon's root, a sidecar's user. An
// administrator's habit (`pkill -USR1 ...` to reopen logs) would hand both out. So the long-lived
// processes keep SIGUSR1 for themselves, unless profiling was asked for explicitly:
// HOSTINFO_ALLOW_INSPECTOR=1 in hostinfod's environment (bench/fleet-profile.ts sets it), which
// hostinfod passes on to its sidecars as --allow-inspector.

export const ALLOW_INSPECTOR_ENV = 'HOSTINFO_ALLOW_INSPECTOR';

/** Takes SIGUSR1 away from Node's inspector (a listener replaces its handler) unless `allowed`. */
export function keepInspectorClosed(allowed: boolean, ignored: () => void): void {
  if (!allowed) process.on('SIGUSR1', ignored);
}
