// The console's browser scenarios: Debian's chromium, driven by
// playwright-core, against a running console (started, with its hub and an
// OpenID provider, by node-agent/tests/browser.rs).
//
// Environment:
//   KITH_CONSOLE_URL   the console, e.g. http://127.0.0.1:PORT
//   KITH_NHS           an NHS number with records (one holds `<script>`)
//   KITH_SPARE_NHS     more NHS numbers with records, comma-separated
//   KITH_ACCOUNTS      JSON: {"case_worker": {"user", "password"}, "auditor": {...}}
//   KITH_CHROMIUM      the browser (default /usr/bin/chromium)
//   KITH_SCREENSHOTS   a folder to write PNGs of the main pages to (off when unset)
//
// Idle expiry: the script prints `KITH-AGE-SESSIONS` and waits for a line
// on standard input; the test then moves every session's last use back
// past the idle timeout in the agent's database (the console's own clock
// and checks are used unchanged).
//
// Prints one line a scenario ("ok - ..." / "not ok - ...") and ends with
// "N passed, N failed"; exits non-zero when any failed.

import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { PAGES } from './pages.mjs';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const url = process.env.KITH_CONSOLE_URL;
const nhs = process.env.KITH_NHS;
const spares = (process.env.KITH_SPARE_NHS || '').split(',').filter(Boolean);
/** Another person with records, not yet searched (each break glass needs one). */
function fresh() {
  const next = spares.shift();
  if (!next) throw new Error('no spare NHS number left (KITH_SPARE_NHS)');
  return next;
}
const accounts = JSON.parse(process.env.KITH_ACCOUNTS || '{}');
const screenshots = process.env.KITH_SCREENSHOTS || '';
if (!url || !nhs || !accounts.case_worker) {
  console.error('KITH_CONSOLE_URL, KITH_NHS and KITH_ACCOUNTS must be set');
  process.exit(2);
}
const consoleHost = new URL(url).host;

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 375, height: 740 };

const stdinLines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdinLines.once('line', resolve));

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// --- browser plumbing -------------------------------------------------------

// Playwright gives each launch a fresh, temporary --user-data-dir.
const browser = await chromium.launch({
  executablePath: process.env.KITH_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: FLAGS,
});

/** A fresh browser context (its own cookies) whose requests stay on this machine. */
async function context(viewport = DESKTOP) {
  const ctx = await browser.newContext({ viewport });
  ctx.setDefaultTimeout(15000);
  await ctx.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === '127.0.0.1' || host === 'localhost' ? route.continue() : route.abort();
  });
  const page = await ctx.newPage();
  page.dialogs = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  return { ctx, page };
}

async function clickAndWait(page, selector) {
  const [response] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
  return response;
}

async function signInLocal(page, who) {
  const account = accounts[who];
  await page.goto(`${url}/sign-in`);
  await page.fill('#user-id', account.user);
  await page.fill('#password', account.password);
  await clickAndWait(page, 'main form[action="/sign-in"] button');
  await page.waitForSelector('#signed-in-as');
}

async function search(page, who = nhs) {
  await page.goto(`${url}/search`);
  await page.fill('#nhs-number', who);
  await page.check('#purpose-safeguarding');
  const response = await clickAndWait(page, 'main button:has-text("Search")');
  await page.waitForSelector('h1:has-text("Search results")');
  return response;
}

async function breakGlass(page, who = fresh()) {
  await search(page, who);
  await clickAndWait(page, 'button:has-text("Break glass")');
  await page.check('#reason-immediate_safeguarding_risk');
  await page.fill('#justification', 'Child disclosed harm at school today; need the mental health team now');
  const response = await clickAndWait(page, 'button:has-text("Break glass and search")');
  return response;
}

/** Signs in through the OpenID provider's own login and consent pages. */
async function signInOidc(page, login) {
  await page.goto(`${url}/sign-in`);
  await clickAndWait(page, '#oidc-sign-in');
  check(new URL(page.url()).hostname === 'localhost', `not at the provider: ${page.url()}`);
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any password');
  await clickAndWait(page, 'button:has-text("Sign-in")');
  // The consent page, then back to the console.
  await page.click('button:has-text("Continue")');
  await page.waitForURL((u) => u.host === consoleHost, { timeout: 15000 });
  await page.waitForLoadState('load');
}

