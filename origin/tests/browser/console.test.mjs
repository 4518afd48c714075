// The console in headless Chromium (Debian's, through playwright-core), against the real origin
// that origin/tests/console_browser.rs started and seeded. Run by that test:
//   CONSOLE_URL=http://127.0.0.1:PORT/console OPERATOR_TOKEN=… READER_TOKEN=… ACTIVE_RUN=…
//   SCREENSHOT_DIR=… node --test origin/tests/browser/console.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is set (run through origin/tests/console_browser.rs)`);
  return value;
};
const base = env('CONSOLE_URL');
const shots = env('SCREENSHOT_DIR');
const activeRun = env('ACTIVE_RUN');

// The machine has no network: without these Chromium waits on connections it cannot make.
// Playwright gives each launch a fresh temporary --user-data-dir of its own.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ARGS, timeout: 60_000 });
});
after(async () => { await browser?.close(); });

/** A fresh browser context (its own cookies) signed in with `token`. */
async function signedIn(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  await page.goto(base);
  assert.match(page.url(), /\/console\/sign-in$/, 'no session: sent to the sign-in form');
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(base), page.click('button[type=submit]')]);
  return { context, page };
}

/** POSTs `form` to `path` from inside the page (the browser sends the session cookie). */
async function postFromPage(page, path, form) {
  return page.evaluate(async ({ url, form }) => {
    const resp = await fetch(url, { method: 'POST', body: new URLSearchParams(form), redirect: 'manual' });
    return resp.status;
  }, { url: new URL(path, base).href, form });
}

const csrfOf = (page) => page.locator('input[name=csrf]').first().inputValue();

test('sign-in: a wrong token is refused, a right one opens the overview with an HttpOnly cookie', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
  const page = await context.newPage();
  await page.goto(`${base}/sign-in`);
  await page.fill('input[name=token]', 'wso_this-token-was-never-issued-to-anyone-0000');
  await page.click('button[type=submit]');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), /unknown, revoked or rotated/);
  assert.equal((await context.cookies()).length, 0);
  await page.screenshot({ path: join(shots, 'sign-in-refused.png') });
  await context.close();

  const { context: ctx, page: overview } = await signedIn(env('OPERATOR_TOKEN'));
  const [cookie] = await ctx.cookies();
  assert.equal(cookie.name, 'wholesail_console');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/console');
  assert.equal(await overview.locator('h1').innerText(), 'Overview');
  assert.equal(await overview.evaluate(() => document.cookie), '', 'scripts cannot read the session');
  await overview.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
  await ctx.close();
});

test('catalog runs: keyset pages move through every run once, and a run under way reloads live', async () => {
  const { context, page } = await signedIn(env('OPERATOR_TOKEN'));
  await page.click('nav >> text=Catalog runs');
  const ids = async () => page.locator('table td:first-child a').allInnerTexts();
  const seen = [];
  for (;;) {
    const onPage = await ids();
    assert.ok(onPage.length > 0 && onPage.length <= 50);
    seen.push(...onPage.map(Number));
    const older = page.locator('a[rel=next]');
    if ((await older.count()) === 0) break;
    const href = await older.getAttribute('href');
    assert.match(href, /\?before=\d+$/, 'the cursor is the last id, never an offset');
    await Promise.all([page.waitForURL(/before=/), older.click()]);
  }
  assert.equal(seen.length, 121);
  assert.equal(new Set(seen).size, 121);
  assert.deepEqual(seen, [...seen].sort((a, b) => b - a), 'newest first');

  await page.goto(`${base}/catalog`);
  assert.equal(await page.locator('meta[http-equiv=refresh]').count(), 1, 'reloads while a run is under way');
  await page.screenshot({ path: join(shots, 'catalog-runs.png'), clip: { x: 0, y: 0, width: 1280, height: 560 } });
  await page.goto(`${base}/catalog/${activeRun}`);
  assert.equal(await page.getByRole('button', { name: 'Cancel this run' }).count(), 1);
  await context.close();
});

let problemPath; // the dead letter's problem page, found by the first test that opens it

