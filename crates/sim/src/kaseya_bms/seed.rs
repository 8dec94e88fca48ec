//! The seed: an MSP tenant with Acme Ltd (the fixtures' company), 140 active customer
//! accounts in all (so that 50-record pages take three requests), a few inactive ones, contacts
//! (two sharing an address in different case, one inactive), realistic lookups with some
//! inactive values, a few tickets, and for billing: a recurring-services contract for each of
//! the first three customers (each carrying the seat service at 0 units), Acme's lapsed
//! Block Hours contract, and a small finance catalogue.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use super::Config;
use super::billing::RECURRING_SERVICES;
use super::store::{
    Account, CatalogueService, Contact, ContractRec, ContractServiceEntry, Db, Item, Location,
    Note, Status, SubIssueType, Ticket,
};

fn item(id: i64, name: &str) -> Item {
    Item {
        id,
        name: name.into(),
        is_active: true,
        is_default: false,
    }
}

fn inactive(id: i64, name: &str) -> Item {
    Item {
        is_active: false,
        ..item(id, name)
    }
}

fn default(id: i64, name: &str) -> Item {
    Item {
        is_default: true,
        ..item(id, name)
    }
}

fn status(id: i64, name: &str, type_id: i64, order: i64, active: bool, color: &str) -> Status {
    Status {
        id,
        name: name.into(),
        type_id,
        is_system: matches!(id, 1 | 6),
        order,
        is_active: active,
        color: color.into(),
    }
}

const ACME: i64 = 12;
const ACME_MAIN: i64 = 34;
/// Acme's contract in force (45 is its lapsed one); 46 belongs to account 100 and 47 to
/// account 101, so that the first three customers each have a recurring-services contract.
const ACME_CONTRACT: i64 = 44;
const ACME_OLD_CONTRACT: i64 = 45;
const OTHER_ACCOUNT_CONTRACT: i64 = 46;
const THIRD_ACCOUNT_CONTRACT: i64 = 47;
/// The finance catalogue: the seat service billed on Acme's contract, another active one and
/// a retired one.
const SERVICE_SECURITY_SEAT: i64 = 77;
const SERVICE_DEVICE_MONITORING: i64 = 78;
const SERVICE_RETIRED: i64 = 79;
/// The seat service's entry on Acme's contract (then on 46's and 47's).
const FIRST_SEAT_ENTRY: i64 = 9001;

/// A contract's header: who it belongs to, its kind and whether it is in force.
struct ContractSpec<'a> {
    id: i64,
    account_id: i64,
    name: &'a str,
    contract_type: &'a str,
    is_default: bool,
    is_active: bool,
    end_date: Option<&'a str>,
}

fn contract(c: ContractSpec<'_>) -> ContractRec {
    ContractRec {
        id: c.id,
        account_id: c.account_id,
        name: c.name.into(),
        is_default: c.is_default,
        sla_id: Some(1),
        is_active: c.is_active,
        end_date: c.end_date.map(str::to_string),
        contract_type: c.contract_type.into(),
        start_date: "2025-01-01T00:00:00Z".into(),
        billing_cycle: "Monthly".into(),
        number: format!("CN-{:04}", c.id),
    }
}

fn catalogue_service(id: i64, name: &str, cost: f64, price: f64, active: bool) -> CatalogueService {
    CatalogueService {
        id,
        name: name.into(),
        description: Some(format!("{name}, billed monthly per unit")),
        unit_cost: cost,
        unit_price: price,
        is_active: active,
        is_taxable: false,
        created_on: "2025-01-01T00:00:00Z".into(),
        modified_on: "2025-01-01T00:00:00Z".into(),
    }
}

