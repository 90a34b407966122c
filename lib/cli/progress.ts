/**
 * Progress bars on stderr for `tmem bench`.
 *
 * On a terminal: one line redrawn in place,
 *   `  pool lz4: touch (random)   [##########----------]  52%  10400/20000  1.3s`
 * Elsewhere (a pipe, CI, a test): a line when a step starts and one when it ends,
 * so logs stay readable. Nothing is written while a timed touch loop runs: the
 * caller ticks between chunks of touches.
 */

export class Progress {
  private label = '';
  private total = 0;
  private done = 0;
  private t0 = 0;
  private timer: NodeJS.Timeout | undefined;
  private expectedMs = 0;
  private active = false;
  readonly tty: boolean;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly enabled = true,
  ) {
    this.tty = enabled && out.isTTY === true && process.env.TERM !== 'dumb';
  }

  /**
   * Starts a step of `total` units, or an indeterminate one (total 0: elapsed
   * time only, redrawn while the event loop runs).
   */
  start(label: string, total = 0): void {
    this.begin(label, total, 0);
  }

  /**
   * Starts a step that reports no progress of its own (a child process): the
   * bar fills with elapsed time against `expectedMs`, stopping at 95%.
   */
  startTimed(label: string, expectedMs: number): void {
    this.begin(label, 1000, Math.max(1, expectedMs));
  }

  private begin(label: string, total: number, expectedMs: number): void {
    this.finishLine();
    this.label = label;
    this.total = total;
    this.done = 0;
    this.expectedMs = expectedMs;
    this.t0 = Date.now();
    this.active = true;
    if (!this.enabled) return;
    if (!this.tty) {
      this.out.write(`  ${label} ...\n`);
      return;
    }
    this.draw();
    // Counted steps are redrawn by update() only: nothing is written while touches are timed.
    if (expectedMs > 0 || total === 0) {
      this.timer = setInterval(() => {
        if (expectedMs > 0) this.done = Math.min(950, Math.round((1000 * (Date.now() - this.t0)) / expectedMs));
        this.draw();
      }, 200);
      this.timer.unref();
    }
  }

  /** Sets the units done so far. */
  update(done: number): void {
    this.done = done;
    if (this.tty && this.active) this.draw();
  }

  /** Ends the step; `result` is shown after it. */
  end(result = ''): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.active) return;
    this.active = false;
    if (!this.enabled) return;
    const secs = ((Date.now() - this.t0) / 1000).toFixed(1);
    if (this.tty) {
      this.out.write(`\r\x1b[2K  ${this.label}: ${result || 'done'} (${secs}s)\n`);
    } else {
      this.out.write(`  ${this.label}: ${result || 'done'} (${secs}s)\n`);
    }
  }

  /** A line of its own (a skipped baseline, a warning), not breaking a bar. */
  note(text: string): void {
    if (!this.enabled) return;
    if (this.tty && this.active) this.out.write('\r\x1b[2K');
    this.out.write(`  ${text}\n`);
    if (this.tty && this.active) this.draw();
  }

  private finishLine(): void {
    if (this.active) this.end();
  }

  private draw(): void {
    const width = 24;
    const cols = this.out.columns || 100;
    const secs = `${((Date.now() - this.t0) / 1000).toFixed(1)}s`;
    let line: string;
    if (this.total > 0) {
      const f = Math.max(0, Math.min(1, this.done / this.total));
      const n = Math.round(f * width);
      const count = this.expectedMs > 0 ? '' : `  ${this.done}/${this.total}`;
      line = `  ${this.label.padEnd(34)} [${'#'.repeat(n)}${'-'.repeat(width - n)}] ${String(Math.round(f * 100)).padStart(3)}%${count}  ${secs}`;
    } else {
      line = `  ${this.label.padEnd(34)} ${secs}`;
    }
    this.out.write(`\r\x1b[2K${line.slice(0, cols - 1)}`);
  }
}
