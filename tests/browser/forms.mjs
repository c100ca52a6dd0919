// Drives a real headless Chromium through hosted forms, the way visitors meet them:
//   1. a customer's website (another origin than Rapport) with the tracker snippet and a form embed: the visitor
//      browses anonymously, submits an invalid email first and sees the error, then submits for real;
//   2. the hosted page `/f/{id}` with JavaScript turned off: an invalid submission comes back with the message
//      and the answers kept, then the thank-you.
// The Rust test (crates/rapport-server/tests/browser.rs) then reads the result back through the REST API.
//
// Usage: node forms.mjs RAPPORT_BASE_URL FORM_ID
// Environment:
//   RAPPORT_SNIPPET     the tracker snippet the sources API shows for the customer's site (required)
//   RAPPORT_EMBED       the embed snippet the forms API shows (required)
//   RAPPORT_SCREENSHOT  where to save the screenshot of the embed's thank-you (a path ending in .png; default:
//                       target/e2e-artifacts/forms.png); the embed's error and the hosted page's are saved beside
//                       it, as …-error.png and …-hosted.png
//   CHROMIUM            the browser (default: /usr/bin/chromium)
// Prints one JSON line on success ({"anonymousId"}) and exits 0; exits 1 with the reason otherwise.

import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const [base, formId] = process.argv.slice(2);
const snippet = process.env.RAPPORT_SNIPPET;
const embed = process.env.RAPPORT_EMBED;
if (!base || !formId || !snippet || !embed) {
  console.error("usage: RAPPORT_SNIPPET=… RAPPORT_EMBED=… node forms.mjs RAPPORT_BASE_URL FORM_ID");
  process.exit(2);
}
const repository = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const screenshotPath = process.env.RAPPORT_SCREENSHOT || join(repository, "target", "e2e-artifacts", "forms.png");

const deadline = setTimeout(() => fail("gave up after 120 s"), 120_000);

function fail(reason) {
  console.error(`forms.mjs: ${reason}`);
  process.exit(1);
}

function check(condition, reason) {
  if (!condition) {
    throw new Error(reason);
  }
}

function html(title, head, body) {
  return `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>${title}</title>${head}
<style>body{font:16px system-ui,sans-serif;margin:40px;max-width:640px}</style></head><body>${body}</body></html>`;
}

/** The customer's website, on its own origin. */
const pages = {
  "/": () => html("Example Co", snippet, `<h1>Example Co</h1><p><a id="go" href="/demo?utm_source=newsletter">Book a demo</a></p>`),
  "/demo": () => html("Book a demo | Example Co", snippet, `<h1>Book a demo</h1>\n${embed}\n<p>Questions? Call us.</p>`),
};

