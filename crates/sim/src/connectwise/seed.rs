//! The seed: an MSP's ConnectWise tenant with its service boards (statuses, types, subtypes,
//! items, teams), priorities, sources, members, and about 150 client companies with contacts.
//!
//! Fixed facts the tests and the conformance suite rely on (see `/_sim/fixtures`): company
//! "Acme Ltd" (id 12) with bob@acme.test, two active contacts sharing shared@acme.test (case
//! differing) and inactive ones; inactive and deleted companies; boards with inactive values.

use serde_json::{Value, json};

use super::Config;
use super::store::*;

pub const ACME_ID: i64 = 12;
pub const BOB_ID: i64 = 56;
pub const HELP_DESK: i64 = 1;
pub const SECURITY_BOARD: i64 = 2;
/// Acme's agreement in force, its cancelled one, and an agreement of company 3.
pub const ACME_AGREEMENT: i64 = 44;
pub const ACME_CANCELLED_AGREEMENT: i64 = 45;
pub const OTHER_COMPANY_AGREEMENT: i64 = 46;
/// The catalogue's security seat (its identifier is the demo's service name), the backup seat,
/// and the security seat's addition on Acme's agreement in force.
pub const SECURITY_SEAT: i64 = 31;
pub const SECURITY_SEAT_NAME: &str = "Managed Security Seat";
pub const BACKUP_SEAT: i64 = 32;
/// A retired (inactive) catalogue item.
pub const RETIRED_ITEM: i64 = 33;
pub const SEEDED_ADDITION: i64 = 3;

/// One seeded agreement: recurring (managed services, billed monthly) or a block of hours
/// billed once.
struct AgreementSpec {
    id: i64,
    company: i64,
    name: &'static str,
    recurring: bool,
    cancelled: bool,
    start: &'static str,
    end: Option<&'static str>,
}

const PREFIXES: [&str; 20] = [
    "Northwind",
    "Blue Harbor",
    "Cedar Ridge",
    "Granite Peak",
    "Silver Lake",
    "Oakmont",
    "Riverside",
    "Pinecrest",
    "Summit",
    "Harborview",
    "Maple Grove",
    "Ironwood",
    "Lakeshore",
    "Redstone",
    "Brightwater",
    "Fairview",
    "Highland",
    "Westbrook",
    "Stonebridge",
    "Clearwater",
];
const TRADES: [&str; 8] = [
    "Dental Group",
    "Logistics",
    "Law Partners",
    "Accounting",
    "Manufacturing",
    "Family Clinic",
    "Realty",
    "Engineering",
];
const FIRST: [&str; 16] = [
    "Alice", "Ben", "Carla", "David", "Elena", "Frank", "Grace", "Hugo", "Irene", "Jonas", "Kim",
    "Liam", "Maya", "Nina", "Omar", "Priya",
];
const LAST: [&str; 12] = [
    "Jones", "Garcia", "Miller", "Brown", "Wilson", "Moore", "Taylor", "Clark", "Lewis", "Walker",
    "Young", "King",
];

/// xorshift64*, seeded: the generated part of the seed repeats run after run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        if self.0 == 0 {
            self.0 = 0x9E37_79B9_7F4A_7C15;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SEED_TIME: &str = "2026-01-05T09:00:00Z";

fn info() -> Value {
    json!({"lastUpdated": SEED_TIME, "updatedBy": "admin1", "dateEntered": SEED_TIME, "enteredBy": "admin1"})
}

fn email_item(id: i64, value: &str) -> Value {
    json!({"id": id, "type": {"id": 1, "name": "Email", "_info": {}}, "value": value,
           "defaultFlag": true, "communicationType": "Email"})
}

fn phone_item(id: i64, value: &str) -> Value {
    json!({"id": id, "type": {"id": 2, "name": "Direct", "_info": {}}, "value": value,
           "defaultFlag": true, "communicationType": "Phone"})
}

impl Db {
    pub fn seeded(config: &Config, api_base: &str) -> Db {
        let mut db = Db::empty(api_base);
        db.seed_members();
        db.seed_companies(config);
        db.seed_contacts(config);
        db.seed_service();
        db.seed_tickets();
        db.seed_agreements();
        db.seed_billing();
        db
    }

