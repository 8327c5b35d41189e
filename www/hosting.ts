// The static hosts' header configurations, written into the built folder from www/headers.json
// (the one declaration of the page's headers) so that a host serves the page exactly as `vite
// preview` and the browser tests do:
//
// - `_headers`: Netlify and Cloudflare Pages (path patterns, each followed by indented headers);
// - `nginx.conf`: a snippet to `include` inside an nginx `server { root …/dist; }` block.
//
// Both add the page's headers (cross-origin isolation, the CSP) to every response, mark Vite's
// content-hashed files under assets/ immutable for a year, and make everything else (the page,
// the service worker, the weights) revalidate on each use, so a new deployment is seen at once.
// tests/e2e/hosting.test.mjs serves the build with nginx and these files only.

import type { Plugin } from 'vite';
import pageHeaders from './headers.json';

/** Vite's file names under assets/ carry a hash of their content: they never change. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Kept, but checked with the server (ETag, a 304 when unchanged) before each use. */
export const REVALIDATE = 'no-cache';

const headers: Record<string, string> = pageHeaders;

for (const [name, value] of Object.entries(headers)) {
  // Both formats hold a value as it is (_headers) or between double quotes (nginx).
  if (/["\\\n]/.test(value)) throw new Error(`www/headers.json: ${name} holds a quote, backslash or line break`);
}

/**
 * `_headers` (Netlify, Cloudflare Pages). Both hosts join the values of a header named by several
 * matching rules with a comma, so Cache-Control is given once per path, never under `/*`.
 * Both serve .wasm as application/wasm already.
 */
export function netlifyHeaders(): string {
  const block = (path: string, lines: Record<string, string>) =>
    `${path}\n${Object.entries(lines).map(([name, value]) => `  ${name}: ${value}\n`).join('')}`;
  return [
    '# The webtune page\'s headers, written by `npm run build` from www/headers.json (see www/hosting.ts).',
    '# For Netlify and Cloudflare Pages: publish this folder with this file at its root.\n',
    block('/*', headers),
    block('/assets/*', { 'Cache-Control': IMMUTABLE }),
    ...['/', '/index.html', '/sw.js', '/weights/*'].map((path) => block(path, { 'Cache-Control': REVALIDATE })),
  ].join('\n');
}

/**
 * An nginx snippet for a `server` block whose `root` is this folder. nginx's `add_header` is
 * not inherited by a location that has its own, so each location repeats the page's headers;
 * `always` adds them to error responses too. The .wasm location sets its type itself (older
 * mime.types lack it; the browser compiles a wasm stream only as application/wasm) and
 * compresses it (about 6× smaller).
 */
export function nginxSnippet(): string {
  const add = (lines: Record<string, string>, indent: string) =>
    Object.entries(lines)
      .map(([name, value]) => `${indent}add_header ${name} "${value}" always;\n`)
      .join('');
  const location = (match: string, extra: string, cache: string) =>
    `location ${match} {\n${extra}${add({ ...headers, 'Cache-Control': cache }, '    ')}}\n`;
  return [
    '# The webtune page\'s headers, written by `npm run build` from www/headers.json (see www/hosting.ts).',
    '# Include inside a server block that serves this folder at the root of the site:',
    '#   server { listen 80; root /srv/webtune; include /srv/webtune/nginx.conf; }',
    '# Regex locations are tried in order, before `location /`.\n',
    location(
      '~ /assets/[^/]+\\.wasm$',
      '    types { }\n    default_type application/wasm;\n    gzip on;\n    gzip_types application/wasm;\n',
      IMMUTABLE,
    ),
    location('~ /assets/', '', IMMUTABLE),
    location('/', '', REVALIDATE),
  ].join('\n');
}

/** Writes `_headers` and `nginx.conf` beside index.html in a build (not in dev). */
export function hostingConfigs(): Plugin {
  return {
    name: 'webtune-hosting-configs',
    apply: 'build',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: '_headers', source: netlifyHeaders() });
      this.emitFile({ type: 'asset', fileName: 'nginx.conf', source: nginxSnippet() });
    },
  };
}
