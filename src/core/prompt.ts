// Yes/no questions on the context's streams, in the guide's `… [y/N] ` form.
// node:readline rather than a prompt library: the same transcript over a
// terminal or piped answers, and end of input means "no".
import { createInterface } from 'node:readline';
import type { Context } from './context.js';

export class Prompter {
  private lines: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;
  private readonly rl;

  constructor(private readonly ctx: Context) {
    this.rl = createInterface({ input: ctx.stdin, terminal: false });
    this.rl.on('line', (line) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(line);
      } else this.lines.push(line);
    });
    this.rl.on('close', () => {
      this.ended = true;
      this.waiting?.(undefined);
    });
  }

  async confirm(question: string): Promise<boolean> {
    this.ctx.stdout.write(`${question} [y/N] `);
    const line =
      this.lines.shift() ??
      (this.ended
        ? undefined
        : await new Promise<string | undefined>((resolve) => {
            this.waiting = resolve;
          }));
    // A terminal echoes what was typed; piped answers are echoed here so the
    // transcript reads the same either way.
    if (!this.ctx.stdin.isTTY || line === undefined) this.ctx.stdout.write(`${line ?? ''}\n`);
    return /^\s*y(es)?\s*$/i.test(line ?? '');
  }

  close(): void {
    this.rl.close();
  }
}
