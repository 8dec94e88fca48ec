// The partner portal as MSP admins use it, in Chromium, against a running `psabridge demo`:
//  (a) a new partner's Primary accepts the invitation, signs in, connects Autotask with the
//      wizard (a refused secret shown next to its field first), maps a client, sets the ticket
//      defaults, sends a test notification that shows the ticket number, and finds a real
//      event's ticket in the delivery log;
//  (a') ticket profiles: an event set, a template and an integration rule made on their
//      screen, with what uses each shown before a delete;
//  (b) HaloPSA connected with the wizard, a client mapped to one site of a company, and its
//      test ticket made at that site;
//  (b') PSA companies imported as clients with a preview, and a second import adding nothing;
//  (c) notification settings saved in the portal are honoured by the next event (its email
//      reaches the real SMTP test server, and no ticket is made);
//  (d) a Read-only member sees no edit controls and a forced POST is refused;
//  (e) the partner's identity provider (the real `oidc-provider` of the SSO tests) set up on
//      the security screen, the Primary's account linked once with password and authenticator
//      code, "require the identity provider" switched on, then password logins refused and
//      the provider's login working;
//  (f) axe-core on every screen on the way, with a screenshot of each;
//  (g) usage billing: the Autotask connection's contract service (a bad cost named), the
//      client's contract chosen from the PSA's, usage reported, a preview, a sync, and the units
//      read back from the simulator;
//  (h) assets pushed from a client's page: the missing product setting named, set on the
//      connection, then the asset an item of the PSA;
//  and the API reference (/api/docs) renders. No page reaches beyond the product, and no page
//  script fails.
import {
  BASE, DEMO, api, check, launch, linkMailedTo, localOnly, mailTo, pageErrors, screen, shot,
  startProvider, step, totpCode, watch,
} from "./lib.mjs";

const PARTNER = "fresh-msp";
const PRIMARY = "pat@fresh-msp.example";
const READER = "rita@fresh-msp.example";
const PASSWORD = "a long enough pass phrase 42";
const SIM = DEMO.simulators.autotask;
const HALO = DEMO.simulators.halopsa;
const IDP_CLIENT = { client_id: "psabridge-portal", client_secret: "a test client secret of the portal" };

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

/** Wait for `text`; if the page shows field errors instead, fail with them. */
async function expectSaved(page, text) {
  const saved = page.getByText(text);
  const problem = page.locator(".field-error").first();
  await saved.or(problem).first().waitFor();
  if (await saved.count() === 0) {
    const problems = await page.locator(".field-error").allTextContents();
    throw new Error(`expected "${text}", the page says: ${problems.join(" | ")}`);
  }
}

/** Reload the client's page until the asset's row matches `pattern` (the demo also pushes
 * every 10 s, so what a "push now" finds may already have been done). */
async function untilAssetRow(page, name, pattern) {
  const end = Date.now() + 30_000;
  for (;;) {
    const text = await page.locator("tr", { hasText: name }).first().textContent();
    if (pattern.test(text)) return;
    if (Date.now() > end) throw new Error(`the row of ${name} never matched ${pattern}: ${text}`);
    await page.waitForTimeout(500);
    await page.goto(`${BASE}/p/${PARTNER}/clients/acme`);
  }
}