async function bodyText(page) {
  return page.evaluate(() => document.body.innerText);
}

async function axe(page, label) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help, where: v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')}: ${(n.failureSummary || '').replace(/\s+/g, ' ')}`).join(' | ') }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, `${label}: axe found ${bad.map((v) => `${v.id} (${v.impact}, ${v.nodes} nodes: ${v.help}; ${v.where})`).join('; ')}`);
  return result;
}

async function noSideways(page, label) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  check(scroll <= width, `${label}: ${scroll}px wide in a ${width}px window (sideways scrolling)`);
}

/** Presses Tab until the element matching `selector` has focus (at most 60 times). */
async function tabTo(page, selector) {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press('Tab');
    const there = await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector);
    if (there) return;
  }
  throw new Error(`Tab never reached ${selector} on ${page.url()}`);
}

async function shot(page, name) {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });
}

const helpers = { url, nhs, fresh, search, breakGlass };

// --- scenarios ---------------------------------------------------------------

const scenarios = [];
const scenario = (name, fn) => scenarios.push({ name, fn });

scenario('an unauthenticated request is sent to sign-in', async () => {
  const { ctx, page } = await context();
  for (const path of ['/', '/search']) {
    await page.goto(`${url}${path}`);
    check(new URL(page.url()).pathname === '/sign-in', `${path} went to ${page.url()}`);
  }
  await page.waitForSelector('#user-id');
  await shot(page, 'sign-in');
  await ctx.close();
});

scenario('sign-in with a local account', async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'case_worker');
  check(new URL(page.url()).pathname === '/search', `after sign-in at ${page.url()}`);
  const who = await page.textContent('#signed-in-as');
  check(who.includes(`(${accounts.case_worker.user})`) && who.includes('social worker'), `signed in as: ${who}`);
  await shot(page, 'search');
  await ctx.close();
});

scenario('a search shows records, one refused with its reason, and <script> as text', async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'case_worker');
  const response = await search(page);
  check(response.status() === 200, `status ${response.status()}`);
  const text = await bodyText(page);
  for (const shown of ['Child protection plan', 'Jo Smith', 'Withheld', 'contact the custodian']) {
    check(text.includes(shown), `results lack ${JSON.stringify(shown)}`);
  }
  check(text.includes("<script>alert('x')</script>"), 'the hostile service field is not shown as text');
  const scripts = await page.evaluate(() => document.querySelectorAll('script').length);
  check(scripts === 0, `${scripts} script elements on the results page`);
  check(page.dialogs.length === 0, `a dialog opened: ${page.dialogs}`);
  await shot(page, 'results');
  await ctx.close();
});

scenario('break glass', async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'case_worker');
  await search(page);
  await clickAndWait(page, 'button:has-text("Break glass")');
  check((await bodyText(page)).includes('Why is emergency access needed?'), 'no break-glass form');
  await shot(page, 'break-glass');
  // Without a reason: refused at its field.
  const refused = await clickAndWait(page, 'button:has-text("Break glass and search")');
  check(refused.status() === 422, `an empty break glass answered ${refused.status()}`);
  await page.check('#reason-immediate_safeguarding_risk');
  await page.fill('#justification', 'Child disclosed harm at school today; need the mental health team now');
  const response = await clickAndWait(page, 'button:has-text("Break glass and search")');
  check(response.status() === 200, `status ${response.status()}`);
  const until = await page.textContent('#break-glass-until');
  check(until.includes('Emergency access is open for you and this person until'), `banner: ${until}`);
  await ctx.close();
});

