// Helpers of the portal's browser tests: Chromium, accessibility checks, screenshots, steps,
// the demo's own API and the invitation emails it writes to a folder.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const BASE = process.env.PSABRIDGE_URL;
export const DEMO = JSON.parse(readFileSync(process.env.DEMO_JSON, "utf8"));
const ARTIFACTS = process.env.ARTIFACTS_DIR || "target/portal-screenshots";

/** Debian's Chromium, headless, with nothing reaching outside this machine. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/** A step of a scenario: its name is printed, so a failure says where it happened. */
let currentPage = null;
/** The page a failing step photographs (`failure-<n>.png` in the artifacts). */
export function watch(page) { currentPage = page; }

export async function step(name, fn) {
  const started = Date.now();
  try {
    const out = await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
    return out;
  } catch (e) {
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    if (currentPage) {
      try {
        console.log(`     the page: ${currentPage.url()}`);
        await shot(currentPage, "failure");
      } catch { /* the page may be gone */ }
    }
    throw e;
  }
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * axe-core on the page as it is: any serious or critical violation fails. The script is
 * evaluated through the DevTools protocol, which the page's CSP (script-src 'self') does not
 * govern, so the portal's policy stays as strict in tests as in production.
 */
export async function axeCheck(page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length > 0) {
    throw new Error(`axe on ${label}: ` + bad.map((v) =>
      `${v.id} (${v.impact}): ${v.help} at ${v.targets.join(", ")}`).join("; "));
  }
  return result.length;
}

/** A full-page screenshot in the artifacts folder. */
export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Check a screen: loaded without a server error, accessible, and photographed. */
export async function screen(page, name) {
  check(!(await page.title()).startsWith("500"), `${name}: the server failed`);
  await axeCheck(page, name);
  await shot(page, name);
}

/** The demo's API with a bearer token (the vendor's unless another is given). */
export async function api(method, path, body, token = DEMO.vendor_token) {
  const res = await fetch(`${BASE}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json };
}

/**
 * Every email the demo sent: from the recording SMTP server's file (`SMTP_OUT`, one JSON line
 * a message) when the demo has an SMTP server, else from its mail folder.
 */
function sentMail() {
  if (process.env.SMTP_OUT) {
    let text = "";
    try { text = readFileSync(process.env.SMTP_OUT, "utf8"); } catch { return []; }
    return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
      .filter((m) => !m.refused)
      .map((m) => ({ to: m.rcpt_tos || [], subject: m.subject, body: m.body || "" }))
      .reverse();
  }
  return readdirSync(DEMO.mail_dir).sort().reverse().map((f) => {
    const raw = readFileSync(join(DEMO.mail_dir, f), "utf8");
    const body = raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g,
      (_, h) => String.fromCharCode(parseInt(h, 16)));
    const to = /^To: (.*)$/m.exec(raw);
    const subject = /^Subject: (.*)$/m.exec(raw);
    return { to: to ? [to[1].trim()] : [], subject: subject && subject[1], body };
  });
}

/** The newest email to `address` whose body contains `text`, waited for. */
export async function mailTo(address, text = "") {
  for (let i = 0; i < 100; i++) {
    // The newest match: mail from an earlier attempt of the same spec stays in the file.
    const m = sentMail().filter((x) => x.to.some((t) => t.includes(address)) && x.body.includes(text)).pop();
    if (m) return m;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no email to ${address} containing ${JSON.stringify(text)}`);
}

/** The link of the newest invitation emailed to `address`. */
export async function linkMailedTo(address) {
  const mail = await mailTo(address, "/invitation#token=");
  const m = /(https?:\/\/\S+\/invitation#token=[0-9a-f]+)/.exec(mail.body);
  if (!m) throw new Error(`no invitation link in the email to ${address}`);
  return m[1];
}

/**
 * Let the page reach only the product's origin, the `also` origins (the test's identity
 * provider) and data:/blob: URLs: anything else is aborted and recorded in the returned list,
 * which a spec checks at its end.
 */
export async function localOnly(page, also = []) {
  const origins = [new URL(BASE).origin, ...also.map((u) => new URL(u).origin)];
  const refused = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (origins.some((o) => url.startsWith(`${o}/`)) || url.startsWith("data:")
        || url.startsWith("blob:")) {
      return route.continue();
    }
    // Aborted wherever it comes from; counted against the product only when one of its own
    // pages asked (the test provider's login page loads a web font, which is its business).
    let from = "";
    try { from = route.request().frame().url(); } catch { /* no frame */ }
    if (!from.startsWith("http") || from.startsWith(`${origins[0]}/`)) refused.push(url);
    return route.abort("blockedbyclient");
  });
  return refused;
}

/** Uncaught errors of the page's scripts, collected as they happen. */
export function pageErrors(page) {
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  return errors;
}

/**
 * The real OpenID provider of the SSO tests (clients/oidc-provider-node) on 127.0.0.1, at
 * `IDP_PORT` (the port the demo was told it may reach) or a free one, with these clients and
 * accounts: `{ issuer, stop }`.
 */
export async function startProvider(clients, accounts) {
  const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "oidc-provider-node");
  const child = spawn(process.execPath, ["provider.mjs"], {
    cwd: dir,
    env: { ...process.env, OP_PORT: process.env.IDP_PORT || "0", OP_CLIENTS: JSON.stringify(clients),
      OP_ACCOUNTS: JSON.stringify(accounts) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const issuer = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the provider did not start: ${out}`)), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /READY (\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`the provider exited (${code}): ${out}`)); });
  });
  return { issuer, stop: () => child.kill("SIGTERM") };
}

/** RFC 4648 base32 (no padding needed) to bytes. */
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/[=\s]/g, "").toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    bits += v.toString(2).padStart(5, "0");
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The six-digit RFC 6238 code (SHA-1, 30 s) of a base32 key, `stepsAhead` steps from now. */
export function totpCode(secretBase32, stepsAhead = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + stepsAhead;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secretBase32)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, "0");
}
