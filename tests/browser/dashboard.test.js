#!/usr/bin/env node
// The admin listener's /dashboard in a real browser: Debian's /usr/bin/chromium
// driven by playwright-core (which never downloads a browser).
//
// Run by tests/integration/test_dashboard.py against a running cluster, or by hand:
//   cd tests/browser && npm ci && WHT_DASHBOARD_URL=... node dashboard.test.js
//
// Environment:
//   WHT_DASHBOARD_URL       the dashboard, with ?token=... when the node has WHT_ADMIN_TOKEN (required)
//   WHT_EXPECT_NODES        node ids the nodes table must show, comma-separated (required)
//   WHT_EXPECT_WORKERS      worker ids the workers table must show, comma-separated (required)
//   WHT_EXPECT_SELF         the node id marked "this node" (optional)
//   WHT_CLICK_WORKER        the worker to click (default: the first of WHT_EXPECT_WORKERS)
//   WHT_TUNNEL_URL          a URL through the tunnel to that worker, fetched once (required)
//   WHT_EXPECT_PATH         text the path of that request's row contains (required)
//   WHT_SCREENSHOT          where to save a full-page PNG (optional; also written on failure)
//   WHT_BROWSER_TIMEOUT_MS  global bound (default 90000)
//   WHT_CHROMIUM            the browser (default /usr/bin/chromium)
//
// Exits 0 on success; 1 with a message naming the failed step otherwise; 2 on the global timeout.
'use strict';

const http = require('http');
const https = require('https');
const fs = require('fs');
const path = require('path');

function env(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (def === undefined) fail('missing environment variable ' + name);
    return def;
  }
  return v;
}

let browser = null;
let page = null;
let step = 'start';
const t0 = Date.now();

function log(msg) {
  process.stdout.write('[dashboard.test ' + ((Date.now() - t0) / 1000).toFixed(2) + 's] ' + msg + '\n');
}

function fail(msg) {
  process.stderr.write('dashboard.test: FAIL: ' + msg + '\n');
  process.exit(1);
}

const cfg = {
  url: env('WHT_DASHBOARD_URL'),
  nodes: env('WHT_EXPECT_NODES').split(',').map((s) => s.trim()).filter(Boolean),
  workers: env('WHT_EXPECT_WORKERS').split(',').map((s) => s.trim()).filter(Boolean),
  self: env('WHT_EXPECT_SELF', ''),
  tunnelUrl: env('WHT_TUNNEL_URL'),
  expectPath: env('WHT_EXPECT_PATH'),
  screenshot: env('WHT_SCREENSHOT', ''),
  timeoutMs: parseInt(env('WHT_BROWSER_TIMEOUT_MS', '90000'), 10),
  chromium: env('WHT_CHROMIUM', '/usr/bin/chromium'),
};
cfg.click = env('WHT_CLICK_WORKER', cfg.workers[0] || '');
if (!cfg.click) fail('no worker to click: set WHT_EXPECT_WORKERS or WHT_CLICK_WORKER');

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  fail('playwright-core is not installed: run `npm ci` in ' + __dirname + ' (' + e.message + ')');
}
if (!fs.existsSync(cfg.chromium)) fail(cfg.chromium + ' not found: apt-get install chromium');

// One GET through the tunnel with node's http module: {status, body}.
function fetchOnce(url) {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { timeout: 10000, headers: { 'User-Agent': 'whtunnel-dashboard-test' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
  });
}

// Polls fn(arg) in the page until it is truthy. page.evaluate, unlike
// page.waitForFunction, is not an eval under the page's own CSP (which has no
// 'unsafe-eval'), so the page is tested with its CSP in force.
async function poll(fn, arg, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() >= deadline) throw new Error(what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function screenshot(suffix) {
  if (!cfg.screenshot || !page) return;
  let file = cfg.screenshot;
  if (suffix) file = file.replace(/(\.png)?$/, suffix + '.png');
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    await page.screenshot({ path: file, fullPage: true, timeout: 10000 });
    log('screenshot: ' + path.resolve(file));
  } catch (e) {
    log('screenshot failed: ' + e.message);
  }
}

// What the page shows right now, for failure messages.
async function pageSummary() {
  if (!page) return '';
  try {
    return await page.evaluate(() => {
      const rows = (sel, attr) => Array.from(document.querySelectorAll(sel)).map((tr) =>
        attr ? tr.getAttribute(attr) : tr.textContent.replace(/\s+/g, ' ').trim());
      const err = document.getElementById('error');
      return JSON.stringify({
        error: err && !err.hidden ? err.textContent.replace(/\s+/g, ' ').trim() : null,
        conn: (document.getElementById('conn-state') || {}).textContent,
        nodes: rows('#nodes tbody tr[data-node]', 'data-node'),
        workers: rows('#workers tbody tr[data-worker]', 'data-worker'),
        requests: rows('#requests tbody tr').slice(0, 10),
      });
    });
  } catch (e) {
    return '(page not readable: ' + e.message + ')';
  }
}

