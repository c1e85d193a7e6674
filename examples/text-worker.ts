// A TypeScript worker: text utilities, run as compiled JS by the parent in demo.ts.
import { ChildWorker } from "multifrost";

export class TextWorker extends ChildWorker {
  shout(text: string): string {
    return `${text.toUpperCase()}!`;
  }

  wordCount(text: string): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const word of text.toLowerCase().match(/\p{L}+/gu) ?? []) counts[word] = (counts[word] ?? 0) + 1;
    return counts;
  }

  async fetchLengths(texts: string[]): Promise<number[]> {
    // async handlers overlap: a slow one does not block the others, nor heartbeats
    await new Promise((resolve) => setTimeout(resolve, 50));
    return texts.map((text) => text.length);
  }

  crash(code: number): string {
    setTimeout(() => process.exit(code), 10);
    return "crashing";
  }

  #secret(): string {
    return "never callable";
  }
}

// Started as a worker (the parent sets COMLINK_ZMQ_PORT); importing it for types does nothing.
if (process.env.COMLINK_ZMQ_PORT) await new TextWorker().run();
