// The officer app: sign in, the beat with each bay's validity (kept in IndexedDB for offline use),
// lookup, issuing notices (queued in IndexedDB, each with the id this device generates) and sync
// (POSTs the queue; the platform stores each id once, so sending again after a lost answer is safe).
import { openDB } from '/enforcement/idb.js';

const db = await openDB('parklink-enforcement', 1, {
  upgrade(d) {
    d.createObjectStore('kv');
    d.createObjectStore('beat', { keyPath: 'key' });
    d.createObjectStore('queue', { keyPath: 'id' });
    d.createObjectStore('issued', { keyPath: 'id' });
  },
});
const $ = (id) => document.getElementById(id);
const show = (id) => {
  for (const s of ['signin', 'beatView', 'issueView']) $(s).hidden = s !== id;
};
let token = await db.get('kv', 'token');
let current = null;

const net = () => {
  $('net').textContent = navigator.onLine ? 'online' : 'offline';
};
addEventListener('online', () => {
  net();
});
addEventListener('offline', net);
net();

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => ({}));
  return { status: res.status, json };
}

async function renderBeat() {
  const filter = $('lookup').value.trim();
  const bays = (await db.getAll('beat')).filter(
    (b) =>
      !filter ||
      `${b.meterId}/${b.bayId}`.includes(filter) ||
      b.meterName.toLowerCase().includes(filter.toLowerCase()),
  );
  const ul = $('bays');
  ul.textContent = '';
  for (const b of bays) {
    const li = document.createElement('li');
    li.className = b.validity;
    li.dataset.bay = `${b.meterId}/${b.bayId}`;
    const label = document.createElement('span');
    label.textContent = `${b.meterName} · bay ${b.bayId}: ${b.validity}${b.paidUntil ? ` (until ${new Date(b.paidUntil).toLocaleTimeString()})` : ''}`;
    li.append(label);
    if (b.validity === 'overtime' || b.validity === 'unpaid') {
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.textContent = 'Issue';
      btn.addEventListener('click', () => {
        current = b;
        $('issueBay').textContent = `${b.meterName} · bay ${b.bayId} · ${b.validity}`;
        show('issueView');
      });
      li.append(btn);
    }
    ul.append(li);
  }
  await renderQueue();
}

async function renderQueue() {
  const queued = await db.count('queue');
  $('queue').textContent = `queued ${queued}`;
  const ul = $('issued');
  ul.textContent = '';
  for (const n of await db.getAll('issued')) {
    const li = document.createElement('li');
    li.textContent = `${n.code} · meter ${n.meterId} bay ${n.bayId}`;
    ul.append(li);
  }
}

async function loadBeat(value) {
  const q = /^[0-9,]+$/.test(value) ? `meters=${value}` : `area=${encodeURIComponent(value)}`;
  try {
    const { status, json } = await api('GET', `/api/enforcement/beat?${q}`);
    if (status === 401) return show('signin');
    if (status !== 200) {
      $('beatInfo').textContent = json.message ?? `error ${status}`;
      return;
    }
    const tx = db.transaction('beat', 'readwrite');
    await tx.store.clear();
    for (const b of json.bays) await tx.store.put({ ...b, key: `${b.meterId}/${b.bayId}` });
    await tx.done;
    await db.put('kv', value, 'beat');
    $('beatInfo').textContent = `${json.bays.length} bays, loaded ${new Date().toLocaleTimeString()}`;
  } catch {
    $('beatInfo').textContent = 'offline: the beat as last loaded';
  }
  await renderBeat();
}

/** Sends every queued notice; stops at the first network failure (the rest stay queued). */
async function sync() {
  let sent = 0;
  for (const n of await db.getAll('queue')) {
    let res;
    try {
      res = await api('POST', '/api/enforcement/notices', n);
    } catch {
      break;
    }
    if (res.status === 200 || res.status === 201) {
      await db.put('issued', res.json);
      await db.delete('queue', n.id);
      sent++;
    } else if (res.status === 401) {
      show('signin');
      break;
    } else {
      // a refusal (409, 400, 404) is kept aside with its reason, never resent blindly
      await db.put('issued', { ...n, code: `refused: ${res.json.message}` });
      await db.delete('queue', n.id);
    }
  }
  await renderQueue();
  return sent;
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const res = await fetch('/api/operators/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: f.get('username'), password: f.get('password') }),
    });
    const json = await res.json();
    if (!res.ok) {
      $('loginError').textContent = json.message;
      return;
    }
    token = json.token;
    await db.put('kv', token, 'token');
    show('beatView');
    await renderBeat();
  } catch {
    $('loginError').textContent = 'offline: sign in needs the network';
  }
});
$('beatForm').addEventListener('submit', (ev) => {
  ev.preventDefault();
  loadBeat(new FormData(ev.target).get('beat').trim());
});
$('lookup').addEventListener('input', renderBeat);
$('cancelIssue').addEventListener('click', () => show('beatView'));
$('issueForm').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const notice = {
    id: crypto.randomUUID(),
    meterId: current.meterId,
    bayId: current.bayId,
    observedAt: new Date().toISOString(),
  };
  if (f.get('plate')) notice.plate = f.get('plate').toUpperCase();
  if (f.get('note')) notice.note = f.get('note');
  await db.put('queue', notice);
  ev.target.reset();
  show('beatView');
  if (navigator.onLine) await sync();
  await renderBeat();
});
$('sync').addEventListener('click', sync);

if ('serviceWorker' in navigator)
  navigator.serviceWorker.register('/enforcement/sw.js', { scope: '/enforcement/' });
if (token) {
  show('beatView');
  await renderBeat();
} else show('signin');

// A plate needs the platform (phone sessions carry the plate; the beat kept offline does not).
$('plateForm').addEventListener('submit', async (event) => {
  event.preventDefault();
  const plate = new FormData(event.target).get('plate').trim();
  const out = $('plateResult');
  out.textContent = '';
  const item = (text, validity) => {
    const li = document.createElement('li');
    if (validity) li.className = validity;
    li.textContent = text;
    out.append(li);
  };
  if (!navigator.onLine) return item('Offline: a plate is looked up on the platform. Try again when online.');
  const { status, json } = await api('GET', `/api/enforcement/plates/${encodeURIComponent(plate)}`);
  if (status !== 200) return item(json.message ?? `Lookup failed (${status})`);
  if (json.bays.length === 0) item(`${json.plate}: no parking paid from the phone`);
  for (const b of json.bays)
    item(
      `${json.plate} · ${b.meterName || `meter ${b.meterId}`} · bay ${b.bayId}: ${b.validity} (paid until ${new Date(b.sessionPaidUntil).toLocaleTimeString()})`,
      b.validity,
    );
  if (json.notices.length > 0) item(`${json.notices.length} notice(s) issued to ${json.plate}`);
});