scenario('an auditor reviews the break glass and verifies the log', async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'auditor');
  await page.goto(`${url}/audit/break-glass`);
  check((await page.$('#no-accesses')) === null, 'the break glass is not in the review queue');
  await clickAndWait(page, 'main button:has-text("Review")');
  check((await bodyText(page)).includes('Was this access appropriate?'), 'no review form');
  // Without an outcome: refused at its field.
  const refused = await clickAndWait(page, 'button:has-text("Record the review")');
  check(refused.status() === 422, `a review without an outcome answered ${refused.status()}`);
  await page.check('#outcome');
  await page.fill('#note', 'Disclosure at school; the reason given matches the record');
  const recorded = await clickAndWait(page, 'button:has-text("Record the review")');
  check(recorded.status() === 200, `the review answered ${recorded.status()}`);
  const entry = await page.textContent('#review-recorded');
  check(/Audit entry \d+/.test(entry), `no audit entry for the review: ${entry}`);
  await axe(page, 'review recorded');

  await page.goto(`${url}/audit/verify`);
  await clickAndWait(page, 'main button:has-text("Verify now")');
  const result = await page.textContent('#verify-result');
  check(result.includes('Log verified'), `verification: ${result}`);
  await axe(page, 'log verified');
  await ctx.close();
});

scenario("an operator sees why a file's lines were refused", async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'operator');
  await page.goto(`${url}/operator`);
  const text = await bodyText(page);
  check(text.includes('refused-lines.jsonl'), 'the refused file is not listed');
  check(text.includes('Lines refused'), 'the file is not marked as having refused lines');
  check(text.includes('nhs_number'), `the refused line's reason does not name its field: ${text.slice(0, 2000)}`);
  await ctx.close();
});

scenario('a form posted without its CSRF token is refused', async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'case_worker');
  await page.goto(`${url}/search`);
  await page.evaluate(() => document.querySelectorAll('main input[name=csrf]').forEach((e) => e.remove()));
  await page.fill('#nhs-number', nhs);
  await page.check('#purpose-safeguarding');
  const response = await clickAndWait(page, 'main button:has-text("Search")');
  check(response.status() === 403, `status ${response.status()}`);
  check((await bodyText(page)).includes('This form has expired'), 'no refusal page');
  // And with a wrong token in place of the right one.
  await page.goto(`${url}/search`);
  await page.evaluate(() => { document.querySelector('main input[name=csrf]').value = 'forged'; });
  await page.fill('#nhs-number', nhs);
  await page.check('#purpose-safeguarding');
  const forged = await clickAndWait(page, 'main button:has-text("Search")');
  check(forged.status() === 403, `forged token: status ${forged.status()}`);
  await ctx.close();
});

scenario('sign-out ends the session', async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'case_worker');
  await clickAndWait(page, 'button:has-text("Sign out")');
  check(page.url().endsWith('/sign-in?signed_out=1'), `after sign-out at ${page.url()}`);
  check((await bodyText(page)).includes('You have signed out'), 'no signed-out notice');
  await page.goto(`${url}/search`);
  check(new URL(page.url()).pathname === '/sign-in', `after sign-out /search went to ${page.url()}`);
  await ctx.close();
});

scenario('an idle session expires', async () => {
  const { ctx, page } = await context();
  await signInLocal(page, 'case_worker');
  await page.reload();
  check(new URL(page.url()).pathname === '/search', 'the session did not last one reload');
  process.stdout.write('KITH-AGE-SESSIONS\n');
  const answer = await nextLine();
  check(answer.trim() === 'aged', `the test answered ${answer}`);
  await page.goto(`${url}/search`);
  check(page.url().endsWith('/sign-in?expired=1'), `an idle session went to ${page.url()}`);
  check((await bodyText(page)).includes('You were signed out because your session ended'), 'no expiry notice');
  await ctx.close();
});

scenario('OIDC sign-in maps the provider group to the Kith role', async () => {
  const { ctx, page } = await context();
  let callback = '';
  page.on('request', (r) => {
    if (r.url().includes('/oidc/callback')) callback = r.url();
  });
  await signInOidc(page, 'amara.okafor');
  await page.waitForSelector('#signed-in-as');
  check(new URL(page.url()).pathname === '/search', `after OIDC sign-in at ${page.url()}`);
  const who = await page.textContent('#signed-in-as');
  for (const part of ['Amara Okafor', '(amara.okafor)', 'social worker', 'MASH']) {
    check(who.includes(part), `signed in as ${JSON.stringify(who)}, lacking ${part}`);
  }
  // The session carries the OIDC user like a local one: a search works.
  const response = await search(page);
  check(response.status() === 200, `search status ${response.status()}`);
  await ctx.close();

  // The provider's answer is single use and bound to the browser that
  // started the sign-in: replayed in another browser it signs nobody in.
  check(callback.includes('code=') && callback.includes('state='), `no callback seen: ${callback}`);
  const thief = await context();
  const replayed = await thief.page.goto(callback);
  check(replayed.status() === 400, `a replayed callback answered ${replayed.status()}`);
  check((await bodyText(thief.page)).includes('This sign-in cannot be finished'), 'no refusal of the replay');
  check((await thief.page.$('#signed-in-as')) === null, 'the replayed callback signed someone in');
  await thief.ctx.close();

  const other = await context();
  await signInOidc(other.page, 'dr.lee');
  await other.page.waitForSelector('#signed-in-as');
  const lee = await other.page.textContent('#signed-in-as');
  check(lee.includes('ed clinician') && lee.includes('Dr Chris Lee'), `signed in as ${JSON.stringify(lee)}`);
  await other.ctx.close();
});