async function main() {
  const pageErrors = [];
  step = 'launch ' + cfg.chromium;
  browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    timeout: 30000,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  log('browser ' + browser.version());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') log('console error: ' + m.text()); });
  // The page is self-contained: any request to another origin is a bug.
  const origin = new URL(cfg.url).origin;
  const foreign = [];
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:')) foreign.push(u);
  });

  step = 'open the dashboard';
  const resp = await page.goto(cfg.url, { waitUntil: 'load', timeout: 15000 });
  if (!resp) throw new Error('no response for the dashboard');
  if (resp.status() !== 200) throw new Error('the dashboard answered ' + resp.status());
  const ctype = resp.headers()['content-type'] || '';
  if (!ctype.startsWith('text/html')) throw new Error('the dashboard is ' + JSON.stringify(ctype) + ', not text/html');
  log('dashboard loaded (' + ctype + ')');

  step = 'wait for nodes ' + cfg.nodes.join(',') + ' and workers ' + cfg.workers.join(',');
  for (const n of cfg.nodes) {
    await page.locator('#nodes tbody tr[data-node="' + n + '"]').waitFor({ state: 'visible', timeout: 20000 });
  }
  for (const w of cfg.workers) {
    await page.locator('#workers tbody tr[data-worker="' + w + '"]').waitFor({ state: 'visible', timeout: 20000 });
  }
  if (cfg.self) {
    step = 'check that ' + cfg.self + ' is marked as this node';
    await page.locator('#nodes tbody tr[data-node="' + cfg.self + '"][data-self="true"]')
      .waitFor({ state: 'visible', timeout: 5000 });
    const selfRows = await page.locator('#nodes tbody tr[data-self="true"]').count();
    if (selfRows !== 1) throw new Error(selfRows + ' rows are marked as this node, expected 1');
  }
  log('nodes and workers shown');

  // A first rate needs two /metrics scrapes; the request below comes after them,
  // so a later scrape counts it and the rate chart must show it.
  step = 'wait for a first request rate (two /metrics scrapes)';
  await poll(() => Number(document.getElementById('rate-chart').getAttribute('data-points')) >= 1, null, 10000,
    'no request rate within 10 s of opening the page');
  const pointsBefore = Number(await page.locator('#rate-chart').getAttribute('data-points'));

  step = 'request ' + cfg.tunnelUrl + ' through the tunnel';
  const r = await fetchOnce(cfg.tunnelUrl);
  log('tunnel request: HTTP ' + r.status + ', ' + r.body.length + ' bytes');
  if (r.status >= 500) throw new Error('the tunnel request answered ' + r.status + ': ' + r.body.slice(0, 200));

  step = 'click worker ' + cfg.click + ' and see the request to ' + JSON.stringify(cfg.expectPath) + ' within 2 s';
  await page.locator('#workers tbody tr[data-worker="' + cfg.click + '"]').click({ timeout: 5000 });
  const clicked = Date.now();
  await poll((want) => {
    return Array.from(document.querySelectorAll('#requests tbody tr')).some((tr) => {
      const cell = tr.querySelector('td.path');
      return cell && cell.textContent.indexOf(want) >= 0;
    });
  }, cfg.expectPath, 2000 - (Date.now() - clicked), 'no row for ' + JSON.stringify(cfg.expectPath) +
     ' in #requests within 2 s of the click');
  log('request row shown ' + (Date.now() - clicked) + ' ms after the click');
  const selected = await page.locator('#workers tbody tr.selected').getAttribute('data-worker');
  if (selected !== cfg.click) throw new Error('the selected worker row is ' + selected + ', not ' + cfg.click);

  step = 'wait for the request rate chart to count the request';
  // a point after those drawn before the request is above zero (the series is at most 60 long:
  // far more than the ~5 points this takes)
  await poll((before) => {
    const values = (document.getElementById('rate-chart').getAttribute('data-values') || '').split(' ');
    return values.slice(before).some((v) => Number(v) > 0) &&
      /^[0-9.]+$/.test(document.getElementById('rate-requests').textContent);
  }, pointsBefore, 10000, 'the request rate chart did not count the request within 10 s');
  log('request rates (per s, oldest first): ' + (await page.locator('#rate-chart').getAttribute('data-values')));

  step = 'check for page errors';
  if (pageErrors.length) throw new Error('JavaScript errors in the page: ' + pageErrors.join('; '));
  if (foreign.length) throw new Error('the page requested other origins: ' + foreign.join(', '));
  const banner = await page.locator('#error').isVisible();
  if (banner) throw new Error('the page shows an error: ' + (await page.locator('#error').textContent()).trim());

  step = 'screenshot';
  await screenshot('');
}

const globalTimer = setTimeout(() => {
  process.stderr.write('dashboard.test: FAIL: global timeout of ' + cfg.timeoutMs + ' ms at step: ' + step + '\n');
  process.exit(2);  // playwright kills the browser it launched on exit
}, cfg.timeoutMs);

main().then(async () => {
  clearTimeout(globalTimer);
  await browser.close();
  log('PASS');
  process.exit(0);
}, async (e) => {
  const summary = await pageSummary();
  await screenshot('-failure');
  process.stderr.write('dashboard.test: FAIL at step "' + step + '": ' + (e && e.message || e) + '\n');
  if (summary) process.stderr.write('dashboard.test: page shows: ' + summary + '\n');
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
});