test('a dead letter is found on the problems page, replayed, and seen applied on its trace', async () => {
  const { context, page } = await signedIn(env('OPERATOR_TOKEN'));
  await page.click('nav >> text=Problems');
  const row = page.locator('table.problems tr', { hasText: 'dead letter' });
  assert.equal(await row.count(), 1, 'one dead-letter problem');
  await Promise.all([page.waitForURL(/\/console\/problems\/dead_letter:/), row.locator('a').first().click()]);
  problemPath = new URL(page.url()).pathname.replace(/^\/console/, '');
  await page.locator('table.items', { hasText: env('DEAD_WEBHOOK_ID') }).waitFor();
  await page.screenshot({ path: join(shots, 'problem.png') });
  const replay = page.locator('table.items').getByRole('button', { name: 'Replay' });
  await Promise.all([page.waitForURL(/\/console\/problems\?done=/), replay.click()]);
  assert.match(await page.getByRole('status').innerText(), /^replay done on 1 item/);

  await page.click('nav >> text=Trace');
  await page.fill('input[name=q]', `gid://shopify/Order/${env('DEAD_ORDER_ID')}`);
  await page.click('button:has-text("Trace")');
  // The worker applies the replayed event within moments: search again until it shows.
  const deadline = Date.now() + 30_000;
  while ((await page.locator('table.timeline .badge', { hasText: /^applied$/ }).count()) === 0) {
    if (Date.now() > deadline) {
      await page.screenshot({ path: join(shots, 'trace-failed.png'), fullPage: true });
      assert.fail(`the replayed dead letter shows applied on the trace; the page says:\n${await page.locator('main').innerText()}`);
    }
    await page.waitForTimeout(250);
    await page.reload();
  }
  const kinds = await page.locator('table.timeline .badge').allInnerTexts();
  assert.ok(kinds.includes('dead letter') || kinds.includes('inbox received'), kinds.join(', '));
  await page.screenshot({ path: join(shots, 'trace.png'), fullPage: true });
  await context.close();
});

test('CSRF: a write without or with a wrong token is refused with 403', async () => {
  const { context, page } = await signedIn(env('OPERATOR_TOKEN'));
  await page.goto(`${base}/catalog/${activeRun}`);
  const csrf = await csrfOf(page);
  const path = `/console/catalog/${activeRun}/cancel`;
  assert.equal(await postFromPage(page, path, {}), 403);
  assert.equal(await postFromPage(page, path, { csrf: csrf.slice(0, -2) + 'xx' }), 403);
  await page.reload();
  assert.equal(await page.getByRole('button', { name: 'Cancel this run' }).count(), 1, 'nothing was canceled');
  await context.close();
});

test('an ops:read session sees no write button and is refused (403) when it posts anyway', async () => {
  const { context, page } = await signedIn(env('READER_TOKEN'));
  assert.match(await page.locator('header').innerText(), /read only/);
  for (const path of ['', '/problems', problemPath, '/trace', '/catalog', `/catalog/${activeRun}`, '/rules', '/drafts', '/ownership', '/salesforce']) {
    await page.goto(`${base}${path}`);
    const writes = await page.locator('main form[method=post]').count();
    assert.equal(writes, 0, `no write button on ${path || '/'}`);
  }
  await page.goto(`${base}/catalog/${activeRun}`);
  await page.screenshot({ path: join(shots, 'read-only-run.png') });
  const csrf = await csrfOf(page); // the sign-out form's: a valid token of this session
  assert.equal(await postFromPage(page, `/console/catalog/${activeRun}/cancel`, { csrf }), 403);
  await context.close();
});

test('field ownership: every field names one owner', async () => {
  const { context, page } = await signedIn(env('READER_TOKEN'));
  await page.goto(`${base}/ownership`);
  const owners = await page.locator('td .badge').allInnerTexts();
  assert.ok(owners.length > 40);
  assert.ok(owners.every((o) => ['Shopify', 'origin', 'Salesforce'].includes(o)));
  await page.screenshot({ path: join(shots, 'ownership.png') });
  await context.close();
});
