//! Entity metadata: which entities exist, their fields, types, flags and picklists.
//!
//! This is the single description every other module reads: the router asks it which routes
//! an entity has, validation which fields are writable, required, picklists or references, the
//! query engine which fields exist and how to compare them, and `entityInformation/fields`
//! serves it as Autotask's `FieldInformationModel`. Field names and types follow the vendor's
//! Swagger models; the flags (required, read-only, lengths) follow Autotask's field metadata.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One value of a picklist.
#[derive(Debug, Clone)]
pub struct PickValue {
    /// The value, always a string in Autotask's metadata, even for integer fields.
    pub value: String,
    pub label: String,
    pub active: bool,
    /// The value of the parent picklist this value belongs to (sub-issue types).
    pub parent: Option<String>,
    pub default: bool,
}

fn pv(value: &str, label: &str) -> PickValue {
    PickValue {
        value: value.to_string(),
        label: label.to_string(),
        active: true,
        parent: None,
        default: false,
    }
}

/// How a field's values are typed, compared and coerced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Integer,
    Long,
    Short,
    Double,
    Decimal,
    Boolean,
    String,
    DateTime,
}

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            DataType::Integer => "integer",
            DataType::Long => "long",
            DataType::Short => "short",
            DataType::Double => "double",
            DataType::Decimal => "decimal",
            DataType::Boolean => "boolean",
            DataType::String => "string",
            DataType::DateTime => "datetime",
        }
    }

    pub fn is_integral(self) -> bool {
        matches!(self, DataType::Integer | DataType::Long | DataType::Short)
    }
}

/// When a field may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// Required at creation, read-only afterwards (a contact's `companyID`).
    CreateOnly,
    ReadOnly,
}

/// A field of an entity, as `entityInformation/fields` describes it.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub data_type: DataType,
    /// Maximum characters of a string field (0: no limit).
    pub length: usize,
    pub required: bool,
    pub access: Access,
    pub queryable: bool,
    /// The entity type a reference points at (`Company`, `Contact`, …).
    pub reference: Option<&'static str>,
    pub picklist: Option<Vec<PickValue>>,
    pub picklist_parent: Option<&'static str>,
    /// Whether a ticket webhook may subscribe to it.
    pub webhook: bool,
}

const fn f(name: &'static str, data_type: DataType) -> Field {
    Field {
        name,
        data_type,
        length: 0,
        required: false,
        access: Access::ReadWrite,
        queryable: true,
        reference: None,
        picklist: None,
        picklist_parent: None,
        webhook: false,
    }
}

use DataType::{Boolean, DateTime, Double, Integer, Long, Short};
const TEXT: DataType = DataType::String;

impl Field {
    fn req(mut self) -> Self {
        self.required = true;
        self
    }
    fn ro(mut self) -> Self {
        self.access = Access::ReadOnly;
        self
    }
    fn create_only(mut self) -> Self {
        self.access = Access::CreateOnly;
        self
    }
    fn len(mut self, n: usize) -> Self {
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
    fn hook(mut self) -> Self {
        self.webhook = true;
        self
    }
    fn pick(mut self, values: Vec<PickValue>) -> Self {
        self.picklist = Some(values);
        self
    }
    fn pick_simple(self, values: &[(&str, &str)]) -> Self {
        self.pick(values.iter().map(|(v, l)| pv(v, l)).collect())
    }

    /// The field as Autotask's `FieldInformationModel`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "dataType": self.data_type.name(),
            "length": self.length,
            "isRequired": self.required,
            "isReadOnly": self.access == Access::ReadOnly,
            "isQueryable": self.queryable,
            "isReference": self.reference.is_some(),
            "referenceEntityType": self.reference.unwrap_or(""),
            "isPickList": self.picklist.is_some(),
            "picklistValues": self.picklist.as_ref().map(|p| p.iter().enumerate().map(|(i, v)| json!({
                "value": v.value, "label": v.label, "isDefaultValue": v.default, "sortOrder": i,
                "parentValue": v.parent.clone().unwrap_or_default(), "isActive": v.active, "isSystem": true,
            })).collect::<Vec<_>>()),
            "picklistParentValueField": self.picklist_parent.unwrap_or(""),
            "isSupportedWebhookField": self.webhook,
        })
    }

    /// The picklist value `v` (active or not), if this is a picklist holding it.
    pub fn picklist_value(&self, v: &str) -> Option<&PickValue> {
        self.picklist.as_ref()?.iter().find(|p| p.value == v)
    }
}

