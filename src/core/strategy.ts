/**
 * Which children restart when one goes down (OTP's restart strategies), as a pure function of the
 * strategy, the children's count and the index of the one that went down:
 * - one_for_one: only that child;
 * - one_for_all: every child;
 * - rest_for_one: that child and every child started after it.
 * Returns the indices of the siblings that restart with it, in start order (the child itself not
 * included). They are stopped in reverse order, then everything restarts in start order.
 */

export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one";

export const STRATEGIES: readonly Strategy[] = Object.freeze(["one_for_one", "one_for_all", "rest_for_one"]);

export function siblingsToRestart(strategy: Strategy, childCount: number, downIndex: number): number[] {
  if (!Number.isInteger(downIndex) || downIndex < 0 || downIndex >= childCount) return [];
  const siblings: number[] = [];
  switch (strategy) {
    case "one_for_one":
      return siblings;
    case "one_for_all":
      for (let i = 0; i < childCount; i++) if (i !== downIndex) siblings.push(i);
      return siblings;
    case "rest_for_one":
      for (let i = downIndex + 1; i < childCount; i++) siblings.push(i);
      return siblings;
  }
}