    /// Agreements (`finance/agreements`): Acme's managed-services agreement, its block-hours
    /// agreement that was cancelled, one of company 3, and a managed-services agreement for
    /// each other of the first three customers the demo maps (active companies by name), so
    /// that each can be billed.
    fn seed_agreements(&mut self) {
        let mut specs = vec![
            AgreementSpec {
                id: ACME_AGREEMENT,
                company: ACME_ID,
                name: "Acme Managed Security",
                recurring: true,
                cancelled: false,
                start: "2026-01-01T00:00:00Z",
                end: None,
            },
            AgreementSpec {
                id: ACME_CANCELLED_AGREEMENT,
                company: ACME_ID,
                name: "Acme Block Hours 2025",
                recurring: false,
                cancelled: true,
                start: "2025-01-01T00:00:00Z",
                end: Some("2025-12-31T00:00:00Z"),
            },
            AgreementSpec {
                id: OTHER_COMPANY_AGREEMENT,
                company: 3,
                name: "Managed Services",
                recurring: true,
                cancelled: false,
                start: "2026-01-01T00:00:00Z",
                end: None,
            },
        ];
        let mut next_id = OTHER_COMPANY_AGREEMENT + 1;
        for company in self.first_customers(3) {
            if specs.iter().any(|a| a.company == company && !a.cancelled) {
                continue;
            }
            specs.push(AgreementSpec {
                id: next_id,
                company,
                name: "Managed Security",
                recurring: true,
                cancelled: false,
                start: "2026-01-01T00:00:00Z",
                end: None,
            });
            next_id += 1;
        }
        for spec in specs {
            self.put_agreement(&spec);
        }
    }

    /// The first `n` active companies by name that are not a catch-all ("default"): the
    /// customers `psabridge demo` maps.
    fn first_customers(&self, n: usize) -> Vec<i64> {
        let Ok(active) = super::conditions::parse(super::control::ACTIVE_COMPANIES) else {
            return Vec::new();
        };
        let mut companies: Vec<(String, i64)> = self
            .table(COMPANIES)
            .values()
            .filter(|c| active.matches(c))
            .filter_map(|c| Some((text(c, "name").to_lowercase(), id_of(c)?)))
            .filter(|(name, _)| !name.contains("default"))
            .collect();
        companies.sort();
        companies.into_iter().take(n).map(|(_, id)| id).collect()
    }

    fn put_agreement(&mut self, spec: &AgreementSpec) {
        let Some(c) = self.get(COMPANIES, spec.company).cloned() else {
            return;
        };
        let contact = self
            .table(CONTACTS)
            .values()
            .find(|x| ref_id(x, "company") == Some(spec.company))
            .cloned()
            .unwrap_or_default();
        let (type_id, type_name) = if spec.recurring {
            (1, "Managed Services")
        } else {
            (2, "Block Hours")
        };
        let mut a = json!({
            "id": spec.id, "name": spec.name,
            "type": {"id": type_id, "name": type_name,
                     "_info": {"type_href": self.href(&format!("finance/agreements/types/{type_id}"))}},
            "company": self.company_ref(&c), "contact": self.contact_ref(&contact),
            "site": c["site"], "startDate": spec.start, "noEndingDateFlag": spec.end.is_none(),
            "cancelledFlag": spec.cancelled,
            "agreementStatus": if spec.cancelled { "Cancelled" } else { "Active" },
            "applicationUnits": if spec.recurring { "Amount" } else { "Hours" },
            "applicationLimit": if spec.recurring { 0.0 } else { 40.0 },
            "applicationUnlimitedFlag": spec.recurring, "oneTimeFlag": !spec.recurring,
            "billingCycle": {"id": 1, "name": "Monthly",
                             "_info": {"billingCycle_href": self.href("finance/billingCycles/1")}},
            "billOneTimeFlag": !spec.recurring,
            "billAmount": if spec.recurring { 0.0 } else { 4000.0 },
            "billTime": "Billable", "billExpenses": "Billable", "billProducts": "Billable",
            "taxable": false, "periodType": "Current", "autoInvoiceFlag": false,
            "billZeroAmountFlag": false, "restrictLocationFlag": false,
            "restrictDepartmentFlag": false, "customFields": [], "_info": info(),
        });
        if let Some(end) = spec.end {
            a["endDate"] = json!(end);
        }
        if spec.cancelled {
            a["dateCancelled"] = json!(SEED_TIME);
            a["reasonCancelled"] = json!("Replaced by the managed-security agreement");
        }
        self.put(AGREEMENTS, a);
    }

