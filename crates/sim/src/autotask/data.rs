//! The simulated Autotask database: entity metadata (fields, types, picklists) and seed data.
//!
//! Field names, types and picklist shapes follow Autotask's REST documentation; the records
//! are invented but realistic: an MSP's own company (id 0), customers with contacts at their
//! own domains, a catch-all "Default Customer", queues, statuses, priorities, issue and
//! sub-issue types, sources, ticket types and note picklists.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A picklist value: `(value, label, active, parent value)`.
pub type PicklistValue = (String, String, bool, Option<String>);

/// A field of an entity, as `entityInformation/fields` describes it.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    /// `integer`, `long`, `short`, `string`, `double`, `decimal`, `boolean`, `datetime`.
    pub data_type: &'static str,
    pub length: u32,
    pub required: bool,
    pub read_only: bool,
    pub queryable: bool,
    pub reference: Option<&'static str>,
    /// Picklist values `(value, label, active, parent)`.
    pub picklist: Option<Vec<PicklistValue>>,
    pub picklist_parent: Option<&'static str>,
}

const fn f(name: &'static str, data_type: &'static str) -> Field {
    Field {
        name,
        data_type,
        length: 0,
        required: false,
        read_only: false,
        queryable: true,
        reference: None,
        picklist: None,
        picklist_parent: None,
    }
}

impl Field {
    fn req(mut self) -> Self {
        self.required = true;
        self
    }
    fn ro(mut self) -> Self {
        self.read_only = true;
        self
    }
    fn len(mut self, n: u32) -> Self {
        self.length = n;
        self
    }
    fn refs(mut self, e: &'static str) -> Self {
        self.reference = Some(e);
        self
    }
    fn not_queryable(mut self) -> Self {
        self.queryable = false;
        self
    }
    fn pick(mut self, values: &[(&str, &str)]) -> Self {
        self.picklist = Some(
            values
                .iter()
                .map(|(v, l)| (v.to_string(), l.to_string(), true, None))
                .collect(),
        );
        self
    }
    fn pick_full(
        mut self,
        values: Vec<(String, String, bool, Option<String>)>,
        parent: Option<&'static str>,
    ) -> Self {
        self.picklist = Some(values);
        self.picklist_parent = parent;
        self
    }

    /// The field's JSON as `entityInformation/fields` answers it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "dataType": self.data_type,
            "length": self.length,
            "isRequired": self.required,
            "isReadOnly": self.read_only,
            "isQueryable": self.queryable,
            "isReference": self.reference.is_some(),
            "referenceEntityType": self.reference.unwrap_or(""),
            "isPickList": self.picklist.is_some(),
            "picklistValues": self.picklist.as_ref().map(|p| p.iter().enumerate().map(|(i, (v, l, active, parent))| json!({
                "value": v, "label": l, "isDefaultValue": false, "sortOrder": i, "parentValue": parent.clone().unwrap_or_default(),
                "isActive": active, "isSystem": true,
            })).collect::<Vec<_>>()),
            "picklistParentValueField": self.picklist_parent.unwrap_or(""),
            "isSupportedWebhookField": self.picklist.is_some() || self.name == "title",
        })
    }

    /// Is `v` a value of this picklist (active or not)?
    pub fn picklist_value(&self, v: &str) -> Option<&PicklistValue> {
        self.picklist
            .as_ref()?
            .iter()
            .find(|(value, ..)| value == v)
    }
}

/// An entity the simulator serves.
#[derive(Debug, Clone)]
pub struct EntityInfo {
    /// The name in URLs (`Tickets`).
    pub name: &'static str,
    /// The parent entity and the field that names the parent, for child entities.
    pub parent: Option<(&'static str, &'static str)>,
    /// The name of the child collection under its parent (`Notes` for TicketNotes).
    pub child_path: Option<&'static str>,
    pub can_create: bool,
    pub can_update: bool,
    pub can_delete: bool,
    pub has_udfs: bool,
    pub fields: Vec<Field>,
}

