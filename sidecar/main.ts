#!/usr/bin/env node
// `hostinfo-sidecar`: not built yet (see the sidecar issue). Says so plainly.
process.stderr.write('hostinfo-sidecar: not implemented yet (the sidecar is a later issue)\n');
process.exitCode = 2;
