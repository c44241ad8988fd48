// The officer app's service worker: the app shell from its cache (so the app opens offline), the
// API always from the network (the app queues notices in IndexedDB when it is unreachable).
const CACHE = 'parklink-enforcement-v2';
const SHELL = [
  '/enforcement/',
  '/enforcement/app.js',
  '/enforcement/idb.js',
  '/enforcement/collect.js',
  '/enforcement/manifest.webmanifest',
  '/enforcement/icon.svg',
];
self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});
self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || !SHELL.includes(url.pathname)) return;
  event.respondWith(caches.match(event.request).then((hit) => hit || fetch(event.request)));
});
