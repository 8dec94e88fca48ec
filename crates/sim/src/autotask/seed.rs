//! The seed data: a small, realistic and fully deterministic MSP tenant.
//!
//! Deterministic (fixed ids and timestamps) so that tests, demos and vendors' CI can name
//! records by id and compare runs. The crate README lists what is here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::model::ids;

/// When the seeded records were "created".
pub const SEED_TIME: &str = "2026-01-05T09:00:00Z";

struct SeedCompany {
    id: i64,
    name: &'static str,
    domain: &'static str,
    phone: &'static str,
    city: &'static str,
    state: &'static str,
    /// (first, last, active)
    contacts: &'static [(&'static str, &'static str, bool)],
}

const COMPANIES: &[SeedCompany] = &[
    SeedCompany {
        id: 29684101,
        name: "Acme Dental Group",
        domain: "acmedental.example",
        phone: "312-555-0141",
        city: "Chicago",
        state: "IL",
        contacts: &[
            ("Maria", "Lopez", true),
            ("James", "Chen", true),
            ("Front", "Desk", true),
            ("Reception", "Desk", true),
            ("Old", "Manager", false),
        ],
    },
    SeedCompany {
        id: 29684102,
        name: "Blue Harbor Legal LLP",
        domain: "blueharborlegal.example",
        phone: "617-555-0102",
        city: "Boston",
        state: "MA",
        contacts: &[
            ("Olivia", "Grant", true),
            ("Samuel", "Okafor", true),
            ("Priya", "Nair", true),
        ],
    },
    SeedCompany {
        id: 29684103,
        name: "Cedar Ridge Logistics",
        domain: "cedarridge.example",
        phone: "503-555-0103",
        city: "Portland",
        state: "OR",
        contacts: &[
            ("Tom", "Becker", true),
            ("Ana", "Souza", true),
            ("Liam", "Walsh", true),
            ("Grace", "Kim", true),
        ],
    },
    SeedCompany {
        id: 29684104,
        name: "Dunmore Veterinary Clinic",
        domain: "dunmorevet.example",
        phone: "570-555-0104",
        city: "Scranton",
        state: "PA",
        contacts: &[
            ("Helen", "Dunmore", true),
            ("Raj", "Patel", true),
            ("Nina", "Ivanova", true),
        ],
    },
    SeedCompany {
        id: 29684105,
        name: "Evergreen Accounting",
        domain: "evergreencpa.example",
        phone: "206-555-0105",
        city: "Seattle",
        state: "WA",
        contacts: &[
            ("Paul", "Fischer", true),
            ("Chloe", "Martin", true),
            ("Omar", "Haddad", true),
            ("Eva", "Novak", false),
        ],
    },
    SeedCompany {
        id: 29684106,
        name: "Foxglove Architects",
        domain: "foxglove.example",
        phone: "512-555-0106",
        city: "Austin",
        state: "TX",
        contacts: &[
            ("Ines", "Moreau", true),
            ("Kenji", "Sato", true),
            ("Ruth", "Adler", true),
        ],
    },
    SeedCompany {
        id: 29684107,
        name: "Granite Peak Manufacturing",
        domain: "granitepeak.example",
        phone: "303-555-0107",
        city: "Denver",
        state: "CO",
        contacts: &[
            ("Victor", "Hale", true),
            ("Sofia", "Rossi", true),
            ("Dmitri", "Orlov", true),
            ("Amy", "Stone", true),
            ("Ben", "Carter", true),
            ("Lena", "Berg", false),
        ],
    },
    SeedCompany {
        id: 29684108,
        name: "Harborview Property Management",
        domain: "harborview.example",
        phone: "619-555-0108",
        city: "San Diego",
        state: "CA",
        contacts: &[
            ("Isaac", "Moss", true),
            ("Julia", "Reyes", true),
            ("Mark", "Doyle", true),
        ],
    },
];

/// The id the first created record gets is one more than this.
pub const FIRST_FREE_ID: i64 = 31_000_000;

