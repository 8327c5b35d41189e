import { defineConfig } from 'vite';

// Cross-origin isolation (SharedArrayBuffer, precise timers) for the page and its worker.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  // Relative asset URLs: the built page works from any sub-path (a static host, GitHub Pages).
  base: './',
  server: { headers: isolation },
  preview: { headers: isolation },
  worker: { format: 'es' },
  build: {
    target: 'es2022',
    // The wasm module is several MB by nature; do not warn about it.
    chunkSizeWarningLimit: 2048,
    rollupOptions: {
      // The page, and the phase-2 step benchmark that bench/browser-fine-tune.mjs opens
      // (paths from the project root, www/).
      input: {
        main: 'index.html',
        bench: 'bench.html',
      },
    },
  },
});