impl EntityInfo {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn info_json(&self) -> Value {
        let access = |b: bool| if b { "All" } else { "None" };
        json!({"info": {
            "name": self.name, "canCreate": self.can_create, "canDelete": self.can_delete, "canQuery": true,
            "canUpdate": self.can_update, "userAccessForCreate": access(self.can_create),
            "userAccessForDelete": access(self.can_delete), "userAccessForQuery": "All",
            "userAccessForUpdate": access(self.can_update), "hasUserDefinedFields": self.has_udfs,
            "supportsWebhookCallouts": matches!(self.name, "Tickets" | "Companies" | "Contacts"),
        }})
    }
}

/// Ids of the seed data that tests and demos rely on.
pub mod ids {
    pub const OWN_COMPANY: i64 = 0;
    pub const CATCH_ALL_COMPANY: i64 = 29684199;
    pub const CATCH_ALL_CONTACT: i64 = 30684199;
    pub const STATUS_NEW: i64 = 1;
    pub const STATUS_COMPLETE: i64 = 5;
    pub const API_RESOURCE: i64 = 29682885;
}

fn s(v: &str) -> String {
    v.to_string()
}

/// Every entity's metadata.
pub fn entities() -> Vec<EntityInfo> {
    let queues = vec![
        (s("5"), s("Client Portal"), true, None),
        (s("6"), s("Post Sale"), true, None),
        (s("8"), s("Monitoring Alert"), true, None),
        (s("29682833"), s("Level I Support"), true, None),
        (s("29682834"), s("Level II Support"), true, None),
        (s("29682969"), s("Security Alerts"), true, None),
        (s("29682970"), s("Retired Queue"), false, None),
    ];
    let statuses = [
        ("1", "New"),
        ("5", "Complete"),
        ("7", "Waiting Customer"),
        ("8", "In Progress"),
        ("9", "Waiting Materials"),
        ("10", "Dispatched"),
        ("12", "Waiting Vendor"),
    ];
    let priorities = [
        ("1", "High"),
        ("2", "Medium"),
        ("3", "Low"),
        ("4", "Critical"),
    ];
    let issue_types = vec![
        (s("10"), s("Security"), true, None),
        (s("11"), s("Hardware"), true, None),
        (s("12"), s("Software"), true, None),
        (s("13"), s("Legacy"), false, None),
    ];
    let sub_issue_types = vec![
        (s("101"), s("Data Leakage"), true, Some(s("10"))),
        (s("102"), s("Identity and Access"), true, Some(s("10"))),
        (s("103"), s("Phishing"), true, Some(s("10"))),
        (s("104"), s("Vulnerability"), true, Some(s("10"))),
        (s("111"), s("Workstation"), true, Some(s("11"))),
        (s("112"), s("Server"), true, Some(s("11"))),
        (s("121"), s("Microsoft 365"), true, Some(s("12"))),
        (s("122"), s("Line of Business App"), true, Some(s("12"))),
    ];
    let sources = [
        ("-1", "Insourced"),
        ("1", "Phone"),
        ("2", "Email"),
        ("4", "Client Portal"),
        ("6", "Monitoring Alert"),
        ("11", "Integration"),
        ("13", "Other"),
    ];
    let ticket_types = [
        ("1", "Service Request"),
        ("2", "Incident"),
        ("3", "Problem"),
        ("4", "Change Request"),
        ("5", "Alert"),
    ];
    let categories = [
        ("2", "Standard"),
        ("3", "RMM Alert"),
        ("4", "Security Incident"),
    ];
    vec![
        EntityInfo {
            name: "Companies",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            has_udfs: true,
            fields: vec![
                f("id", "long").ro(),
                f("companyName", "string").req().len(100),
                f("companyType", "short").req().pick(&[
                    ("1", "Customer"),
                    ("2", "Lead"),
                    ("3", "Prospect"),
                    ("5", "Vendor"),
                ]),
                f("ownerResourceID", "integer").req().refs("Resource"),
                f("phone", "string").req().len(25),
                f("isActive", "boolean"),
                f("parentCompanyID", "integer").refs("Company"),
                f("companyNumber", "string").len(50),
                f("address1", "string").len(128),
                f("city", "string").len(30),
                f("state", "string").len(25),
                f("postalCode", "string").len(10),
                f("webAddress", "string").len(255),
                f("createDate", "datetime").ro(),
                f("lastActivityDate", "datetime").ro(),
            ],
        },
        EntityInfo {
            name: "Contacts",
            parent: Some(("Companies", "companyID")),
            child_path: Some("Contacts"),
            can_create: true,
            can_update: true,
            can_delete: true,
            has_udfs: true,
            fields: vec![
                f("id", "long").ro(),
                f("companyID", "integer").req().refs("Company"),
                f("firstName", "string").req().len(50),
                f("lastName", "string").req().len(50),
                f("isActive", "integer").req(),
                f("emailAddress", "string").len(254),
                f("emailAddress2", "string").len(254),
                f("emailAddress3", "string").len(254),
                f("phone", "string").len(25),
                f("mobilePhone", "string").len(25),
                f("title", "string").len(50),
                f("primaryContact", "boolean"),
                f("externalID", "string").len(50),
                f("createDate", "datetime").ro(),
                f("lastActivityDate", "datetime").ro(),
                f("lastModifiedDate", "datetime").ro(),
            ],
        },
        EntityInfo {
            name: "Tickets",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            has_udfs: true,
            fields: vec![
                f("id", "long").ro(),
                f("ticketNumber", "string").ro().len(50),
                f("title", "string").req().len(255),
                f("description", "string").len(8000),
                f("companyID", "integer").req().refs("Company"),
                f("contactID", "integer").refs("Contact"),
                f("status", "integer").req().pick(&statuses),
                f("priority", "integer").req().pick(&priorities),
                f("queueID", "integer").pick_full(queues, None),
                f("issueType", "integer").pick_full(issue_types, None),
                f("subIssueType", "integer").pick_full(sub_issue_types, Some("issueType")),
                f("source", "integer").pick(&sources),
                f("ticketType", "integer").pick(&ticket_types),
                f("ticketCategory", "integer").pick(&categories),
                f("contractID", "integer").refs("Contract"),
                f("assignedResourceID", "integer").refs("Resource"),
                f("assignedResourceRoleID", "integer"),
                f("dueDateTime", "datetime"),
                f("estimatedHours", "double"),
                f("externalID", "string").len(50),
                f("rmmAlertID", "string").len(50),
                f("resolution", "string").len(32000),
                f("serviceLevelAgreementID", "integer"),
                f("createDate", "datetime").ro(),
                f("completedDate", "datetime").ro(),
                f("lastActivityDate", "datetime").ro(),
                f("creatorResourceID", "integer").ro(),
                f("creatorType", "integer").ro().not_queryable(),
                f("lastActivityPersonType", "integer").ro().not_queryable(),
            ],
        },
        EntityInfo {
            name: "TicketNotes",
            parent: Some(("Tickets", "ticketID")),
            child_path: Some("Notes"),
            can_create: true,
            can_update: true,
            can_delete: false,
            has_udfs: false,
            fields: vec![
                f("id", "long").ro(),
                f("ticketID", "integer").req().refs("Ticket"),
                f("title", "string").len(250),
                f("description", "string").req().len(32000),
                f("noteType", "integer").req().pick(&[
                    ("1", "Task Summary"),
                    ("2", "Task Detail"),
                    ("3", "Task Notes"),
                ]),
                f("publish", "integer").req().pick(&[
                    ("1", "All Autotask Users"),
                    ("2", "Internal Only"),
                    ("4", "Internal Project Team"),
                ]),
                f("createDateTime", "datetime").ro(),
                f("lastActivityDate", "datetime").ro(),
                f("creatorResourceID", "integer").ro(),
                f("createdByContactID", "integer"),
                f("impersonatorCreatorResourceID", "integer").ro(),
            ],
        },
        EntityInfo {
            name: "Resources",
            parent: None,
            child_path: None,
            can_create: false,
            can_update: true,
            can_delete: false,
            has_udfs: true,
            fields: vec![
                f("id", "long").ro(),
                f("firstName", "string").len(50),
                f("lastName", "string").len(50),
                f("email", "string").len(254),
                f("userName", "string").len(32),
                f("isActive", "boolean"),
                f("resourceType", "string"),
                f("title", "string").len(50),
            ],
        },
        EntityInfo {
            name: "TicketCategories",
            parent: None,
            child_path: None,
            can_create: false,
            can_update: true,
            can_delete: false,
            has_udfs: false,
            fields: vec![
                f("id", "long").ro(),
                f("name", "string").len(30),
                f("nickname", "string").len(3),
                f("isActive", "boolean"),
                f("isGlobalDefault", "boolean"),
                f("isApiOnly", "boolean"),
                f("displayColorRGB", "integer"),
            ],
        },
        EntityInfo {
            name: "Contracts",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            has_udfs: true,
            fields: vec![
                f("id", "long").ro(),
                f("companyID", "integer").req().refs("Company"),
                f("contractName", "string").req().len(100),
                f("contractType", "integer").req().pick(&[
                    ("1", "Time and Materials"),
                    ("3", "Fixed Price"),
                    ("7", "Recurring Service"),
                ]),
                f("status", "integer")
                    .req()
                    .pick(&[("0", "Inactive"), ("1", "Active")]),
                f("startDate", "datetime").req(),
                f("endDate", "datetime").req(),
                f("timeReportingRequiresStartAndStopTimes", "integer").req(),
                f("isDefaultContract", "boolean"),
                f("description", "string").len(2000),
            ],
        },
        EntityInfo {
            name: "TicketWebhooks",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: true,
            has_udfs: false,
            fields: vec![
                f("id", "long").ro(),
                f("name", "string").req().len(50),
                f("webhookUrl", "string").req().len(500),
                f("secretKey", "string").req().len(64),
                f("isActive", "boolean").req(),
                f("isSubscribedToCreateEvents", "boolean").req(),
                f("isSubscribedToUpdateEvents", "boolean").req(),
                f("isSubscribedToDeleteEvents", "boolean").req(),
                f("sendThresholdExceededNotification", "boolean").req(),
                f("deactivationUrl", "string").len(500),
                f("notificationEmailAddress", "string").len(254),
                f("ownerResourceID", "integer"),
                f("webhookGUID", "string").ro(),
                f("isReady", "boolean").ro(),
            ],
        },
        EntityInfo {
            name: "TicketWebhookFields",
            parent: Some(("TicketWebhooks", "webhookID")),
            child_path: Some("Fields"),
            can_create: true,
            can_update: true,
            can_delete: true,
            has_udfs: false,
            fields: vec![
                f("id", "long").ro(),
                f("webhookID", "integer").req().refs("TicketWebhook"),
                f("fieldID", "integer").req(),
                f("isSubscribedField", "boolean").req(),
                f("isDisplayAlwaysField", "boolean").req(),
            ],
        },
    ]
}

