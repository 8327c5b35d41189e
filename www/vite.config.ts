import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';

// The headers the page is served with, in one file that vite (dev server and preview), the
// browser tests' static server and the static hosts' configurations (hosting.ts) share:
// cross-origin isolation (SharedArrayBuffer, precise timers), and a Content-Security-Policy
// under which the page loads nothing from elsewhere and compiles only its own wasm
// ('wasm-unsafe-eval', never 'unsafe-eval'); inline styles stay allowed for the chart library
// and Vite's dev-time CSS.
import pageHeaders from './headers.json';
import { hostingConfigs } from './hosting';

const headers: Record<string, string> = pageHeaders;

export default defineConfig(({ mode }) => ({
  // Relative asset URLs: the built page works from any sub-path (a static host, GitHub Pages).
  base: './',
  server: { headers },
  preview: { headers },
  worker: {
    format: 'es',
    // TF.js's threaded wasm backend (the side-by-side benchmark's) starts its threads from the
    // source text of a function in its bundle, which stops working once a minifier renames what
    // that function refers to: the bench build leaves its workers unminified.
    rollupOptions: mode === 'bench' ? { output: { minify: false } } : {},
  },
  plugins: [
    hostingConfigs(),
    // The service worker that makes the page work offline after one visit (registered by
    // src/offline.ts; nothing in dev): it precaches the page, its scripts and styles, the wasm
    // module and the bundled weights, and nothing of the benchmark page.
    VitePWA({
      injectRegister: false,
      registerType: 'prompt',
      manifest: false,
      workbox: {
        globPatterns: ['index.html', 'assets/*.{js,css,wasm}', 'weights/*.safetensors'],
        globIgnores: ['bench.html', 'assets/bench-*'],
        // The wasm module (~30 MB) and the weights (~9 MB in f16) are the point of caching.
        maximumFileSizeToCacheInBytes: 64 * 1024 * 1024,
        // A navigation to the page with a query (`?backend=cpu`) gets the cached page offline;
        // other paths (bench.html) go to the network. Workbox tests path and query.
        navigateFallback: 'index.html',
        navigateFallbackAllowlist: [/\/(index\.html)?(\?.*)?$/],
        // One file, sw.js, for the hosts' configurations to name.
        inlineWorkboxRuntime: true,
        // On the first visit the worker takes over the open page (nothing is served
        // differently); an update still waits for the reload the page offers.
        clientsClaim: true,
      },
    }),
  ],
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
