import { existsSync } from "node:fs";

/**
 * Splits a command string into argv without a shell: whitespace separates words, single and
 * double quotes group, a backslash escapes the next character. A string that names an
 * existing file is kept whole, so paths with spaces work unquoted.
 */
export function splitCommandLine(command: string): string[] {
  const trimmed = command.trim();
  if (trimmed.length === 0) return [];
  if (existsSync(trimmed)) return [trimmed];
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < trimmed.length; i++) {
    const ch = trimmed[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === "\\" && quote === '"' && i + 1 < trimmed.length) word += trimmed[++i];
      else word += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < trimmed.length) {
      word += trimmed[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unbalanced ${quote} quote in command line: ${command}`);
  if (inWord) words.push(word);
  return words;
}
