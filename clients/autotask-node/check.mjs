// Drive the simulator with a public Autotask client library (@apigrate/autotask-restapi), the
// way an MSP's own scripts would: zone discovery, queries, counts, picklists, create, child
// create, get, update, and an error. Exits non-zero on the first mismatch.
//
//   AT_BASE_URL=http://127.0.0.1:8081/ATServicesRest/ AT_USER=… AT_SECRET=… AT_CODE=… node check.mjs
import pkg from '@apigrate/autotask-restapi';

const { AutotaskRestApi } = pkg;
const env = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`set ${k}`); process.exit(2); }
  return v;
};
const at = new AutotaskRestApi(env('AT_USER'), env('AT_SECRET'), env('AT_CODE'), { base_url: env('AT_BASE_URL') });
let checks = 0;
const check = (cond, what, got) => {
  checks += 1;
  if (!cond) {
    console.error(`FAIL: ${what}${got === undefined ? '' : `: ${JSON.stringify(got)}`}`);
    process.exit(1);
  }
};

const root = await at.Companies.get(0);
check(root && root.item && root.item.id === 0, 'the root company has id 0', root);
check(at.zoneInfo && at.zoneInfo.url.endsWith('/ATServicesRest/'), 'zone discovery answered a zone URL', at.zoneInfo);

const companies = await at.Companies.query({
  filter: [{ op: 'beginsWith', field: 'CompanyName', value: 'a' }],
  IncludeFields: ['id', 'companyName'],
});
check(Array.isArray(companies.items) && companies.items.length >= 1, 'companies beginning with A', companies);
check(companies.items.every((c) => c.companyName.toLowerCase().startsWith('a')), 'beginsWith is case-insensitive', companies.items);
check(companies.pageDetails && companies.pageDetails.count === companies.items.length, 'pageDetails.count', companies.pageDetails);
const company = companies.items[0];

const count = await at.Contacts.count({ filter: [{ op: 'gte', field: 'Id', value: 0 }] });
check(count.queryCount > 10, 'contacts count', count);

const fields = await at.Tickets.fieldInfo();
const queue = fields.fields.find((f) => f.name === 'queueID');
check(queue && queue.isPickList && queue.picklistValues.length > 0, 'queueID is a picklist', queue);
check(typeof queue.picklistValues[0].value === 'string', 'picklist values are strings', queue.picklistValues[0]);
const sub = fields.fields.find((f) => f.name === 'subIssueType');
check(sub && sub.picklistParentValueField === 'issueType', 'subIssueType depends on issueType', sub);

const contacts = await at.Contacts.query({ filter: [{ op: 'eq', field: 'companyID', value: company.id }] });
const contact = contacts.items.find((c) => c.isActive === 1);
check(contact, 'an active contact of the company', contacts.items);

const created = await at.Tickets.create({
  companyID: company.id, contactID: contact.id, title: 'Client library check', description: 'from check.mjs',
  status: 1, priority: 2, queueID: Number(queue.picklistValues[0].value), externalID: 'client-check-1',
});
check(Number.isInteger(created.itemId), 'create answers itemId', created);
const note = await at.TicketNotes.create(created.itemId, {
  ticketID: created.itemId, title: 'A note', description: 'Note text', noteType: 1, publish: 1,
});
check(Number.isInteger(note.itemId), 'child create answers itemId', note);
const ticket = await at.Tickets.get(created.itemId);
check(ticket.item.title === 'Client library check' && /^T\d{8}\.\d{4}$/.test(ticket.item.ticketNumber), 'get by id', ticket.item);
const notes = await at.TicketNotes.query({ filter: [{ op: 'eq', field: 'ticketID', value: created.itemId }] });
check(notes.items.length === 1 && notes.items[0].description === 'Note text', 'notes of the ticket', notes.items);

await at.Tickets.update({ id: created.itemId, status: 5 });
const closed = await at.Tickets.get(created.itemId);
check(closed.item.status === 5 && closed.item.completedDate, 'update to Complete sets completedDate', closed.item);

const byRef = await at.Tickets.query({ filter: [{ op: 'eq', field: 'externalID', value: 'client-check-1' }] });
check(byRef.items.length === 1 && byRef.items[0].id === created.itemId, 'query by externalID', byRef.items);

try {
  await at.Tickets.create({ companyID: company.id, title: 'bad', status: 999, priority: 2 });
  check(false, 'a bad status is refused');
} catch (e) {
  check(e.status === 500 && Array.isArray(e.details.errors) && e.details.errors[0].includes('status'), 'error body names the field', e.details);
}
const missing = await at.Tickets.get(999999999);
check(missing === null || (missing && missing.item === null), 'a missing ticket is null', missing);

const threshold = await at.ThresholdInformation.get('');
check(threshold === null || threshold.externalRequestThreshold > 0 || threshold.item !== undefined, 'threshold information', threshold);

console.log(`OK: ${checks} checks passed with @apigrate/autotask-restapi against the simulator`);
