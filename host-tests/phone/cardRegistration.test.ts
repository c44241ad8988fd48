// Registering a card answers the same whether the card is fresh, held by another account, or was
// held and removed: same status, same body but for the card's id. A card held by another account
// is kept as the registering account's unverified claim: it neither pairs nor pays, the holder keeps
// the card, and only when the holder has removed it does the card's next tap verify the claim.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { forEachBackend, randomMeterId } from '../../sim/fleet/platform';
import { type Api, apiOf, type BootedMeter, bootMeter, card, phonePlatform, tapBay2, until } from './support';

forEachBackend('card registration does not reveal who holds a card', (backend) => {
  const clock = new VirtualClock('2026-06-01T09:00:00Z');
  const meterId = randomMeterId();
  let platform: Platform;
  let drop: () => Promise<void>;
  let m: BootedMeter;
  const drivers: { api: Api; token: string }[] = [];

  before(async () => {
    const fresh = await backend.fresh();
    drop = fresh.drop;
    platform = await phonePlatform(fresh.config, clock);
    m = await bootMeter(platform, meterId, clock);
    for (const n of [1, 2, 3]) {
      const res = await apiOf(platform)('POST', '/api/driver/register', {
        name: `Card Driver ${n}`,
        phone: `+44770${String(meterId).slice(-5)}${n}0`,
        email: `card${n}.${meterId}@example.com`,
        password: 'a card password',
      });
      assert.equal(res.status, 201);
      drivers.push({ api: apiOf(platform, res.json.token as string), token: res.json.token as string });
    }
  });

  after(async () => {
    m?.meter.stop();
    await platform?.close();
    await drop?.();
  });

  /** POST /api/driver/cards as sent on the wire: the status and the body's bytes. */
  async function addRaw(driver: number, body: object): Promise<{ status: number; body: string }> {
    const response = await platform.app.inject({
      method: 'POST',
      url: '/api/driver/cards',
      payload: body,
      headers: { authorization: `Bearer ${drivers[driver].token}` },
    });
    return { status: response.statusCode, body: response.body };
  }
  const withoutIds = (body: string) => body.replace(/"id":\d+/g, '"id":0');
  const cardIdOf = (body: string) => Number(JSON.parse(body).card.id);

  // Same last four digits and type, different numbers: only the tokens differ.
  const HELD = '6280 1234 0003 0050';
  const FRESH = '6280 9999 0001 0050';
  const RELEASED = '6280 5555 0005 0050';
  let holderCard: number;
  let claimCard: number;
  let freshCard: number;

  it('answers a card held by another account, a fresh one and a released one byte for byte alike', async () => {
    const [holder, claimant, leaver] = [0, 1, 2];
    const added = await addRaw(holder, { cardNumber: HELD });
    assert.equal(added.status, 201);
    holderCard = cardIdOf(added.body);
    const released = await addRaw(leaver, { cardNumber: RELEASED });
    assert.equal(released.status, 201);
    assert.equal(
      (await drivers[leaver].api('DELETE', `/api/driver/cards/${cardIdOf(released.body)}`)).status < 300,
      true,
    );

    const claim = await addRaw(claimant, { cardNumber: HELD });
    const fresh = await addRaw(claimant, { cardNumber: FRESH });
    const again = await addRaw(claimant, { cardNumber: RELEASED });
    assert.equal(claim.status, 201);
    assert.equal(fresh.status, 201);
    assert.equal(again.status, 201);
    assert.equal(withoutIds(claim.body), withoutIds(fresh.body));
    assert.equal(withoutIds(again.body), withoutIds(fresh.body));
    assert.match(fresh.body, /"last4":"0050"/);
    claimCard = cardIdOf(claim.body);
    freshCard = cardIdOf(fresh.body);

    // Listed alike too: nothing in the card list tells the claim from the fresh card.
    const listed = await drivers[claimant].api('GET', '/api/driver/cards');
    const [a, b] = listed.json.cards.filter((c: { id: number }) => c.id === claimCard || c.id === freshCard);
    assert.deepEqual({ ...a, id: 0 }, { ...b, id: 0 });
  });

  it("refuses a card already on the driver's own account with one answer, claim or not", async () => {
    const ownHeld = await addRaw(0, { cardNumber: HELD });
    const ownClaim = await addRaw(1, { cardNumber: HELD });
    const ownFresh = await addRaw(1, { cardNumber: FRESH });
    assert.equal(ownHeld.status, 409);
    assert.equal(ownClaim.body, ownHeld.body);
    assert.equal(ownFresh.body, ownHeld.body);
    assert.equal(JSON.parse(ownHeld.body).code, 'card-unavailable');
    assert.equal((await drivers[1].api('GET', '/api/driver/cards')).json.cards.length, 3);
  });

  it("pairs a tap of the held card with the holder, never with the claimant's claim", async () => {
    tapBay2(m, clock, card(HELD.replace(/ /g, '')));
    await until(
      async () =>
        (await drivers[0].api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 1,
      "the holder's pairing",
    );
    assert.equal((await drivers[1].api('GET', '/api/driver/sessions')).json.sessions.length, 0);
  });

  it('lets the holder renew from the card as before', async () => {
    const session = (await drivers[0].api('GET', '/api/driver/sessions?state=active')).json.sessions[0];
    const sent = await drivers[0].api('POST', `/api/driver/sessions/${session.id}/extend`, { minutes: 15 });
    assert.equal(sent.status, 202);
    const row = await platform.db.query<{ card_id: number }>('SELECT card_id FROM renewals WHERE id = $1', [
      sent.json.renewal.id,
    ]);
    assert.equal(Number(row.rows[0].card_id), holderCard);
  });

  it('never pays a renewal from a claim, even when the claimant makes it the renewal card and links to it', async () => {
    clock.advance(60 * 60_000); // the holder's session has run out
    tapBay2(m, clock, card(FRESH.replace(/ /g, '')));
    await until(
      async () =>
        (await drivers[1].api('GET', '/api/driver/sessions?state=active')).json.sessions.length === 1,
      "the claimant's pairing of its own fresh card",
    );
    assert.equal(
      (await drivers[1].api('PATCH', `/api/driver/cards/${claimCard}`, { renewal: true })).status,
      200,
    );
    assert.equal(
      (await drivers[1].api('PATCH', `/api/driver/cards/${freshCard}`, { paysWith: claimCard })).status,
      200,
    );
    const session = (await drivers[1].api('GET', '/api/driver/sessions?state=active')).json.sessions[0];
    const sent = await drivers[1].api('POST', `/api/driver/sessions/${session.id}/extend`, { minutes: 15 });
    assert.equal(sent.status, 202);
    const row = await platform.db.query<{ card_id: number }>('SELECT card_id FROM renewals WHERE id = $1', [
      sent.json.renewal.id,
    ]);
    assert.equal(Number(row.rows[0].card_id), freshCard);
    assert.notEqual(Number(row.rows[0].card_id), claimCard);
  });

  it("verifies the oldest claim at the card's next tap once the holder has removed it", async () => {
    assert.ok((await drivers[0].api('DELETE', `/api/driver/cards/${holderCard}`)).status < 300);
    clock.advance(60 * 60_000);
    tapBay2(m, clock, card(HELD.replace(/ /g, '')));
    await until(async () => {
      const active = await platform.db.query<{ card_id: number }>(
        "SELECT card_id FROM phone_sessions WHERE status = 'active' AND meter_id = $1 AND bay_id = 2",
        [meterId],
      );
      return Number(active.rows[0]?.card_id) === claimCard;
    }, 'the claim verified and paired by the tap');
    const rows = await platform.db.query<{ verified: boolean }>(
      'SELECT verified_at IS NOT NULL AS verified FROM driver_cards WHERE id = $1',
      [claimCard],
    );
    assert.equal(rows.rows[0].verified, true);
    assert.equal((await drivers[1].api('GET', '/api/driver/sessions?state=active')).json.sessions.length, 1);
  });
});
