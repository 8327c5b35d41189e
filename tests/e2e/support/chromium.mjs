// Launching Debian's Chromium through playwright-core, the same way for the e2e tests and the
// benchmarks (flags from shared/notes/headless-chromium.md; Playwright adds --headless and a fresh
// --user-data-dir of its own).

import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const WWW = resolve(dirname(fileURLToPath(import.meta.url)), '../../../www');

export const CHROMIUM = process.env.WEBTUNE_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--disable-extensions',
];

/** SwiftShader WebGPU; robustness off makes its shaders 2–3× faster (trusted code only). */
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-dawn-features=disable_robustness'];

/** playwright-core from www/node_modules, with a clear message when `npm ci` has not run. */
export function loadPlaywright() {
  const require = createRequire(join(WWW, 'package.json'));
  try {
    return require('playwright-core');
  } catch (error) {
    throw new Error(`playwright-core is not installed: run \`npm ci\` in www/ (${error.message})`);
  }
}

/**
 * Headless Chromium with a profile kept in `userDataDir`, as a user's browser keeps one: its
 * storage quota follows the disk, where a fresh context's in-memory one holds a few hundred MB.
 * Resolves to the browser context (`newPage`, `close`).
 */
export function launchChromiumProfile(userDataDir, extraFlags = []) {
  return loadPlaywright().chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extraFlags],
  });
}

/** Launches headless Chromium with the common flags plus `extraFlags`. */
export function launchChromium(extraFlags = []) {
  return loadPlaywright().chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, ...extraFlags] });
}
