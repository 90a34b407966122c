/**
 * The README's code blocks, as a reader pastes them: every ```ts / ```js block
 * is stripped of its types (TypeScript's transpileModule), written into an
 * empty ES-module project whose node_modules/tmem is this package, and run
 * with node; it must exit 0. A block whose first line is `// file: NAME` is
 * not run but written as NAME, for the blocks before and after it to use
 * (a Worker's script). Blocks run one by one, in order, in the same folder.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import ts from 'typescript';

const root = path.join(__dirname, '..', '..');

interface Block {
  lang: string;
  code: string;
  line: number;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const re = /^```(ts|js|typescript|javascript)\s*\n([\s\S]*?)^```\s*$/gm;
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) {
    out.push({ lang: m[1], code: m[2], line: markdown.slice(0, m.index).split('\n').length });
  }
  return out;
}

function toJs(code: string): string {
  return ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
    .outputText;
}

function runNode(
  file: string,
  cwd: string,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [file], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('error', reject);
    c.on('close', (code, signal) => resolve({ code, signal, out }));
  });
}

test('every README code block runs as pasted', async (t) => {
  t.timeout(300_000);
  const all = blocks(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));
  t.true(all.length >= 5, `found ${all.length} blocks`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-readme-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'readme', private: true, type: 'module' }));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'tmem'), 'dir');
  fs.symlinkSync(path.join(root, 'node_modules', 'prom-client'), path.join(dir, 'node_modules', 'prom-client'), 'dir');
  // Written files first: a block may start a Worker from a file the README shows after it.
  for (const b of all) {
    const m = /^\/\/ file: (\S+)\s*\n/.exec(b.code);
    if (m) fs.writeFileSync(path.join(dir, m[1]), toJs(b.code));
  }
  let ran = 0;
  for (const [i, b] of all.entries()) {
    if (/^\/\/ file: /.test(b.code)) continue;
    const file = path.join(dir, `block-${i}.js`);
    fs.writeFileSync(file, toJs(b.code));
    const r = await runNode(file, dir);
    t.is(r.code, 0, `README.md line ${b.line} (exit ${r.code ?? r.signal}):\n${b.code}\n--- output:\n${r.out}`);
    ran++;
  }
  t.log(`${ran} blocks run, ${all.length - ran} written as files`);
});