/// The ticket fields a webhook can subscribe to, by `fieldID`. Autotask does not publish
/// these ids; `status` is configurable (see `Config::status_webhook_field_id`).
pub fn webhook_field_names(status_field_id: i64) -> BTreeMap<i64, &'static str> {
    let mut m = BTreeMap::new();
    m.insert(status_field_id, "Status");
    m.insert(status_field_id + 1, "Priority");
    m.insert(status_field_id + 2, "QueueID");
    m.insert(status_field_id + 3, "Title");
    m.insert(status_field_id + 4, "TicketNumber");
    m
}

struct SeedCompany {
    id: i64,
    name: &'static str,
    domain: &'static str,
    contacts: &'static [(&'static str, &'static str, bool)],
}

const COMPANIES: &[SeedCompany] = &[
    SeedCompany {
        id: 29684101,
        name: "Acme Dental Group",
        domain: "acmedental.example",
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
        contacts: &[
            ("Victor", "Hale", true),
            ("Sofia", "Rossi", true),
            ("Dmitri", "Orlov", true),
            ("Amy", "Stone", true),
            ("Ben", "Carter", true),
            ("Lena", "Berg", true),
        ],
    },
    SeedCompany {
        id: 29684108,
        name: "Harborview Property Management",
        domain: "harborview.example",
        contacts: &[
            ("Isaac", "Moss", true),
            ("Julia", "Reyes", true),
            ("Mark", "Doyle", true),
        ],
    },
];