function startSite() {
  const server = createServer((request, response) => {
    const page = pages[new URL(request.url, "http://site").pathname];
    response.writeHead(page ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
    response.end(page ? page() : "not found");
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const launchOptions = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
};

async function embeddedForm(browser, site) {
  const context = await browser.newContext({ locale: "zh-CN" });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`page error: ${error}`));
  page.on("console", (message) => console.error(`page console: ${message.text()}`));
  page.on("requestfailed", (request) => console.error(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`));
  await page.goto(`${site}/`);
  await page.waitForFunction(() => window.rapport && window.rapport.isRapport === true);
  await Promise.all([page.waitForURL(/\/demo\?/), page.click("#go")]);
  await page.waitForFunction(() => window.rapport && window.rapport.isRapport === true);
  // Both page views are delivered before the visitor identifies, so they are anonymous history.
  await page.evaluate(() => window.rapport.flush());
  const anonymousId = await page.evaluate(() => window.rapport.user().anonymousId);
  check(typeof anonymousId === "string" && anonymousId.length > 10, `the tracker has an anonymous id: ${anonymousId}`);

  const form = `#rapport-form-${formId} form`;
  await page.waitForSelector(form);
  await page.fill(`#rapport-${formId}-name`, "浏览器 测试");
  await page.fill(`#rapport-${formId}-email`, "not-an-email");
  await page.selectOption(`#rapport-${formId}-plan`, "pro");
  await page.check(`#rapport-${formId}-email_consent`);
  const rejected = page.waitForResponse((response) => response.url() === `${base}/f/${formId}` && response.request().method() === "POST");
  await page.click(`${form} button[type=submit]`);
  const rejection = await (await rejected).json();
  check((await rejected).status() === 422, `an invalid email is refused with 422`);
  const messages = rejection.error.details.fields[0].messages;
  check(
    messages["zh-CN"] === "请输入有效的邮箱地址。" && messages.en === "Please enter a valid email address.",
    `the error comes in both languages: ${JSON.stringify(rejection)}`,
  );
  const shown = await page.textContent(`#rapport-${formId}-email-error`);
  check(shown === "请输入有效的邮箱地址。", `the embed shows the error in the visitor's language: ${shown}`);
  const invalid = await page.getAttribute(`#rapport-${formId}-email`, "aria-invalid");
  check(invalid === "true", "the field is marked invalid for assistive technology");
  await page.screenshot({ path: screenshotPath.replace(/\.png$/, "-error.png"), fullPage: true });

  await page.fill(`#rapport-${formId}-email`, "Browser@Example.com");
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector(`#rapport-form-${formId} .rapport-form-done`);
  const thanks = await page.textContent(`#rapport-form-${formId} .rapport-form-done`);
  check(thanks === "谢谢！我们会尽快联系您。", `the thank-you is shown: ${thanks}`);
  await page.screenshot({ path: screenshotPath, fullPage: true });
  await context.close();
  return anonymousId;
}

async function hostedPageWithoutJavaScript(browser) {
  const context = await browser.newContext({ javaScriptEnabled: false, locale: "en-US" });
  const page = await context.newPage();
  await page.goto(`${base}/f/${formId}?lang=en`);
  check((await page.textContent("h1")) === "Book a demo", "the hosted page speaks English when asked");
  await page.fill(`#rapport-${formId}-name`, "No Script");
  await page.fill(`#rapport-${formId}-email`, "noscript@");
  const [invalid] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(invalid.status() === 422, `an invalid submission re-renders the page with 422, got ${invalid.status()}`);
  const error = await page.textContent(`#rapport-${formId}-email-error`);
  check(error === "Please enter a valid email address.", `the field's error is shown: ${error}`);
  const consentError = await page.textContent(`#rapport-${formId}-email_consent-error`);
  check(consentError === "Please tick this box to continue.", `the consent box is required: ${consentError}`);
  check((await page.inputValue(`#rapport-${formId}-name`)) === "No Script", "the answers are kept");
  await page.screenshot({ path: screenshotPath.replace(/\.png$/, "-hosted.png"), fullPage: true });

  await page.fill(`#rapport-${formId}-email`, "noscript@example.com");
  await page.check(`#rapport-${formId}-email_consent`);
  const [done] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(done.status() === 200, `the submission is accepted, got ${done.status()}`);
  const thanks = await page.textContent(".rapport-form-done");
  check(thanks === "Thank you! We will be in touch.", `the thank-you is shown: ${thanks}`);
  await context.close();
}

async function main() {
  await mkdir(dirname(screenshotPath), { recursive: true });
  const site = await startSite();
  const siteUrl = `http://127.0.0.1:${site.address().port}`;
  const userDataDir = await mkdtemp(join(tmpdir(), "rapport-chromium-"));
  const browser = await chromium.launch(launchOptions);
  try {
    const anonymousId = await embeddedForm(browser, siteUrl);
    await hostedPageWithoutJavaScript(browser);
    console.log(JSON.stringify({ anonymousId }));
  } finally {
    await browser.close();
    site.close();
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
