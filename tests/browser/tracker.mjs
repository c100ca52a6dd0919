// Drives a real headless Chromium through a customer's website that embeds Rapport's tracker snippet, and checks
// what the browser sends to Rapport. The Rust test (crates/rapport-server/tests/browser.rs) then reads the result
// back through the REST API.
//
// The browser's traffic goes through a small recording proxy in this script. DevTools does not report beacons sent
// while a page unloads, and the beacon is the point of the exercise; the proxy sees it on the wire, with its
// headers and Rapport's answer, and lets the script wait until it has been delivered. It also answers the first
// batch with a 503, as an overloaded server would, so that the tracker has to retry it.
//
// Usage: node tracker.mjs RAPPORT_BASE_URL WRITE_KEY
// Environment:
//   RAPPORT_SNIPPET      the snippet the API shows for the source (default: the same snippet, built here)
//   RAPPORT_DNT_SNIPPET  the snippet of a source that honours Do-Not-Track; when given, a browser with DNT on
//                        visits a page with it first and must send nothing
//   RAPPORT_SCREENSHOT   where to save a screenshot of the test page (default: target/e2e-artifacts/tracker.png)
//   CHROMIUM             the browser (default: /usr/bin/chromium)
// Prints one JSON line on success ({"anonymousId", "transports"}) and exits 0; exits 1 with the reason otherwise.

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const [base, writeKey] = process.argv.slice(2);
if (!base || !writeKey) {
  console.error("usage: node tracker.mjs RAPPORT_BASE_URL WRITE_KEY");
  process.exit(2);
}
const repository = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const screenshotPath =
  process.env.RAPPORT_SCREENSHOT || join(repository, "target", "e2e-artifacts", "tracker.png");
const snippet = process.env.RAPPORT_SNIPPET || defaultSnippet(base, writeKey);
const dntSnippet = process.env.RAPPORT_DNT_SNIPPET;
const batchUrl = `${base}/v1/batch`;

// A hung browser must fail the test, not stall it.
const deadline = setTimeout(() => fail("gave up after 120 s"), 120_000);

function fail(reason) {
  console.error(`tracker.mjs: ${reason}`);
  process.exit(1);
}

function check(condition, reason) {
  if (!condition) {
    throw new Error(reason);
  }
}

/** The snippet as the sources API builds it, for running this script by hand. */
function defaultSnippet(base, key) {
  return `<script>
!function(){var r=window.rapport=window.rapport||[];if(r.isRapport||r.load)return;["load","page","track","identify","reset"].forEach(function(m){r[m]=function(){r.push([m].concat([].slice.call(arguments)))}});var s=document.createElement("script");s.async=true;s.src=${JSON.stringify(`${base}/rapport.js`)};document.head.appendChild(s)}();
rapport.load(${JSON.stringify(key)}, {host: ${JSON.stringify(base)}});
rapport.page();
</script>`;
}

function html(title, head, body) {
  return `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>${title}</title>${head}
<style>body{font:16px system-ui,sans-serif;margin:40px;max-width:640px}button{font:inherit;margin:8px 0;padding:6px 14px}
input{font:inherit;margin:4px 0;padding:4px;display:block}</style></head><body>${body}</body></html>`;
}

/** The customer's website: its own origin (another port), pages that embed the snippet. */
const pages = {
  "/": () => html("Example Co", "", `<h1>Example Co</h1><p><a id="go" href="/pricing?utm_source=wechat&utm_campaign=spring">See pricing</a></p>`),
  "/pricing": () =>
    html(
      "Pricing | Example Co",
      snippet,
      `<h1>Pricing</h1>
<p>Pro: for teams that sell to businesses.</p>
<button id="demo" onclick='rapport.track("Demo Requested", {plan: "pro"})'>Request a demo</button>
<form id="signup" onsubmit='event.preventDefault(); rapport.identify("web-user-1", {email: this.email.value, firstName: this.firstName.value}); document.getElementById("done").textContent = "Thanks!"'>
  <input name="email" value="web@example.com"><input name="firstName" value="Web">
  <button type="submit">Sign up</button> <span id="done"></span>
</form>
<p><a id="leave" href="/thanks">Continue</a></p>`,
    ),
  "/dnt": () =>
    html(
      "Private | Example Co",
      dntSnippet || "",
      `<button id="demo" onclick='rapport.track("Demo Requested", {plan: "pro"})'>Request a demo</button>
<p><a id="leave" href="/thanks">Continue</a></p>`,
    ),
  "/thanks": () => html("Thanks | Example Co", "", "<h1>Thanks</h1>"),
};