/// A user-defined field of an entity (`entityInformation/userDefinedFields`).
#[derive(Debug, Clone)]
pub struct Udf {
    pub name: &'static str,
    pub label: &'static str,
    pub data_type: DataType,
    pub picklist: Option<Vec<PickValue>>,
}

impl Udf {
    /// The UDF as Autotask's `Field` model (note: `type`, not `dataType`).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name, "label": self.label, "type": self.data_type.name(), "length": 0,
            "description": "", "isRequired": false, "isReadOnly": false, "isQueryable": true,
            "isReference": false, "referenceEntityType": "", "isPickList": self.picklist.is_some(),
            "picklistValues": self.picklist.as_ref().map(|p| p.iter().enumerate().map(|(i, v)| json!({
                "value": v.value, "label": v.label, "isDefaultValue": v.default, "sortOrder": i,
                "parentValue": "", "isActive": v.active, "isSystem": false,
            })).collect::<Vec<_>>()),
            "picklistParentValueField": "", "defaultValue": "", "isSupportedWebhookField": false,
        })
    }
}

/// An entity the simulator serves.
#[derive(Debug, Clone)]
pub struct EntityInfo {
    /// The name in URLs (`Tickets`).
    pub name: &'static str,
    /// The singular name references use (`Ticket`).
    pub singular: &'static str,
    /// The parent entity and the field naming the parent, for child entities.
    pub parent: Option<(&'static str, &'static str)>,
    /// The child collection's name under its parent (`Notes` for TicketNotes).
    pub child_path: Option<&'static str>,
    pub can_create: bool,
    pub can_update: bool,
    pub can_delete: bool,
    pub fields: Vec<Field>,
    /// User-defined fields; `None` when the entity has none (no `userDefinedFields` key).
    pub udfs: Option<Vec<Udf>>,
}

impl EntityInfo {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn has_udfs(&self) -> bool {
        self.udfs.is_some()
    }

    /// `entityInformation`, as Autotask's `EntityInformationResultModel`.
    pub fn info_json(&self) -> Value {
        let access = |b: bool| if b { "All" } else { "None" };
        json!({"info": {
            "name": self.name, "canCreate": self.can_create, "canDelete": self.can_delete, "canQuery": true,
            "canUpdate": self.can_update, "userAccessForCreate": access(self.can_create),
            "userAccessForDelete": access(self.can_delete), "userAccessForQuery": "All",
            "userAccessForUpdate": access(self.can_update), "hasUserDefinedFields": self.has_udfs(),
            "supportsWebhookCallouts": matches!(self.name, "Tickets" | "Companies" | "Contacts"),
        }})
    }
}

/// Ids of the seed data that tests and demos rely on.
pub mod ids {
    /// The MSP's own company.
    pub const OWN_COMPANY: i64 = 0;
    /// "Default Customer", the catch-all company.
    pub const CATCH_ALL_COMPANY: i64 = 29684199;
    /// "Default Contact" of the catch-all company.
    pub const CATCH_ALL_CONTACT: i64 = 30684199;
    /// The first of the eight customer companies (29684101 ..= 29684108).
    pub const FIRST_CUSTOMER: i64 = 29684101;
    /// Acme Dental Group, whose two front-desk contacts share one e-mail address.
    pub const ACME: i64 = 29684101;
    /// Acme's active "Managed Security" contract, and its inactive one of last year.
    pub const ACME_CONTRACT: i64 = 29690001;
    pub const ACME_OLD_CONTRACT: i64 = 29690005;
    /// Blue Harbor's contract: another company's, for the ticket rule.
    pub const OTHER_COMPANY_CONTRACT: i64 = 29690002;
    /// The recurring-contract billing code services are billed under.
    pub const BILLING_CODE_RECURRING: i64 = 29682801;
    /// "Managed Security Seat", per user per month, on each seeded Recurring Service contract.
    pub const SERVICE_SECURITY_SEAT: i64 = 29690101;
    /// "Managed Endpoint", the product configuration items are created as in the demo.
    pub const PRODUCT_MANAGED_ENDPOINT: i64 = 29691001;
    /// The first seeded contract service (one per seeded Recurring Service contract).
    pub const FIRST_CONTRACT_SERVICE: i64 = 29690201;
    pub const STATUS_NEW: i64 = 1;
    pub const STATUS_COMPLETE: i64 = 5;
    pub const STATUS_WAITING_CUSTOMER: i64 = 7;
    pub const STATUS_IN_PROGRESS: i64 = 8;
    pub const PRIORITY_HIGH: i64 = 1;
    pub const PRIORITY_MEDIUM: i64 = 2;
    pub const PRIORITY_LOW: i64 = 3;
    pub const PRIORITY_CRITICAL: i64 = 4;
    pub const QUEUE_MONITORING_ALERT: i64 = 8;
    pub const QUEUE_LEVEL_I: i64 = 29682833;
    pub const QUEUE_SECURITY_ALERTS: i64 = 29682969;
    pub const ISSUE_SECURITY: i64 = 10;
    pub const TICKET_TYPE_ALERT: i64 = 5;
    /// The API user's own resource (creator of what it creates).
    pub const API_RESOURCE: i64 = 29682885;
    /// A technician (the person behind `/_sim/` ticket actions).
    pub const TECHNICIAN: i64 = 29682886;
    /// The technician's service-desk role, for `assignedResourceRoleID`.
    pub const ROLE_TECHNICIAN: i64 = 29682900;
    /// The API user's default ticket category (it supplies the due date).
    pub const DEFAULT_CATEGORY: i64 = 3;
    /// TicketNotes: note type "Task Summary" and publish "All Autotask Users".
    pub const NOTE_TYPE_SUMMARY: i64 = 1;
    pub const PUBLISH_ALL: i64 = 1;
}

