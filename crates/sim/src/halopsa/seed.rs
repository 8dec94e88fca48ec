//! The seed: a small MSP's Halo tenant. Clients (141 active, a few inactive, some with
//! several sites), their users, setup lists (statuses, ticket types, SLAs and priorities,
//! teams and agents, categories, urgency and impact lookups) and a few tickets.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::store::Db;

/// Ids of seed records that tests and fixtures name.
pub mod ids {
    pub const ACME: i64 = 12;
    /// Acme's contract in force, its expired one, and a contract of another client.
    pub const ACME_CONTRACT: i64 = 44;
    pub const ACME_EXPIRED_CONTRACT: i64 = 45;
    pub const OTHER_CLIENT_CONTRACT: i64 = 46;
    /// Contracts of Acme's two sites, which PSA Bridge lists as companies of their own.
    pub const ACME_HEAD_OFFICE_CONTRACT: i64 = 47;
    pub const ACME_WAREHOUSE_CONTRACT: i64 = 48;
    /// Catalogue items: the security seat billed per user, and backup storage.
    pub const ITEM_SECURITY_SEAT: i64 = 31;
    pub const ITEM_BACKUP: i64 = 32;
    /// Acme's recurring invoice on its contract (the seat and backup lines), and the other
    /// client's (backup only).
    pub const ACME_RECURRING_INVOICE: i64 = 900;
    pub const OTHER_CLIENT_RECURRING_INVOICE: i64 = 901;
    pub const ACME_HEAD_OFFICE: i64 = 3;
    pub const ACME_WAREHOUSE: i64 = 4;
    pub const ACME_OLD_DEPOT: i64 = 5;
    pub const ACME_HOLDINGS: i64 = 13;
    pub const BOB: i64 = 7;
    pub const SHARED_1: i64 = 8;
    pub const SHARED_2: i64 = 9;
    pub const INACTIVE_CONTACT: i64 = 10;
    pub const API_AGENT: i64 = 1;
    pub const STATUS_NEW: i64 = 1;
    pub const STATUS_CLOSED: i64 = 9;
    pub const TICKET_TYPE_SECURITY: i64 = 5;
    pub const SLA_STANDARD: i64 = 1;
    pub const PRIORITY_HIGH: i64 = 2;
    pub const TEAM_SECURITY: &str = "Security Operations";
    pub const AGENT_ERIN: i64 = 6;
    pub const CATEGORY_SECURITY: &str = "Security";
    pub const URGENCY_HIGH: i64 = 1;
    pub const IMPACT_SINGLE: i64 = 3;
    /// The asset type assets are pushed as (its key fields: name, serial number, IP address).
    pub const ASSET_TYPE_WORKSTATION: i64 = 20;
}

/// `TStatus.type` of closed statuses in the simulator. Halo does not document its codes
/// (0 open, 1 on hold, 2 closed here).
pub const STATUS_TYPE_CLOSED: i64 = 2;

const A: [&str; 12] = [
    "Northwind",
    "Bluebell",
    "Harbour",
    "Granite",
    "Kestrel",
    "Meadow",
    "Oakridge",
    "Pinnacle",
    "Riverside",
    "Silverline",
    "Thornbury",
    "Westgate",
];
const B: [&str; 13] = [
    "Dental",
    "Logistics",
    "Accountants",
    "Bakery",
    "Legal",
    "Engineering",
    "Architects",
    "Veterinary",
    "Opticians",
    "Surveyors",
    "Printing",
    "Travel",
    "Pharmacy",
];
const FIRST: [&str; 10] = [
    "Amy", "Ben", "Cara", "David", "Ella", "Finn", "Grace", "Harry", "Isla", "Jack",
];
const LAST: [&str; 10] = [
    "Walker", "Wright", "Hughes", "Patel", "Khan", "Lewis", "Roberts", "Young", "Morgan", "Ward",
];

fn client(id: i64, name: &str, inactive: bool, main_site: (i64, &str)) -> Value {
    json!({
        "id": id, "name": name, "inactive": inactive,
        "toplevel_id": 1, "toplevel_name": "Customers",
        "main_site_id": main_site.0, "main_site_name": main_site.1,
        "ref": name.split_whitespace().next().unwrap_or("").to_uppercase(),
        "accountsid": "", "colour": "#2a7ab0", "website": "",
        "open_ticket_count": 0,
    })
}