const FIRST: &[&str] = &[
    "Northwind",
    "Bluebird",
    "Cedar",
    "Harbor",
    "Summit",
    "Redwood",
    "Silverline",
    "Granite",
    "Oakridge",
    "Lakeside",
    "Pinecrest",
    "Brightwater",
    "Ironbridge",
    "Meadow",
    "Falcon",
    "Horizon",
    "Keystone",
    "Riverbend",
    "Stonegate",
    "Willow",
    "Copperfield",
    "Evergreen",
    "Juniper",
    "Maple",
];
const SECOND: &[&str] = &[
    "Dental",
    "Logistics",
    "Accounting",
    "Legal",
    "Engineering",
    "Veterinary",
    "Realty",
    "Manufacturing",
    "Architects",
    "Insurance",
    "Clinic",
    "Foods",
];
const SUFFIX: &[&str] = &["Ltd", "LLC", "Inc", "Group", "Partners", "& Co"];
const CITIES: &[&str] = &[
    "Springfield",
    "Riverton",
    "Lakewood",
    "Fairview",
    "Georgetown",
    "Salem",
    "Madison",
];
const GIVEN: &[&str] = &[
    "Anna", "Ben", "Carla", "David", "Elena", "Frank", "Grace", "Hugo", "Iris", "Jack", "Kim",
    "Liam", "Maya", "Noah",
];
const FAMILY: &[&str] = &[
    "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Khan",
    "Lopez", "Murphy",
];