function startSite() {
  const server = createServer((request, response) => {
    const path = new URL(request.url, "http://site").pathname;
    if (path === "/favicon.ico") {
      response.writeHead(204);
      response.end();
      return;
    }
    const page = pages[path];
    response.writeHead(page ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
    response.end(page ? page() : "not found");
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/**
 * A forwarding HTTP proxy that records every exchange with Rapport's tracking API: the request as the browser sent
 * it (a beacon is `Sec-Fetch-Mode: no-cors`, a fetch `cors`) and the status Rapport answered. It can also play an
 * unavailable server: while `outages` is above zero, batches are answered 503 without reaching Rapport.
 */
function startRecordingProxy() {
  const seen = [];
  const waiters = [];
  const proxy = { outages: 0 };
  const record = (exchange) => {
    if (!exchange.url.startsWith(`${base}/v1/`)) {
      return;
    }
    seen.push(exchange);
    let body;
    try {
      body = JSON.parse(exchange.body);
    } catch {
      body = { batch: [] };
    }
    const delivery = {
      transport: exchange.headers["sec-fetch-mode"] === "no-cors" ? "beacon" : "fetch",
      contentType: exchange.headers["content-type"],
      status: exchange.status,
      body,
    };
    for (const waiter of waiters.slice()) {
      if (delivery.status === 200 && Array.isArray(body.batch) && body.batch.some(waiter.matches)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(delivery);
      }
    }
  };
  const server = createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      // A proxied request names the absolute URL.
      const target = new URL(request.url);
      const exchange = { url: target.href, method: request.method, headers: request.headers, body: body.toString() };
      if (proxy.outages > 0 && target.href === batchUrl) {
        proxy.outages -= 1;
        response.writeHead(503, { "access-control-allow-origin": "*" });
        response.end();
        record({ ...exchange, status: 503 });
        return;
      }
      const upstream = httpRequest(target, { method: request.method, headers: request.headers }, (answer) => {
        const answerChunks = [];
        answer.on("data", (chunk) => answerChunks.push(chunk));
        answer.on("end", () => {
          const answerBody = Buffer.concat(answerChunks);
          const headers = { ...answer.headers, "content-length": String(answerBody.length) };
          delete headers["transfer-encoding"];
          response.writeHead(answer.statusCode, headers);
          response.end(answerBody);
          record({ ...exchange, status: answer.statusCode });
        });
      });
      upstream.on("error", (error) => {
        response.writeHead(502);
        response.end();
        record({ ...exchange, status: `failed: ${error.message}` });
      });
      upstream.end(body);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve(
        Object.assign(proxy, {
          server,
          seen,
          /** Resolves with the first batch holding a message that `matches` that Rapport answered 200. */
          delivery(matches) {
            return new Promise((resolve) => waiters.push({ matches, resolve }));
          },
        }),
      ),
    ),
  );
}

async function doNotTrackVisit(context, tracking, site) {
  const page = await context.newPage();
  // What Chromium reports when the user turns on "Send a Do Not Track request".
  await page.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1" });
  });
  await page.goto(`${site}/dnt?utm_source=wechat`);
  await page.waitForFunction(() => window.rapport && window.rapport.isRapport === true);
  await page.click("#demo");
  const left = await page.evaluate(() => ({
    cookie: document.cookie,
    storage: Object.keys(localStorage).filter((key) => key.startsWith("rapport")),
    user: window.rapport.user(),
  }));
  await Promise.all([page.waitForURL(`${site}/thanks`), page.click("#leave")]);
  await page.close();
  check(left.cookie === "", `with Do-Not-Track on, no cookie is set, got ${JSON.stringify(left.cookie)}`);
  check(left.storage.length === 0, `with Do-Not-Track on, nothing is stored, got ${left.storage}`);
  check(left.user.anonymousId === null, "with Do-Not-Track on, there is no anonymous id");
  check(tracking.seen.length === 0, `with Do-Not-Track on, nothing is sent, got ${tracking.seen.map((r) => r.url)}`);
}