/// The ticket fields a webhook can subscribe to, by `TicketWebhookFields.fieldID`, with the
/// names callouts use. Autotask does not publish these ids: this numbering is the simulator's,
/// and the status id is configurable (`Config::status_webhook_field_id`); a configured status
/// id replaces whatever field had it.
pub fn webhook_field_names(status_field_id: i64) -> BTreeMap<i64, (&'static str, &'static str)> {
    let mut m: BTreeMap<i64, (&'static str, &'static str)> = [
        (14, ("Priority", "priority")),
        (15, ("QueueID", "queueID")),
        (16, ("Title", "title")),
        (17, ("TicketNumber", "ticketNumber")),
        (18, ("AssignedResourceID", "assignedResourceID")),
        (19, ("DueDateTime", "dueDateTime")),
        (20, ("Description", "description")),
        (21, ("IssueType", "issueType")),
        (22, ("SubIssueType", "subIssueType")),
        (23, ("CompanyID", "companyID")),
        (24, ("ContactID", "contactID")),
        (25, ("ExternalID", "externalID")),
        (26, ("CompletedDate", "completedDate")),
        (27, ("LastActivityDate", "lastActivityDate")),
    ]
    .into_iter()
    .collect();
    m.insert(status_field_id, ("Status", "status"));
    m
}

