// Helpers of the portal's browser tests: Chromium, accessibility checks, screenshots, steps,
// the demo's own API and the invitation emails it writes to a folder.
import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

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
export async function step(name, fn) {
  const started = Date.now();
  try {
    const out = await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
    return out;
  } catch (e) {
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
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

/** The link of the newest email to `address` in the demo's mail folder (quoted-printable). */
export async function linkMailedTo(address) {
  for (let i = 0; i < 50; i++) {
    const files = readdirSync(DEMO.mail_dir).sort().reverse();
    for (const f of files) {
      const raw = readFileSync(join(DEMO.mail_dir, f), "utf8");
      if (!raw.includes(`To: ${address}`)) continue;
      const body = raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g,
        (_, h) => String.fromCharCode(parseInt(h, 16)));
      const m = /(https?:\/\/\S+\/invitation#token=[0-9a-f]+)/.exec(body);
      if (m) return m[1];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no invitation email to ${address} in ${DEMO.mail_dir}`);
}

/**
 * Let the page reach only the product's origin (and data:/blob: URLs): anything else is
 * aborted and recorded in the returned list, which a spec checks at its end.
 */
export async function localOnly(page) {
  const origin = new URL(BASE).origin;
  const refused = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith("data:") || url.startsWith("blob:")) {
      return route.continue();
    }
    refused.push(url);
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