scenario('an OIDC user with no mapped role is refused', async () => {
  const { ctx, page } = await context();
  await signInOidc(page, 'canteen.cook');
  const text = await bodyText(page);
  check(text.includes('You do not have a Kith role'), `no refusal: ${text.slice(0, 300)}`);
  const reason = await page.textContent('#refusal-reason');
  check(reason.includes('groups'), `the refusal does not name the claim: ${reason}`);
  check(text.includes('information governance lead'), 'the refusal does not say whom to ask');
  check((await page.$('#signed-in-as')) === null, 'signed in after all');
  await axe(page, 'OIDC refusal');
  await page.setViewportSize(PHONE);
  await axe(page, 'OIDC refusal (phone)');
  await noSideways(page, 'OIDC refusal (phone)');
  await page.goto(`${url}/search`);
  check(new URL(page.url()).pathname === '/sign-in', `the refused user reached ${page.url()}`);
  await ctx.close();
});

for (const entry of PAGES) {
  scenario(`axe-core: ${entry.name}, desktop and phone width`, async () => {
    for (const viewport of [DESKTOP, PHONE]) {
      const { ctx, page } = await context(viewport);
      if (entry.as) await signInLocal(page, entry.as);
      const response = await entry.open(page, helpers);
      const status = response ? response.status() : 0;
      check(status === entry.status, `${entry.name} answered ${status}, expected ${entry.status}`);
      await axe(page, `${entry.name} at ${viewport.width}px`);
      if (viewport === PHONE) await noSideways(page, entry.name);
      await ctx.close();
    }
  });
}

scenario('keyboard only: sign in, search, break glass, sign out', async () => {
  const { ctx, page } = await context();
  await page.goto(`${url}/sign-in`);
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.classList.contains('govuk-skip-link')), 'the first Tab is not the skip link');
  await tabTo(page, '#user-id');
  await page.keyboard.type(accounts.case_worker.user);
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.id === 'password'), 'Tab from user ID does not reach the password');
  await page.keyboard.type(accounts.case_worker.password);
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  await page.waitForSelector('#signed-in-as');

  await tabTo(page, '#nhs-number');
  await page.keyboard.type(fresh());
  await tabTo(page, 'input[name=purpose]');
  // Arrow keys move within the radio group; Space selects.
  await page.keyboard.press('Space');
  check(await page.evaluate(() => document.querySelector('input[name=purpose]:checked') !== null), 'no purpose chosen by keyboard');
  await tabTo(page, 'main button[type=submit]');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  await page.waitForSelector('h1:has-text("Search results")');

  await tabTo(page, 'form[action="/break-glass"] button');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  await tabTo(page, 'input[name=reason_code]');
  await page.keyboard.press('Space');
  await tabTo(page, '#justification');
  await page.keyboard.type('Child disclosed harm at school today; keyboard-only check');
  await tabTo(page, 'form[action="/break-glass"] button');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  await page.waitForSelector('#break-glass-until');

  await tabTo(page, 'form[action="/sign-out"] button');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  check(page.url().endsWith('/sign-in?signed_out=1'), `keyboard sign-out went to ${page.url()}`);
  await ctx.close();
});

// --- run ---------------------------------------------------------------------

let passed = 0;
let failed = 0;
for (const { name, fn } of scenarios) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${String(e && e.message ? e.message : e).split('\n')[0]}`);
  }
}
await browser.close();
stdinLines.close();
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
