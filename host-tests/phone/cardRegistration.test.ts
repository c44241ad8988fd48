// Registering a card already held by another account does not tell the driver so: the answer is
// the one a driver gets for a card already on their own account, word for word, and names no
// account. The card stays where it was.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import type { Platform } from '../../platform-server/platform';
import { apiOf, phonePlatform } from './support';

describe('card registration does not reveal who holds a card', () => {
  let platform: Platform;
  before(async () => {
    platform = await phonePlatform({}, new VirtualClock('2026-06-01T09:00:00Z'));
  });
  after(() => platform?.close());

  const driver = async (n: number) => {
    const res = await apiOf(platform)('POST', '/api/driver/register', {
      name: `Card Driver ${n}`,
      phone: `+4477009003${n}0`,
      email: `card${n}@example.com`,
      password: 'a card password',
    });
    assert.equal(res.status, 201);
    return apiOf(platform, res.json.token as string);
  };

  it("answers a card held by another account as it answers one already on the driver's own", async () => {
    const holder = await driver(1);
    const other = await driver(2);
    const held = { cardNumber: '6280 1234 0000 0050', cardType: 2 };
    assert.equal((await holder('POST', '/api/driver/cards', held)).status, 201);

    const own = await holder('POST', '/api/driver/cards', held);
    const another = await other('POST', '/api/driver/cards', { ...held, cardNumber: '6280-1234-0000-0050' });
    assert.equal(another.status, 409);
    assert.deepEqual(another, own);
    assert.doesNotMatch(JSON.stringify(another.json), /another|registered|account/i);

    // The card is still the holder's only, and not on the other account.
    const holderCards = await holder('GET', '/api/driver/cards');
    assert.equal(holderCards.json.cards.length, 1);
    assert.equal((await other('GET', '/api/driver/cards')).json.cards.length, 0);
    // A fresh card is still added with 201.
    const fresh = await other('POST', '/api/driver/cards', {
      cardNumber: '6280 1234 0000 0068',
      cardType: 2,
    });
    assert.equal(fresh.status, 201);
  });
});