/// The seed records, per entity name.
pub fn seed(now: &str) -> BTreeMap<&'static str, BTreeMap<i64, Value>> {
    let mut db: BTreeMap<&'static str, BTreeMap<i64, Value>> = BTreeMap::new();
    for e in entities() {
        db.insert(e.name, BTreeMap::new());
    }
    let company = |id: i64, name: &str, web: &str| {
        json!({"id": id, "companyName": name, "companyType": 1, "ownerResourceID": ids::API_RESOURCE,
               "phone": format!("555-01{:02}", id % 100), "isActive": true, "parentCompanyID": null,
               "companyNumber": format!("C{}", id % 100000), "address1": "1 Main Street", "city": "Springfield",
               "state": "IL", "postalCode": "62701", "webAddress": web, "createDate": now, "lastActivityDate": now,
               "userDefinedFields": []})
    };
    let companies = db.get_mut("Companies").expect("seeded entity");
    companies.insert(
        ids::OWN_COMPANY,
        company(
            ids::OWN_COMPANY,
            "Bridgewater IT Services",
            "bridgewater-it.example",
        ),
    );
    for c in COMPANIES {
        companies.insert(c.id, company(c.id, c.name, c.domain));
    }
    companies.insert(
        ids::CATCH_ALL_COMPANY,
        company(ids::CATCH_ALL_COMPANY, "Default Customer", ""),
    );
    let mut inactive = company(29684190, "Closed Account Co", "closed.example");
    inactive["isActive"] = json!(false);
    companies.insert(29684190, inactive);

    let contacts = db.get_mut("Contacts").expect("seeded entity");
    let contact = |id: i64, company: i64, first: &str, last: &str, email: &str, active: bool| {
        json!({"id": id, "companyID": company, "firstName": first, "lastName": last, "isActive": if active { 1 } else { 0 },
               "emailAddress": email, "emailAddress2": null, "emailAddress3": null, "phone": "555-0100",
               "mobilePhone": null, "title": null, "primaryContact": false, "externalID": null,
               "createDate": now, "lastActivityDate": now, "lastModifiedDate": now, "userDefinedFields": []})
    };
    let mut next = 30684101i64;
    for c in COMPANIES {
        for (first, last, active) in c.contacts {
            // Two contacts of the first company share the front desk's address (real data does this).
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
            contacts.insert(next, contact(next, c.id, first, last, &email, *active));
            next += 1;
        }
    }
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

    let resources = db.get_mut("Resources").expect("seeded entity");
    for (id, first, last, user) in [
        (ids::API_RESOURCE, "PSA Bridge", "API User", "psabridge-api"),
        (29682886, "Pamela", "Pierce", "ppierce"),
        (29682887, "Devon", "Walsh", "dwalsh"),
    ] {
        resources.insert(id, json!({"id": id, "firstName": first, "lastName": last, "email": format!("{user}@bridgewater-it.example"),
            "userName": user, "isActive": true, "resourceType": "Employee", "title": null, "userDefinedFields": []}));
    }
    let cats = db.get_mut("TicketCategories").expect("seeded entity");
    for (id, name, nick, default) in [
        (2, "Standard", "STD", true),
        (3, "RMM Alert", "RMM", false),
        (4, "Security Incident", "SEC", false),
    ] {
        cats.insert(id, json!({"id": id, "name": name, "nickname": nick, "isActive": true, "isGlobalDefault": default, "isApiOnly": false, "displayColorRGB": 0}));
    }
    let contracts = db.get_mut("Contracts").expect("seeded entity");
    for (i, c) in COMPANIES.iter().take(4).enumerate() {
        let id = 29690001 + i as i64;
        contracts.insert(id, json!({"id": id, "companyID": c.id, "contractName": format!("{} Managed Security", c.name),
            "contractType": 7, "status": 1, "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-12-31T00:00:00Z",
            "timeReportingRequiresStartAndStopTimes": 0, "isDefaultContract": false, "description": null, "userDefinedFields": []}));
    }
    db
}
