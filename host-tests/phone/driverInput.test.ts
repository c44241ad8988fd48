// What a driver types, read as a person would mean it: card numbers checked by their Luhn digit and
// named by their scheme, the kind of card (debit, credit, prepaid) learnt from the card's first tap
// rather than asked, and every refused form field answered in plain words naming the field.
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/mock/clock';
import { luhnValid, readCardNumber } from '../../platform-server/phone/cardNumbers';
import { PhoneError } from '../../platform-server/phone/model';
import type { Platform } from '../../platform-server/platform';
import { withCheckDigit } from '../../sim/fleet/cards';
import { randomMeterId } from '../../sim/fleet/platform';
import { type Api, apiOf, bootMeter, card, phonePlatform, tapBay2, until } from './support';

describe('driver input', () => {
  describe('card numbers', () => {
    it('checks the Luhn digit and names the scheme from the number', () => {
      assert.equal(luhnValid('4111111111111111'), true);
      assert.equal(luhnValid('4111111111111112'), false);
      assert.equal(luhnValid(withCheckDigit('628012340003001')), true);
      assert.deepEqual(readCardNumber('4111 1111 1111 1111'), {
        digits: '4111111111111111',
        scheme: 'visa',
        schemeName: 'Visa',
      });
      assert.equal(readCardNumber('5555-5555-5555-4444').scheme, 'mastercard');
      assert.equal(readCardNumber('3782 822463 10005').scheme, 'american-express');
    });

    it('refuses a typo, a wrong length and letters in plain words on the cardNumber field', () => {
      const refusal = (raw: string) => {
        try {
          readCardNumber(raw);
        } catch (error) {
          assert.ok(error instanceof PhoneError);
          assert.equal(error.statusCode, 400);
          assert.equal(error.code, 'bad-card');
          assert.equal(error.field, 'cardNumber');
          return error.message;
        }
        assert.fail(`${raw} was accepted`);
      };
      assert.match(refusal('4111 1111 1111 1112'), /typing error/);
      assert.equal(refusal('1234 5678 901'), 'A card number has 12 to 19 digits; this one has 11.');
      assert.match(refusal('4111 1111 1111 111O'), /only digits/);
      // Amex is 15 digits: a Luhn-valid 16-digit number in its range is still a wrong number.
      assert.match(refusal(withCheckDigit('378282246310005')), /American Express card number has 15 digits/);
    });
  });

  describe('on the platform', function () {
    this.timeout(60_000);
    const clock = new VirtualClock('2026-06-01T09:00:00Z');
    let platform: Platform;
    let api: Api;
    before(async () => {
      platform = await phonePlatform({}, clock);
      const reg = await apiOf(platform)('POST', '/api/driver/register', {
        name: 'Ada Input',
        phone: '07700 900321',
        email: 'ada@example.org',
        password: 'correct horse battery',
      });
      assert.equal(reg.status, 201);
      api = apiOf(platform, reg.json.token);
    });
    after(() => platform?.close());

    it('keeps a national phone number in E.164 and logs in with either form', async () => {
      assert.equal((await api('GET', '/api/driver/me')).json.driver.phone, '+447700900321');
      for (const login of ['+44 7700 900321', '07700900321', '0044 7700 900321']) {
        const r = await apiOf(platform)('POST', '/api/driver/login', {
          login,
          password: 'correct horse battery',
        });
        assert.equal(r.status, 200, `${login}: ${JSON.stringify(r.json)}`);
      }
    });

    it('answers each refused field in plain words and names it', async () => {
      const anon = apiOf(platform);
      const cases: [string, object, string, string | RegExp][] = [
        [
          '/api/driver/register',
          { name: 'B', phone: '07700 900322', email: 'b@example', password: 'long enough pw' },
          'email',
          'Enter an e-mail address such as name@example.com.',
        ],
        [
          '/api/driver/register',
          { name: 'B', phone: 'call me', email: 'b@example.org', password: 'long enough pw' },
          'phone',
          /not a phone number we can reach/,
        ],
        [
          '/api/driver/register',
          { name: '', phone: '07700 900322', email: 'b@example.org', password: 'long enough pw' },
          'name',
          'Enter your name (up to 100 characters).',
        ],
        ['/api/driver/login', { login: 'ada@example.org' }, 'password', 'Enter your password.'],
      ];
      for (const [path, body, field, words] of cases) {
        const r = await anon('POST', path, body);
        assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
        assert.equal(r.json.field, field);
        if (typeof words === 'string') assert.equal(r.json.message, words);
        else assert.match(r.json.message, words);
        assert.doesNotMatch(r.json.message, /pattern|must NOT|must have/);
      }
      const settings = await api('PATCH', '/api/driver/me', { renewalEmail: 'nobody' });
      assert.equal(settings.status, 400);
      assert.equal(settings.json.field, 'renewalEmail');
      const phone = await api('PATCH', '/api/driver/me', { renewalPhone: '12' });
      assert.equal(phone.status, 400);
      assert.equal(phone.json.field, 'renewalPhone');
      const typo = await api('POST', '/api/driver/cards', { cardNumber: '4111 1111 1111 1112' });
      assert.equal(typo.status, 400);
      assert.equal(typo.json.field, 'cardNumber');
      assert.match(typo.json.message, /typing error/);
      // Nothing stored by any of the refusals.
      assert.equal((await api('GET', '/api/driver/cards')).json.cards.length, 0);
      const drivers = await platform.db.query<{ n: number }>('SELECT count(*)::int AS n FROM drivers');
      assert.equal(drivers.rows[0].n, 1);
    });

    it('learns the kind of card from its first tap, and will not charge or file a card before', async () => {
      const number = '6280 1234 0003 0035';
      const added = await api('POST', '/api/driver/cards', { cardNumber: number, renewal: true });
      assert.equal(added.status, 201, JSON.stringify(added.json));
      assert.equal(added.json.card.cardType, null);
      assert.equal(added.json.card.schemeName, 'Maestro');
      const me = (await api('GET', '/api/driver/me')).json.driver;
      await assert.rejects(
        platform.phone.service.saveCardOnFile(me.id, added.json.card.id, {
          customer: 'cus_driver',
          paymentMethod: 'pm_card',
        }),
        (error: unknown) => error instanceof PhoneError && error.code === 'card-type-unknown',
      );

      const meterId = randomMeterId();
      const m = await bootMeter(platform, meterId, clock);
      try {
        tapBay2(m, clock, card(number.replaceAll(' ', ''), 3));
        const tapped = async () =>
          (await api('GET', '/api/driver/cards')).json.cards.find(
            (c: { id: number }) => c.id === added.json.card.id,
          );
        await until(async () => (await tapped()).cardType === 3, 'the first tap to tell the card');
        assert.equal((await tapped()).cardTypeName, 'prepaid');
      } finally {
        m.meter.stop();
      }
    });
  });
});
