// ParkLink driver web app: register or log in, cards, active parking with a live countdown and
// extend buttons, renewal history with receipts, the messages sent to the driver, alert settings,
// and (without an account) a sale's receipt by the code the meter showed.
// Plain DOM (no framework, no innerHTML), talks to /api/driver/* with a bearer token.

const TOKEN_KEY = 'parklink.token';
const main = document.getElementById('main');
const statusLine = document.getElementById('status');
const nav = document.getElementById('nav');
const accountLine = document.getElementById('account');

let token = localStorage.getItem(TOKEN_KEY);
/** Server clock minus browser clock, ms: countdowns follow the platform's time. */
let clockOffset = 0;
let timers = [];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(message, error = false) {
  statusLine.textContent = message;
  statusLine.classList.toggle('error', error);
}

async function api(method, path, body) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return {};
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== '/api/driver/login') {
    logout(false);
    throw new Error('Please log in again.');
  }
  if (!response.ok) {
    const error = new Error(data.message ? capital(data.message) : `Request failed (${response.status})`);
    // The request field at fault ("cardNumber"): the message goes beside that field.
    error.field = typeof data.field === 'string' ? data.field : undefined;
    throw error;
  }
  if (data.serverNow) clockOffset = Date.parse(data.serverNow) - Date.now();
  return data;
}

