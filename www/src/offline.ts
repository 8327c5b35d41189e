/// <reference types="vite-plugin-pwa/client" />
// Offline use: registers the service worker that the build writes (vite-plugin-pwa + Workbox,
// see vite.config.ts). It keeps the page, its scripts, the wasm module and the bundled weights,
// so after one visit the page loads and trains without a network. The cached responses keep
// the headers they were served with, cross-origin isolation and the CSP included.
//
// A new deployment's worker waits while the page runs on the old one, so nothing reloads by
// itself in the middle of a training run; the page says a new version is ready and offers the
// reload that switches to it (every open tab of the page reloads). In dev (`vite`) this module
// registers nothing.

import { registerSW } from 'virtual:pwa-register';
import { h } from './views/dom';

const update = registerSW({
  onNeedRefresh() {
    const reload = h('button', { type: 'button', 'data-testid': 'update-reload' }, 'Reload to use it');
    reload.addEventListener('click', () => void update(true));
    document
      .querySelector('header')
      ?.append(h('p', { class: 'note', 'data-testid': 'update-ready' }, 'A new version of webtune is ready. ', reload));
  },
  onRegisterError(error: unknown) {
    console.warn('webtune: the service worker could not be registered; the page needs the network on each visit', error);
  },
});
