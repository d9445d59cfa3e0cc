// The domain XML fixtures of the libvirt hook tests: test/fixtures/libvirt in the source tree
// (the compiled tests sit at the same depth under dist/).

import { readFileSync } from 'node:fs';

const LIBVIRT_FIXTURES = new URL('../../../../test/fixtures/libvirt/', import.meta.url);

export const libvirtFixture = (name: string): string => readFileSync(new URL(name, LIBVIRT_FIXTURES), 'utf8');
