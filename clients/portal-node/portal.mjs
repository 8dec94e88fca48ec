// The partner portal as MSP admins use it, in Chromium, against a running `psabridge demo`:
//  (a) a new partner's Primary accepts the invitation, signs in, connects Autotask with the
//      wizard (a refused secret shown next to its field first), maps a client, sets the ticket
//      defaults, sends a test notification that shows the ticket number, and finds a real
//      event's ticket in the delivery log;
//  (c) notification settings saved in the portal are honoured by the next event;
//  (d) a Read-only member sees no edit controls and a forced POST is refused;
//  (f) axe-core on every screen on the way, with a screenshot of each;
//  and the API reference (/api/docs) renders. No page reaches beyond the product, and no page
//  script fails.
import {
  BASE, DEMO, api, check, launch, linkMailedTo, localOnly, pageErrors, screen, shot, step,
} from "./lib.mjs";

const PARTNER = "fresh-msp";
const PRIMARY = "pat@fresh-msp.example";
const READER = "rita@fresh-msp.example";
const PASSWORD = "a long enough pass phrase 42";
const SIM = DEMO.simulators.autotask;

async function acceptInvitation(page, email, name) {
  const link = await linkMailedTo(email);
  await page.goto(link);
  // portal.js moved the token from the link into the form.
  check((await page.getByLabel("The token from your link").inputValue()).length > 20,
    "the token is filled in from the link");
  check(!page.url().includes("token="), "the token left the address bar");
  await screen(page, `${name}-invitation`);
  await page.getByLabel("New password").fill(PASSWORD);
  await page.getByLabel("The same password again").fill(PASSWORD);
  await page.getByRole("button", { name: "Set my password" }).click();
  await page.getByText("Your password is set.").waitFor();
}

