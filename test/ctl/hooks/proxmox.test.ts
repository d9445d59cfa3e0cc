// The Proxmox VE hookscript decided from its arguments and qemu-server's files, under a temp
// --root holding etc/pve/qemu-server/VMID.conf and var/run/qemu-server/VMID.pid as Proxmox lays
// them out (qemu-server/ is a symlink into the node's directory, as pmxcfs has it).

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parsePveConfig, proxmoxHookAction } from '../../../ctl/hooks/proxmox.js';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

/** A VM config as Proxmox VE 8 writes it: description lines, the current config, a snapshot, pending changes. */
const CONFIG_100 = `#Web front end%3A nginx
#name: not-a-key
agent: 1
boot: order=scsi0;ide2;net0
cores: 2
cpu: x86-64-v2-AES
hookscript: local:snippets/hostinfo-hook
ide2: none,media=cdrom
memory: 4096
meta: creation-qemu=8.1.5,ctime=1712345678
name: web1
net0: virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1
numa: 0
onboot: 1
ostype: l26
parent: before-upgrade
scsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G
scsihw: virtio-scsi-single
serial0: socket
serial1: socket
smbios1: uuid=7d3a6f0e-2b1c-4e5d-9f8a-0b1c2d3e4f5a,manufacturer=UHJveG1veA==,base64=1
sockets: 1
vga: serial0
vmgenid: 3c1f0a2e-4b5d-4c6e-8f7a-9b0c1d2e3f4a

[before-upgrade]
boot: order=scsi0;ide2;net0
cores: 2
memory: 2048
name: web1-old
serial1: /dev/ttyS0
serial2: socket
smbios1: uuid=00000000-1111-4222-8333-444444444444
snaptime: 1712345000
vmgenid: 5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b

[PENDING]
name: web1-renamed
serial3: socket
`;

t.test('parsePveConfig reads the current section only', async (t) => {
  const config = parsePveConfig(CONFIG_100);
  t.equal(config.name, 'web1', 'not the snapshot\'s or the pending name');
  t.equal(config.uuid, '7d3a6f0e-2b1c-4e5d-9f8a-0b1c2d3e4f5a', 'from smbios1, not vmgenid');
  t.same([...config.serials], [[0, 'socket'], [1, 'socket']], 'serial2 and serial3 exist only in the snapshot and pending sections');
  t.same(parsePveConfig(''), { name: undefined, uuid: undefined, serials: new Map() });
  t.equal(parsePveConfig('smbios1: manufacturer=QUNNRQ==,uuid=7D3A6F0E-2B1C-4E5D-9F8A-0B1C2D3E4F5A,base64=1\n').uuid, '7D3A6F0E-2B1C-4E5D-9F8A-0B1C2D3E4F5A', 'uuid after another field');
  t.equal(parsePveConfig('smbios1: manufacturer=x\n').uuid, undefined, 'no uuid');
  t.equal(parsePveConfig('smbios1: uuid=7d3a6f0e\n').uuid, undefined, 'not a uuid');
  t.equal(parsePveConfig('smbios1: product=fooduuid=7d3a6f0e-2b1c-4e5d-9f8a-0b1c2d3e4f5a\n').uuid, undefined, 'uuid= inside another value');
  t.same([...parsePveConfig('serial1: socket\r\nname: crlf\r\n').serials], [[1, 'socket']], 'CR before LF is trimmed');
  t.equal(parsePveConfig('name:   spaced   \n').name, 'spaced');
  t.same([...parsePveConfig('serial10: socket\nserialx: socket\nserial: socket\n').serials], [], 'serial0 to serial9 only');
});

interface Root { readonly root: string; readonly conf: (vmid: string, text: string) => void; readonly pid: (vmid: string, text: string) => void }

function pveRoot(tap: Tap): Root {
  const root = mkdtempSync(join(tmpdir(), 'hostinfo-pve-'));
  tap.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'etc/pve/nodes/pve1/qemu-server'), { recursive: true });
  symlinkSync('nodes/pve1/qemu-server', join(root, 'etc/pve/qemu-server'));
  mkdirSync(join(root, 'var/run/qemu-server'), { recursive: true });
  return {
    root,
    conf: (vmid, text) => writeFileSync(join(root, 'etc/pve/nodes/pve1/qemu-server', `${vmid}.conf`), text),
    pid: (vmid, text) => writeFileSync(join(root, 'var/run/qemu-server', `${vmid}.pid`), text),
  };
}

