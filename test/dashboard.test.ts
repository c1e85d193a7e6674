/// <reference lib="dom" />
/**
 * The live dashboard in a real browser: Debian's chromium driven headless by playwright-core.
 * A tree of two workers; the page renders both with their states; a kill -9 turns the worker's
 * node to restarting (within a second) and back to connected; clicking the worker draws its
 * connection machine (mermaid, served from the package) with the current state highlighted, and
 * lists its transitions with reasons. The browser and the tree are closed whatever happens, and
 * no process is left.
 *
 * MULTIFROST_SCREENSHOT=1 also saves the page to docs/dashboard.png (otherwise test-results/).
 */
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DashboardServer } from "../src/dashboard/server.js";
import { supervise, worker, type SupervisionTree } from "../src/index.js";
import { fixture } from "./helpers/fixtures.js";
import { descendants, isAlive, waitFor } from "./helpers/processes.js";

const CHROMIUM = "/usr/bin/chromium";
const MATH = '[data-path="root/math"]';
const SUP = '[data-path="root/sup"]';

describe.skipIf(!existsSync(CHROMIUM))("the dashboard in chromium", () => {
  let tree: SupervisionTree | undefined;
  let dashboard: DashboardServer | undefined;
  let browser: Browser | undefined;
  let page: Page;

  beforeAll(async () => {
    tree = supervise({
      id: "root",
      children: [worker({ id: "math", spawn: fixture("math-worker.mjs") }), worker({ id: "sup", spawn: fixture("supervised-worker.mjs") })],
    });
    await tree.start();
    dashboard = await tree.serveDashboard();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    // Nothing may come from anywhere but the dashboard.
    await page.route("**/*", (route) => (route.request().url().startsWith(dashboard!.url) ? route.continue() : route.abort()));
    await page.goto(dashboard.url);
  }, 60_000);

  afterAll(async () => {
    try {
      await browser?.close();
    } finally {
      try {
        await dashboard?.close();
      } finally {
        await tree?.stop();
      }
    }
    await waitFor(() => descendants().length === 0, 10_000, "no process left");
  }, 60_000);

  it("renders the tree with both workers and their states", async () => {
    await page.waitForSelector(`${MATH}[data-state="connected"]`, { timeout: 10_000 });
    await page.waitForSelector(`${SUP}[data-state="connected"]`, { timeout: 10_000 });
    expect(await page.getAttribute('[data-path="root"]', "data-state")).toBe("running");
    expect(await page.textContent(`${MATH} .name`)).toBe("math");
    // Figures arrive with the snapshots: pid, calls/s, p99, RTT, CPU, RSS.
    await tree!.get("math").call.add(2, 3);
    await page.waitForFunction((sel) => /pid \d+/.test(document.querySelector(sel)?.getAttribute("data-figures") ?? ""), MATH, { timeout: 5000 });
    expect(await page.getAttribute(MATH, "data-figures")).toMatch(/calls\/s .*p99 .*RTT .*CPU .*RSS/);
  });

  it("shows a kill -9 as restarting within a second, then connected again on a new pid", async () => {
    const before = tree!.worker("sup").pid!;
    // Record every state the page gives the node, with the time it did.
    await page.evaluate((sel) => {
      const node = document.querySelector(sel)!;
      const seen: { state: string; at: number }[] = [];
      (window as unknown as { seen: typeof seen }).seen = seen;
      new MutationObserver(() => seen.push({ state: node.getAttribute("data-state") ?? "", at: Date.now() })).observe(node, { attributes: true, attributeFilter: ["data-state"] });
    }, SUP);
    const killedAt = Date.now();
    process.kill(before, "SIGKILL");
    await page.waitForFunction(() => (window as unknown as { seen: { state: string }[] }).seen.some((s) => s.state === "restarting"), undefined, { timeout: 5000 });
    await page.waitForSelector(`${SUP}[data-state="connected"]`, { timeout: 15_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: { state: string; at: number }[] }).seen);
    const restarting = seen.find((s) => s.state === "restarting")!;
    expect(restarting.at - killedAt).toBeLessThan(1000);
    expect(seen.at(-1)?.state).toBe("connected");
    expect(isAlive(before)).toBe(false);
    await page.waitForFunction((sel) => /restarts 1/.test(document.querySelector(`${sel} .restarts`)?.textContent ?? ""), SUP, { timeout: 5000 });
    await page.waitForFunction((sel) => /last exit: /.test(document.querySelector(`${sel} .lastexit`)?.textContent ?? ""), SUP, { timeout: 5000 });
    expect(await page.getAttribute(MATH, "data-state")).toBe("connected");
  }, 30_000);

  it("draws the worker's connection machine with the current state highlighted, and its transitions", async () => {
    await page.click(SUP);
    await page.waitForSelector('#diagram[data-rendered="true"] svg', { timeout: 15_000 });
    const current = page.locator('#diagram g.mf-current[data-current="connected"]');
    await current.waitFor({ timeout: 5000 });
    expect(await current.getAttribute("data-state-id")).toBe("live_health_connected");
    expect(await current.getAttribute("id")).toMatch(/-state-live_health_connected-\d+$/);
    expect(await page.locator("#diagram g.mf-current").count()).toBe(1);
    // The enclosing composite states are marked too.
    expect(await page.locator("#diagram g.mf-active").count()).toBeGreaterThan(0);
    const transitions = await page.textContent("#transitions tbody");
    expect(transitions).toMatch(/connected → restarting/);
    expect(transitions).toMatch(/SIGKILL|signal|exit/i);
    expect(transitions).toMatch(/→ connected/);

    const shot = process.env.MULTIFROST_SCREENSHOT
      ? fileURLToPath(new URL("../docs/dashboard.png", import.meta.url))
      : fileURLToPath(new URL("../test-results/dashboard.png", import.meta.url));
    mkdirSync(fileURLToPath(new URL(".", `file://${shot}`)), { recursive: true });
    await page.screenshot({ path: shot });
  }, 30_000);
});
