import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

/** Debian's Chromium, headless, with a fresh profile; nothing reaches beyond the machine. */
export const chromiumPath = '/usr/bin/chromium';
const flags = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  page(): Promise<Page>;
  /** Saves a full-page screenshot as `<artefacts>/<name>.png`; returns its path. */
  screenshot(page: Page, name: string): Promise<string>;
  artefacts: string;
  close(): Promise<void>;
}

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Launches Chromium for one test file. Screenshots go under the state dir
 * (`<CROWBAR_STATE_DIR or .state>/test-artifacts/<name>/`), kept after the run.
 */
export async function launchBrowser(name: string): Promise<Browser> {
  const profile = mkdtempSync(`${tmpdir()}/crowbar-chromium-`);
  const artefacts = `${process.env.CROWBAR_STATE_DIR ?? `${root}.state`}/test-artifacts/${name}`;
  mkdirSync(artefacts, { recursive: true });
  let context: BrowserContext;
  try {
    // Playwright owns --user-data-dir (a persistent context is how to hand it a fresh one).
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: flags.filter((f) => f !== '--headless'),
      viewport: { width: 1280, height: 900 },
      // axe-core is injected as a script tag, which the UI's CSP (script-src 'self') would refuse.
      bypassCSP: true,
      timeout: 30_000,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    artefacts,
    page: () => context.newPage(),
    async screenshot(page, shot) {
      const path = `${artefacts}/${shot}.png`;
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

/** Runs axe-core in the page; returns the violations of the given impacts (default: critical). */
export async function axeViolations(page: Page, impacts = ['critical']): Promise<AxeViolation[]> {
  await page.addScriptTag({ content: axeSource });
  const all = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run: (ctx: unknown, o: unknown) => Promise<any> } }).axe;
    const r = await axe.run((globalThis as any).document, { resultTypes: ['violations'] });
    return r.violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n: any) => ({ target: n.target, failureSummary: n.failureSummary })),
    }));
  });
  return (all as AxeViolation[]).filter((v) => impacts.includes(v.impact ?? ''));
}
