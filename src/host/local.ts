import { hostname } from 'node:os';
import type { Host, Invocation } from './host.ts';

export class LocalHost implements Host {
  readonly isLocal = true;
  readonly name: string;

  constructor(name = hostname()) {
    this.name = name;
  }

  invocation(argv: readonly string[]): Invocation {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('empty command');
    return { file, args };
  }

  async close(): Promise<void> {}
}