fn site(id: i64, client_id: i64, client_name: &str, name: &str, inactive: bool) -> Value {
    json!({
        "id": id, "name": name,
        // Typed number/double in Halo's Swagger: written as 12.0.
        "client_id": client_id as f64, "client_name": client_name,
        "clientsite_name": format!("{client_name}/{name}"),
        "inactive": inactive, "sla_id": 1, "phonenumber": "+44 20 7946 0000",
    })
}

#[allow(clippy::too_many_arguments)]
fn user(
    id: i64,
    first: &str,
    last: &str,
    email: &str,
    client_id: i64,
    client_name: &str,
    site: (i64, &str),
    inactive: bool,
) -> Value {
    json!({
        "id": id, "name": format!("{first} {last}").trim(), "firstname": first, "surname": last,
        "emailaddress": email, "email2": "", "email3": "",
        "client_id": client_id, "client_name": client_name,
        "site_id": site.0 as f64, "site_id_int": site.0, "site_name": site.1,
        "inactive": inactive, "isserviceaccount": false,
    })
}

fn slug(name: &str) -> String {
    name.to_lowercase()
        .split_whitespace()
        .filter(|w| *w != "ltd" && *w != "llp")
        .collect::<Vec<_>>()
        .join("")
}

/// The seeded tenant.
pub fn seed() -> Db {
    let mut db = Db::default();
    let now = super::now_text();

    // Setup lists.
    let statuses = [
        (1, "New", "NEW", 0),
        (2, "In Progress", "IP", 0),
        (3, "Action Required", "AR", 0),
        (4, "Waiting on Customer", "WOC", 1),
        (5, "On Hold", "HLD", 1),
        (8, "Resolved", "RES", STATUS_TYPE_CLOSED),
        (9, "Closed", "CLO", STATUS_TYPE_CLOSED),
        (10, "Cancelled", "CAN", STATUS_TYPE_CLOSED),
    ];
    db.setup.insert(
        "Status",
        statuses
            .iter()
            .enumerate()
            .map(|(i, (id, name, short, ty))| {
                json!({"id": id, "name": name, "shortname": short, "type": ty,
                       "sequence": i + 1, "colour": "#3f7fbf"})
            })
            .collect(),
    );
    db.setup.insert(
        "TicketType",
        [
            (1, "Incident", false),
            (2, "Service Request", false),
            (3, "Problem", false),
            (4, "Change Request", false),
            (5, "Security Alert", false),
            (6, "Legacy Fault", true),
        ]
        .iter()
        .map(|(id, name, inactive)| {
            json!({"id": id, "name": name, "use": "ticket", "group_id": 1, "group_name": "Support",
                   "default_sla": 1, "default_priority": 3, "inactive": inactive})
        })
        .collect(),
    );
    let prio = [(1, "Critical"), (2, "High"), (3, "Medium"), (4, "Low")];
    let slas = [
        (1, "Standard Response"),
        (2, "Priority Response"),
        (3, "Best Effort"),
    ];
    let mut policies = Vec::new();
    for (slaid, _) in slas {
        for (pid, name) in prio {
            let fix = [4, 8, 24, 72][pid as usize - 1];
            let respond = [1, 2, 4, 8][pid as usize - 1];
            policies.push(json!({
                "id": format!("5a1a0000-0000-4000-8000-{slaid:06}{pid:06}"),
                "slaid": slaid, "priorityid": pid, "name": name, "ishidden": false,
                "fixtime": fix, "responsetime": respond,
            }));
        }
    }
    policies.push(json!({"id": "5a1a0000-0000-4000-8000-000003000005", "slaid": 3, "priorityid": 5,
                         "name": "Scheduled (retired)", "ishidden": true, "fixtime": 0, "responsetime": 0}));
    db.setup.insert(
        "SLA",
        slas.iter()
            .map(|(id, name)| json!({"id": id, "name": name, "workday_id": 1, "workday_name": "Office hours"}))
            .collect(),
    );
    db.setup.insert("Priority", policies);
    let teams = [
        (1, "1st Line Support", false),
        (2, "2nd Line Support", false),
        (3, ids::TEAM_SECURITY, false),
        (4, "Projects", true),
    ];
    db.setup.insert(
        "Team",
        teams
            .iter()
            .map(|(id, name, inactive)| {
                json!({"id": id, "name": name, "department_id": 1, "department_name": "Service Desk",
                       "inactive": inactive})
            })
            .collect(),
    );
    let agents: [(i64, &str, &[i64], bool); 8] = [
        (ids::API_AGENT, "API Agent", &[], false),
        (2, "Alice Turner", &[1, 3], false),
        (3, "Ben Carter", &[1], false),
        (4, "Chloe Davies", &[2, 3], false),
        (5, "Dan Evans", &[2], false),
        (ids::AGENT_ERIN, "Erin Foster", &[3], false),
        (7, "Frank Green", &[1], true),
        (8, "Gina Hall", &[4], false),
    ];
    db.setup.insert(
        "Agent",
        agents
            .iter()
            .map(|(id, name, member, disabled)| {
                let team_name = |t: &i64| teams.iter().find(|x| x.0 == *t).map(|x| x.1).unwrap_or("");
                json!({
                    "id": id, "name": name,
                    "email": format!("{}@bridgewater-it.example", name.to_lowercase().replace(' ', ".")),
                    "team": member.first().map(team_name).unwrap_or(""),
                    "isdisabled": disabled, "is_api_agent": *id == ids::API_AGENT,
                    "teams": member.iter().map(|t| json!({"agent_id": id, "agent_name": name, "team_id": t,
                        "team_name": team_name(t), "department_id": 1})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    );
    db.setup.insert(
        "Category",
        [
            (1, "Security", 1),
            (2, "Security>Phishing", 1),
            (3, "Security>Malware", 1),
            (4, "Hardware", 1),
            (5, "Software", 1),
            (6, "Network", 1),
            (7, "Email", 2),
            (8, "Printing", 2),
        ]
        .iter()
        .map(|(id, value, ty)| {
            json!({"id": id, "value": value, "category_name": format!("Category {ty}"), "type_id": ty})
        })
        .collect(),
    );
    let mut lookups = vec![
        json!({"lookupid": 11, "id": 29, "name": "Urgency", "sequence": 1, "inactive": false}),
        json!({"lookupid": 11, "id": 30, "name": "Impact", "sequence": 2, "inactive": false}),
    ];
    for (lookupid, values) in [
        (
            29,
            [
                (1, "High", false),
                (2, "Medium", false),
                (3, "Low", false),
                (4, "Legacy Critical", true),
            ],
        ),
        (
            30,
            [
                (1, "Company Wide", false),
                (2, "Multiple Users", false),
                (3, "Single User", false),
                (4, "Unassessed (old)", true),
            ],
        ),
    ] {
        for (i, (id, name, inactive)) in values.iter().enumerate() {
            lookups.push(json!({"lookupid": lookupid, "id": id, "name": name, "sequence": i + 1, "inactive": inactive}));
        }
    }
    db.setup.insert("Lookup", lookups);
    db.setup.insert(
        "AssetType",
        [
            (ids::ASSET_TYPE_WORKSTATION, "Workstation", false),
            (21, "Server", false),
            (22, "Firewall", false),
            (23, "Typewriter", true),
        ]
        .iter()
        .map(|(id, name, inactive)| {
            json!({"id": id, "name": name, "inactive": inactive, "assetgroup_id": 1,
                "assetgroup_name": "Hardware",
                "keyfield_id": 1, "keyfield_name": "Device Name",
                "keyfield2_id": 2, "keyfield2_name": "Serial Number",
                "keyfield3_id": 3, "keyfield3_name": "IP Address"})
        })
        .collect(),
    );

    // Clients, sites, users.
    let acme = "Acme Ltd";
    db.put(
        "Client",
        ids::ACME,
        client(
            ids::ACME,
            acme,
            false,
            (ids::ACME_HEAD_OFFICE, "Head Office"),
        ),
    );
    db.put(
        "Site",
        ids::ACME_HEAD_OFFICE,
        site(ids::ACME_HEAD_OFFICE, ids::ACME, acme, "Head Office", false),
    );
    db.put(
        "Site",
        ids::ACME_WAREHOUSE,
        site(ids::ACME_WAREHOUSE, ids::ACME, acme, "Warehouse", false),
    );
    db.put(
        "Site",
        ids::ACME_OLD_DEPOT,
        site(ids::ACME_OLD_DEPOT, ids::ACME, acme, "Old Depot", true),
    );
    let ho = (ids::ACME_HEAD_OFFICE, "Head Office");
    let wh = (ids::ACME_WAREHOUSE, "Warehouse");
    for u in [
        user(6, "General", "User", "", ids::ACME, acme, ho, false),
        user(
            ids::BOB,
            "Bob",
            "Smith",
            "bob@acme.test",
            ids::ACME,
            acme,
            ho,
            false,
        ),
        user(
            ids::SHARED_1,
            "Sam",
            "Shared",
            "Shared@Acme.test",
            ids::ACME,
            acme,
            ho,
            false,
        ),
        user(
            ids::SHARED_2,
            "Sally",
            "Shared",
            "shared@acme.test",
            ids::ACME,
            acme,
            wh,
            false,
        ),
        user(
            ids::INACTIVE_CONTACT,
            "Olive",
            "Former",
            "olive@acme.test",
            ids::ACME,
            acme,
            ho,
            true,
        ),
        user(
            11,
            "Oscar",
            "Former",
            "shared@acme.test",
            ids::ACME,
            acme,
            wh,
            true,
        ),
    ] {
        let id = u["id"].as_i64().unwrap_or_default();
        db.put("Users", id, u);
    }
    let holdings = "Acme Holdings (dissolved)";
    db.put(
        "Client",
        ids::ACME_HOLDINGS,
        client(ids::ACME_HOLDINGS, holdings, true, (6, "Registered Office")),
    );
    db.put(
        "Site",
        6,
        site(6, ids::ACME_HOLDINGS, holdings, "Registered Office", false),
    );

    let mut site_id = 100;
    let mut user_id = 1000;
    for i in 0..144usize {
        let id = 20 + i as i64;
        let name = format!(
            "{} {} {}",
            A[i % A.len()],
            B[(i / A.len()) % B.len()],
            if i % 3 == 0 { "LLP" } else { "Ltd" }
        );
        let inactive = i % 37 == 5;
        let main = (site_id, "Head Office");
        db.put("Client", id, client(id, &name, inactive, main));
        let mut sites = vec![(site_id, "Head Office", false)];
        if i % 10 == 3 {
            sites.push((site_id + 1, "Branch Office", false));
        }
        if i % 20 == 3 {
            sites.push((site_id + 2, "Data Centre", false));
            sites.push((site_id + 3, "Closed Shop", true));
        }
        for (sid, sname, sinactive) in &sites {
            db.put("Site", *sid, site(*sid, id, &name, sname, *sinactive));
        }
        site_id += 10;
        for k in 0..(1 + i % 2) {
            let (f, l) = (FIRST[(i + k) % FIRST.len()], LAST[(i * 3 + k) % LAST.len()]);
            let email = format!(
                "{}.{}@{}.test",
                f.to_lowercase(),
                l.to_lowercase(),
                slug(&name)
            );
            let (sid, sname, _) = sites[k % sites.len()];
            db.put(
                "Users",
                user_id,
                user(user_id, f, l, &email, id, &name, (sid, sname), false),
            );
            user_id += 1;
        }
    }

    // A few tickets of Acme, one closed.
    for (id, summary, status, closed) in [
        (101, "Printer on the second floor is offline", 2, false),
        (102, "New starter: laptop and accounts", 9, true),
        (103, "VPN disconnects every hour", 1, false),
    ] {
        let mut t = json!({
            "summary": summary, "details": format!("{summary}. Reported by phone."),
            "client_id": ids::ACME, "site_id": ids::ACME_HEAD_OFFICE, "user_id": ids::BOB,
            "tickettype_id": 1, "status_id": status, "priority_id": 3, "sla_id": 1,
            "team": "1st Line Support", "agent_id": 3, "category_1": "Hardware",
            "urgency": 2, "impact": 3,
        });
        if let Some(m) = t.as_object_mut() {
            super::api::complete_ticket(&db, id, m, &now);
            m.insert("hasbeenclosed".into(), json!(closed));
            m.insert(
                "dateclosed".into(),
                if closed { json!(now) } else { Value::Null },
            );
        }
        db.put("Tickets", id, t);
        let action_id = db.next_id("Actions");
        db.put(
            "Actions",
            action_id,
            json!({"id": action_id, "ticket_id": id, "outcome": "Phone Call", "note": "Called the user.",
                   "hiddenfromuser": false, "datetime": now, "who": "Ben Carter", "who_type": 1,
                   "who_agentid": 3, "actionby_agent_id": 3, "action_systemid": 0}),
        );
    }
    db.next.insert("Tickets", 104);
    seed_contracts(&mut db);
    seed_recurring_billing(&mut db);
    mark_main_contacts(&mut db);
    db
}

/// Each site's main contact, as Halo names it (`Site.maincontact_id`, `Users.ismaincontact`):
/// its first active user with an email address.
fn mark_main_contacts(db: &mut Db) {
    let mut main: BTreeMap<i64, i64> = BTreeMap::new();
    for (id, u) in db.table("Users") {
        let site = u
            .get("site_id_int")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let usable = u.get("inactive") != Some(&json!(true))
            && u.get("emailaddress")
                .and_then(Value::as_str)
                .is_some_and(|e| !e.is_empty());
        if usable {
            main.entry(site).or_insert(*id);
        }
    }
    let users: Vec<(i64, Value)> = db
        .table("Users")
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    for (id, mut u) in users {
        let site = u
            .get("site_id_int")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        u["ismaincontact"] = json!(main.get(&site) == Some(&id));
        db.put("Users", id, u);
    }
    let sites: Vec<(i64, Value)> = db
        .table("Site")
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    for (id, mut site) in sites {
        site["maincontact_id"] = main.get(&id).map_or(Value::Null, |u| json!(u));
        db.put("Site", id, site);
    }
}

/// The main contact Halo names for a client: the lowest-id main contact of its sites.
pub fn main_contact_of_client(db: &Db, client: i64) -> Option<i64> {
    db.table("Users")
        .iter()
        .filter(|(_, u)| {
            u.get("client_id").and_then(Value::as_i64) == Some(client)
                && u.get("ismaincontact") == Some(&json!(true))
        })
        .map(|(id, _)| *id)
        .min()
}

/// Client contracts (`ContractHeader`): Acme's managed-security contract, its block-hours
/// contract that expired, one of another client (the first generated one, 20), and one for
/// each of Acme's active sites (`site_id`), so that every company PSA Bridge lists for Acme
/// (the client and its two sites) has a contract in force of its own.
fn seed_contracts(db: &mut Db) {
    let in_force = ("2026-01-01T00:00:00Z", "2030-12-31T00:00:00Z", true);
    for (id, client, site, reference, (start, end, active)) in [
        (ids::ACME_CONTRACT, ids::ACME, None, "MSA-ACME-01", in_force),
        (
            ids::ACME_EXPIRED_CONTRACT,
            ids::ACME,
            None,
            "BH-ACME-2025",
            ("2025-01-01T00:00:00Z", "2025-12-31T00:00:00Z", false),
        ),
        (
            ids::OTHER_CLIENT_CONTRACT,
            20,
            None,
            "MSA-0020-01",
            in_force,
        ),
        (
            ids::ACME_HEAD_OFFICE_CONTRACT,
            ids::ACME,
            Some((ids::ACME_HEAD_OFFICE, "Head Office")),
            "MSA-ACME-HO",
            in_force,
        ),
        (
            ids::ACME_WAREHOUSE_CONTRACT,
            ids::ACME,
            Some((ids::ACME_WAREHOUSE, "Warehouse")),
            "MSA-ACME-WH",
            in_force,
        ),
    ] {
        let client_name = db
            .get("Client", client)
            .map(|c| c["name"].clone())
            .unwrap_or(Value::Null);
        db.put(
            "ClientContract",
            id,
            json!({"id": id, "client_id": client, "client_name": client_name, "ref": reference,
                   "start_date": start, "end_date": end, "active": active, "expired": !active,
                   "contract_status": if active { "Active" } else { "Expired" },
                   "status": if active { 1 } else { 0 },
                   "site_id": site.map_or(0, |s| s.0), "site_name": site.map_or("", |s| s.1),
                   "billingperiod": 1, "periodchargeamount": 250.0, "sla_id": 1,
                   "contracttype_name": "Managed Services"}),
        );
    }
}

/// Catalogue items and recurring invoices (the lines of the reference notes' example): Acme's
/// contract bills 25 security seats and backup storage; the other client's contract bills
/// backup only; the site contracts have no recurring invoice yet.
fn seed_recurring_billing(db: &mut Db) {
    for (id, name, description, price, cost) in [
        (
            ids::ITEM_SECURITY_SEAT,
            "Managed Security Seat",
            "Security monitoring, per user and month",
            3.5,
            1.2,
        ),
        (
            ids::ITEM_BACKUP,
            "Cloud Backup (per TB)",
            "Offsite backup storage, per terabyte and month",
            40.0,
            18.0,
        ),
    ] {
        db.put(
            "Item",
            id,
            json!({"id": id, "name": name, "description": description, "isrecurringitem": true,
                   "baseprice": price, "costprice": cost, "recurringprice": price,
                   "recurringcost": cost, "datecreated": "2026-01-01T00:00:00Z"}),
        );
    }
    let line = |id: i64, invoice: i64, item: i64, qty: f64, contract: i64| {
        let it = db.get("Item", item).cloned().unwrap_or(Value::Null);
        let (price, cost) = (it["recurringprice"].clone(), it["recurringcost"].clone());
        json!({"id": id, "ihid": invoice, "_itemid": item, "item_code": it["name"],
               "item_shortdescription": it["name"], "qty_order": qty, "unit_price": price,
               "unit_cost": cost, "net_total": qty * price.as_f64().unwrap_or(0.0),
               "contract_id": contract})
    };
    let invoices = [
        (
            ids::ACME_RECURRING_INVOICE,
            ids::ACME,
            ids::ACME_CONTRACT,
            vec![
                line(
                    1,
                    ids::ACME_RECURRING_INVOICE,
                    ids::ITEM_SECURITY_SEAT,
                    25.0,
                    ids::ACME_CONTRACT,
                ),
                line(
                    2,
                    ids::ACME_RECURRING_INVOICE,
                    ids::ITEM_BACKUP,
                    2.0,
                    ids::ACME_CONTRACT,
                ),
            ],
        ),
        (
            ids::OTHER_CLIENT_RECURRING_INVOICE,
            20,
            ids::OTHER_CLIENT_CONTRACT,
            vec![line(
                3,
                ids::OTHER_CLIENT_RECURRING_INVOICE,
                ids::ITEM_BACKUP,
                1.0,
                ids::OTHER_CLIENT_CONTRACT,
            )],
        ),
    ];
    for (id, client, contract, lines) in invoices {
        let client_name = db
            .get("Client", client)
            .map(|c| c["name"].clone())
            .unwrap_or(Value::Null);
        let contract_ref = db
            .get("ClientContract", contract)
            .map(|c| c["ref"].clone())
            .unwrap_or(Value::Null);
        db.put(
            "RecurringInvoice",
            id,
            json!({"id": id, "client_id": client, "client_name": client_name,
                   "contract_id": contract, "contract_ref": contract_ref,
                   "is_recurring_invoice": true, "nextcreationdate": "2027-01-01T00:00:00Z",
                   "date_created": "2026-01-01T00:00:00Z", "lines": lines}),
        );
    }
}

/// The number of companies PSA Bridge lists in total for this data: every active client,
/// and, for active clients with more than one active site, each active site.
pub fn active_companies(db: &Db) -> usize {
    let mut sites: BTreeMap<i64, usize> = BTreeMap::new();
    for s in db.table("Site").values() {
        if !s["inactive"].as_bool().unwrap_or(false)
            && let Some(c) = s["client_id"].as_f64()
        {
            *sites.entry(c as i64).or_default() += 1;
        }
    }
    db.table("Client")
        .values()
        .filter(|c| !c["inactive"].as_bool().unwrap_or(false))
        .map(|c| {
            let n = c["id"]
                .as_i64()
                .and_then(|id| sites.get(&id))
                .copied()
                .unwrap_or(0);
            1 + if n > 1 { n } else { 0 }
        })
        .sum()
}
