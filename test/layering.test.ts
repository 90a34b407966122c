/**
 * Layering: the library (lib/, shipped as dist/lib) never imports from bench/.
 * bench/ may import from lib/; the reverse would ship benchmark code in the
 * package and tie `tmem bench` to files outside it. Both the TypeScript
 * sources and the compiled JavaScript are scanned: every import, export-from,
 * dynamic import() and require() whose target resolves into bench/ fails.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');

function filesUnder(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p, ext));
    else if (ext.test(e.name)) out.push(p);
  }
  return out;
}

/** Module specifiers of a source or compiled file. */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const res = [
    /\b(?:import|export)\s+(?:type\s+)?(?:[^'"`;]*?\sfrom\s+)?['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of res) for (const m of text.matchAll(re)) out.push(m[1]);
  return out;
}

/** Files of `files` that import a module under `forbidden`, as "file -> specifier". */
function offenders(files: string[], forbidden: string): string[] {
  const bad: string[] = [];
  for (const f of files) {
    for (const s of specifiers(fs.readFileSync(f, 'utf8'))) {
      if (!s.startsWith('.')) continue;
      const target = path.resolve(path.dirname(f), s);
      const rel = path.relative(forbidden, target);
      if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) bad.push(`${path.relative(ROOT, f)} -> ${s}`);
    }
  }
  return bad;
}

test('the specifier scan sees every import form', (t) => {
  const src = [
    "import { a } from '../../bench/x';",
    "import type { B } from '../bench/y';",
    "export { c } from './z';",
    "import * as fs from 'node:fs';",
    "const m = require('../../bench/w');",
    "const d = await import('../bench/v');",
    "import '../bench/side-effect';",
  ].join('\n');
  t.deepEqual(
    specifiers(src).sort(),
    ['../../bench/w', '../../bench/x', '../bench/side-effect', '../bench/v', '../bench/y', './z', 'node:fs'].sort(),
  );
  const dir = fs.mkdtempSync(path.join(ROOT, 'dist', 'layering-'));
  try {
    fs.mkdirSync(path.join(dir, 'lib', 'cli'), { recursive: true });
    const f = path.join(dir, 'lib', 'cli', 'x.ts');
    fs.writeFileSync(f, "import { makeCorpus } from '../../bench/corpus';\nimport { open } from '../swap';\n");
    t.deepEqual(offenders([f], path.join(dir, 'bench')), [
      'dist/' + path.basename(dir) + '/lib/cli/x.ts -> ../../bench/corpus',
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('no TypeScript source under lib/ imports from bench/', (t) => {
  const files = filesUnder(path.join(ROOT, 'lib'), /\.ts$/);
  t.true(files.length > 10, 'found the sources');
  t.deepEqual(offenders(files, path.join(ROOT, 'bench')), []);
});

test('no compiled file under dist/lib requires from dist/bench', (t) => {
  const files = filesUnder(path.join(ROOT, 'dist', 'lib'), /\.js$/);
  t.true(files.length > 10, 'found the compiled files');
  t.deepEqual(offenders(files, path.join(ROOT, 'dist', 'bench')), []);
});
