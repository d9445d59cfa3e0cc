// `npm run build`, after tsc: bundles the two programs that start per VM from tsc's output, each
// into one CommonJS file under dist/bundle/ (dist/bundle/package.json says commonjs; the package
// itself is ESM), at the same relative path as its entry: dist/bundle/sidecar/main.js, the
// sidecar hostinfod spawns for every VM, and dist/bundle/launcher/main.js, the planner the
// bin/hostinfo-qemu and bin/hostinfo-kvm fronts run before QEMU starts. Measured (README,
// performance): the sidecar's ~50 ESM modules came to 9.6 MB private per VM bundled as ESM, 8.0 MB
// as one CommonJS file (ESM's loader and module records are the difference), and the planner
// loads in ~5 ms instead of ~30. Whoever runs a bundle falls back to tsc's entry when the bundle
// is missing or older than it (a plain `tsc` since): a stale bundle never runs in place of newer
// code (daemon/sidecar-launch.ts sidecarMain, the fronts' `-nt` test).

import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = (path) => fileURLToPath(new URL(`../dist/${path}`, import.meta.url));

/**
 * CommonJS has no import.meta: each bundle gets its entry's own URL (dist/<program>/main.js), so
 * `new URL('../daemon/main.js', import.meta.url)` means what it meant unbundled. That holds only
 * for modules in the entry's directory; one elsewhere using import.meta fails the build.
 */
const importMetaOnlyBesideEntry = (entry) => ({
  name: 'import-meta-beside-entry',
  setup(builder) {
    builder.onLoad({ filter: /\.js$/ }, (args) => {
      const contents = readFileSync(args.path, 'utf8');
      if (contents.includes('import.meta') && dirname(args.path) !== dirname(entry)) {
        return { errors: [{ text: `${args.path} uses import.meta: only modules beside ${entry} may in a bundle` }] };
      }
      return { contents, loader: 'js' };
    });
  },
});

async function bundle(program) {
  const entry = dist(`${program}/main.js`);
  await build({
    entryPoints: [entry],
    outfile: dist(`bundle/${program}/main.js`),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // 'use strict' first: esbuild's own comes after the banner, where it would be no directive,
    // and the modules were written as ES modules, which are strict.
    banner: { js: `'use strict';\nconst __entryUrl = require('node:url').pathToFileURL(require('node:path').join(__dirname, '../../${program}/main.js')).href;` },
    define: { 'import.meta.url': '__entryUrl' },
    plugins: [importMetaOnlyBesideEntry(entry)],
    // Whitespace and syntax only: identifiers keep their names, so stack traces stay readable.
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    sourcemap: true,
    logLevel: 'warning',
  });
}

await bundle('sidecar');
await bundle('launcher');
writeFileSync(dist('bundle/package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);