/// Every entity's metadata.
pub fn entities() -> Vec<EntityInfo> {
    let mut queues: Vec<PickValue> = [
        ("5", "Client Portal"),
        ("6", "Post Sale"),
        ("8", "Monitoring Alert"),
        ("29682833", "Level I Support"),
        ("29682834", "Level II Support"),
        ("29682969", "Security Alerts"),
        ("29682970", "Retired Queue"),
    ]
    .iter()
    .map(|(v, l)| pv(v, l))
    .collect();
    queues[6].active = false;
    let mut statuses: Vec<PickValue> = [
        ("1", "New"),
        ("5", "Complete"),
        ("7", "Waiting Customer"),
        ("8", "In Progress"),
        ("9", "Waiting Materials"),
        ("10", "Dispatched"),
        ("12", "Waiting Vendor"),
        ("13", "On Hold (retired)"),
    ]
    .iter()
    .map(|(v, l)| pv(v, l))
    .collect();
    statuses[0].default = true;
    statuses[7].active = false;
    let mut priorities: Vec<PickValue> = [
        ("1", "High"),
        ("2", "Medium"),
        ("3", "Low"),
        ("4", "Critical"),
    ]
    .iter()
    .map(|(v, l)| pv(v, l))
    .collect();
    priorities[1].default = true;
    let mut issue_types: Vec<PickValue> = [
        ("10", "Security"),
        ("11", "Hardware"),
        ("12", "Software"),
        ("13", "Legacy"),
    ]
    .iter()
    .map(|(v, l)| pv(v, l))
    .collect();
    issue_types[3].active = false;
    let sub_issue_types: Vec<PickValue> = [
        ("101", "Data Leakage", "10"),
        ("102", "Identity and Access", "10"),
        ("103", "Phishing", "10"),
        ("104", "Vulnerability", "10"),
        ("105", "Malware", "10"),
        ("111", "Workstation", "11"),
        ("112", "Server", "11"),
        ("121", "Microsoft 365", "12"),
        ("122", "Line of Business App", "12"),
    ]
    .iter()
    .map(|(v, l, p)| PickValue {
        parent: Some(p.to_string()),
        ..pv(v, l)
    })
    .collect();
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
        ("3", "API Alerts"),
        ("4", "Security Incident"),
    ];
    let ranking = vec![
        pv("Gold", "Gold"),
        pv("Silver", "Silver"),
        pv("Bronze", "Bronze"),
    ];
    vec![
        EntityInfo {
            name: "Companies",
            singular: "Company",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: Some(vec![Udf {
                name: "Customer Ranking",
                label: "Customer Ranking",
                data_type: TEXT,
                picklist: Some(ranking),
            }]),
            fields: vec![
                f("id", Long).ro(),
                f("companyName", TEXT).req().len(100),
                f("companyType", Short).req().pick_simple(&[
                    ("1", "Customer"),
                    ("2", "Lead"),
                    ("3", "Prospect"),
                    ("4", "Dead"),
                    ("5", "Cancelation"),
                    ("6", "Vendor"),
                    ("7", "Partner"),
                ]),
                f("ownerResourceID", Integer).req().refs("Resource"),
                f("phone", TEXT).req().len(25),
                f("isActive", Boolean),
                f("parentCompanyID", Integer).refs("Company"),
                f("companyNumber", TEXT).len(50),
                f("address1", TEXT).len(128),
                f("address2", TEXT).len(128),
                f("city", TEXT).len(30),
                f("state", TEXT).len(25),
                f("postalCode", TEXT).len(10),
                f("countryID", Integer),
                f("webAddress", TEXT).len(255),
                f("fax", TEXT).len(25),
                f("taxID", TEXT).len(50),
                f("createDate", DateTime).ro(),
                f("createdByResourceID", Integer).ro(),
                f("impersonatorCreatorResourceID", Integer).ro(),
                f("lastActivityDate", DateTime).ro(),
                f("lastTrackedModifiedDateTime", DateTime).ro(),
            ],
        },
        EntityInfo {
            name: "Contacts",
            singular: "Contact",
            parent: Some(("Companies", "companyID")),
            child_path: Some("Contacts"),
            can_create: true,
            can_update: true,
            can_delete: true,
            udfs: Some(vec![]),
            fields: vec![
                f("id", Long).ro(),
                f("companyID", Integer).req().create_only().refs("Company"),
                f("firstName", TEXT).req().len(50),
                f("lastName", TEXT).req().len(50),
                f("isActive", Integer).req(),
                f("emailAddress", TEXT).len(254),
                f("emailAddress2", TEXT).len(254),
                f("emailAddress3", TEXT).len(254),
                f("phone", TEXT).len(25),
                f("mobilePhone", TEXT).len(25),
                f("title", TEXT).len(50),
                f("primaryContact", Boolean),
                f("externalID", TEXT).len(50),
                f("companyLocationID", Integer),
                f("city", TEXT).len(30),
                f("state", TEXT).len(25),
                f("zipCode", TEXT).len(10),
                f("note", TEXT).len(4000),
                f("createDate", DateTime).ro(),
                f("impersonatorCreatorResourceID", Integer).ro(),
                f("lastActivityDate", DateTime).ro(),
                f("lastModifiedDate", DateTime).ro(),
            ],
        },
        EntityInfo {
            name: "Tickets",
            singular: "Ticket",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: Some(vec![Udf {
                name: "Alert Source",
                label: "Alert Source",
                data_type: TEXT,
                picklist: None,
            }]),
            fields: vec![
                f("id", Long).ro(),
                f("ticketNumber", TEXT).ro().len(50).hook(),
                f("title", TEXT).req().len(255).hook(),
                f("description", TEXT).len(8000).hook(),
                f("companyID", Integer).req().refs("Company").hook(),
                f("contactID", Integer).refs("Contact").hook(),
                f("status", Integer).req().pick(statuses).hook(),
                f("priority", Integer).req().pick(priorities).hook(),
                f("queueID", Integer).pick(queues).hook(),
                f("issueType", Integer).pick(issue_types).hook(),
                {
                    let mut x = f("subIssueType", Integer).pick(sub_issue_types).hook();
                    x.picklist_parent = Some("issueType");
                    x
                },
                f("source", Integer).pick_simple(&sources),
                f("ticketType", Integer).pick_simple(&ticket_types),
                f("ticketCategory", Integer).pick_simple(&categories),
                f("contractID", Integer).refs("Contract"),
                f("billingCodeID", Integer),
                f("assignedResourceID", Integer).refs("Resource").hook(),
                f("assignedResourceRoleID", Integer),
                f("dueDateTime", DateTime).hook(),
                f("estimatedHours", Double),
                f("externalID", TEXT).len(50).hook(),
                f("rmmAlertID", TEXT).len(50),
                f("purchaseOrderNumber", TEXT).len(50),
                f("resolution", TEXT).len(32000),
                f("serviceLevelAgreementID", Integer),
                f("configurationItemID", Integer).refs("ConfigurationItem"),
                f("companyLocationID", Integer),
                f("organizationalLevelAssociationID", Integer),
                f("createDate", DateTime).ro(),
                f("createdByContactID", Integer).ro(),
                f("creatorResourceID", Integer).ro(),
                f("creatorType", Integer).ro().not_queryable(),
                f("impersonatorCreatorResourceID", Integer).ro(),
                f("completedDate", DateTime).ro().hook(),
                f("completedByResourceID", Integer).ro(),
                f("firstResponseDateTime", DateTime).ro(),
                f("resolvedDateTime", DateTime).ro(),
                f("lastActivityDate", DateTime).ro().hook(),
                f("lastActivityResourceID", Integer).ro(),
                f("lastActivityPersonType", Integer).ro().not_queryable(),
                f("lastTrackedModificationDateTime", DateTime).ro(),
            ],
        },
        EntityInfo {
            name: "TicketNotes",
            singular: "TicketNote",
            parent: Some(("Tickets", "ticketID")),
            child_path: Some("Notes"),
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("ticketID", Integer).req().create_only().refs("Ticket"),
                f("title", TEXT).len(250),
                f("description", TEXT).req().len(32000),
                f("noteType", Integer).req().pick_simple(&[
                    ("1", "Task Summary"),
                    ("2", "Task Detail"),
                    ("3", "Task Notes"),
                    ("13", "Internal Log"),
                ]),
                f("publish", Integer).req().pick_simple(&[
                    ("1", "All Autotask Users"),
                    ("2", "Internal Only"),
                    ("4", "Internal Project Team"),
                ]),
                f("createDateTime", DateTime).ro(),
                f("lastActivityDate", DateTime).ro(),
                f("creatorResourceID", Integer).ro(),
                f("createdByContactID", Integer).ro(),
                f("impersonatorCreatorResourceID", Integer).ro(),
                f("impersonatorUpdaterResourceID", Integer).ro(),
            ],
        },
        EntityInfo {
            name: "Resources",
            singular: "Resource",
            parent: None,
            child_path: None,
            can_create: false,
            can_update: true,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("firstName", TEXT).len(50),
                f("lastName", TEXT).len(50),
                f("email", TEXT).len(254),
                f("userName", TEXT).len(32).ro(),
                f("isActive", Boolean),
                f("resourceType", TEXT).ro(),
                f("licenseType", Integer).ro(),
                f("userType", Integer).ro(),
                f("title", TEXT).len(50),
                f("defaultServiceDeskRoleID", Long),
                f("officePhone", TEXT).len(25),
            ],
        },
        EntityInfo {
            name: "TicketCategories",
            singular: "TicketCategory",
            parent: None,
            child_path: None,
            can_create: false,
            can_update: true,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("name", TEXT).len(30),
                f("nickname", TEXT).len(3),
                f("isActive", Boolean),
                f("isGlobalDefault", Boolean),
                f("isApiOnly", Boolean),
                f("displayColorRGB", Integer),
            ],
        },
        EntityInfo {
            name: "Contracts",
            singular: "Contract",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: Some(vec![]),
            fields: vec![
                f("id", Long).ro(),
                f("companyID", Integer).req().create_only().refs("Company"),
                f("contractName", TEXT).req().len(100),
                f("contractType", Integer)
                    .req()
                    .create_only()
                    .pick_simple(&[
                        ("1", "Time and Materials"),
                        ("3", "Fixed Price"),
                        ("4", "Block Hours"),
                        ("6", "Retainer"),
                        ("7", "Recurring Service"),
                        ("8", "Per Ticket"),
                    ]),
                f("status", Integer)
                    .req()
                    .pick_simple(&[("0", "Inactive"), ("1", "Active")]),
                f("startDate", DateTime).req(),
                f("endDate", DateTime).req(),
                f("timeReportingRequiresStartAndStopTimes", Integer).req(),
                f("contractNumber", TEXT).len(50),
                f("contactID", Integer).refs("Contact"),
                f("isDefaultContract", Boolean),
                f("description", TEXT).len(2000),
                f("setupFee", DataType::Decimal),
            ],
        },
        EntityInfo {
            name: "BillingCodes",
            singular: "BillingCode",
            parent: None,
            child_path: None,
            can_create: false,
            can_update: false,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("name", TEXT).ro().len(200),
                f("description", TEXT).ro().len(500),
                f("isActive", Boolean).ro(),
                f("useType", Integer).ro().pick_simple(&[
                    ("1", "General Allocation Code"),
                    ("2", "Recurring Contract Allocation Code"),
                    ("3", "Milestone Allocation Code"),
                ]),
                f("unitPrice", DataType::Decimal).ro(),
                f("unitCost", DataType::Decimal).ro(),
            ],
        },
        EntityInfo {
            name: "Products",
            singular: "Product",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: Some(vec![]),
            fields: vec![
                f("id", Long).ro(),
                f("name", TEXT).req().len(100),
                f("description", TEXT).len(2000),
                f("isActive", Boolean).req(),
                f("isSerialized", Boolean),
                f("productCategory", Integer),
                f("sku", TEXT).len(50),
                f("manufacturerName", TEXT).len(100),
                f("unitCost", DataType::Decimal),
                f("unitPrice", DataType::Decimal),
            ],
        },
        EntityInfo {
            name: "ConfigurationItems",
            singular: "ConfigurationItem",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: Some(vec![]),
            fields: vec![
                f("id", Long).ro(),
                f("companyID", Integer).req().refs("Company"),
                f("productID", Integer).req().refs("Product"),
                f("isActive", Boolean).req(),
                f("referenceTitle", TEXT).len(200),
                f("referenceNumber", TEXT).len(50),
                f("serialNumber", TEXT).len(100),
                f("notes", TEXT).len(5000),
                f("location", TEXT).len(100),
                f("installDate", DateTime),
                f("contractID", Integer).refs("Contract"),
                f("configurationItemType", Integer),
                f("createDate", DateTime).ro(),
                f("lastModifiedTime", DateTime).ro(),
            ],
        },
        EntityInfo {
            name: "Services",
            singular: "Service",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("name", TEXT).req().len(150),
                f("description", TEXT).len(400),
                f("invoiceDescription", TEXT).len(1000),
                f("unitPrice", DataType::Decimal).req(),
                f("unitCost", DataType::Decimal),
                f("markupRate", DataType::Decimal),
                // The vendor documents this picklist without publishing its values; clients read
                // them from entityInformation/fields.
                f("periodType", Integer).req().pick_simple(&[
                    ("1", "Monthly"),
                    ("2", "Quarterly"),
                    ("3", "Semi-Annual"),
                    ("4", "Yearly"),
                ]),
                f("billingCodeID", Integer).req().refs("BillingCode"),
                f("isActive", Boolean),
                f("vendorCompanyID", Integer).refs("Company"),
                f("serviceLevelAgreementID", Integer),
                f("createDate", DateTime).ro(),
                f("creatorResourceID", Integer).ro(),
                f("lastModifiedDate", DateTime).ro(),
                f("updateResourceID", Integer).ro(),
            ],
        },
        EntityInfo {
            name: "ContractServices",
            singular: "ContractService",
            parent: Some(("Contracts", "contractID")),
            child_path: Some("Services"),
            can_create: true,
            can_update: true,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("contractID", Integer)
                    .req()
                    .create_only()
                    .refs("Contract"),
                f("serviceID", Integer).req().create_only().refs("Service"),
                // The price comes from the service (or an adjustment's adjustedUnitPrice).
                f("unitPrice", DataType::Decimal).ro(),
                f("unitCost", DataType::Decimal).create_only(),
                f("invoiceDescription", TEXT).len(1000),
                f("internalDescription", TEXT).create_only().len(100),
                f("quoteItemID", Integer).ro(),
                f("internalCurrencyUnitPrice", DataType::Decimal).ro(),
                f("internalCurrencyAdjustedPrice", DataType::Decimal).ro(),
            ],
        },
        EntityInfo {
            name: "ContractServiceUnits",
            singular: "ContractServiceUnit",
            parent: Some(("Contracts", "contractID")),
            child_path: Some("ServiceUnits"),
            can_create: false,
            can_update: false,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("contractID", Integer).ro().refs("Contract"),
                f("serviceID", Integer).ro().refs("Service"),
                f("contractServiceID", Integer).ro(),
                f("startDate", DateTime).ro(),
                f("endDate", DateTime).ro(),
                f("units", Integer).ro(),
                f("price", DataType::Decimal).ro(),
                f("cost", DataType::Decimal).ro(),
                f("internalCurrencyPrice", DataType::Decimal).ro(),
                f("approveAndPostDate", DateTime).ro(),
                f("vendorCompanyID", Integer).ro(),
                f("organizationalLevelAssociationID", Integer).ro(),
            ],
        },
        EntityInfo {
            // Create-only: `POST /ContractServiceAdjustments` or
            // `POST /Contracts/{id}/ServiceAdjustments`; no query, no update.
            name: "ContractServiceAdjustments",
            singular: "ContractServiceAdjustment",
            parent: Some(("Contracts", "contractID")),
            child_path: Some("ServiceAdjustments"),
            can_create: true,
            can_update: false,
            can_delete: false,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("contractID", Integer).req().refs("Contract"),
                f("serviceID", Integer).refs("Service"),
                f("contractServiceID", Integer),
                f("unitChange", Integer).req(),
                f("effectiveDate", DateTime).req(),
                f("adjustedUnitPrice", DataType::Decimal),
                f("adjustedUnitCost", DataType::Decimal),
                f("allowRepeatService", Boolean),
                f("quoteItemID", Integer),
            ],
        },
        EntityInfo {
            name: "TicketWebhooks",
            singular: "TicketWebhook",
            parent: None,
            child_path: None,
            can_create: true,
            can_update: true,
            can_delete: true,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("name", TEXT).req().len(50),
                f("webhookUrl", TEXT).req().len(500),
                f("secretKey", TEXT).req().len(64),
                f("isActive", Boolean).req(),
                f("isSubscribedToCreateEvents", Boolean).req(),
                f("isSubscribedToUpdateEvents", Boolean).req(),
                f("isSubscribedToDeleteEvents", Boolean).req(),
                f("sendThresholdExceededNotification", Boolean).req(),
                f("deactivationUrl", TEXT).len(500),
                f("notificationEmailAddress", TEXT).len(254),
                f("ownerResourceID", Integer).refs("Resource"),
                f("webhookGUID", TEXT).ro(),
                f("isReady", Boolean).ro(),
            ],
        },
        EntityInfo {
            name: "TicketWebhookFields",
            singular: "TicketWebhookField",
            parent: Some(("TicketWebhooks", "webhookID")),
            child_path: Some("Fields"),
            can_create: true,
            can_update: true,
            can_delete: true,
            udfs: None,
            fields: vec![
                f("id", Long).ro(),
                f("webhookID", Integer)
                    .req()
                    .create_only()
                    .refs("TicketWebhook"),
                f("fieldID", Integer).req(),
                f("isSubscribedField", Boolean).req(),
                f("isDisplayAlwaysField", Boolean).req(),
            ],
        },
    ]
}

/// The entity table a reference type lives in (`Company` → `Companies`).
pub fn table_of(reference: &str) -> Option<&'static str> {
    Some(match reference {
        "Company" => "Companies",
        "Contact" => "Contacts",
        "Resource" => "Resources",
        "Ticket" => "Tickets",
        "Contract" => "Contracts",
        "Service" => "Services",
        "Product" => "Products",
        "ConfigurationItem" => "ConfigurationItems",
        "BillingCode" => "BillingCodes",
        "TicketWebhook" => "TicketWebhooks",
        _ => return None,
    })
}