/// The seed records, per entity name (fields not listed here are filled with nulls by the store).
pub fn seed() -> BTreeMap<&'static str, BTreeMap<i64, Value>> {
    let now = SEED_TIME;
    let mut db: BTreeMap<&'static str, BTreeMap<i64, Value>> = BTreeMap::new();
    let company = |id: i64, name: &str, web: &str, phone: &str, city: &str, state: &str| {
        json!({"id": id, "companyName": name, "companyType": 1, "ownerResourceID": ids::API_RESOURCE,
               "phone": phone, "isActive": true, "companyNumber": format!("C{:05}", id % 100000),
               "address1": format!("{} Main Street", 100 + id % 100), "city": city, "state": state,
               "postalCode": "60601", "countryID": 237, "webAddress": web, "createDate": now,
               "createdByResourceID": ids::API_RESOURCE, "lastActivityDate": now,
               "lastTrackedModifiedDateTime": now})
    };
    let companies = db.entry("Companies").or_default();
    let mut own = company(
        ids::OWN_COMPANY,
        "Bridgewater IT Services",
        "www.bridgewater-it.example",
        "312-555-0100",
        "Chicago",
        "IL",
    );
    own["companyType"] = json!(7);
    companies.insert(ids::OWN_COMPANY, own);
    for c in COMPANIES {
        let mut rec = company(
            c.id,
            c.name,
            &format!("www.{}", c.domain),
            c.phone,
            c.city,
            c.state,
        );
        if c.id == ids::ACME {
            rec["userDefinedFields"] = json!([{"name": "Customer Ranking", "value": "Gold"}]);
        }
        companies.insert(c.id, rec);
    }
    companies.insert(
        ids::CATCH_ALL_COMPANY,
        company(
            ids::CATCH_ALL_COMPANY,
            "Default Customer",
            "",
            "312-555-0199",
            "Chicago",
            "IL",
        ),
    );
    let mut inactive = company(
        29684190,
        "Closed Account Co",
        "www.closedaccount.example",
        "312-555-0190",
        "Chicago",
        "IL",
    );
    inactive["isActive"] = json!(false);
    companies.insert(29684190, inactive);

    let contacts = db.entry("Contacts").or_default();
    let contact = |id: i64, company: i64, first: &str, last: &str, email: &str, active: bool| {
        json!({"id": id, "companyID": company, "firstName": first, "lastName": last,
               "isActive": if active { 1 } else { 0 }, "emailAddress": email, "phone": "555-0100",
               "primaryContact": false, "createDate": now, "lastActivityDate": now, "lastModifiedDate": now})
    };
    let mut next = 30684101i64;
    for c in COMPANIES {
        for (i, (first, last, active)) in c.contacts.iter().enumerate() {
            // Two contacts of Acme share the front desk's address, as real data does.
            let email = if *first == "Reception" {
                format!("front.desk@{}", c.domain)
            } else {
                format!(
                    "{}.{}@{}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    c.domain
                )
            };
            let mut rec = contact(next, c.id, first, last, &email, *active);
            if i == 0 {
                rec["primaryContact"] = json!(true);
            }
            contacts.insert(next, rec);
            next += 1;
        }
    }
    contacts.insert(
        30684100,
        contact(
            30684100,
            ids::OWN_COMPANY,
            "Service",
            "Desk",
            "servicedesk@bridgewater-it.example",
            true,
        ),
    );
    contacts.insert(
        ids::CATCH_ALL_CONTACT,
        contact(
            ids::CATCH_ALL_CONTACT,
            ids::CATCH_ALL_COMPANY,
            "Default",
            "Contact",
            "alerts@bridgewater-it.example",
            true,
        ),
    );

    let resources = db.entry("Resources").or_default();
    for (id, first, last, user, kind, active) in [
        (
            ids::API_RESOURCE,
            "PSA Bridge",
            "API User",
            "psabridge-api",
            "Employee",
            true,
        ),
        (
            ids::TECHNICIAN,
            "Pamela",
            "Pierce",
            "ppierce",
            "Employee",
            true,
        ),
        (29682887, "Devon", "Walsh", "dwalsh", "Employee", true),
        (29682888, "Sam", "Ortiz", "sortiz", "Employee", true),
        (29682889, "Former", "Technician", "ftech", "Employee", false),
    ] {
        resources.insert(
            id,
            json!({"id": id, "firstName": first, "lastName": last,
            "email": format!("{user}@bridgewater-it.example"), "userName": user, "isActive": active,
            "resourceType": kind, "licenseType": 1, "userType": 1, "title": "Technician",
            "defaultServiceDeskRoleID": ids::ROLE_TECHNICIAN, "officePhone": "312-555-0100"}),
        );
    }
    let cats = db.entry("TicketCategories").or_default();
    for (id, name, nick, default, api) in [
        (2, "Standard", "STD", true, false),
        (ids::DEFAULT_CATEGORY, "API Alerts", "API", false, true),
        (4, "Security Incident", "SEC", false, false),
    ] {
        cats.insert(
            id,
            json!({"id": id, "name": name, "nickname": nick, "isActive": true,
            "isGlobalDefault": default, "isApiOnly": api, "displayColorRGB": 0}),
        );
    }
    let contracts = db.entry("Contracts").or_default();
    for (i, c) in COMPANIES.iter().take(4).enumerate() {
        let id = 29690001 + i as i64;
        contracts.insert(id, json!({"id": id, "companyID": c.id,
            "contractName": format!("{} Managed Security", c.name), "contractNumber": format!("MS-{}", 1001 + i),
            "contractType": 7, "status": 1, "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-12-31T00:00:00Z",
            "timeReportingRequiresStartAndStopTimes": 0, "isDefaultContract": false, "setupFee": 0.0}));
    }
    // Acme's block-hours contract of last year, made inactive when it ran out.
    contracts.insert(ids::ACME_OLD_CONTRACT, json!({"id": ids::ACME_OLD_CONTRACT, "companyID": ids::ACME,
        "contractName": "Acme Dental Group Block Hours 2025", "contractNumber": "BH-2025-01",
        "contractType": 4, "status": 0, "startDate": "2025-01-01T00:00:00Z", "endDate": "2025-12-31T00:00:00Z",
        "timeReportingRequiresStartAndStopTimes": 0, "isDefaultContract": false, "setupFee": 0.0}));
    // Billing: a recurring billing code, the security seat service, and that service on each
    // Recurring Service contract with this month's units at zero.
    db.entry("BillingCodes").or_default().insert(ids::BILLING_CODE_RECURRING, json!({
        "id": ids::BILLING_CODE_RECURRING, "name": "Recurring Services", "description": "Monthly recurring services",
        "isActive": true, "useType": 2, "unitPrice": 0.0, "unitCost": 0.0}));
    db.entry("Services").or_default().insert(ids::SERVICE_SECURITY_SEAT, json!({
        "id": ids::SERVICE_SECURITY_SEAT, "name": "Managed Security Seat",
        "description": "Security monitoring per protected user", "invoiceDescription": "Managed security, per user",
        "unitPrice": 6.0, "unitCost": 3.5, "markupRate": null, "periodType": 1,
        "billingCodeID": ids::BILLING_CODE_RECURRING, "isActive": true, "vendorCompanyID": null,
        "serviceLevelAgreementID": null, "createDate": SEED_TIME, "creatorResourceID": ids::API_RESOURCE,
        "lastModifiedDate": SEED_TIME, "updateResourceID": null}));
    // A product for configuration items (Autotask requires one on each), and nothing else of
    // the catalogue: items are what assets become.
    db.entry("Products").or_default().insert(
        ids::PRODUCT_MANAGED_ENDPOINT,
        json!({
        "id": ids::PRODUCT_MANAGED_ENDPOINT, "name": "Managed Endpoint",
        "description": "A device the MSP manages", "isActive": true, "isSerialized": true,
        "productCategory": null, "sku": "MEP", "manufacturerName": null,
        "unitCost": 0.0, "unitPrice": 0.0, "userDefinedFields": []}),
    );
    db.entry("ConfigurationItems").or_default();
    let month = super::billing::month_start(chrono::Utc::now());
    for i in 0..4i64 {
        let contract = 29690001 + i;
        let cs = ids::FIRST_CONTRACT_SERVICE + i;
        db.entry("ContractServices").or_default().insert(
            cs,
            json!({
            "id": cs, "contractID": contract, "serviceID": ids::SERVICE_SECURITY_SEAT,
            "unitPrice": 6.0, "unitCost": 3.5,
            "invoiceDescription": "Managed security, per user", "internalDescription": null}),
        );
        let row = ids::FIRST_CONTRACT_SERVICE + 100 + i;
        db.entry("ContractServiceUnits").or_default().insert(
            row,
            json!({
            "id": row, "contractID": contract, "serviceID": ids::SERVICE_SECURITY_SEAT,
            "contractServiceID": cs, "startDate": super::validation::time_text(month),
            "endDate": super::validation::time_text(super::billing::month_end(month)),
            "units": 0, "price": 0.0, "cost": 0.0, "internalCurrencyPrice": 0.0}),
        );
    }
    db
}