async function signOut(page) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${BASE}/login`);
}

async function main() {
  const browser = await launch();
  const provider = await startProvider(
    [{ ...IDP_CLIENT, redirect_uris: [`${BASE}/api/v1/auth/sso/callback`] }],
    [{ sub: "pat-at-idp", email: PRIMARY, email_verified: true, name: "Pat" }],
  );
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    const refused = await localOnly(page, [provider.issuer]);
    const errors = pageErrors(page);
    watch(page);

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

    await step("(a') ticket profiles: event set, template, rule; uses shown before a delete", async () => {
      await page.getByRole("link", { name: "4. Ticket profiles" }).click();
      await screen(page, "ticket-profiles-empty");
      // An event set with nothing ticked is refused next to its field.
      await page.locator("#set-name").fill("Threats only");
      await page.getByRole("button", { name: "Add the event set" }).click();
      await page.locator("#set-types-error").waitFor();
      await page.getByLabel(/Too many downloads/).check();
      await page.getByRole("button", { name: "Add the event set" }).click();
      await page.getByText("The event set was saved.").waitFor();
      await page.locator("#template-name").fill("Urgent");
      const priority = page.locator("select[name='fields.priority']");
      const values = await priority.locator("option").evaluateAll(
        (os) => os.map((o) => o.value).filter((v) => v !== ""));
      check(values.length > 0, "the template offers the PSA's priorities");
      await priority.selectOption(values[values.length - 1]);
      await page.getByRole("button", { name: "Add the template" }).click();
      await page.getByText("The template was saved.").waitFor();
      await page.locator("#rule-name").fill("Threats, urgent");
      await page.getByLabel("Event set", { exact: true }).selectOption({ label: "Threats only" });
      await page.getByLabel("Template", { exact: true }).selectOption({ label: "Urgent" });
      await page.getByRole("button", { name: "Add the rule" }).click();
      await page.getByText("The integration rule was saved.").waitFor();
      const setRow = page.locator("tr", { hasText: "Threats only" }).last();
      check((await setRow.textContent()).includes("integration rule 'Threats, urgent'"),
        "the event set lists the rule that uses it");
      check(await setRow.getByRole("button", { name: /Yes, delete/ }).count() === 0,
        "no delete for an event set in use");
      await screen(page, "ticket-profiles");
      // The rule goes; then nothing uses the set, and it can go too.
      const ruleRow = page.locator("tr", { hasText: "Threats, urgent" }).first();
      await ruleRow.locator("summary", { hasText: "Delete" }).click();
      await ruleRow.getByRole("button", { name: "Yes, delete Threats, urgent" }).click();
      await page.getByText("Deleted.").waitFor();
      const freed = page.locator("tr", { hasText: "Threats only" }).last();
      check((await freed.textContent()).includes("nothing"), "nothing uses the set any more");
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
      // No ticket for this event type, an email instead; a bad address is named first.
      await form.getByLabel("Ticket").selectOption("off");
      await form.getByLabel("Email", { exact: true }).check();
      await form.getByLabel("Email addresses").fill("soc@fresh-msp.example; not an address");
      await form.getByRole("button", { name: /^Save/ }).click();
      await page.locator("#addresses-saas\\.too_many_uploads-error").waitFor();
      await screen(page, "notification-settings-refused");
      const again = page.locator("form#row-saas\\.too_many_uploads");
      await again.getByLabel("Ticket").selectOption("off");
      await again.getByLabel("Email", { exact: true }).check();
      await again.getByLabel("Email addresses").fill("soc@fresh-msp.example");
      await again.getByRole("button", { name: /^Save/ }).click();
      await page.getByText("Your changes were saved.").waitFor();
      let r = await api("POST", "/api/v1/events", {
        id: "portal-e2e-uploads", partner: PARTNER, client: "acme", type: "saas.too_many_uploads",
        user: { email: "someone@acme.example" },
      });
      check(r.status === 202, `event: ${r.status} ${JSON.stringify(r.body)}`);
      let state;
      for (let i = 0; i < 100; i++) {
        r = await api("GET", `/api/v1/events/portal-e2e-uploads?partner=${PARTNER}`);
        state = r.body.routing && r.body.routing.state;
        if (state && state !== "received") break;
        await new Promise((res) => setTimeout(res, 100));
      }
      const channels = (r.body.deliveries || []).map((d) => d.channel);
      check(state === "routed" && channels.length > 0 && channels.every((c) => c === "email"),
        `the event makes an email and no ticket: ${JSON.stringify(r.body)}`);
      const mail = await mailTo("soc@fresh-msp.example", "portal-e2e-uploads");
      check(/too many uploads/i.test(mail.subject || ""), `the email's subject: ${mail.subject}`);
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

    await step("(g) usage billed on the client's Autotask contract: preview, sync, report", async () => {
      await page.getByRole("link", { name: "Usage billing", exact: true }).click();
      await screen(page, "billing-empty");
      await page.locator("li", { hasText: "(Autotask)" }).getByRole("link").first().click();
      // A cost that is not a number is named next to its field.
      await page.getByLabel("Service name in the PSA").fill("Managed Security Seat");
      await page.getByLabel("Unit cost").fill("three");
      await page.getByLabel("Unit price").fill("6.00");
      await page.getByRole("button", { name: "Save the service" }).click();
      await page.locator("#unit_cost-error").waitFor();
      await page.getByLabel("Unit cost").fill("3.50");
      await page.getByRole("button", { name: "Save the service" }).click();
      await expectSaved(page, "The contract service is saved.");
      await page.getByRole("link", { name: "acme", exact: true }).click();
      // The company's contracts come from the PSA; the lapsed one cannot be chosen.
      const active = page.getByLabel(/Acme Dental Group Managed Security/);
      check(await page.getByLabel(/Block Hours 2025/).isDisabled(), "an inactive contract is not offered");
      await active.check();
      await page.getByLabel("Bill this client's usage on the contract").check();
      await page.getByLabel("Put the service on the contract when it is not on it yet").check();
      await screen(page, "billing-client");
      await page.getByRole("button", { name: "Save", exact: true }).click();
      await expectSaved(page, "The client's billing is saved.");
      const observed = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      const r = await api("POST", "/api/v1/usage", {
        usage: [
          { id: "portal-u1", partner: PARTNER, client: "acme", metric: "users", units: 17, observed_at: observed },
          { id: "portal-u2", partner: PARTNER, client: "acme", metric: "users", units: 14, observed_at: observed },
        ],
      });
      check(r.status === 202, `usage: ${r.status} ${JSON.stringify(r.body)}`);
      await page.getByRole("link", { name: "Usage billing", exact: true }).click();
      check((await page.locator("tr", { hasText: "acme" }).first().textContent()).includes("17"),
        "the period's highest count is shown");
      await page.getByRole("button", { name: "Preview the sync" }).click();
      await page.getByText("A preview: nothing was written.").waitFor();
      const preview = page.locator("tr", { hasText: "acme" }).first();
      check((await preview.textContent()).includes("would update"), `preview: ${await preview.textContent()}`);
      check((await preview.textContent()).includes("0 → 17"), `preview units: ${await preview.textContent()}`);
      await screen(page, "billing-preview");
      await page.getByRole("link", { name: "Back to usage billing" }).click();
      await page.getByRole("button", { name: "Sync now" }).click();
      await page.locator("#run-status", { hasText: "finished" }).waitFor();
      check((await page.locator("#run-counts").textContent()).startsWith("0 added, 1 updated"),
        `the sync: ${await page.locator("#run-counts").textContent()}`);
      await screen(page, "billing-report");
      // The units are in the PSA, as Autotask answers them.
      const lines = await (await fetch(`${SIM.base_url}/_sim/billing`)).json();
      const acme = lines.find((l) => l.contract_id === "29690001");
      check(acme && acme.units === 17, `units in the PSA: ${JSON.stringify(acme)}`);
    });

    await step("(h) assets: pushed from the client's page; a missing product named, then set", async () => {
      const r = await api("POST", "/api/v1/assets", {
        partner: PARTNER, client: "acme", asset_id: "pc-1", name: "FRONT-DESK-01",
        type: "Workstation", serial: "5CD1234", os: "Windows 11",
      });
      check(r.status === 202 && r.body.status === "new", `asset: ${r.status} ${JSON.stringify(r.body)}`);
      await page.getByRole("link", { name: "Clients", exact: true }).click();
      await page.getByRole("link", { name: "Acme Dental Group" }).click();
      await page.getByRole("button", { name: /^Push assets to Autotask/ }).click();
      await page.getByRole("button", { name: /^Push what is due to Autotask/ }).click();
      await page.locator("#assets-notice").waitFor();
      // The wizard never asked for a product: the push says which setting is missing (this
      // push's, or the demo's own periodic push's, whichever ran first).
      await untilAssetRow(page, "FRONT-DESK-01", /ci_product_id/);
      await page.goto(`${BASE}/p/${PARTNER}/connections`);
      await page.locator("tr", { hasText: "Autotask" }).first().getByRole("link").first().click();
      await page.locator("summary", { hasText: "Advanced" }).click();
      await page.getByLabel("Product ID for configuration items").fill(String(DEMO.simulators.autotask.ci_product_id));
      await page.getByLabel("API user: Password (Secret)").fill(SIM.secret);
      await page.getByLabel("API Tracking Identifier").fill(SIM.integration_code);
      await page.getByRole("button", { name: "Save and check with the PSA" }).click();
      await expectSaved(page, "Your changes were saved.");
      await page.goto(`${BASE}/p/${PARTNER}/clients/acme`);
      await page.getByRole("button", { name: /^Push what is due to Autotask/ }).click();
      await page.locator("#assets-notice").waitFor();
      await untilAssetRow(page, "FRONT-DESK-01", /item \d+, up to date/);
      await screen(page, "client-assets");
    });

    await step("(b) HaloPSA: a client mapped to one site, its test ticket made there", async () => {
      await page.getByRole("link", { name: "PSA connections", exact: true }).click();
      await page.getByRole("link", { name: "Connect HaloPSA" }).click();
      await screen(page, "connect-halopsa");
      await page.getByLabel("Resource Server").fill(HALO.resource_url);
      await page.getByLabel("Authorisation Server").fill(HALO.auth_url);
      await page.getByLabel("Tenant").fill(HALO.tenant);
      await page.getByLabel("Client ID").fill(HALO.client_id);
      await page.getByLabel("Client Secret").fill(HALO.client_secret);
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      await page.getByText("Connected. Now map your clients").waitFor();
      await page.getByRole("link", { name: "Choose the company of Blue Harbor Legal" }).click();
      await page.getByLabel("Search the PSA by company name").fill("Acme Ltd");
      await page.getByRole("button", { name: "Search", exact: true }).click();
      await screen(page, "halopsa-sites");
      await page.getByRole("button", { name: "Map Blue Harbor Legal to Acme Ltd / Warehouse" }).click();
      await page.getByText("The mapping was saved.").waitFor();
      check((await page.locator("tr", { hasText: "Blue Harbor Legal" }).first().textContent())
        .includes("12/4"), "blue is mapped to Acme's Warehouse site (12/4)");
      await page.goto(`${BASE}/p/${PARTNER}/clients/blue`);
      await page.getByLabel("Event type").selectOption("saas.too_many_downloads");
      await page.getByRole("button", { name: "Send test notification" }).click();
      const result = page.locator("#test-result");
      await result.waitFor();
      const text = await result.textContent();
      const m = /Ticket (\d+) was made in the PSA/.exec(text);
      check(m, `HaloPSA test result: ${text}`);
      const res = await fetch(`${HALO.control_url}/tickets`);
      const body = await res.json();
      const tickets = Array.isArray(body) ? body : body.tickets;
      const ticket = tickets.find((t) => t.id === m[1]);
      check(ticket, `ticket ${m[1]} is in the HaloPSA simulator`);
      check(ticket.client_id === "12" && ticket.site_id === "4",
        `the ticket is at Acme's Warehouse: ${JSON.stringify({ client: ticket.client_id, site: ticket.site_id })}`);
      await screen(page, "halopsa-test-notification");
    });

    await step("(b) PSA companies imported as clients: preview, import, nothing twice", async () => {
      await page.goto(`${BASE}/p/${PARTNER}/connections`);
      await page.locator("tr", { hasText: "HaloPSA" }).getByRole("link", { name: "Map clients" }).click();
      await page.getByRole("link", { name: "Import clients from the PSA's companies" }).click();
      await page.getByLabel("Search the PSA by company name").fill("Acme Ltd");
      await page.getByRole("button", { name: "Search", exact: true }).click();
      await page.getByLabel(/Acme Ltd \/ Head Office/).check();
      await page.getByLabel(/Acme Ltd \/ Warehouse/).check();
      await page.getByRole("button", { name: "Preview the import" }).click();
      const report = page.locator("#import-report");
      await report.waitFor();
      check((await report.locator("h2").textContent()).includes("Preview: 1 new, 1 already mapped"),
        `the preview: ${await report.locator("h2").textContent()}`);
      await screen(page, "import-preview");
      await page.getByRole("button", { name: "Import 1 new client" }).click();
      await page.locator("#import-report h2", { hasText: "Imported: 1 new" }).waitFor();
      // Again: nothing new.
      await page.getByLabel(/Acme Ltd \/ Head Office/).check();
      await page.getByRole("button", { name: "Preview the import" }).click();
      await page.locator("#import-report h2", { hasText: "0 new, 1 already mapped" }).waitFor();
      const r = await api("GET", `/api/v1/partners/${PARTNER}/clients`);
      const imported = r.body.clients.filter((c) => c.name === "Acme Ltd / Head Office");
      check(imported.length === 1, `one client for the imported company: ${JSON.stringify(r.body.clients)}`);
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

    await step("(e) the identity provider set up, linked once, then required", async () => {
      // The Primary turns on an authenticator: an administrator's account is linked to the
      // provider only with its password and code.
      await page.goto(`${BASE}/p/${PARTNER}/account`);
      await page.getByRole("button", { name: "Set up an authenticator" }).click();
      const secret = (await page.locator("#totp-secret").textContent()).trim();
      await screen(page, "account-totp-scan");
      await page.getByLabel("The code your app shows now").fill(totpCode(secret));
      await page.getByRole("button", { name: "Turn it on" }).click();
      await page.locator("#recovery-codes").waitFor();

      await page.getByRole("link", { name: "Sign-in and security" }).click();
      await screen(page, "security-empty");
      await page.getByLabel("Issuer URL").fill(provider.issuer);
      await page.getByLabel("Client ID").fill(IDP_CLIENT.client_id);
      await page.getByLabel(/^Client secret/).fill(IDP_CLIENT.client_secret);
      await page.getByLabel(/^Name on the login button/).fill("Test IdP");
      // Requiring it before an administrator proved it is refused, and says why.
      await page.getByLabel(/Password logins are refused/).check();
      await page.getByRole("button", { name: "Test and save" }).click();
      await page.locator("#require_idp-error").waitFor();
      check(await page.getByLabel(/^Client secret/).inputValue() === "", "the secret is not rendered back");
      await screen(page, "security-refused");
      await page.getByLabel(/^Client secret/).fill(IDP_CLIENT.client_secret);
      await page.getByLabel(/Password logins are refused/).uncheck();
      await page.getByRole("button", { name: "Test and save" }).click();
      await expectSaved(page, "The identity provider settings were saved");
      await page.getByRole("button", { name: "Issue a token" }).click();
      check((await page.locator("#scim-token").textContent()).trim().length > 20, "the SCIM token, once");
      await screen(page, "security");
      await signOut(page);

      // "Log in with Test IdP" from the partner's own login page; the first time, the account
      // is proven once with its password and a later code.
      await page.goto(`${BASE}/login`);
      await page.locator("#sso-partner").fill(PARTNER);
      await page.getByRole("button", { name: "Continue" }).click();
      await screen(page, "login-with-idp");
      await page.getByRole("link", { name: "Log in with Test IdP" }).click();
      await page.locator("input[name=login]").fill("pat-at-idp");
      await page.locator("input[name=password]").fill("anything");
      await page.locator("button[type=submit]").click();
      await page.waitForURL(/\/sso\/confirm/);
      await screen(page, "sso-confirm");
      await page.getByLabel("Your PSA Bridge password").fill(PASSWORD);
      await page.getByLabel("Authenticator code").fill(totpCode(secret, 1));
      await page.getByRole("button", { name: "Link and sign in" }).click();
      await page.waitForURL(`${BASE}/p/${PARTNER}`);

      // Proven: now the switch holds.
      await page.goto(`${BASE}/p/${PARTNER}/security`);
      check((await page.locator("#require-help").textContent()).includes("Proven"),
        "the administrator's provider login is recorded");
      await page.getByLabel(/Password logins are refused/).check();
      await page.getByRole("button", { name: "Test and save" }).click();
      await expectSaved(page, "The identity provider settings were saved");
      await signOut(page);

      // A person who is not exempt can no longer use a password.
      await page.goto(`${BASE}/login`);
      await page.getByLabel("Email").fill(READER);
      await page.getByLabel("Password").fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      const refusal = await page.locator("#login-error").textContent();
      check(refusal.includes("requires Log in with Test IdP"), `a password login is refused: ${refusal}`);
      // The provider's login still works, now without the confirmation.
      await page.goto(`${BASE}/login?partner=${PARTNER}`);
      await page.getByRole("link", { name: "Log in with Test IdP" }).click();
      const atProvider = page.locator("input[name=login]");
      if (await atProvider.count() > 0) {
        await atProvider.fill("pat-at-idp");
        await page.locator("input[name=password]").fill("anything");
        await page.locator("button[type=submit]").click();
      }
      await page.waitForURL(`${BASE}/p/${PARTNER}`);
    });

    await step("nothing outside the product was requested, no page script failed", async () => {
      check(refused.length === 0, `requests refused: ${refused.join(", ")}`);
      check(errors.length === 0, `page errors: ${errors.join("; ")}`);
    });
  } finally {
    await browser.close();
    provider.stop();
  }
}

main().then(() => console.log("portal scenarios: all passed"), (e) => {
  console.error(`portal scenarios failed: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
