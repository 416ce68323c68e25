import { formatBytes } from '../text/human.ts';

/**
 * One progress line on a terminal (stderr), redrawn at most four times a second; nothing at all
 * when stderr is not a terminal, so logs and the journal stay clean.
 */
export class Progress {
  #label = '';
  #started = 0;
  #last = 0;
  #shown = false;

  constructor(
    private readonly enabled: boolean,
    private readonly write: (s: string) => void = (s) => process.stderr.write(s),
  ) {}

  update(label: string, bytes: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (label !== this.#label) {
      this.#label = label;
      this.#started = now;
    }
    if (now - this.#last < 250) return;
    this.#last = now;
    const rate = bytes / Math.max(0.001, (now - this.#started) / 1000);
    this.write(`\r\x1b[K${label}: ${formatBytes(bytes)} ${formatBytes(rate)}/s`);
    this.#shown = true;
  }

  /** Clears the line before other output. */
  clear(): void {
    if (this.#shown) this.write('\r\x1b[K');
    this.#shown = false;
  }
}