    /// The catalogue (`procurement/catalog`): the security seat, a backup seat and a retired
    /// item; and the additions: 25 security seats on Acme's agreement in force, and a backup
    /// seat on it that was cancelled.
    fn seed_billing(&mut self) {
        for (id, identifier, description, price, cost, inactive) in [
            (
                SECURITY_SEAT,
                SECURITY_SEAT_NAME,
                "Managed security seat (per user)",
                3.5,
                1.2,
                false,
            ),
            (
                BACKUP_SEAT,
                "Backup Seat",
                "Cloud backup seat (per user)",
                2.0,
                0.8,
                false,
            ),
            (
                33,
                "Legacy AV Seat",
                "Legacy antivirus seat (retired)",
                1.0,
                0.5,
                true,
            ),
        ] {
            let item = json!({
                "id": id, "identifier": identifier, "description": description,
                "customerDescription": description, "inactiveFlag": inactive,
                "subcategory": {"id": 1, "name": "Managed Services",
                                "_info": {"subcategory_href": self.href("procurement/subcategories/1")}},
                "type": {"id": 1, "name": "Service",
                         "_info": {"type_href": self.href("procurement/types/1")}},
                "category": {"id": 1, "name": "Services",
                             "_info": {"category_href": self.href("procurement/categories/1")}},
                "unitOfMeasure": {"id": 1, "name": "Each",
                                  "_info": {"unitOfMeasure_href": self.href("procurement/unitOfMeasures/1")}},
                "productClass": "Service", "price": price, "cost": cost, "taxableFlag": false,
                "recurringFlag": true, "recurringRevenue": price, "recurringCost": cost,
                "_info": info(),
            });
            self.put(CATALOG, item);
        }
        for (id, product, quantity, price, cost, cancelled) in [
            (SEEDED_ADDITION, SECURITY_SEAT, 25.0, 3.5, 1.2, None),
            (4, BACKUP_SEAT, 10.0, 2.0, 0.8, Some("2026-06-30T00:00:00Z")),
        ] {
            let Some(item) = self.get(CATALOG, product).cloned() else {
                continue;
            };
            let mut a = json!({
                "id": id, "product": super::catalog::item_ref(self, &item),
                "quantity": quantity, "lessIncluded": 0.0, "unitPrice": price, "unitCost": cost,
                "billCustomer": "Billable", "effectiveDate": "2026-01-01T00:00:00Z",
                "taxableFlag": false, "purchaseItemFlag": false, "specialOrderFlag": false,
                "agreementId": ACME_AGREEMENT, "description": item["description"],
                "billedQuantity": 0.0, "uom": "Each", "sequenceNumber": id as f64,
                "prorateCurrentPeriodFlag": false, "_info": info(),
            });
            if let Some(c) = cancelled {
                a["cancelledDate"] = json!(c);
            }
            self.put(ADDITIONS, a);
        }
    }

    fn seed_members(&mut self) {
        for (id, ident, first, last, inactive) in [
            (1, "admin1", "Morgan", "Admin", false),
            (2, "jdoe", "John", "Doe", false),
            (3, "asmith", "Alice", "Smith", false),
            (4, "PSABridge", "PSA", "Bridge", false),
            (5, "oldtech", "Former", "Technician", true),
        ] {
            self.put(
                MEMBERS,
                json!({"id": id, "identifier": ident, "firstName": first, "lastName": last,
                       "inactiveFlag": inactive, "licenseClass": if ident == "PSABridge" { "A" } else { "F" },
                       "officeEmail": format!("{}@demomsp.test", ident.to_lowercase()),
                       // Required by the `Member` model.
                       "hireDate": "2024-01-02T00:00:00Z", "defaultEmail": "Office",
                       "defaultPhone": "Office",
                       "securityRole": if ident == "admin1" {
                           json!({"id": 1, "name": "Admin", "_info": {}})
                       } else {
                           json!({"id": 63, "name": "Technician", "_info": {}})
                       },
                       "_info": info()}),
            );
        }
    }