t.test('post-start attaches serialN\'s socket with the config\'s name and uuid', async (t) => {
  const { root, conf, pid } = pveRoot(t);
  conf('100', CONFIG_100);
  pid('100', '31337\n');
  t.same(proxmoxHookAction(['100', 'post-start'], 1, root), {
    kind: 'attach',
    specs: [{
      pid: 31337, name: 'web1', uuid: '7d3a6f0e-2b1c-4e5d-9f8a-0b1c2d3e4f5a', transport: 'isa-serial',
      guestSocket: join(root, 'var/run/qemu-server/100.serial1'), qmpSocket: undefined, guestDevice: '/dev/ttyS1',
    }],
    notes: [],
  });
  t.match(proxmoxHookAction(['100', 'post-start'], 0, root), { kind: 'attach', specs: [{ guestSocket: join(root, 'var/run/qemu-server/100.serial0'), guestDevice: '/dev/ttyS0' }] }, '--serial 0');
  t.same(proxmoxHookAction(['100', 'post-start'], 2, root), { kind: 'none', note: `VM 100 has no "serial2: socket" line in ${join(root, 'etc/pve/qemu-server/100.conf')}: nothing to attach` }, 'serial2 is the snapshot\'s, not the VM\'s');

  conf('101', 'memory: 1024\nserial1: /dev/ttyS0\n');
  pid('101', '4000\n');
  t.match(proxmoxHookAction(['101', 'post-start'], 1, root), { kind: 'none', note: /^VM 101 has no "serial1: socket" line/ }, 'a host device passed through is not a socket');
  conf('102', 'memory: 1024\nserial1: socket\n');
  pid('102', '4001\n');
  t.match(proxmoxHookAction(['102', 'post-start'], 1, root), { kind: 'attach', specs: [{ pid: 4001, name: 'vm102', uuid: undefined }] }, 'without name and smbios1');
});

t.test('post-start without what it needs', async (t) => {
  const { root, conf, pid } = pveRoot(t);
  const file = join(root, 'etc/pve/qemu-server/200.conf');
  t.same(proxmoxHookAction(['200', 'post-start'], 1, root), { kind: 'none', note: `cannot read ${file}: no such file` });
  conf('200', 'serial1: socket\n');
  t.same(proxmoxHookAction(['200', 'post-start'], 1, root), { kind: 'none', note: `cannot attach VM 200: ${join(root, 'var/run/qemu-server/200.pid')} does not exist` });
  pid('200', 'x\n');
  t.same(proxmoxHookAction(['200', 'post-start'], 1, root), { kind: 'none', note: `cannot attach VM 200: ${join(root, 'var/run/qemu-server/200.pid')} holds no pid` });
  conf('201', `serial1: socket\ndescription: ${'x'.repeat(1024 * 1024)}\n`);
  t.match(proxmoxHookAction(['201', 'post-start'], 1, root), { kind: 'none', note: /^cannot read .*201\.conf: .*is larger than 1048576 bytes$/ }, 'a config past the bound is not read');
  writeFileSync(join(root, 'elsewhere.conf'), 'serial1: socket\n');
  symlinkSync(join(root, 'elsewhere.conf'), join(root, 'etc/pve/nodes/pve1/qemu-server/202.conf'));
  t.match(proxmoxHookAction(['202', 'post-start'], 1, root), { kind: 'none', note: /^cannot read .*202\.conf: .*is a symbolic link$/ }, 'the config file itself is never a symlink followed');
});

t.test('pre-stop detaches by QEMU\'s pid; other phases do nothing', async (t) => {
  const { root, conf, pid } = pveRoot(t);
  conf('100', CONFIG_100);
  pid('100', '31337\n');
  t.same(proxmoxHookAction(['100', 'pre-stop'], 1, root), { kind: 'detach', vm: '31337' });
  t.same(proxmoxHookAction(['300', 'pre-stop'], 1, root), { kind: 'none', note: undefined }, 'no pidfile: nothing ran');
  for (const phase of ['pre-start', 'post-stop', 'POST-START', 'start', '']) {
    t.same(proxmoxHookAction(['100', phase], 1, root), { kind: 'none', note: undefined }, `phase ${JSON.stringify(phase)}`);
  }
});

t.test('arguments that are not a VM\'s', async (t) => {
  const { root } = pveRoot(t);
  t.same(proxmoxHookAction([], 1, root), { kind: 'none', note: 'Proxmox passes VMID PHASE; got fewer' });
  t.same(proxmoxHookAction(['100'], 1, root), { kind: 'none', note: 'Proxmox passes VMID PHASE; got fewer' });
  for (const vmid of ['abc', '../100', '100/../../x', '', '1234567890', '-1', '1e3', ' 100']) {
    t.same(proxmoxHookAction([vmid, 'post-start'], 1, root), { kind: 'none', note: `not a VMID: ${JSON.stringify(vmid)}` }, `VMID ${JSON.stringify(vmid)}`);
  }
});