async function signIn(page, email) {
  await page.goto(`${BASE}/login`);
  // Keyboard only: fields in order, Enter submits.
  await page.getByLabel("Email").focus();
  await page.keyboard.type(email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${BASE}/p/${PARTNER}`);
}

async function main() {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    const refused = await localOnly(page);
    const errors = pageErrors(page);

    await step("the API reference renders (Redoc, under its CSP)", async () => {
      await page.goto(`${BASE}/api/docs`);
      const title = page.locator("redoc h1").first();
      await title.waitFor();
      check((await title.textContent()).includes("PSA Bridge"), "the reference's title");
      check(errors.length === 0, `the reference's scripts failed: ${errors.join("; ")}`);
      await shot(page, "api-docs");
    });

    await step("the vendor creates a partner and invites its Primary", async () => {
      let r = await api("POST", "/api/v1/partners", { id: PARTNER, name: "Fresh MSP" });
      check(r.status === 201, `partner: ${r.status} ${JSON.stringify(r.body)}`);
      r = await api("POST", `/api/v1/partners/${PARTNER}/users`, { email: PRIMARY, role: "primary" });
      check(r.status === 202, `invitation: ${r.status} ${JSON.stringify(r.body)}`);
      // The vendor already knows its customers: their ids arrive as clients.
      for (const [id, name] of [["acme", "Acme Dental Group"], ["blue", "Blue Harbor Legal"]]) {
        r = await api("PUT", `/api/v1/partners/${PARTNER}/clients/${id}`, { name });
        check(r.status === 200 || r.status === 201, `client: ${r.status}`);
      }
    });

    await step("a wrong password is refused on the login form", async () => {
      await page.goto(`${BASE}/`);
      check(page.url().startsWith(`${BASE}/login`), "not signed in: the login form");
      await screen(page, "login");
      await page.getByLabel("Email").fill(PRIMARY);
      await page.getByLabel("Password").fill("not the password");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByText("The email, password or code is wrong.").waitFor();
    });

    await step("(a) the Primary accepts the invitation and signs in", async () => {
      await acceptInvitation(page, PRIMARY, "primary");
      await signIn(page, PRIMARY);
      await screen(page, "dashboard-empty");
    });

    await step("(a) connect Autotask: a refused secret is named next to its field", async () => {
      await page.getByRole("link", { name: "PSA connections", exact: true }).click();
      await screen(page, "connections-empty");
      await page.getByRole("link", { name: "Connect Autotask" }).click();
      await screen(page, "connect-autotask");
      await page.getByLabel("API user: Username (Key)").fill(SIM.username);
      await page.getByLabel("API user: Password (Secret)").fill("not the secret");
      await page.getByLabel("API Tracking Identifier").fill(SIM.integration_code);
      await page.getByLabel("Zone discovery URL").fill(SIM.zone_discovery_url);
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      const error = page.locator("#f-secret-error");
      await error.waitFor();
      check((await error.textContent()).includes("refused"), "the PSA's refusal is shown");
      await screen(page, "connect-autotask-refused");
      // Secrets are never sent back to the browser.
      check((await page.getByLabel("API user: Password (Secret)").inputValue()) === "",
        "the secret is not rendered back");
      await page.getByLabel("API user: Password (Secret)").fill(SIM.secret);
      await page.getByLabel("API Tracking Identifier").fill(SIM.integration_code);
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      await page.getByText("Connected. Now map your clients").waitFor();
    });

    await step("(a) map a client to a company found by searching the PSA", async () => {
      await screen(page, "mapping");
      await page.getByRole("link", { name: "Choose the company of Acme Dental Group" }).click();
      await page.getByLabel("Search the PSA by company name").fill("Acme");
      await page.getByRole("button", { name: "Search", exact: true }).click();
      await screen(page, "companies-search");
      await page.getByRole("button", { name: "Map Acme Dental Group to Acme Dental Group" }).click();
      await page.getByText("The mapping was saved.").waitFor();
      const acme = page.locator("tr", { hasText: "Acme Dental Group" }).first();
      check(!(await acme.textContent()).includes("not mapped"), "acme is mapped");
    });

    await step("(a) ticket settings from the PSA's lists", async () => {
      await page.getByRole("link", { name: "3. Ticket settings" }).click();
      await screen(page, "ticket-settings");
      for (const label of ["queue", "status", "priority"]) {
        const select = page.getByLabel(new RegExp(`^${label}`, "i"));
        const values = await select.locator("option").evaluateAll(
          (os) => os.map((o) => o.value).filter((v) => v !== ""));
        check(values.length > 0, `the PSA lists ${label}`);
        await select.selectOption(values[0]);
      }
      await page.getByRole("button", { name: "Save ticket settings" }).click();
      await page.getByText("Your changes were saved.").waitFor();
    });

    await step("(a) a test notification shows the ticket number", async () => {
      await page.getByRole("link", { name: "Clients", exact: true }).click();
      await screen(page, "clients");
      await page.getByRole("link", { name: "Acme Dental Group" }).click();
      await page.getByLabel("Event type").selectOption("saas.too_many_downloads");
      await page.getByRole("button", { name: "Send test notification" }).click();
      const result = page.locator("#test-result");
      await result.waitFor();
      const text = await result.textContent();
      check(/Ticket T\d{8}\.\d{4} was made in the PSA/.test(text), `test result: ${text}`);
      await screen(page, "client-test-notification");
    });

    await step("(c) notification settings saved in the portal govern the next event", async () => {
      await page.getByRole("link", { name: "Notification settings", exact: true }).click();
      await screen(page, "notification-settings");
      const form = page.locator("form#row-saas\\.too_many_uploads");
      await form.getByLabel("Ticket").selectOption("off");
      await form.getByRole("button", { name: /^Save/ }).click();
      await page.getByText("Your changes were saved.").waitFor();
      let r = await api("POST", "/api/v1/events", {
        id: "portal-e2e-uploads", partner: PARTNER, client: "acme", type: "saas.too_many_uploads",
        user: { email: "someone@acme.example" },
      });
      check(r.status === 202, `event: ${r.status} ${JSON.stringify(r.body)}`);
      // The event type switched off makes no ticket: the event is skipped, not delivered.
      let state;
      for (let i = 0; i < 100; i++) {
        r = await api("GET", `/api/v1/events/portal-e2e-uploads?partner=${PARTNER}`);
        state = r.body.routing && r.body.routing.state;
        if (state && state !== "received") break;
        await new Promise((res) => setTimeout(res, 100));
      }
      check(state === "skipped", `an event type switched off makes no ticket: ${JSON.stringify(r.body)}`);
    });

    await step("(a) a real event's ticket appears in the delivery log", async () => {
      const r = await api("POST", "/api/v1/events", {
        id: "portal-e2e-1", partner: PARTNER, client: "acme", type: "saas.too_many_downloads",
        user: { email: "someone@acme.example" },
      });
      check(r.status === 202, `event: ${r.status}`);
      await page.getByRole("link", { name: "Delivery log", exact: true }).click();
      let found = false;
      for (let i = 0; i < 50 && !found; i++) {
        await page.goto(`${BASE}/p/${PARTNER}/deliveries?client=acme&status=delivered`);
        found = (await page.locator("article", { hasText: "portal-e2e-1" }).count()) > 0;
        if (!found) await new Promise((res) => setTimeout(res, 200));
      }
      check(found, "the event's delivery is in the log, delivered");
      const article = page.locator("article", { hasText: "portal-e2e-1" });
      check((await article.textContent()).includes("ticket"), "with its ticket");
      await article.getByText("Attempts").click();
      await screen(page, "delivery-log");
      await page.getByRole("link", { name: "Dashboard", exact: true }).click();
      await screen(page, "dashboard");
      await page.getByRole("link", { name: "Audit log", exact: true }).click();
      check((await page.locator("table").textContent()).includes("connection.create"),
        "the connection's creation is audited");
      await screen(page, "audit-log");
    });

    await step("(d) a Read-only member sees no edit controls; forced POSTs are refused", async () => {
      const r = await api("POST", `/api/v1/partners/${PARTNER}/users`, { email: READER, role: "read_only" });
      check(r.status === 202, `invitation: ${r.status}`);
      const context = await browser.newContext();
      const reader = await context.newPage();
      reader.setDefaultTimeout(30_000);
      await acceptInvitation(reader, READER, "reader");
      await signIn(reader, READER);
      await reader.goto(`${BASE}/p/${PARTNER}/clients/acme`);
      check(await reader.getByRole("button", { name: "Send test notification" }).count() === 0,
        "no test notification for a reader");
      await screen(reader, "reader-client");
      await reader.goto(`${BASE}/p/${PARTNER}/notifications`);
      check(await reader.getByRole("button", { name: /^Save/ }).count() === 0, "no save buttons");
      check(await reader.getByRole("button", { name: /Tickets (on|off) for all/ }).count() === 0,
        "no category switches");
      await screen(reader, "reader-notifications");
      await reader.goto(`${BASE}/p/${PARTNER}/connections`);
      check(await reader.getByRole("link", { name: "Connect Autotask" }).count() === 0,
        "no way to connect a PSA");
      const csrf = await reader.locator("input[name=csrf_token]").first().inputValue();
      for (const [path, form] of [
        [`/p/${PARTNER}/notifications/saas.too_many_downloads`, { ticket: "off", addresses: "" }],
        [`/p/${PARTNER}/clients/acme/test`, { event_type: "saas.too_many_downloads" }],
        [`/p/${PARTNER}/connections/1/delete`, { force: "true" }],
      ]) {
        const res = await reader.request.post(`${BASE}${path}`, {
          form: { csrf_token: csrf, ...form }, maxRedirects: 0,
        });
        check(res.status() === 403, `a reader's forced POST ${path}: ${res.status()}`);
      }
      await context.close();
    });

    await step("nothing outside the product was requested, no page script failed", async () => {
      check(refused.length === 0, `requests refused: ${refused.join(", ")}`);
      check(errors.length === 0, `page errors: ${errors.join("; ")}`);
    });
  } finally {
    await browser.close();
  }
}

main().then(() => console.log("portal scenarios: all passed"), (e) => {
  console.error(`portal scenarios failed: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
