#!/usr/bin/env node
// `hostinfo-qemu -- <qemu args>`: not built yet (see the launcher issue). Says so plainly rather
// than pretending to run QEMU.
process.stderr.write('hostinfo-qemu: not implemented yet (the launcher is a later issue)\n');
process.exitCode = 2;
