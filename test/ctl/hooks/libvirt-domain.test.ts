// Which of a domain's ports are hostinfo's, read from the domain XML as libvirt writes it
// (test/fixtures/libvirt/: one file per case, the live XML of libvirt 9.0 for the full ones).

import t from 'tap';
import { domainFactsOf } from '../../../ctl/hooks/libvirt-domain.js';
import { XmlError } from '../../../ctl/hooks/xml-tree.js';
import { libvirtFixture as fixture } from './libvirt-fixtures.js';

t.test('a live domain with an org.hostinfo channel, a guest agent channel and a pty console', async (t) => {
  t.same(domainFactsOf(fixture('web1-live.xml')), {
    name: 'web1',
    uuid: '0b7e6f52-1c1e-4b8e-9f0e-5a3c1d2e4f60',
    ports: [{ transport: 'virtio-serial', socket: '/var/lib/libvirt/qemu/channel/target/domain-3-web1/org.hostinfo.0', guestDevice: 'org.hostinfo.0' }],
    skipped: [],
  }, 'only the hostinfo channel; org.qemu.guest_agent.0, serial0 and the console are not ours');
});

t.test('a live domain with a ua-hostinfo unix serial', async (t) => {
  t.same(domainFactsOf(fixture('db1-serial-live.xml')), {
    name: 'db1',
    uuid: '5d2c9a1e-33b4-4f0c-8e6a-1b2c3d4e5f60',
    ports: [{ transport: 'isa-serial', socket: '/var/lib/libvirt/qemu/hostinfo-db1.sock', guestDevice: '/dev/ttyS1' }],
    skipped: [],
  }, 'the port number under <target> (with its <model>) names the guest\'s tty');
});

t.test('both kinds in one domain, in document order', async (t) => {
  const facts = domainFactsOf(fixture('both-ports.xml'));
  t.same(facts.ports.map((port) => [port.transport, port.guestDevice]), [['isa-serial', '/dev/ttyS2'], ['virtio-serial', 'org.hostinfo.0']]);
  t.same(facts.skipped, []);
});

t.test('marked ports that cannot be served are skipped, each with why', async (t) => {
  const connect = domainFactsOf(fixture('connect-mode.xml'));
  t.same(connect.ports, []);
  t.match(connect.skipped, [/^channel org\.hostinfo\.0: <source mode='connect'\/>: QEMU connects out/]);

  const noPort = domainFactsOf(fixture('no-target-port.xml'));
  t.same(noPort.ports, []);
  t.match(noPort.skipped, [/^serial ua-hostinfo: no <target port='N'\/>/]);

  const relative = domainFactsOf(fixture('relative-path.xml'));
  t.same(relative.ports, []);
  t.same(relative.skipped, ['serial ua-hostinfo: source path hostinfo-relative.sock is not absolute']);

  const wrongKind = domainFactsOf(fixture('not-unix.xml'));
  t.same(wrongKind.ports, []);
  t.same(wrongKind.skipped, [
    "serial ua-hostinfo: type='pty', not a unix socket",
    "channel org.hostinfo.0: type='spicevmc', not a unix socket",
    "channel org.hostinfo.1: no <source path='...'/>",
  ]);
});

t.test('a marked serial that is not an isa-serial is no ttyS port', async (t) => {
  const xml = "<domain><name>u</name><devices><serial type='unix'><source mode='bind' path='/run/u.sock'/><target type='usb-serial' port='1'/><alias name='ua-hostinfo'/></serial></devices></domain>";
  t.match(domainFactsOf(xml), { ports: [], skipped: [/target type='usb-serial'\/> is not an isa-serial/] });
});

t.test('a unix serial without the alias is someone else\'s', async (t) => {
  t.same(domainFactsOf(fixture('unaliased-unix-serial.xml')), { name: 'proxied', uuid: '44444444-5555-4666-8777-888888888888', ports: [], skipped: [] }, 'no port and no note');
});

t.test('the fields around the ports', async (t) => {
  const domain = (devices: string, head = '<name>n</name>'): string => `<domain type='kvm'>${head}<devices>${devices}</devices></domain>`;
  const channel = (attributes: string, source = "<source mode='bind' path='/run/x.sock'/>"): string => `<channel type='unix'>${source}<target ${attributes}/></channel>`;
  t.same(domainFactsOf("<domain type='kvm'/>"), { name: undefined, uuid: undefined, ports: [], skipped: [] }, 'no name, uuid or devices');
  t.same(domainFactsOf(domain('', '<name>\n  spaced  \n</name><uuid>  </uuid>')), { name: 'spaced', uuid: undefined, ports: [], skipped: [] }, 'trimmed; blank is none');
  t.equal(domainFactsOf(domain('', '<name>a&amp;b</name>')).name, 'a&b', 'entities decoded');
  t.same(domainFactsOf(domain('', '<metadata><name>inner</name></metadata>')).name, undefined, 'only the domain\'s own <name>');
  t.same(domainFactsOf(domain(channel("type='virtio' name='org.hostinfo.7'"), '')).ports, [{ transport: 'virtio-serial', socket: '/run/x.sock', guestDevice: 'org.hostinfo.7' }], 'any org.hostinfo.* name');
  t.same(domainFactsOf(domain(channel("type='virtio' name='org.hostinfo.0'", "<source path='/run/x.sock'/>"))).ports.length, 1, 'a unix source without mode is bind, libvirt\'s default');
  t.same(domainFactsOf(domain(channel("type='guestfwd' name='org.hostinfo.0'"))).ports, [], 'not a virtio target');
  t.same(domainFactsOf(domain(channel("type='virtio' name='org.hostinfoX'"))).ports, [], 'the prefix includes the dot');
  t.same(domainFactsOf(domain(channel("type='virtio'"))).ports, [], 'a virtio channel without a name');
  t.same(domainFactsOf(`<domain><devices><hub><channel type='unix'><source mode='bind' path='/run/x.sock'/><target type='virtio' name='org.hostinfo.0'/></channel></hub></devices></domain>`).ports, [], 'only direct children of <devices>');
  const serial = (port: string): string => `<serial type='unix'><source mode='bind' path='/run/s.sock'/><target type='isa-serial' port='${port}'/><alias name='ua-hostinfo-2'/></serial>`;
  t.same(domainFactsOf(domain(serial('3'))).ports, [{ transport: 'isa-serial', socket: '/run/s.sock', guestDevice: '/dev/ttyS3' }], 'an alias starting ua-hostinfo');
  for (const port of ['', '-1', '1a', '100', ' 1']) t.match(domainFactsOf(domain(serial(port))).skipped, [/no <target port='N'\/>/], `port ${JSON.stringify(port)}`);
});

t.test('what is not a domain XML', async (t) => {
  t.throws(() => domainFactsOf('<network><name>default</name></network>'), /not a <domain>/);
  t.throws(() => domainFactsOf(''), XmlError);
  t.throws(() => domainFactsOf('<domain><name>x</name>'), XmlError);
  t.throws(() => domainFactsOf(fixture('web1-live.xml').replace('</devices>', '')), XmlError, 'a truncated live XML');
});
