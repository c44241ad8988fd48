// The officer app: sign in, the beat with each bay's validity (kept in IndexedDB for offline use),
// lookup, issuing notices (queued in IndexedDB, each with the id this device generates) and sync
// (POSTs the queue; the platform stores each id once, so sending again after a lost answer is safe),
// and collection at meters without coverage: a visit prepared online (a maintenance token, the
// downlinks the platform keeps for the meter), the meter's sets and uplinks collected over Web
// Bluetooth (collect.js), kept in IndexedDB and handed in when online; the platform stores each
// record once, and the acks it returns are carried to the meter on the next visit.
import { openDB } from '/enforcement/idb.js';

const db = await openDB('parklink-enforcement', 2, {
  upgrade(d, oldVersion) {
    if (oldVersion < 1) {
      d.createObjectStore('kv');
      d.createObjectStore('beat', { keyPath: 'key' });
      d.createObjectStore('queue', { keyPath: 'id' });
      d.createObjectStore('issued', { keyPath: 'id' });
    }
    // Collection: a token per meter for the next visit, the downlinks to carry in, what was collected.
    d.createObjectStore('tokens', { keyPath: 'meterId' });
    d.createObjectStore('carry', { keyPath: 'meterId' });
    d.createObjectStore('collected', { keyPath: 'id', autoIncrement: true });
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
    await db.put('kv', String(f.get('username')), 'username');
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

// ---- Collection where a meter has no coverage ----------------------------------------------------

const say = (text) => {
  $('collectInfo').textContent = text;
};
const meterOfForm = () => Number(new FormData($('prepareForm')).get('meter'));
const b64ToHex = (b64) =>
  Array.from(atob(b64), (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');

async function renderHeld() {
  const held = await db.getAll('collected');
  const sets = held.filter((c) => c.kind === 'set').length;
  $('held').textContent = `held ${sets} sets, ${held.length - sets} other frames`;
}

/** Online, before going: a maintenance token for one visit, and what the platform keeps for the meter. */
async function prepare(meterId) {
  // A token lasts an hour at most (the platform's limit): prepare shortly before going.
  const staff = (await db.get('kv', 'username')) ?? 'officer';
  const issued = await api('POST', `/api/meters/${meterId}/maintenance-tokens`, { staff, seconds: 3600 });
  if (issued.status === 403) return say('Collection needs an operator sign-in.');
  if (issued.status !== 201) return say(issued.json.message ?? `token refused (${issued.status})`);
  const waiting = await api('GET', `/api/handheld/meters/${meterId}/downlinks`);
  if (waiting.status !== 200) return say(waiting.json.message ?? `downlinks refused (${waiting.status})`);
  await db.put('tokens', { meterId, token: issued.json.token, secret: issued.json.secret });
  const carry = (await db.get('carry', meterId)) ?? { meterId, frames: [] };
  for (const d of waiting.json.downlinks) {
    const frame = b64ToHex(d.frame);
    if (!carry.frames.some((f) => f.frame === frame)) carry.frames.push({ seq: d.seq, frame });
  }
  carry.frames.sort((a, b) => a.seq - b.seq);
  await db.put('carry', carry);
  say(`Visit to meter ${meterId} prepared: ${carry.frames.length} downlinks to carry.`);
}

/** At the meter (no network needed): the visit over Bluetooth, its results kept in IndexedDB. */
async function collect(meterId) {
  const h = await import('/enforcement/collect.js');
  const prepared = await db.get('tokens', meterId);
  if (!prepared) return say(`Prepare a visit to meter ${meterId} first (online).`);
  const carry = (await db.get('carry', meterId)) ?? { meterId, frames: [] };
  const held = (await db.getAll('collected')).filter((c) => c.meterId === meterId && c.kind === 'set');
  const heldUpTo = held.reduce((max, c) => Math.max(max, c.last), 0);
  let link;
  try {
    say('Choose the meter in the Bluetooth list…');
    link = await h.MeterLink.connect();
    const result = await h.visit(link, {
      meterId,
      token: h.fromHex(prepared.token),
      secret: h.fromHex(prepared.secret),
      downlinks: carry.frames.map((f) => h.fromHex(f.frame)),
      heldUpTo,
    });
    // The token is spent and the downlinks are delivered, whatever the meter said of each.
    await db.delete('tokens', meterId);
    await db.put('carry', { meterId, frames: [] });
    const tx = db.transaction('collected', 'readwrite');
    // Sets the meter has since acknowledged need not travel.
    for (const c of held) if (c.last <= result.acked) await tx.store.delete(c.id);
    for (const c of result.collected) await tx.store.add(c);
    await tx.done;
    const sets = result.collected.filter((c) => c.kind === 'set').length;
    say(
      `Meter ${meterId}: ${sets} sets and ${result.collected.length - sets} other frames collected, ` +
        `${result.delivered.filter((d) => d.ok).length} of ${result.delivered.length} downlinks taken.`,
    );
  } catch (error) {
    say(`Collection stopped: ${error.message}`);
  } finally {
    link?.disconnect();
  }
  await renderHeld();
}

/** Online: every frame held to the platform, 256 at a time; the acks kept for the next visit. */
async function handIn() {
  const held = await db.getAll('collected');
  let stored = 0;
  let duplicates = 0;
  let refused = 0;
  for (let at = 0; at < held.length; at += 256) {
    const batch = held.slice(at, at + 256);
    let res;
    try {
      res = await api('POST', '/api/handheld/uplinks', { frames: batch.map((c) => c.frame) });
    } catch {
      say('Offline: the frames stay held.');
      break;
    }
    if (res.status !== 200) {
      say(res.json.message ?? `hand-in refused (${res.status})`);
      break;
    }
    for (const [i, r] of res.json.results.entries()) {
      const c = batch[i];
      if (r.ok) {
        stored += r.stored ?? 0;
        duplicates += r.duplicates ?? 0;
        if (r.downlink) {
          const carry = (await db.get('carry', c.meterId)) ?? { meterId: c.meterId, frames: [] };
          const seq = Number.parseInt(r.downlink.slice(20, 28), 16);
          carry.frames.push({ seq, frame: r.downlink });
          await db.put('carry', carry);
        }
      } else refused++;
      // A refused frame (a replay) is dropped: the meter still holds its records and seals them again.
      await db.delete('collected', c.id);
    }
    say(`Handed in: ${stored} records stored, ${duplicates} duplicates, ${refused} refused.`);
  }
  await renderHeld();
}

$('prepareForm').addEventListener('submit', (ev) => {
  ev.preventDefault();
  prepare(meterOfForm()).catch(() => say('Offline: a visit is prepared online.'));
});
$('connect').addEventListener('click', () => collect(meterOfForm()));
$('handIn').addEventListener('click', handIn);
await renderHeld();
