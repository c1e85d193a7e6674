/**
 * "Did you mean": the closest of the allowed names to a misspelt one, as compilers suggest.
 * Distances are computed on names of ~20 characters against tables of ~40: microseconds, and
 * only when a spec is already wrong.
 */

/** ` (did you mean 'x'?)` for the closest allowed key within a small edit distance, or "". */
export function suggestion(key: string, allowed: readonly string[]): string {
  const wanted = normalize(key);
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(wanted.length / 3)) + 1;
  for (const candidate of allowed) {
    const distance = editDistance(wanted, normalize(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? "" : ` (did you mean '${best}'?)`;
}

/** Case and snake/kebab spelling are the commonest slips (`max_children`, `Strategy`): ignore them. */
function normalize(key: string): string {
  return key.toLowerCase().replace(/[-_]/g, "");
}

/** Optimal string alignment distance: Levenshtein plus a swap of two neighbours as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