    fn company(
        &self,
        id: i64,
        identifier: &str,
        name: &str,
        status: (i64, &str),
        kind: (i64, &str),
        deleted: bool,
    ) -> Value {
        let city = [
            "Springfield",
            "Riverton",
            "Lakewood",
            "Fairmont",
            "Georgetown",
        ][(id % 5) as usize];
        json!({
            "id": id,
            "identifier": identifier,
            "name": name,
            "status": {"id": status.0, "name": status.1, "_info": {"status_href": self.href(&format!("company/companies/statuses/{}", status.0))}},
            "addressLine1": format!("{} Main Street", 100 + id),
            "city": city,
            "state": "CA",
            "zip": format!("9{:04}", id),
            "country": {"id": 1, "identifier": "US", "name": "United States", "_info": {}},
            "phoneNumber": format!("555{:07}", id * 37),
            "website": format!("www.{}.test", identifier.to_lowercase()),
            "territory": {"id": 1, "name": "Main", "_info": {}},
            "market": {"id": 1, "name": "Business", "_info": {}},
            "types": [{"id": kind.0, "name": kind.1, "_info": {}}],
            "site": {"id": id * 10, "name": "Main", "_info": {"site_href": self.href(&format!("company/companies/{id}/sites/{}", id * 10))}},
            "deletedFlag": deleted,
            "leadFlag": false,
            "unsubscribeFlag": false,
            "isVendorFlag": false,
            "dateAcquired": SEED_TIME,
            "timeZoneSetup": {"id": 1, "name": "US Eastern", "_info": {}},
            "_info": info(),
        })
    }

    fn seed_companies(&mut self, config: &Config) {
        let owner = self.company(
            2,
            "DemoMSP",
            &config.company_name,
            (1, "Active"),
            (5, "Owner"),
            false,
        );
        self.put(COMPANIES, owner);
        let acme = self.company(
            ACME_ID,
            "AcmeLtd",
            "Acme Ltd",
            (1, "Active"),
            (1, "Client"),
            false,
        );
        self.put(COMPANIES, acme);
        // Generated clients: every prefix × trade pair once, in a seeded order.
        let mut names: Vec<String> = PREFIXES
            .iter()
            .flat_map(|p| TRADES.iter().map(move |t| format!("{p} {t}")))
            .collect();
        let mut rng = Rng(config.seed);
        for i in (1..names.len()).rev() {
            let j = rng.below(i + 1);
            names.swap(i, j);
        }
        let mut id = 3;
        for (n, name) in names.iter().take(145).enumerate() {
            if id == ACME_ID {
                id += 1;
            }
            let identifier: String = name.chars().filter(|c| c.is_alphanumeric()).collect();
            let (status, deleted) = match n {
                7 | 41 | 90 => ((2, "Inactive"), false),
                60 => ((3, "Not-Approved"), false),
                100 | 120 => ((1, "Active"), true),
                _ => ((1, "Active"), false),
            };
            let kind = if n % 17 == 5 {
                (2, "Prospect")
            } else {
                (1, "Client")
            };
            let c = self.company(id, &identifier, name, status, kind, deleted);
            self.put(COMPANIES, c);
            id += 1;
        }
        // An inactive namesake, so that a search for "acme" must leave it out.
        let old = self.company(
            id,
            "AcmeHoldings",
            "Acme Holdings (old)",
            (2, "Inactive"),
            (1, "Client"),
            false,
        );
        self.put(COMPANIES, old);
    }

    fn contact(
        &self,
        id: i64,
        company: &Value,
        first: &str,
        last: &str,
        email: &str,
        inactive: bool,
    ) -> Value {
        json!({
            "id": id,
            "firstName": first,
            "lastName": last,
            "company": self.company_ref(company),
            "site": company["site"],
            "inactiveFlag": inactive,
            "title": if id % 3 == 0 { "Office Manager" } else { "Staff" },
            "defaultPhoneType": "Direct",
            "defaultPhoneNbr": format!("555{:07}", id * 53),
            "communicationItems": [phone_item(id * 10 + 1, &format!("555{:07}", id * 53)), email_item(id * 10 + 2, email)],
            "types": [],
            "defaultFlag": false,
            "unsubscribeFlag": false,
            "_info": info(),
        })
    }

