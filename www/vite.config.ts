import { defineConfig } from 'vite';

// Cross-origin isolation (SharedArrayBuffer, precise timers) for the page and its worker.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// The page never sends a picture anywhere: everything it loads comes from its own origin, and
// the only code it compiles is its own wasm ('wasm-unsafe-eval', never 'unsafe-eval'). Inline
// styles stay allowed for the chart library and Vite's dev-time CSS injection; workers may be
// blob: URLs. README.md ("Hostile input and privacy") lists the same header for static hosts.
export const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const headers = { ...isolation, 'Content-Security-Policy': contentSecurityPolicy };

export default defineConfig(({ mode }) => ({
  // Relative asset URLs: the built page works from any sub-path (a static host, GitHub Pages).
  base: './',
  server: { headers },
  preview: { headers },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    // The wasm module is several MB by nature; do not warn about it.
    chunkSizeWarningLimit: 2048,
    rollupOptions: {
      // The page; the phase-2 step benchmark that bench/browser-*.mjs open only in a bench build
      // (`npm run build -- --mode bench`, what scripts/test.sh makes), so that a deployed page
      // carries no benchmark entry point (paths from the project root, www/).
      input: (mode === 'bench' ? { main: 'index.html', bench: 'bench.html' } : { main: 'index.html' }) as Record<string, string>,
    },
  },
}));