fn slug(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

pub fn seeded(config: &Config) -> Db {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let created = "2025-03-04T09:00:00Z".to_string();
    let mut accounts = vec![Account {
        id: ACME,
        code: "ACME".into(),
        name: "Acme Ltd".into(),
        type_id: 1,
        type_name: "Customer".into(),
        is_active: true,
        created_on: created.clone(),
        locations: vec![
            Location {
                id: ACME_MAIN,
                name: "Head Office".into(),
                is_main: true,
                is_active: true,
                city: "Springfield".into(),
            },
            Location {
                id: 35,
                name: "Warehouse".into(),
                is_main: false,
                is_active: true,
                city: "Riverton".into(),
            },
        ],
    }];
    // Generated customers: unique names from word combinations, in a seeded order.
    let mut names: Vec<String> = FIRST
        .iter()
        .flat_map(|a| SECOND.iter().map(move |b| format!("{a} {b}")))
        .collect();
    names.shuffle(&mut rng);
    let inactive_names = [
        "Acme Old Holdings",
        "Defunct Widgets Ltd",
        "Closed Bakery LLC",
        "Former Client Inc",
    ];
    let total = config.extra_active_companies + inactive_names.len();
    for i in 0..total {
        let active = i < config.extra_active_companies;
        let name = if active {
            let base = &names[i % names.len()];
            let suffix = SUFFIX[rng.random_range(0..SUFFIX.len())];
            if i < names.len() {
                format!("{base} {suffix}")
            } else {
                format!("{base} {suffix} {}", i / names.len() + 1)
            }
        } else {
            inactive_names[i - config.extra_active_companies].to_string()
        };

        let city = CITIES[rng.random_range(0..CITIES.len())];
        accounts.push(Account {
            id: 100 + i as i64,
            code: slug(&name)
                .chars()
                .take(8)
                .collect::<String>()
                .to_ascii_uppercase(),
            name,
            type_id: if i % 9 == 4 { 2 } else { 1 },
            type_name: if i % 9 == 4 { "Prospect" } else { "Customer" }.into(),
            is_active: active,
            created_on: created.clone(),
            locations: vec![Location {
                id: 1001 + i as i64,
                name: format!("{city} Office"),
                is_main: true,
                is_active: true,
                city: city.into(),
            }],
        });
    }

    let contact = |id: i64,
                   account_id: i64,
                   location_id: i64,
                   first: &str,
                   last: &str,
                   email: &str,
                   active: bool| Contact {
        id,
        account_id,
        location_id,
        first_name: first.into(),
        last_name: last.into(),
        email: email.into(),
        job_title: "Staff".into(),
        is_active: active,
        is_poc: false,
    };
    let mut contacts = vec![
        Contact {
            job_title: "IT Manager".into(),
            is_poc: true,
            ..contact(56, ACME, ACME_MAIN, "Bob", "Smith", "bob@acme.test", true)
        },
        contact(
            57,
            ACME,
            ACME_MAIN,
            "Sam",
            "Shared",
            "Shared@Acme.test",
            true,
        ),
        contact(58, ACME, 35, "Sasha", "Shared", "shared@acme.test", true),
        contact(
            59,
            ACME,
            ACME_MAIN,
            "Olivia",
            "Gone",
            "SHARED@acme.test",
            false,
        ),
        contact(
            60,
            ACME,
            ACME_MAIN,
            "Alice",
            "Jones",
            "alice@acme.test",
            true,
        ),
        contact(
            61,
            ACME,
            ACME_MAIN,
            "Former",
            "Employee",
            "former@acme.test",
            false,
        ),
    ];
    let mut next_contact = 200;
    for a in accounts.iter().skip(1) {
        let n = 1 + (a.id % 3) as usize;
        let domain = format!(
            "{}.example",
            slug(&a.name).chars().take(16).collect::<String>()
        );
        for _ in 0..n {
            let g = GIVEN[rng.random_range(0..GIVEN.len())];
            let f = FAMILY[rng.random_range(0..FAMILY.len())];
            contacts.push(contact(
                next_contact,
                a.id,
                a.locations[0].id,
                g,
                f,
                &format!(
                    "{}.{}{}@{domain}",
                    g.to_ascii_lowercase(),
                    f.to_ascii_lowercase(),
                    next_contact
                ),
                true,
            ));
            next_contact += 1;
        }
    }
    // Another company's contact with the shared address: a search must stay in its company.
    let other = accounts[1].clone();
    contacts.push(contact(
        next_contact,
        other.id,
        other.locations[0].id,
        "Shay",
        "Elsewhere",
        "shared@acme.test",
        true,
    ));

    let mut tables = BTreeMap::new();
    let mut table = |name: &str, items: Vec<Item>| {
        tables.insert(name.to_ascii_lowercase(), (name.to_string(), items));
    };
    table(
        &config.ticket_type_table,
        vec![
            item(1, "Service Request"),
            default(2, "Incident"),
            item(3, "Problem"),
            item(4, "Change Request"),
            item(5, "Alert"),
            inactive(6, "Legacy Request"),
        ],
    );
    if config.serve_source_table {
        table(
            &config.source_table,
            [
                "Client Portal",
                "Phone",
                "In Person",
                "On Site",
                "Email",
                "Monitoring System",
                "Voice Mail",
                "Verbal",
                "Other",
                "Recurring",
            ]
            .iter()
            .enumerate()
            .map(|(i, n)| item(i as i64, n))
            .collect(),
        );
    }
    table(
        &config.note_type_table,
        vec![
            default(1, "General"),
            item(2, "Customer Update"),
            item(3, "Escalation"),
            inactive(4, "Legacy Note"),
        ],
    );
    table(
        "ContactType",
        vec![item(1, "Primary"), item(2, "Billing"), item(3, "Technical")],
    );

    let mut db = Db {
        tenant_id: 4711,
        tenant_name: config.tenant.clone(),
        accounts,
        contacts,
        queues: vec![
            item(1, "Service Desk"),
            item(2, "Network Operations"),
            item(3, "Security"),
            item(4, "Projects"),
            inactive(5, "Old Helpdesk"),
        ],
        statuses: vec![
            status(1, "New", 1, 1, true, "#5BC0DE"),
            status(2, "In Progress", 2, 2, true, "#337AB7"),
            status(3, "Waiting Customer", 2, 3, true, "#F0AD4E"),
            status(4, "Waiting Vendor", 2, 4, true, "#F0AD4E"),
            status(5, "Escalated", 2, 5, true, "#D9534F"),
            status(6, "Completed", 3, 6, true, "#5CB85C"),
            status(7, "Closed - No Action", 3, 7, true, "#777777"),
            status(8, "On Hold (retired)", 2, 8, false, "#999999"),
        ],
        priorities: vec![
            item(1, "Critical"),
            item(2, "High"),
            default(3, "Medium"),
            item(4, "Low"),
        ],
        issue_types: vec![
            item(7, "Security"),
            item(8, "Network"),
            item(9, "Hardware"),
            item(10, "Software"),
            inactive(11, "Retired Category"),
        ],
        sub_issue_types: vec![
            SubIssueType {
                id: 19,
                name: "Suspicious Sign-in".into(),
                issue_type_ids: vec![7],
            },
            SubIssueType {
                id: 20,
                name: "Malware".into(),
                issue_type_ids: vec![7],
            },
            SubIssueType {
                id: 21,
                name: "Phishing".into(),
                issue_type_ids: vec![7],
            },
            SubIssueType {
                id: 22,
                name: "Outage".into(),
                issue_type_ids: vec![8],
            },
            SubIssueType {
                id: 23,
                name: "Slowness".into(),
                issue_type_ids: vec![8],
            },
            SubIssueType {
                id: 24,
                name: "Disk Failure".into(),
                issue_type_ids: vec![9],
            },
            SubIssueType {
                id: 25,
                name: "Installation".into(),
                issue_type_ids: vec![10],
            },
            SubIssueType {
                id: 30,
                name: "Other".into(),
                issue_type_ids: vec![7, 8, 9, 10],
            },
        ],
        slas: vec![
            item(1, "Gold"),
            default(2, "Silver"),
            item(3, "Bronze"),
            inactive(4, "Legacy SLA"),
        ],
        work_types: vec![item(1, "Remote Support"), item(2, "Onsite Support")],
        contracts: vec![
            contract(ContractSpec {
                id: ACME_CONTRACT,
                account_id: ACME,
                name: "Managed Security",
                contract_type: RECURRING_SERVICES,
                is_default: true,
                is_active: true,
                end_date: Some("2030-12-31T00:00:00Z"),
            }),
            contract(ContractSpec {
                id: ACME_OLD_CONTRACT,
                account_id: ACME,
                name: "Block Hours 2025",
                contract_type: "Block Hours",
                is_default: false,
                is_active: false,
                end_date: Some("2025-12-31T00:00:00Z"),
            }),
            contract(ContractSpec {
                id: OTHER_ACCOUNT_CONTRACT,
                account_id: 100,
                name: "Managed Services",
                contract_type: RECURRING_SERVICES,
                is_default: true,
                is_active: true,
                end_date: Some("2030-12-31T00:00:00Z"),
            }),
            contract(ContractSpec {
                id: THIRD_ACCOUNT_CONTRACT,
                account_id: 101,
                name: "Managed Security",
                contract_type: RECURRING_SERVICES,
                is_default: true,
                is_active: true,
                end_date: Some("2030-12-31T00:00:00Z"),
            }),
        ],
        services: vec![
            catalogue_service(
                SERVICE_SECURITY_SEAT,
                "Managed Security Seat",
                3.5,
                6.0,
                true,
            ),
            catalogue_service(
                SERVICE_DEVICE_MONITORING,
                "Device Monitoring",
                1.0,
                2.5,
                true,
            ),
            catalogue_service(SERVICE_RETIRED, "Legacy Antivirus Seat", 1.0, 2.0, false),
        ],
        // The seat service on each recurring contract, at zero units.
        contract_services: [
            ACME_CONTRACT,
            OTHER_ACCOUNT_CONTRACT,
            THIRD_ACCOUNT_CONTRACT,
        ]
        .iter()
        .enumerate()
        .map(|(i, contract)| ContractServiceEntry {
            id: FIRST_SEAT_ENTRY + i as i64,
            contract_id: *contract,
            service_id: SERVICE_SECURITY_SEAT,
            service_name: "Managed Security Seat".into(),
            description: None,
            units: 0,
            unit_cost: 3.5,
            unit_price: 6.0,
            effective_date: "2025-01-01T00:00:00Z".into(),
            sort_order: 1,
            created_on: "2025-01-01T00:00:00Z".into(),
            modified_on: None,
        })
        .collect(),
        next_service_id: 80,
        next_contract_service_id: FIRST_SEAT_ENTRY + 3,
        tables,
        tickets: BTreeMap::new(),
        next_ticket_id: 1001,
        next_note_id: 5001,
        ticket_type_table: config.ticket_type_table.clone(),
        source_table: config.source_table.clone(),
        note_type_table: config.note_type_table.clone(),
        default_close_status: 6,
        reopen_status: 2,
        fixtures: json!(null),
    };

    // A few tickets already there.
    for (title, status, completed) in [
        ("Printer offline on 2nd floor", 2, None),
        ("New starter laptop", 1, None),
        ("VPN drops every hour", 6, Some("2026-01-12T16:20:00Z")),
    ] {
        let id = db.next_ticket_id;
        db.next_ticket_id += 1;
        let note_id = db.next_note_id;
        db.next_note_id += 1;
        db.tickets.insert(
            id,
            Ticket {
                id,
                number: format!("T20260110.{:04}", id - 1000),
                title: title.into(),
                details: format!("{title}. Reported by phone."),
                account_id: ACME,
                location_id: ACME_MAIN,
                contact_id: Some(56),
                queue_id: Some(1),
                status_id: status,
                priority_id: 3,
                type_id: 1,
                issue_type_id: Some(9),
                sub_issue_type_id: Some(30),
                source_id: 1,
                sla_id: Some(2),
                contract_id: None,
                assignee_id: None,
                work_type_id: None,
                open_date: "2026-01-10T08:30:00Z".into(),
                due_date: None,
                completed_date: completed.map(str::to_string),
                reopened_date: None,
                created_on: "2026-01-10T08:30:00Z".into(),
                modified_on: "2026-01-10T08:30:00Z".into(),
                last_status_update: "2026-01-10T08:30:00Z".into(),
                created_by_name: "Tess Technician".into(),
                notes: vec![Note {
                    id: note_id,
                    details: "Called the user back.".into(),
                    is_internal: true,
                    type_id: 1,
                    note_date: "2026-01-10T09:00:00Z".into(),
                    created_by_name: "Tess Technician".into(),
                }],
            },
        );
    }

    let active_companies = db.accounts.iter().filter(|a| a.is_active).count();
    db.fixtures = json!({
        "search": "acme",
        "company_id": ACME.to_string(),
        "company_name": "Acme Ltd",
        "location_id": ACME_MAIN.to_string(),
        "active_companies": active_companies,
        "contact_email": "bob@acme.test",
        "contact_id": "56",
        // Kaseya BMS names no primary contact of an account.
        "primary_contact_id": null,
        "duplicate_email": "shared@acme.test",
        "duplicate_contact_ids": ["57", "58"],
        "missing_email": "nobody@acme.test",
        "inactive_contact_id": "59",
        "defaults": {
            "queue": "3",
            "status": "1",
            "priority": "2",
            "ticket_type": "2",
            "issue_type": "7",
            "sub_issue_type": "19",
            "source": "5",
            "sla": "1",
        },
        "close_status": "6",
        "contracts": db.contracts.iter().filter(|c| c.account_id == ACME).map(|c| json!({
            "id": c.id.to_string(), "name": c.name, "active": c.is_active,
        })).collect::<Vec<_>>(),
        "contract_id": ACME_CONTRACT.to_string(),
        "other_company_contract_id": OTHER_ACCOUNT_CONTRACT.to_string(),
        "unknown_contract_id": "4999",
        "billing": {
            "service_id": SERVICE_SECURITY_SEAT.to_string(),
            "service_name": "Managed Security Seat",
            "other_service_id": SERVICE_DEVICE_MONITORING.to_string(),
            "inactive_contract_id": ACME_OLD_CONTRACT.to_string(),
            "third_company_contract_id": THIRD_ACCOUNT_CONTRACT.to_string(),
        },
        "credentials": {"tenant": config.tenant, "username": config.username},
    });
    db
}
