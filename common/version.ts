// The package version, as VERSION and --version report it. A test keeps it equal to
// package.json's, so it is a constant here rather than a file read at start-up.
export const HOSTINFO_VERSION = '0.1.0';
