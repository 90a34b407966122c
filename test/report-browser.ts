/**
 * The real-browser check of `tmem bench --report`: generates a report with a
 * quick bench run (or takes --report FILE), opens it in headless Chromium
 * (playwright-core driving the system's chromium: CHROMIUM, else
 * /usr/bin/chromium; Debian: `apt-get install -y chromium`), and checks that
 *
 *   - the page loads with no script error and no request leaves the file
 *     (the chart library is inlined: any http(s) request is blocked and fails the check);
 *   - every chart rendered: document.body.dataset.rendered equals data-expected (> 0);
 *   - every canvas holds a drawing: enough non-background pixels in several colours.
 *
 * Options: --report FILE (check this report, do not run the bench),
 *          --screenshot PNG (full-page screenshot), --keep (keep the generated report).
 * Prints one line per check, then "N passed, N failed"; exit code 1 on a failure.
 *
 * Usage: npm run test:report   (or: node dist/test/report-browser.js [options])
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';

// The browser globals that the page.evaluate() callbacks use, as far as they use them
// (this project compiles without the DOM lib, which would type window and document in Node code too).
interface PageCanvas {
  id: string;
  width: number;
  height: number;
  getContext(
    kind: '2d',
  ): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}
declare const document: {
  body: { dataset: Record<string, string | undefined> };
  scripts: Iterable<{ src: string }>;
  querySelectorAll(selector: 'canvas'): Iterable<PageCanvas>;
};
declare const window: { Chart?: unknown };

const root = path.resolve(__dirname, '..', '..');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};

let passed = 0,
  failed = 0;
function check(name: string, ok: boolean, detail = ''): void {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
}

async function main(): Promise<void> {
  let report = opt('--report');
  let tmp: string | undefined;
  if (!report) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-report-'));
    report = path.join(tmp, 'report.html');
    const r = spawnSync(
      process.execPath,
      [path.join(root, 'dist', 'lib', 'cli.js'), 'bench', '--quick', '--pages', '2000', '--report', report],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    check(
      'tmem bench --quick --report ran',
      r.status === 0 && fs.existsSync(report),
      `exit ${r.status}${r.status !== 0 ? `: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` : ''}`,
    );
    if (!fs.existsSync(report)) throw new Error('no report was written');
  }
  const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!fs.existsSync(executablePath))
    throw new Error(`${executablePath} is missing: apt-get install -y chromium (or set CHROMIUM)`);
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const external: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    await page.goto(`file://${path.resolve(report)}`);
    await page.waitForFunction(
      () => document.body.dataset.rendered !== undefined || document.body.dataset.error !== undefined,
      undefined,
      { timeout: 30_000 },
    );
    const state = await page.evaluate(() => ({
      rendered: document.body.dataset.rendered ?? null,
      expected: document.body.dataset.expected ?? null,
      error: document.body.dataset.error ?? null,
      hasChart: typeof window.Chart === 'function',
      scripts: [...document.scripts].filter((s) => s.src).map((s) => s.src),
    }));
    check(
      'no script error',
      state.error === null && errors.length === 0,
      [state.error, ...errors].filter(Boolean).join('; '),
    );
    check(
      'no network request (everything inlined)',
      external.length === 0 && state.scripts.length === 0,
      [...external, ...state.scripts].join(', '),
    );
    check('Chart.js inlined and loaded', state.hasChart);
    check(
      'every chart rendered (body.dataset.rendered == expected)',
      state.rendered !== null && state.rendered === state.expected && Number(state.expected) > 0,
      `rendered ${state.rendered}, expected ${state.expected}`,
    );
    const canvases = await page.evaluate(() =>
      [...document.querySelectorAll('canvas')].map((c) => {
        const ctx = c.getContext('2d')!;
        const { width, height } = c;
        const d = ctx.getImageData(0, 0, width, height).data;
        let ink = 0;
        const colours = new Set<number>();
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] > 0 && !(d[i] > 245 && d[i + 1] > 245 && d[i + 2] > 245)) {
            ink++;
            colours.add(((d[i] >> 4) << 8) | ((d[i + 1] >> 4) << 4) | (d[i + 2] >> 4));
          }
        }
        return { id: c.id, width, height, ink, colours: colours.size };
      }),
    );
    check('canvases present', canvases.length === Number(state.expected), `${canvases.length} canvases`);
    for (const c of canvases) {
      const frac = c.ink / Math.max(1, c.width * c.height);
      check(
        `canvas ${c.id} is not blank`,
        c.width > 100 && c.height > 100 && frac > 0.005 && c.colours >= 3,
        `${c.width}x${c.height}, ${(frac * 100).toFixed(1)}% drawn, ${c.colours} colours`,
      );
    }
    const shot = opt('--screenshot');
    if (shot) {
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`screenshot written to ${shot}`);
    }
  } finally {
    await browser.close();
    if (tmp && !argv.includes('--keep')) fs.rmSync(tmp, { recursive: true, force: true });
    else if (tmp) console.log(`report kept: ${report}`);
  }
}

main()
  .catch((e: unknown) => {
    check('report browser check', false, e instanceof Error ? e.message : String(e));
  })
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed > 0 ? 1 : 0;
  });
