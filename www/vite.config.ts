import { defineConfig } from 'vite';

// The headers the page is served with, in one file that vite (dev server and preview), the
// browser tests' static server and the README's static-host section share: cross-origin
// isolation (SharedArrayBuffer, precise timers), and a Content-Security-Policy under which the
// page loads nothing from elsewhere and compiles only its own wasm ('wasm-unsafe-eval', never
// 'unsafe-eval'); inline styles stay allowed for the chart library and Vite's dev-time CSS.
import pageHeaders from './headers.json';

const headers: Record<string, string> = pageHeaders;

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
