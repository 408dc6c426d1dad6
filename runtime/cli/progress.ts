import type { CliContext } from './command.ts';

/**
 * A progress bar on standard error for long operations. Draws only on a terminal and never
 * in --json mode; redraws at most every REDRAW_MS so it costs nothing on hot loops.
 */
const REDRAW_MS = 100;
const WIDTH = 30;

export interface Progress {
  update(done: number): void;
  finish(): void;
}

export function progressBar(ctx: CliContext, label: string, total: number): Progress {
  if (!ctx.interactive || ctx.json || total <= 0) return { update() {}, finish() {} };
  let last = 0;
  const draw = (done: number) => {
    const frac = Math.min(1, done / total);
    const filled = Math.round(frac * WIDTH);
    ctx.stderr(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${done}/${total} ${(frac * 100).toFixed(0)}%`);
  };
  return {
    update(done) {
      const now = Date.now();
      if (now - last < REDRAW_MS) return;
      last = now;
      draw(done);
    },
    finish() {
      draw(total);
      ctx.stderr('\n');
    },
  };
}
