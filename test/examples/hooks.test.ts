// The libvirt and Proxmox set-ups an administrator copies: the hook scripts are valid POSIX sh,
// executable, and hand their arguments to hostinfo-ctl; the domain XML snippets are exactly what
// the hook recognises as hostinfo's ports.

import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import t from 'tap';
import { domainFactsOf } from '../../ctl/hooks/libvirt-domain.js';

const examples = new URL('../../../examples/', import.meta.url).pathname;

for (const script of ['libvirt/hooks/qemu', 'proxmox/hostinfo-hook']) {
  t.test(`${script} is an executable POSIX shell script`, async (t) => {
    const path = `${examples}${script}`;
    t.equal(statSync(path).mode & 0o777, 0o755);
    for (const shell of ['sh', 'dash']) {
      if (spawnSync('which', [shell]).status !== 0) continue;
      const check = spawnSync(shell, ['-n', path], { encoding: 'utf8' });
      t.equal(check.status, 0, `${shell} -n: ${check.stderr}`);
    }
    t.match(readFileSync(path, 'utf8'), /^exit 0$/m, 'ends with exit 0: it never fails the manager\'s operation');
  });
}

function domainWith(snippet: string): string {
  const device = readFileSync(`${examples}libvirt/${snippet}`, 'utf8').replace(/<!--[\s\S]*?-->/g, '').replaceAll('NAME', 'web1');
  return `<domain type='kvm'><name>web1</name><uuid>0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60</uuid><devices>${device}</devices></domain>`;
}

t.test('hostinfo-serial.xml is a ttyS1 the hook attaches', async (t) => {
  t.same(domainFactsOf(domainWith('hostinfo-serial.xml')), {
    name: 'web1', uuid: '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60', skipped: [],
    ports: [{ transport: 'isa-serial', socket: '/var/lib/libvirt/qemu/hostinfo-web1.sock', guestDevice: '/dev/ttyS1' }],
  });
});

t.test('hostinfo-channel.xml, as libvirt completes it, is the virtio port the hook attaches', async (t) => {
  // libvirt fills in the socket path of a channel defined without one (the live XML the hook gets).
  const live = domainWith('hostinfo-channel.xml').replace('<channel type=\'unix\'>', '<channel type=\'unix\'><source mode=\'bind\' path=\'/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.hostinfo.0\'/>');
  t.match(domainFactsOf(live).ports, [{ transport: 'virtio-serial', guestDevice: 'org.hostinfo.0', socket: '/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.hostinfo.0' }]);
  t.match(domainFactsOf(domainWith('hostinfo-channel.xml')), { ports: [], skipped: [/no <source path/] }, 'as written, before libvirt adds the path');
});

t.test('hostinfo-vhostmd-channel.xml, as libvirt completes it, rides along with the hostinfo port', async (t) => {
  const live = (snippet: string, socket: string): string => domainWith(snippet).replace('<channel type=\'unix\'>', `<channel type='unix'><source mode='bind' path='${socket}'/>`);
  const vhostmdSocket = '/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.github.vhostmd.1';
  const both = live('hostinfo-serial.xml', '').replace('</devices>', `${readFileSync(`${examples}libvirt/hostinfo-vhostmd-channel.xml`, 'utf8').replace(/<!--[\s\S]*?-->/g, '').replace('<channel type=\'unix\'>', `<channel type='unix'><source mode='bind' path='${vhostmdSocket}'/>`)}</devices>`);
  t.match(domainFactsOf(both), { ports: [{ transport: 'isa-serial', guestDevice: '/dev/ttyS1' }], vhostmdSocket, skipped: [] });
  t.match(domainFactsOf(live('hostinfo-vhostmd-channel.xml', vhostmdSocket)), { ports: [], vhostmdSocket }, 'alone, it is found (and the hook then says it cannot attach it)');
});
