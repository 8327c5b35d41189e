// The built folder served the way a static host would serve it, with nothing but the header
// configuration the build writes beside index.html (www/hosting.ts): a real nginx including
// dist/nginx.conf, and a plain file server that applies dist/_headers as Netlify and Cloudflare
// Pages do. Neither knows the page's headers by itself; the nginx configuration around the
// snippet is that of a stock install (mime.types, default_type).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createServer as createNetServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { TYPES } from './server.mjs';

/** nginx: WEBTUNE_NGINX (scripts/common.sh unpacks one into the cache), or the system's. */
export const NGINX = process.env.WEBTUNE_NGINX ?? '/usr/sbin/nginx';
/** The mime.types that comes with that nginx (<prefix>/usr/sbin/nginx → <prefix>/etc/nginx). */
const MIME_TYPES = join(dirname(dirname(dirname(NGINX))), 'etc', 'nginx', 'mime.types');

/**
 * Rules of a `_headers` file: a line that starts at column 0 is a path pattern (`*` matches any
 * run of characters), the indented `Name: value` lines below it are its headers; `#` comments.
 */
export function parseHeadersFile(text) {
  const rules = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (!/^\s/.test(line)) {
      const pattern = line.trim();
      const source = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
      rules.push({ pattern, regex: new RegExp(`^${source}$`), headers: [] });
      continue;
    }
    const match = /^\s+([A-Za-z0-9-]+):\s*(.*\S)\s*$/.exec(line);
    if (!match || rules.length === 0) throw new Error(`_headers line ${index + 1} is not a header of a path: ${JSON.stringify(line)}`);
    rules.at(-1).headers.push([match[1], match[2]]);
  }
  return rules;
}

/** The headers `rules` give `path`: every matching rule applies, a repeated header's values are joined with ", ". */
export function headersFor(rules, path) {
  const headers = {};
  for (const rule of rules) {
    if (!rule.regex.test(path)) continue;
    for (const [name, value] of rule.headers) {
      const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase()) ?? name;
      headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
    }
  }
  return headers;
}

/**
 * Serves `root` with the headers of `root/_headers` only, on 127.0.0.1 (`port`, or a free one).
 * `replace` maps a path to a function of the file's text, for changing a file between visits.
 * Resolves to { url, port, close } where close also drops the open connections.
 */
export async function serveWithHeadersFile(root, { port = 0, replace = {} } = {}) {
  root = resolve(root);
  const rules = parseHeadersFile(await readFile(join(root, '_headers'), 'utf8'));
  const server = createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
    const headers = headersFor(rules, path);
    try {
      const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
      if (!file.startsWith(root + sep)) throw Object.assign(new Error('outside root'), { code: 'ENOENT' });
      if (!(await stat(file)).isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      let body = await readFile(file);
      if (replace[path]) body = Buffer.from(replace[path](body.toString('utf8')));
      response.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length });
      response.end(request.method === 'HEAD' ? undefined : body);
    } catch (error) {
      const missing = error.code === 'ENOENT' || error.code === 'ENOTDIR';
      response.writeHead(missing ? 404 : 500, { ...headers, 'Content-Type': 'text/plain' });
      response.end(missing ? 'not found' : String(error));
    }
  });
  await new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', done);
  });
  const bound = server.address().port;
  return {
    url: `http://127.0.0.1:${bound}/`,
    port: bound,
    close: () =>
      new Promise((done) => {
        server.close(done);
        server.closeAllConnections();
      }),
  };
}

/**
 * Runs nginx in the foreground on a free port with a minimal configuration whose server block
 * serves `root` and includes `root/nginx.conf`. Resolves to { url, close }.
 */
export async function serveWithNginx(root) {
  if (!existsSync(NGINX)) {
    throw new Error(`nginx not found at ${NGINX}: run scripts/test.sh (it unpacks Debian's nginx), or set WEBTUNE_NGINX`);
  }
  const port = await freePort();
  const prefix = await mkdtemp(join(tmpdir(), 'webtune-nginx-'));
  const temp = (name) => `${name} ${join(prefix, name)};`;
  const config = join(prefix, 'nginx.conf');
  await writeFile(
    config,
    `daemon off;
master_process off;
pid ${join(prefix, 'nginx.pid')};
error_log stderr warn;
events {}
http {
    include ${MIME_TYPES};
    default_type application/octet-stream;
    access_log off;
    ${['client_body_temp_path', 'proxy_temp_path', 'fastcgi_temp_path', 'uwsgi_temp_path', 'scgi_temp_path'].map(temp).join('\n    ')}
    server {
        listen 127.0.0.1:${port};
        root ${resolve(root)};
        include ${join(resolve(root), 'nginx.conf')};
    }
}
`,
  );
  const nginx = spawn(NGINX, ['-p', prefix, '-c', config, '-e', 'stderr'], { stdio: ['ignore', 'inherit', 'pipe'] });
  let log = '';
  nginx.stderr.on('data', (chunk) => (log += chunk));
  const exited = new Promise((done) => nginx.once('exit', (code, signal) => done({ code, signal })));
  const ready = waitForPort(port);
  const first = await Promise.race([ready.then(() => null), exited]).catch((error) => {
    nginx.kill('SIGTERM');
    throw error;
  });
  if (first) throw new Error(`nginx exited (${first.code ?? first.signal}) before serving: ${log}`);
  return {
    url: `http://127.0.0.1:${port}/`,
    log: () => log,
    close: async () => {
      nginx.kill('SIGTERM');
      await exited;
      await rm(prefix, { recursive: true, force: true });
    },
  };
}

function freePort() {
  return new Promise((done, fail) => {
    const probe = createNetServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

async function waitForPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise((done) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 100));
  }
}