async function visit(context, tracking, site) {
  const page = await context.newPage();
  page.on("console", (message) => console.error(`page console: ${message.text()}`));
  page.on("pageerror", (error) => console.error(`page error: ${error}`));
  await page.goto(`${site}/`);

  // The page view goes out within about a second, by fetch; Rapport is unavailable at first, and the tracker
  // tries again.
  tracking.outages = 1;
  const pageView = tracking.delivery((message) => message.type === "page");
  await Promise.all([page.waitForURL(/\/pricing\?/), page.click("#go")]);
  const pageDelivery = await pageView;
  const attempts = tracking.seen.map((exchange) => exchange.status);
  check(attempts.join(" ") === "503 200", `the page view was retried after a 503: ${attempts}`);

  const cookies = await context.cookies(site);
  const cookie = cookies.find((item) => item.name === "rapport_anonymous_id");
  check(cookie, `the anonymous id cookie is set: ${JSON.stringify(cookies)}`);
  check(cookie.sameSite === "Lax", `the cookie is SameSite=Lax, got ${cookie.sameSite}`);
  const yearFromNow = Date.now() / 1000 + 365 * 24 * 3600;
  check(Math.abs(cookie.expires - yearFromNow) < 3600, `the cookie lasts a year, expires ${cookie.expires}`);
  const anonymousId = cookie.value;

  // Clicked and identified, then the visitor leaves at once: what is still queued leaves as a beacon.
  const demo = tracking.delivery((message) => message.type === "track" && message.event === "Demo Requested");
  const identify = tracking.delivery((message) => message.type === "identify");
  await page.click("#demo");
  await page.click("#signup button");
  await page.waitForSelector("#done:has-text('Thanks!')");
  await page.screenshot({ path: screenshotPath, fullPage: true });
  await Promise.all([page.waitForURL(`${site}/thanks`), page.click("#leave")]);
  const [demoDelivery, identifyDelivery] = await Promise.all([demo, identify]);
  await page.close();

  for (const delivery of [pageDelivery, demoDelivery, identifyDelivery]) {
    check(delivery.body.writeKey === writeKey, "the batch carries the write key in its body");
    check(typeof delivery.body.sentAt === "string", "the batch has sentAt");
  }
  check(identifyDelivery.transport === "beacon", `identify left by sendBeacon, not ${identifyDelivery.transport}`);
  check(pageDelivery.contentType === "text/plain", `fetch sends text/plain (no preflight), not ${pageDelivery.contentType}`);
  const messages = [pageDelivery, demoDelivery, identifyDelivery].flatMap((delivery) => delivery.body.batch);
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (const message of messages) {
    check(message.anonymousId === anonymousId, "every message carries the cookie's anonymous id");
    check(uuid.test(message.messageId), `messageId is a UUID v4: ${message.messageId}`);
    check(message.context.library.name === "rapport.js", "the library names itself");
  }
  const demoMessage = messages.find((message) => message.event === "Demo Requested");
  check(demoMessage.userId === undefined, "the demo was requested before the visitor identified");
  const identifyMessage = messages.find((message) => message.type === "identify");
  check(identifyMessage.userId === "web-user-1", "identify carries the user id");
  return { anonymousId, transports: [pageDelivery.transport, demoDelivery.transport, identifyDelivery.transport] };
}

async function main() {
  await mkdir(dirname(screenshotPath), { recursive: true });
  const site = await startSite();
  const siteUrl = `http://127.0.0.1:${site.address().port}`;
  const tracking = await startRecordingProxy();
  const userDataDir = await mkdtemp(join(tmpdir(), "rapport-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--proxy-server=http://127.0.0.1:${tracking.server.address().port}`,
      // Chromium sends loopback traffic around a proxy unless told otherwise.
      "--proxy-bypass-list=<-loopback>",
    ],
  });
  try {
    if (dntSnippet) {
      await doNotTrackVisit(context, tracking, siteUrl);
    }
    const result = await visit(context, tracking, siteUrl);
    console.log(JSON.stringify(result));
  } finally {
    await context.close();
    site.close();
    tracking.server.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  () => {
    clearTimeout(deadline);
    process.exit(0);
  },
  (error) => fail(error.stack || error),
);