    fn seed_contacts(&mut self, config: &Config) {
        let Some(acme) = self.get(COMPANIES, ACME_ID).cloned() else {
            return;
        };
        let fixed = [
            (BOB_ID, "Bob", "Smith", "bob@acme.test", false),
            (57, "Sam", "Shared", "Shared@Acme.test", false),
            (58, "Sasha", "Shared", "shared@acme.test", false),
            (59, "Olga", "Oldfield", "old@acme.test", true),
            (60, "Ivan", "Inactive", "SHARED@acme.test", true),
            (61, "Carol", "Chen", "carol@acme.test", false),
        ];
        for (id, first, last, email, inactive) in fixed {
            let c = self.contact(id, &acme, first, last, email, inactive);
            self.put(CONTACTS, c);
        }
        let mut rng = Rng(config.seed ^ 0xC0417AC7);
        let mut id = 100;
        let companies: Vec<Value> = self
            .table(COMPANIES)
            .values()
            .filter(|c| id_of(c) != Some(ACME_ID))
            .cloned()
            .collect();
        for c in companies {
            let domain = format!("{}.test", text(&c, "identifier").to_lowercase());
            for k in 0..(1 + (id_of(&c).unwrap_or_default() % 3)) {
                let first = FIRST[rng.below(FIRST.len())];
                let last = LAST[rng.below(LAST.len())];
                let email = format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase());
                let contact = self.contact(id, &c, first, last, &email, k == 2);
                if k == 0 {
                    // The company's default contact, as ConnectWise names it.
                    let r = self.contact_ref(&contact);
                    if let Some(cid) = id_of(&c)
                        && let Some(Value::Object(a)) = self.tables_mut(COMPANIES).get_mut(&cid)
                    {
                        a.insert("defaultContact".into(), r);
                    }
                }
                self.put(CONTACTS, contact);
                id += 1;
            }
        }
        if let Some(bob) = self.get(CONTACTS, BOB_ID).cloned() {
            let r = self.contact_ref(&bob);
            if let Some(Value::Object(a)) = self.tables_mut(COMPANIES).get_mut(&ACME_ID) {
                a.insert("defaultContact".into(), r);
            }
        }
    }

    fn seed_service(&mut self) {
        let boards = [
            (HELP_DESK, "Help Desk", false, false),
            (SECURITY_BOARD, "Security Operations", false, false),
            (3, "Projects", false, true),
            (4, "Legacy Support", true, false),
        ];
        for (id, name, inactive, project) in boards {
            self.put(
                BOARDS,
                json!({"id": id, "name": name,
                       "location": {"id": 1, "name": "Main", "_info": {}},
                       "department": {"id": 1, "identifier": "Service", "name": "Service", "_info": {}},
                       "inactiveFlag": inactive, "projectFlag": project,
                       "sendToContactFlag": false, "sendToResourceFlag": false,
                       "showDependenciesFlag": false, "showEstimatesFlag": false,
                       "billTime": "NoDefault", "billExpense": "NoDefault", "billProduct": "NoDefault",
                       "autoAssignNewTicketsFlag": false, "problemSort": "Ascending",
                       "_info": info()}),
            );
        }
        // (board, name, closed, default, inactive)
        let statuses: &[(i64, &str, bool, bool, bool)] = &[
            (1, "New", false, true, false),
            (1, "In Progress", false, false, false),
            (1, "Waiting on Client", false, false, false),
            (1, "Scheduled", false, false, false),
            (1, "Resolved", true, false, false),
            (1, "Closed", true, false, false),
            (1, "Cancelled (old)", true, false, true),
            (2, "New Alert", false, true, false),
            (2, "Triage", false, false, false),
            (2, "Investigating", false, false, false),
            (2, "Contained", false, false, false),
            (2, "Closed - Remediated", true, false, false),
            (2, "Closed - False Positive", true, false, false),
            (3, "Planned", false, true, false),
            (3, "Completed", true, false, false),
            (4, "New", false, true, false),
            (4, "Closed", true, false, false),
        ];
        let mut sort = [0i64; 5];
        for (i, (board, name, closed, default, inactive)) in statuses.iter().enumerate() {
            let b = self.get(BOARDS, *board).cloned().unwrap_or_default();
            let so = sort[*board as usize];
            sort[*board as usize] += 1;
            let escalation = if *closed {
                "Resolved"
            } else if so == 0 {
                "NotResponded"
            } else {
                "Responded"
            };
            self.put(
                STATUSES,
                json!({"id": i as i64 + 1, "name": name, "board": self.board_ref(&b), "sortOrder": so,
                       "displayOnBoard": true, "inactive": inactive, "closedStatus": closed,
                       "timeEntryNotAllowed": false, "defaultFlag": default,
                       "escalationStatus": escalation, "customerPortalFlag": true,
                       "customerPortalDescription": name, "_info": info()}),
            );
        }
        // (board, name, default, inactive)
        let types: &[(i64, &str, bool, bool)] = &[
            (1, "Incident", true, false),
            (1, "Service Request", false, false),
            (1, "Problem", false, false),
            (1, "Old Type", false, true),
            (2, "Security Incident", true, false),
            (2, "Alert", false, false),
            (2, "Vulnerability", false, false),
            (4, "Legacy", true, false),
        ];
        for (i, (board, name, default, inactive)) in types.iter().enumerate() {
            let b = self.get(BOARDS, *board).cloned().unwrap_or_default();
            self.put(
                TYPES,
                json!({"id": i as i64 + 1, "name": name, "board": self.board_ref(&b),
                       "category": "Reactive", "defaultFlag": default, "inactiveFlag": inactive,
                       "requestForChangeFlag": false, "_info": info()}),
            );
        }
        // (board, name, type ids, inactive)
        let subtypes: &[(i64, &str, &[i64], bool)] = &[
            (1, "Email", &[1, 2], false),
            (1, "Network", &[1, 3], false),
            (1, "Workstation", &[1, 2, 3], false),
            (1, "Retired", &[1], true),
            (2, "Phishing", &[5, 6], false),
            (2, "Malware", &[5, 6], false),
            (2, "Account Compromise", &[5, 6], false),
            (2, "Suspicious Login", &[6], false),
            (2, "Missing Patch", &[7], false),
        ];
        for (i, (board, name, type_ids, inactive)) in subtypes.iter().enumerate() {
            let b = self.get(BOARDS, *board).cloned().unwrap_or_default();
            self.put(
                SUBTYPES,
                json!({"id": i as i64 + 1, "name": name, "board": self.board_ref(&b),
                       "inactiveFlag": inactive, "typeAssociationIds": type_ids,
                       "addAllTypesFlag": false, "removeAllTypesFlag": false, "_info": info()}),
            );
        }
        let items: &[(i64, &str, bool)] = &[
            (1, "Outage", false),
            (1, "Degraded", false),
            (1, "How-To", false),
            (1, "Old Item", true),
            (2, "Investigate", false),
            (2, "Contain", false),
            (2, "Remediate", false),
        ];
        for (i, (board, name, inactive)) in items.iter().enumerate() {
            let b = self.get(BOARDS, *board).cloned().unwrap_or_default();
            self.put(
                ITEMS,
                json!({"id": i as i64 + 1, "name": name, "board": self.board_ref(&b),
                       "inactiveFlag": inactive, "_info": info()}),
            );
        }
        let teams: &[(i64, &str, i64)] = &[
            (1, "Tier 1", 2),
            (1, "Tier 2", 3),
            (2, "SOC", 3),
            (2, "Incident Response", 2),
        ];
        for (i, (board, name, leader)) in teams.iter().enumerate() {
            let m = self.get(MEMBERS, *leader).cloned().unwrap_or_default();
            self.put(
                TEAMS,
                json!({"id": i as i64 + 1, "name": name, "teamLeader": self.member_ref(&m),
                       "members": [leader, 1], "defaultFlag": i % 2 == 0, "boardId": board,
                       "notifyOnTicketDelete": false, "roundRobinFlag": false, "_info": info()}),
            );
        }
        // Valid type/subtype combinations, as the board's association table lists them.
        let mut assoc_id = 1;
        let subs: Vec<Value> = self.table(SUBTYPES).values().cloned().collect();
        for s in subs {
            let board = board_of(&s).unwrap_or_default();
            let b = self.get(BOARDS, board).cloned().unwrap_or_default();
            for t in s["typeAssociationIds"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let Some(ty) = t.as_i64().and_then(|t| self.get(TYPES, t)).cloned() else {
                    continue;
                };
                self.put(
                    ASSOCIATIONS,
                    json!({"id": assoc_id, "type": self.child_ref(TYPES, &ty),
                           "subType": self.child_ref(SUBTYPES, &s), "board": self.board_ref(&b),
                           "_info": info()}),
                );
                assoc_id += 1;
            }
        }
        let priorities: &[(i64, &str, &str, &str, bool)] = &[
            (
                1,
                "Priority 1 - Emergency Response",
                "Critical",
                "Red",
                false,
            ),
            (2, "Priority 2 - Quick Response", "High", "Orange", false),
            (3, "Priority 3 - Normal Response", "Medium", "Yellow", true),
            (4, "Priority 4 - Schedule Maintenance", "Low", "Blue", false),
            (5, "Do Not Respond", "Low", "Gray", false),
        ];
        for (id, name, level, color, default) in priorities {
            self.put(
                PRIORITIES,
                json!({"id": id, "name": name, "level": level, "color": color, "sortOrder": id,
                       "defaultFlag": default, "_info": info()}),
            );
        }
        for (id, name, default) in [
            (1, "Email", false),
            (2, "Phone", true),
            (3, "Portal", false),
            (4, "Email Connector", false),
            (5, "Security Alert", false),
            (6, "Walk In", false),
        ] {
            self.put(
                SOURCES,
                json!({"id": id, "name": name, "defaultFlag": default, "enteredBy": "admin1",
                       "dateEntered": SEED_TIME, "_info": info()}),
            );
        }
    }

    /// A few tickets from before the integration (no `externalXRef`).
    fn seed_tickets(&mut self) {
        let seeds = [
            (1001, "Printer on 2nd floor offline", 1, 2, 1, false),
            (1002, "New starter laptop", 2, 6, 3, false),
            (1003, "Quarantined phishing e-mail", 12, 12, 5, true),
        ];
        for (id, summary, status, closed_status, ty, closed) in seeds {
            let status_id = if closed { closed_status } else { status };
            let Some(st) = self.get(STATUSES, status_id).cloned() else {
                continue;
            };
            let board = board_of(&st).unwrap_or(HELP_DESK);
            let b = self.get(BOARDS, board).cloned().unwrap_or_default();
            let acme = self.get(COMPANIES, ACME_ID).cloned().unwrap_or_default();
            let bob = self.get(CONTACTS, BOB_ID).cloned().unwrap_or_default();
            let prio = self.get(PRIORITIES, 3).cloned().unwrap_or_default();
            let ty = self.get(TYPES, ty).cloned().unwrap_or_default();
            let mut t = json!({
                "id": id, "summary": summary, "recordType": "ServiceTicket",
                "board": self.board_ref(&b), "status": self.child_ref(STATUSES, &st),
                "company": self.company_ref(&acme), "site": acme["site"], "siteName": "Main",
                "contact": self.contact_ref(&bob), "contactName": "Bob Smith",
                "contactEmailAddress": "bob@acme.test",
                "type": self.child_ref(TYPES, &ty), "priority": self.priority_ref(&prio),
                "severity": "Medium", "impact": "Medium", "closedFlag": closed,
                "customerUpdatedFlag": false, "automaticEmailContactFlag": false,
                "automaticEmailResourceFlag": false, "automaticEmailCcFlag": false,
                "approved": true, "isInSla": true, "hasChildTicket": false,
                "hasMergedChildTicketFlag": false, "billTime": "NoDefault",
                "billExpenses": "NoDefault", "billProducts": "NoDefault",
                "_info": info(),
            });
            if closed {
                t["closedDate"] = json!(SEED_TIME);
                t["closedBy"] = json!("jdoe");
            }
            self.put(TICKETS, t);
            let note_id = self.next_id(NOTES, 5001);
            self.put(
                NOTES,
                json!({"id": note_id, "ticketId": id, "text": format!("{summary}. Reported by phone."),
                       "detailDescriptionFlag": true, "internalAnalysisFlag": false,
                       "resolutionFlag": false, "issueFlag": false, "customerUpdatedFlag": false,
                       "processNotifications": false, "dateCreated": SEED_TIME, "createdBy": "jdoe",
                       "internalFlag": false, "externalFlag": true, INITIAL_DESCRIPTION: true,
                       "_info": info()}),
            );
        }
    }
}
