// The console's pages, in one list: every one is opened by the scenario
// script and checked with axe-core (no serious or critical violation) at
// desktop and phone width. Add a page here and it is checked.
//
// Each entry: name; who opens it (`null` signed out, or a key of the
// accounts the test passes in: `case_worker`, `auditor`, `operator`); and `open`, which
// takes a signed-in (or not) Playwright page and the test's context and
// leaves the page showing it. `status` is the HTTP status the page is
// expected to answer with. `ctx` has url, nhs, fresh() (another person
// with records, for flows that break glass), search(page, nhs) and
// breakGlass(page, nhs).

export const PAGES = [
  {
    name: 'sign-in',
    as: null,
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/sign-in`),
  },
  {
    name: 'signed out notice',
    as: null,
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/sign-in?signed_out=1`),
  },
  {
    name: 'session ended notice',
    as: null,
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/sign-in?expired=1`),
  },
  {
    name: 'page not found',
    as: null,
    status: 404,
    open: async (page, ctx) => page.goto(`${ctx.url}/no-such-page`),
  },
  {
    name: 'search',
    as: 'case_worker',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/search`),
  },
  {
    name: 'search with errors',
    as: 'case_worker',
    status: 422,
    open: async (page, ctx) => {
      await page.goto(`${ctx.url}/search`);
      await page.fill('#nhs-number', '123');
      return Promise.all([page.waitForNavigation(), page.click('button:has-text("Search")')]).then(([r]) => r);
    },
  },
  {
    name: 'results',
    as: 'case_worker',
    status: 200,
    open: async (page, ctx) => ctx.search(page),
  },
  {
    name: 'break glass',
    as: 'case_worker',
    status: 200,
    open: async (page, ctx) => {
      await ctx.search(page, ctx.fresh());
      return Promise.all([page.waitForNavigation(), page.click('button:has-text("Break glass")')]).then(([r]) => r);
    },
  },
  {
    name: 'break glass with errors',
    as: 'case_worker',
    status: 422,
    open: async (page, ctx) => {
      await ctx.search(page, ctx.fresh());
      await Promise.all([page.waitForNavigation(), page.click('button:has-text("Break glass")')]);
      return Promise.all([page.waitForNavigation(), page.click('button:has-text("Break glass and search")')]).then(([r]) => r);
    },
  },
  {
    name: 'results after break glass',
    as: 'case_worker',
    status: 200,
    open: async (page, ctx) => ctx.breakGlass(page),
  },
  {
    name: 'subscriptions',
    as: 'case_worker',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/subscriptions`),
  },
  {
    name: 'subscriptions with errors',
    as: 'case_worker',
    status: 422,
    open: async (page, ctx) => {
      await page.goto(`${ctx.url}/subscriptions`);
      await page.fill('#nhs-number', '123');
      return Promise.all([page.waitForNavigation(), page.click('form[action="/subscriptions"] button')]).then(([r]) => r);
    },
  },
  {
    name: 'form expired (CSRF refusal)',
    as: 'case_worker',
    status: 403,
    open: async (page, ctx) => {
      await page.goto(`${ctx.url}/search`);
      await page.evaluate(() => document.querySelectorAll('main input[name=csrf]').forEach((e) => e.remove()));
      await page.fill('#nhs-number', ctx.nhs);
      await page.check('#purpose');
      return Promise.all([page.waitForNavigation(), page.click('button:has-text("Search")')]).then(([r]) => r);
    },
  },
  {
    name: 'auditor start page',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/`),
  },
  {
    name: 'search refused to an auditor',
    as: 'auditor',
    status: 403,
    open: async (page, ctx) => page.goto(`${ctx.url}/search`),
  },
  {
    name: 'audit log search',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/audit/search`),
  },
  {
    name: 'audit log results',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => {
      await page.goto(`${ctx.url}/audit/search`);
      return Promise.all([page.waitForNavigation(), page.click('main button:has-text("Search")')]).then(([r]) => r);
    },
  },
  {
    name: 'audit log search with errors',
    as: 'auditor',
    status: 422,
    open: async (page, ctx) => {
      await page.goto(`${ctx.url}/audit/search`);
      await page.fill('#nhs-number', '123');
      return Promise.all([page.waitForNavigation(), page.click('main button:has-text("Search")')]).then(([r]) => r);
    },
  },
  {
    name: 'subject access report form',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/audit/subject`),
  },
  {
    name: 'subject access report',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => {
      await page.goto(`${ctx.url}/audit/subject`);
      await page.fill('#nhs-number', ctx.nhs);
      return Promise.all([page.waitForNavigation(), page.click('main button:has-text("Make the report")')]).then(([r]) => r);
    },
  },
  {
    name: 'break-glass review queue',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/audit/break-glass?all=yes`),
  },
  {
    name: 'log verification',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/audit/verify`),
  },
  {
    name: 'log verified',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => {
      await page.goto(`${ctx.url}/audit/verify`);
      return Promise.all([page.waitForNavigation(), page.click('main button:has-text("Verify now")')]).then(([r]) => r);
    },
  },
  {
    name: 'audit export',
    as: 'auditor',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/audit/export`),
  },
  {
    name: 'operator page',
    as: 'operator',
    status: 200,
    open: async (page, ctx) => page.goto(`${ctx.url}/operator`),
  },
  {
    name: 'audit log refused to an operator',
    as: 'operator',
    status: 403,
    open: async (page, ctx) => page.goto(`${ctx.url}/audit/search`),
  },
];
