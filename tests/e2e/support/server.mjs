// A static file server for the built page, with the headers `vite preview` sends (www/headers.json:
// cross-origin isolation and the Content-Security-Policy), so the browser tests run under them.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';

const PAGE_HEADERS = JSON.parse(readFileSync(new URL('../../../www/headers.json', import.meta.url), 'utf8'));

/** The types a plain static server gives by file extension. */
export const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.safetensors': 'application/octet-stream',
};

/**
 * Serves `root` on 127.0.0.1 at a free port; resolves to { url, close }. `mounts` serves other
 * folders under URL prefixes (`{ '/bench-weights/': dir }`), for files the build does not hold.
 * `overrides` replaces some of the page's headers (a benchmark's looser CSP).
 */
export async function serveStatic(root, mounts = {}, overrides = {}) {
  const server = createServer(async (request, response) => {
    const headers = {
      ...PAGE_HEADERS,
      ...overrides,
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    try {
      let path = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
      if (path.endsWith('/')) path += 'index.html';
      const prefix = Object.keys(mounts).find((p) => path.startsWith(p));
      const base = prefix ? resolve(mounts[prefix]) : root;
      const file = normalize(join(base, prefix ? path.slice(prefix.length) : path));
      if (file !== base && !file.startsWith(base + sep)) throw Object.assign(new Error('outside root'), { code: 'ENOENT' });
      const info = await stat(file);
      if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      response.writeHead(200, {
        ...headers,
        'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
        'Content-Length': info.size,
      });
      if (request.method === 'HEAD') response.end();
      else createReadStream(file).pipe(response);
    } catch (error) {
      const missing = error.code === 'ENOENT' || error.code === 'ENOTDIR';
      response.writeHead(missing ? 404 : 500, { ...headers, 'Content-Type': 'text/plain' });
      response.end(missing ? 'not found' : String(error));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
