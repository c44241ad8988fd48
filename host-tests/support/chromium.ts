// Debian's Chromium for the browser tests, driven by playwright-core (never a downloaded browser):
// a missing Chromium fails under CI=true and skips otherwise; the flags keep it off the network
// this machine does not have (background services, updates, sync).
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { CI } from '../../sim/fleet/platform';

export const CHROMIUM = '/usr/bin/chromium';

export function requireChromium(context: Mocha.Context): void {
  if (existsSync(CHROMIUM)) return;
  if (CI) throw new Error(`CI=true and ${CHROMIUM} is missing (apt-get install -y chromium)`);
  console.log(`      skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`);
  context.skip();
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A phone's screen (390×844, touch), as the driver and officer tests see the apps. */
export const PHONE = Object.freeze({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