function capital(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function serverNow() {
  return Date.now() + clockOffset;
}

const money = (minor, currency) => {
  const code = { 826: 'GBP', 978: 'EUR', 840: 'USD' }[currency] ?? 'XXX';
  return new Intl.NumberFormat('en-GB', { style: 'currency', currency: code }).format(minor / 100);
};
const time = (iso) => new Date(iso).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
const dateTime = (iso) =>
  new Date(iso).toLocaleString('en-GB', {
    day: 'numeric',
    month: 'short',
    hour: '2-digit',
    minute: '2-digit',
  });

function countdownText(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return hh > 0 ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}

function clearTimers() {
  for (const t of timers) clearInterval(t);
  timers = [];
}

function show(title, ...content) {
  clearTimers();
  main.replaceChildren(
    h('h2', { text: title, id: 'view-title' }),
    ...content.filter((c) => c !== null && c !== undefined),
  );
  main.setAttribute('aria-labelledby', 'view-title');
}

function logout(announce = true) {
  if (token) api('POST', '/api/driver/logout').catch(() => {});
  token = null;
  localStorage.removeItem(TOKEN_KEY);
  nav.hidden = true;
  accountLine.hidden = true;
  if (announce) say('You are logged out.');
  location.hash = '#/login';
}

// ---- Login and registration ------------------------------------------------------------------

function field(label, name, attrs = {}) {
  const id = `f-${name}`;
  return [h('label', { for: id, text: label }), h('input', { id, name, ...attrs })];
}

/** Clears what an earlier submit of `form` said beside its fields. */
function clearFieldErrors(form) {
  for (const p of form.querySelectorAll('.field-error')) p.remove();
  for (const input of form.querySelectorAll('[aria-invalid]')) {
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
  }
}

/** The platform's refusal beside the field it names, or on the status line when it names none. */
function refused(form, error) {
  clearFieldErrors(form);
  const input = error.field ? form.querySelector(`[name="${CSS.escape(error.field)}"]`) : null;
  if (!input) return say(error.message, true);
  const note = h('p', { class: 'field-error', id: `e-${input.name}` }, error.message);
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', note.id);
  input.after(note);
  input.focus();
  say('Please correct the highlighted field.', true);
}

function authView(mode) {
  const tabs = h(
    'div',
    { class: 'tabs', role: 'tablist' },
    h(
      'button',
      { role: 'tab', 'aria-selected': String(mode === 'login'), onclick: () => (location.hash = '#/login') },
      'Log in',
    ),
    h(
      'button',
      {
        role: 'tab',
        'aria-selected': String(mode === 'register'),
        onclick: () => (location.hash = '#/register'),
      },
      'Register',
    ),
  );
  const form =
    mode === 'login'
      ? h(
          'form',
          { class: 'card', onsubmit: onLogin, 'aria-label': 'Log in' },
          field('Phone, e-mail or account number', 'login', { required: true, autocomplete: 'username' }),
          field('Password', 'password', {
            type: 'password',
            required: true,
            autocomplete: 'current-password',
          }),
          h('button', { class: 'wide', type: 'submit' }, 'Log in'),
        )
      : h(
          'form',
          { class: 'card', onsubmit: onRegister, 'aria-label': 'Register' },
          field('Your name', 'name', { required: true, autocomplete: 'name' }),
          field('Mobile phone (with country code)', 'phone', {
            type: 'tel',
            required: true,
            autocomplete: 'tel',
            placeholder: '+44 7700 900123',
          }),
          field('E-mail', 'email', { type: 'email', required: true, autocomplete: 'email' }),
          field('Password (at least 10 characters)', 'password', {
            type: 'password',
            required: true,
            minlength: 10,
            autocomplete: 'new-password',
          }),
          h('button', { class: 'wide', type: 'submit' }, 'Create account'),
        );
  show(
    mode === 'login' ? 'Log in' : 'Create your account',
    tabs,
    form,
    h(
      'p',
      { class: 'muted' },
      'Paid at a meter? ',
      h('a', { href: '#/receipt' }, 'Get your receipt with its code'),
    ),
  );
}

async function onLogin(event) {
  event.preventDefault();
  const f = new FormData(event.target);
  try {
    const data = await api('POST', '/api/driver/login', {
      login: f.get('login'),
      password: f.get('password'),
    });
    signedIn(data);
  } catch (error) {
    refused(event.target, error);
  }
}

async function onRegister(event) {
  event.preventDefault();
  const f = new FormData(event.target);
  try {
    const data = await api('POST', '/api/driver/register', {
      name: f.get('name'),
      phone: f.get('phone'),
      email: f.get('email'),
      password: f.get('password'),
    });
    signedIn(data);
    say(`Welcome! Your account number is ${data.driver.accountNumber}. Add the card you pay with.`);
    location.hash = '#/cards';
  } catch (error) {
    refused(event.target, error);
  }
}

function signedIn(data) {
  token = data.token;
  localStorage.setItem(TOKEN_KEY, token);
  showAccount(data.driver);
  say(`Logged in as ${data.driver.name}.`);
  if (!location.hash.startsWith('#/cards')) location.hash = '#/sessions';
}

function showAccount(driver) {
  accountLine.textContent = `${driver.name} · ${driver.accountNumber}`;
  accountLine.hidden = false;
  nav.hidden = false;
}

// ---- Parking sessions ------------------------------------------------------------------------

async function sessionsView() {
  const data = await api('GET', '/api/driver/sessions?state=all');
  const active = data.sessions.filter((s) => s.status === 'active');
  const past = data.sessions.filter((s) => s.status !== 'active').slice(0, 10);
  // What each session can be extended by, as its meter's tariff sells it.
  const offers = await Promise.all(
    active.map((s) =>
      api('GET', `/api/driver/sessions/${s.id}/extensions`).catch(() => ({ choices: [], maxMinutes: 0 })),
    ),
  );
  const list = active.length
    ? active.map((s, i) => sessionCard(s, offers[i]))
    : [
        h(
          'p',
          { class: 'card empty' },
          'No active parking. Tap a registered card at a ParkLink meter and it appears here.',
        ),
      ];
  show(
    'Your parking',
    ...list,
    parkForm(),
    past.length ? h('h2', {}, 'Earlier') : null,
    h(
      'ul',
      { class: 'plain' },
      past.map((s) =>
        h(
          'li',
          { class: 'card' },
          h('h3', {}, `Bay ${s.bayId} · ${s.meterName}`),
          h(
            'p',
            { class: 'muted' },
            `${dateTime(s.paidFrom)} – ${time(s.paidUntil)} · ${s.endReason === 'next-user' ? 'ended (next driver paid)' : s.status}`,
          ),
        ),
      ),
    ),
  );
  // Live countdowns; the list itself refreshes every 5 s (renewals applied, new pairings).
  timers.push(setInterval(tickCountdowns, 1000));
  const seen = JSON.stringify(data.sessions);
  timers.push(
    setInterval(async () => {
      if (location.hash !== '#/sessions' || document.querySelector('.extend button:disabled')) return;
      const fresh = await api('GET', '/api/driver/sessions?state=all').catch(() => undefined);
      // Re-rendered only when something changed, so keyboard focus is not lost for nothing.
      if (fresh && JSON.stringify(fresh.sessions) !== seen) route();
    }, 5000),
  );
  tickCountdowns();
}

// ---- Parking started from the phone, by the bay code on the meter -----------------------------

function parkForm() {
  const form = h(
    'form',
    { class: 'card', 'aria-label': 'Park at a bay', onsubmit: onPark },
    h('h3', {}, 'Park at a bay'),
    field('Bay code (printed on the meter)', 'code', {
      required: true,
      placeholder: '1001-2',
      autocomplete: 'off',
      inputmode: 'numeric',
      oninput: () => resetPark(form),
    }),
    field('Number plate', 'plate', { required: true, autocomplete: 'off', autocapitalize: 'characters' }),
    h('div', { class: 'choices', id: 'park-choices', role: 'radiogroup', 'aria-label': 'How long' }),
    h('button', { class: 'wide', type: 'submit', id: 'park-submit' }, 'See prices'),
  );
  return form;
}

function resetPark(form) {
  form.querySelector('#park-choices').replaceChildren();
  form.querySelector('#park-submit').textContent = 'See prices';
}

function chosenPark(form) {
  return form.querySelector('input[name="minutes"]:checked');
}

function showParkPrice(form) {
  const c = chosenPark(form);
  if (c)
    form.querySelector('#park-submit').textContent =
      `Pay ${money(Number(c.dataset.amount), Number(c.dataset.currency))} and park`;
}

/** First the prices at the bay (nothing is paid), then, with a duration chosen, paying and parking. */
async function onPark(event) {
  event.preventDefault();
  const form = event.target;
  const f = new FormData(form);
  const code = String(f.get('code'));
  const chosen = chosenPark(form);
  try {
    if (!chosen) {
      const q = await api('POST', '/api/driver/parking/quote', { code });
      clearFieldErrors(form);
      const box = form.querySelector('#park-choices');
      box.replaceChildren(
        h('p', {}, `${q.meterName}, bay ${q.bayId}: how long?`),
        ...q.choices.map((c, i) =>
          h(
            'label',
            { class: 'check' },
            h('input', {
              type: 'radio',
              name: 'minutes',
              value: c.minutes,
              'data-amount': c.amount,
              'data-currency': c.currency,
              checked: i === 0,
              onchange: () => showParkPrice(form),
            }),
            `${c.minutes} min · ${money(c.amount, c.currency)}`,
          ),
        ),
      );
      showParkPrice(form);
      say('Choose how long, then pay: the price shown is the price charged.');
      return;
    }
    const { renewal } = await api('POST', '/api/driver/parking', {
      code,
      plate: String(f.get('plate')),
      minutes: Number(chosen.value),
      amount: Number(chosen.dataset.amount),
    });
    say(
      `Parking at bay ${renewal.bayId} for ${renewal.minutes} min, ${money(renewal.charge, renewal.currency)}: waiting for the meter…`,
    );
    route();
    await waitApplied(renewal.id);
    if (location.hash === '#/sessions') route();
  } catch (error) {
    refused(form, error);
  }
}

function sessionCard(s, offer) {
  const countdown = h('p', {
    class: 'countdown',
    'data-until': s.paidUntil,
    'data-grace': s.graceUntil,
    role: 'timer',
    'aria-label': `Time left at bay ${s.bayId}`,
  });
  const buttons = offer.choices.map((c) =>
    h(
      'button',
      {
        type: 'button',
        'data-minutes': c.minutes,
        'aria-label': `+${c.minutes} min for ${money(c.amount, c.currency)}`,
        disabled: Boolean(s.pendingRenewal),
        onclick: () => extend(s, c.minutes),
      },
      `+${c.minutes} min`,
      h('small', {}, money(c.amount, c.currency)),
    ),
  );
  if (buttons.length === 0)
    buttons.push(h('p', { class: 'muted' }, 'No more time can be added here: the maximum stay is reached.'));
  return h(
    'section',
    { class: 'card session', 'aria-label': `Bay ${s.bayId}`, 'data-session': s.id },
    h('h3', {}, `Bay ${s.bayId} · ${s.meterName} `, h('span', { class: 'badge ok' }, 'paid')),
    countdown,
    h(
      'p',
      { class: 'muted' },
      `Paid until ${time(s.paidUntil)} · card ending ${s.cardLast4} · ${s.paidMinutes} min so far${s.plate ? ` · ${s.plate}` : ''}`,
    ),
    s.pendingRenewal ? h('p', { class: 'badge warn' }, 'Renewal on its way to the meter…') : null,
    h('div', { class: 'row extend', role: 'group', 'aria-label': 'Extend parking' }, buttons),
  );
}

function tickCountdowns() {
  for (const el of document.querySelectorAll('.countdown')) {
    const left = Date.parse(el.dataset.until) - serverNow();
    const grace = Date.parse(el.dataset.grace) - serverNow();
    if (left > 0) {
      el.textContent = countdownText(left);
      el.classList.toggle('low', left < 10 * 60_000);
      el.classList.remove('over');
    } else {
      el.textContent = grace > 0 ? `Expired · grace ${countdownText(grace)}` : 'Expired';
      el.classList.add('over');
    }
  }
}

async function extend(session, minutes) {
  const buttons = document.querySelectorAll(`[data-session="${session.id}"] .extend button`);
  for (const b of buttons) b.disabled = true;
  try {
    const { renewal } = await api('POST', `/api/driver/sessions/${session.id}/extend`, { minutes });
    say(
      `Extending bay ${renewal.bayId} by ${renewal.minutes} min for ${money(renewal.charge, renewal.currency)}: waiting for the meter…`,
    );
    await waitApplied(renewal.id);
  } catch (error) {
    say(error.message, true);
  }
  if (location.hash === '#/sessions') route();
}

async function waitApplied(id) {
  for (let i = 0; i < 60; i++) {
    const { renewal } = await api('GET', `/api/driver/renewals/${id}`);
    if (renewal.status === 'applied') {
      say(`Confirmed: bay ${renewal.bayId} is paid until ${time(renewal.paidUntil)}.`);
      return;
    }
    if (renewal.status !== 'sent') {
      say(
        `The renewal was ${renewal.status}${renewal.reason ? ` (${renewal.reason})` : ''}; you have not been charged.`,
        true,
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  say('The meter has not answered yet: we will confirm by message, or refund you.');
}

// ---- Cards -----------------------------------------------------------------------------------

/** "Visa debit ending 0019"; the kind is known once the card has been tapped at a meter. */
function cardName(c) {
  const kind = c.cardTypeName ?? '';
  const scheme = c.schemeName ?? (kind ? '' : 'Card');
  return `${[scheme, kind].filter(Boolean).join(' ')} ending ${c.last4}`.replace(/^./, (x) =>
    x.toUpperCase(),
  );
}

async function cardsView() {
  const { cards } = await api('GET', '/api/driver/cards');
  const items = cards.map((c) => {
    const others = cards.filter((o) => o.id !== c.id);
    const link = h(
      'select',
      {
        id: `pays-${c.id}`,
        onchange: (e) => updateCard(c.id, { paysWith: e.target.value ? Number(e.target.value) : null }),
      },
      h('option', { value: '' }, 'this card'),
      others.map((o) => h('option', { value: o.id, selected: c.paysWith === o.id }, cardName(o))),
    );
    return h(
      'li',
      { class: 'card' },
      h('h3', {}, `${cardName(c)} `, c.renewal ? h('span', { class: 'badge ok' }, 'renewal card') : null),
      c.label ? h('p', { class: 'muted' }, c.label) : null,
      c.cardType === null
        ? h(
            'p',
            { class: 'muted card-kind' },
            'Tap it once at any ParkLink meter: the meter reads whether it is debit, credit or prepaid.',
          )
        : null,
      h('label', { for: `pays-${c.id}` }, 'Renewals of parking paid with this card are charged to'),
      link,
      h(
        'div',
        { class: 'row wide' },
        c.renewal
          ? null
          : h(
              'button',
              { type: 'button', class: 'secondary', onclick: () => updateCard(c.id, { renewal: true }) },
              'Use for renewals',
            ),
        h('button', { type: 'button', class: 'danger', onclick: () => removeCard(c) }, 'Remove'),
      ),
    );
  });
  show(
    'Your cards',
    h(
      'p',
      { class: 'muted' },
      'We keep a token of each card, never its number. Pay at any meter with a card listed here and your parking appears in this app.',
    ),
    h('ul', { class: 'plain' }, items.length ? items : h('li', { class: 'card empty' }, 'No cards yet.')),
    h(
      'form',
      { class: 'card', onsubmit: addCard, 'aria-label': 'Add a card' },
      h('h3', {}, 'Add a card'),
      field('Card number', 'cardNumber', {
        inputmode: 'numeric',
        autocomplete: 'cc-number',
        required: true,
      }),
      field('Name for this card (optional)', 'label', { maxlength: 40 }),
      h(
        'label',
        { class: 'check' },
        h('input', { type: 'checkbox', name: 'renewal' }),
        'Use this card for renewals',
      ),
      h('button', { class: 'wide', type: 'submit' }, 'Add card'),
    ),
  );
}

async function addCard(event) {
  event.preventDefault();
  const f = new FormData(event.target);
  try {
    const { card } = await api('POST', '/api/driver/cards', {
      cardNumber: String(f.get('cardNumber')),
      label: String(f.get('label') ?? ''),
      renewal: f.get('renewal') === 'on',
    });
    say(`${cardName(card)} added.`);
    route();
  } catch (error) {
    refused(event.target, error);
  }
}

async function updateCard(id, change) {
  try {
    await api('PATCH', `/api/driver/cards/${id}`, change);
    say('Card updated.');
    route();
  } catch (error) {
    say(error.message, true);
  }
}

async function removeCard(card) {
  if (!confirm(`Remove the card ending ${card.last4}?`)) return;
  try {
    await api('DELETE', `/api/driver/cards/${card.id}`);
    say(`Card ending ${card.last4} removed.`);
    route();
  } catch (error) {
    say(error.message, true);
  }
}

// ---- History and receipts --------------------------------------------------------------------

const STATUS = {
  sent: ['on its way', 'warn'],
  applied: ['confirmed', 'ok'],
  refused: ['refused, refunded', 'bad'],
  voided: ['cancelled, refunded', 'bad'],
};

async function historyView() {
  const { renewals } = await api('GET', '/api/driver/renewals');
  show(
    'Renewals and receipts',
    h(
      'ul',
      { class: 'plain' },
      renewals.length
        ? renewals.map((r) =>
            h(
              'li',
              { class: 'card' },
              h(
                'details',
                {},
                h(
                  'summary',
                  {},
                  `Bay ${r.bayId} +${r.minutes} min · ${money(r.charge, r.currency)} `,
                  h('span', { class: `badge ${STATUS[r.status][1]}` }, STATUS[r.status][0]),
                ),
                h(
                  'dl',
                  { class: 'receipt', 'aria-label': 'Receipt' },
                  h('dt', {}, 'Receipt'),
                  h('dd', {}, r.id),
                  h('dt', {}, 'Meter'),
                  h('dd', {}, String(r.meterId)),
                  h('dt', {}, 'Requested'),
                  h('dd', {}, dateTime(r.requestedAt)),
                  h('dt', {}, 'Paid until'),
                  h('dd', {}, r.paidUntil ? time(r.paidUntil) : '—'),
                  h('dt', {}, 'Card'),
                  h(
                    'dd',
                    {},
                    `ending ${r.cardLast4} (${r.funding === 'realtime' ? 'debit, real time' : 'account'})`,
                  ),
                  h('dt', {}, 'Authorisation'),
                  h('dd', {}, r.authorisation),
                  h('dt', {}, 'By'),
                  h('dd', {}, r.channel),
                ),
              ),
            ),
          )
        : h('li', { class: 'card empty' }, 'No renewals yet.'),
    ),
  );
}

async function messagesView() {
  const { messages } = await api('GET', '/api/driver/messages');
  show(
    'Messages',
    h('p', { class: 'muted' }, 'Alerts, receipts and confirmations we sent you, by text, call or this app.'),
    h(
      'ul',
      { class: 'plain' },
      messages.length
        ? messages.map((m) =>
            h(
              'li',
              { class: 'card message' },
              h(
                'p',
                { class: 'muted' },
                `${m.channel.toUpperCase()} · ${m.kind} · ${dateTime(m.createdAt)} · ${m.status}`,
              ),
              h('p', { class: 'body' }, m.body),
            ),
          )
        : h('li', { class: 'card empty' }, 'No messages yet.'),
    ),
  );
}

// ---- Settings --------------------------------------------------------------------------------

async function settingsView() {
  const { driver } = await api('GET', '/api/driver/me');
  showAccount(driver);
  const select = (label, name, options, value) => [
    h('label', { for: `f-${name}` }, label),
    h(
      'select',
      { id: `f-${name}`, name },
      options.map(([v, t]) => h('option', { value: v, selected: v === String(value) }, t)),
    ),
  ];
  show(
    'Alerts and renewals',
    h(
      'form',
      { class: 'card', onsubmit: saveSettings, 'aria-label': 'Settings' },
      h(
        'p',
        { class: 'muted' },
        `Account number ${driver.accountNumber} · ${driver.phone} · ${driver.email}`,
      ),
      select(
        'Alert me by',
        'alertChannel',
        [
          ['sms', 'Text message (SMS)'],
          ['voice', 'Voice call'],
          ['app', 'App notification'],
        ],
        driver.alertChannel,
      ),
      field('Minutes before expiry to alert me', 'leadMinutes', {
        type: 'number',
        min: 1,
        max: 240,
        value: driver.leadMinutes,
        required: true,
      }),
      select(
        'When my time is nearly up',
        'renewOption',
        [
          ['auto', 'Extend automatically (option 1)'],
          ['phone', 'Alert me and let me renew by phone, with a grace-period alert (option 2)'],
          ['app', 'Alert me; I renew in the app (option 3)'],
        ],
        driver.renewOption,
      ),
      field('Minutes added by an automatic extension', 'autoMinutes', {
        type: 'number',
        min: 1,
        max: 1440,
        value: driver.autoMinutes,
      }),
      field('Renewal phone (optional)', 'renewalPhone', { type: 'tel', value: driver.renewalPhone ?? '' }),
      field('Renewal e-mail (optional)', 'renewalEmail', { type: 'email', value: driver.renewalEmail ?? '' }),
      h('button', { class: 'wide', type: 'submit' }, 'Save'),
    ),
    h('button', { type: 'button', class: 'secondary wide', onclick: () => logout() }, 'Log out'),
  );
}

async function saveSettings(event) {
  event.preventDefault();
  const f = new FormData(event.target);
  try {
    await api('PATCH', '/api/driver/me', {
      alertChannel: f.get('alertChannel'),
      leadMinutes: Number(f.get('leadMinutes')),
      renewOption: f.get('renewOption'),
      autoMinutes: Number(f.get('autoMinutes')),
      renewalPhone: String(f.get('renewalPhone') ?? ''),
      renewalEmail: String(f.get('renewalEmail') ?? ''),
    });
    clearFieldErrors(event.target);
    say('Settings saved.');
  } catch (error) {
    refused(event.target, error);
  }
}

// ---- Receipt by the code the meter showed (no account needed) ---------------------------------

function receiptView(code) {
  const form = h(
    'form',
    { class: 'card', 'aria-label': 'Receipt code', onsubmit: onReceiptCode },
    field('Receipt code from the meter', 'code', {
      required: true,
      autocomplete: 'off',
      autocapitalize: 'characters',
      placeholder: '1001-42-7KQ4-M2XD',
      value: code || undefined,
    }),
    h('button', { class: 'wide', type: 'submit' }, 'Show receipt'),
  );
  show(
    'Your receipt',
    h(
      'p',
      { class: 'muted' },
      'After paying, press OK at the meter: it shows a code and a check. Type both here.',
    ),
    form,
    h('div', { id: 'receipt' }),
  );
  if (code) loadReceipt(form, code);
}

async function onReceiptCode(event) {
  event.preventDefault();
  const code = String(new FormData(event.target).get('code')).trim();
  history.replaceState(null, '', `#/receipt/${encodeURIComponent(code)}`);
  await loadReceipt(event.target, code);
}

async function loadReceipt(form, code) {
  const place = document.getElementById('receipt');
  clearFieldErrors(form);
  try {
    const r = await api('GET', `/api/receipts/${encodeURIComponent(code)}`);
    const path = `/api/receipts/${encodeURIComponent(r.code)}`;
    const mail = h(
      'form',
      { class: 'inline', 'aria-label': 'E-mail the receipt', onsubmit: (e) => onReceiptEmail(e, path) },
      field('E-mail it to', 'to', { type: 'email', required: true, autocomplete: 'email' }),
      h('button', { type: 'submit' }, 'Send'),
    );
    place.replaceChildren(
      h(
        'section',
        { class: 'card', 'aria-label': 'Receipt' },
        h('h3', {}, `Receipt ${r.code}`),
        h(
          'dl',
          { class: 'receipt' },
          h('dt', {}, 'Meter'),
          h('dd', {}, `${r.meter.id} ${r.meter.name}${r.meter.address ? `, ${r.meter.address}` : ''}`),
          h('dt', {}, 'Bay'),
          h('dd', {}, String(r.bayId)),
          h('dt', {}, 'Paid'),
          h('dd', {}, `${money(r.charge, r.currency)} for ${r.minutes} min`),
          h('dt', {}, 'Valid'),
          h('dd', {}, `${dateTime(r.paidFrom)} – ${time(r.paidUntil)}`),
          h('dt', {}, 'Card'),
          h('dd', {}, `${r.cardType}, ending ${r.cardLast4}`),
          h('dt', {}, 'Record'),
          h('dd', {}, `${r.proof.seq} of the meter's hash chain`),
          h('dt', {}, 'Chain proof'),
          h(
            'dd',
            { class: r.proof.verified ? 'ok' : 'bad' },
            r.proof.verified ? `link ${r.proof.link.slice(0, 16)}… checked` : 'the link does not match',
          ),
        ),
        h('a', { class: 'button', href: `${path}/pdf`, download: '' }, 'Download PDF'),
        mail,
      ),
    );
    say('Receipt found.');
  } catch (error) {
    place.replaceChildren();
    refused(form, error);
  }
}

async function onReceiptEmail(event, path) {
  event.preventDefault();
  const to = String(new FormData(event.target).get('to')).trim();
  clearFieldErrors(event.target);
  try {
    await api('POST', `${path}/email`, { to });
    say(`Receipt sent to ${to}.`);
  } catch (error) {
    refused(event.target, error);
  }
}

// ---- Routing ---------------------------------------------------------------------------------

const VIEWS = {
  sessions: sessionsView,
  cards: cardsView,
  history: historyView,
  messages: messagesView,
  settings: settingsView,
};

async function route() {
  const name = location.hash.replace(/^#\//, '') || (token ? 'sessions' : 'login');
  // A receipt needs no account: the code from the meter opens it.
  if (name === 'receipt' || name.startsWith('receipt/')) {
    nav.hidden = !token;
    receiptView(decodeURIComponent(name.slice('receipt/'.length)));
    return;
  }
  if (!token || name === 'login' || name === 'register') {
    if (token && (name === 'login' || name === 'register')) {
      location.hash = '#/sessions';
      return;
    }
    authView(name === 'register' ? 'register' : 'login');
    return;
  }
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  nav.hidden = false;
  try {
    await (VIEWS[name] ?? sessionsView)();
  } catch (error) {
    say(error.message, true);
  }
}

window.addEventListener('hashchange', () => {
  route();
  main.focus();
});
if (token)
  api('GET', '/api/driver/me').then(
    (d) => showAccount(d.driver),
    () => {},
  );
route();
