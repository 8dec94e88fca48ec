//! The vendor endpoints under `/v2/`, each as its Swagger operation describes it.

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::billing;
use super::envelope::{Fail, ok, paged};
use super::input::{Body, Params, page};
use super::store::{Account, Contact, Db, Item, Note, STATUS_TYPE_COMPLETED, Ticket};
use super::{Config, now_text};

/// The page size when a paged call sends none. [?] Undocumented.
pub(super) const DEFAULT_PAGE_SIZE: usize = 100;

/// A vendor route, with its ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Authenticate,
    RefreshToken,
    UserInfo,
    AccountsSummary,
    AccountSummary(i64),
    AccountsLookup,
    AccountLocations(i64),
    AccountContacts(i64),
    ContactsSearch,
    ContactsSummary,
    Tickets,
    TicketsSearch,
    Ticket(i64),
    TicketNotes(i64),
    TicketResolve(i64),
    Queues,
    Statuses,
    Priorities,
    IssueTypes,
    SubIssueTypes(i64),
    Slas,
    WorkTypes,
    Lookup(String),
    TenantLookup(String),
    ContractsLookup,
    ContractsSummary,
    RecurringServices(i64),
    ServicesLookup,
    ServicesCreate,
    Service(i64),
    RelatedServicesSearch(i64),
    RelatedServicesBulkUpdate(i64),
}

impl Route {
    /// Needs no bearer token.
    pub fn is_auth(&self) -> bool {
        matches!(self, Route::Authenticate | Route::RefreshToken)
    }
}

/// The route of a path (segments as sent) and its template, which names the endpoint for the
/// quota, statistics and fault filters.
pub fn route(segs: &[&str]) -> Option<(Route, &'static str)> {
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let id = |s: &str| s.parse::<i64>().ok();
    Some(match l.as_slice() {
        ["v2", "security", "authenticate"] => (Route::Authenticate, "/v2/security/authenticate"),
        ["v2", "security", "refreshtoken"] => (Route::RefreshToken, "/v2/security/refreshtoken"),
        ["v2", "security", "userinfo"] => (Route::UserInfo, "/v2/security/userinfo"),
        ["v2", "crm", "accounts", "summary"] => {
            (Route::AccountsSummary, "/v2/crm/accounts/summary")
        }
        ["v2", "crm", "accounts", "summary", a] => (
            Route::AccountSummary(id(a)?),
            "/v2/crm/accounts/summary/{id}",
        ),
        ["v2", "crm", "accounts", "lookup"] => (Route::AccountsLookup, "/v2/crm/accounts/lookup"),
        ["v2", "crm", "accounts", a, "locations", "lookup"] => (
            Route::AccountLocations(id(a)?),
            "/v2/crm/accounts/{accountId}/locations/lookup",
        ),
        ["v2", "crm", "accounts", a, "contacts", "lookup"] => (
            Route::AccountContacts(id(a)?),
            "/v2/crm/accounts/{accountId}/contacts/lookup",
        ),
        ["v2", "crm", "contacts", "search"] => (Route::ContactsSearch, "/v2/crm/contacts/search"),
        ["v2", "crm", "contacts", "summary"] => {
            (Route::ContactsSummary, "/v2/crm/contacts/summary")
        }
        ["v2", "servicedesk", "tickets"] => (Route::Tickets, "/v2/servicedesk/tickets"),
        ["v2", "servicedesk", "tickets", "search"] => {
            (Route::TicketsSearch, "/v2/servicedesk/tickets/search")
        }
        ["v2", "servicedesk", "tickets", t] => {
            (Route::Ticket(id(t)?), "/v2/servicedesk/tickets/{ticketId}")
        }
        ["v2", "servicedesk", "tickets", t, "notes"] => (
            Route::TicketNotes(id(t)?),
            "/v2/servicedesk/tickets/{ticketId}/notes",
        ),
        ["v2", "servicedesk", "tickets", t, "resolve"] => (
            Route::TicketResolve(id(t)?),
            "/v2/servicedesk/tickets/{ticketId}/resolve",
        ),
        ["v2", "system", "queues", "lookup"] => (Route::Queues, "/v2/system/queues/lookup"),
        ["v2", "system", "statuses", "lookup"] => (Route::Statuses, "/v2/system/statuses/lookup"),
        ["v2", "system", "priorities", "lookup"] => {
            (Route::Priorities, "/v2/system/priorities/lookup")
        }
        ["v2", "system", "issuetypes", "lookup"] => {
            (Route::IssueTypes, "/v2/system/issuetypes/lookup")
        }
        ["v2", "system", "issuetypes", i, "issuesubtypes", "lookup"] => (
            Route::SubIssueTypes(id(i)?),
            "/v2/system/issuetypes/{issueTypeId}/issuesubtypes/lookup",
        ),
        ["v2", "system", "slas", "lookup"] => (Route::Slas, "/v2/system/slas/lookup"),
        ["v2", "system", "worktypes", "lookup"] => {
            (Route::WorkTypes, "/v2/system/worktypes/lookup")
        }
        ["v2", "finance", "contracts", "lookup"] => {
            (Route::ContractsLookup, "/v2/finance/contracts/lookup")
        }
        ["v2", "finance", "contracts", "summary"] => {
            (Route::ContractsSummary, "/v2/finance/contracts/summary")
        }
        [
            "v2",
            "finance",
            "contracts",
            "recurringservices",
            k,
            "services",
        ] => (
            Route::RecurringServices(id(k)?),
            "/v2/finance/contracts/recurringservices/{contractId}/services",
        ),
        ["v2", "admin", "finance", "services", "lookup"] => {
            (Route::ServicesLookup, "/v2/admin/finance/services/lookup")
        }
        ["v2", "admin", "finance", "services", "services"] => {
            (Route::ServicesCreate, "/v2/admin/finance/services/services")
        }
        ["v2", "admin", "finance", "services", s] => (
            Route::Service(id(s)?),
            "/v2/admin/finance/services/{serviceId}",
        ),
        [
            "v2",
            "admin",
            "finance",
            "services",
            s,
            "relatedservices",
            "search",
        ] => (
            Route::RelatedServicesSearch(id(s)?),
            "/v2/admin/finance/services/{serviceId}/relatedservices/search",
        ),
        [
            "v2",
            "admin",
            "finance",
            "services",
            s,
            "relatedservices",
            "bulkupdate",
        ] => (
            Route::RelatedServicesBulkUpdate(id(s)?),
            "/v2/admin/finance/services/{serviceId}/relatedservices/bulkupdate",
        ),
        ["v2", "system", "lookup", _] => (
            Route::Lookup(segs[3].to_string()),
            "/v2/system/lookup/{tableName}",
        ),
        ["v2", "system", "tenantlookup", _] => (
            Route::TenantLookup(segs[3].to_string()),
            "/v2/system/tenantlookup/{tableName}",
        ),
        _ => return None,
    })
}

/// What a handler gets.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub method: &'a Method,
    pub params: &'a Params,
    pub body: &'a [u8],
}

fn method_not_allowed(m: &Method) -> Fail {
    Fail::new(
        405,
        format!("The requested resource does not support http method '{m}'."),
    )
}

/// Carry a call out against the data (authentication already checked).
pub fn dispatch(db: &mut Db, route: &Route, c: &Ctx<'_>) -> Result<Response, Fail> {
    let get = c.method == Method::GET;
    let post = c.method == Method::POST;
    match route {
        Route::UserInfo if get => Ok(ok(json!({
            "userId": 9001,
            "fullName": "PSA Bridge API",
            "emailAddress": format!("{}@{}.example", c.config.username, c.config.tenant),
            "tenantId": db.tenant_id,
            "businessName": c.config.tenant,
            "timeZoneName": "UTC",
            "olsonTimeZoneName": "Etc/UTC",
            "dateFormat": "MM/dd/yyyy",
            "currencyCode": "USD",
            "cultureCode": "en-US",
            "newTicketingUI": true,
            "isUserSystemAdmin": false,
            "productName": "BMS",
        }))),
        Route::AccountsSummary if get => accounts_summary(db, c.params),
        Route::AccountSummary(id) if get => db
            .account(*id)
            .map(|a| ok(account_summary(db, a)))
            .ok_or_else(|| Fail::not_found(format!("Account with id {id} was not found."))),
        Route::AccountsLookup if get => accounts_lookup(db, c.params),
        Route::AccountLocations(id) if get => {
            let a = db
                .account(*id)
                .ok_or_else(|| Fail::not_found(format!("Account with id {id} was not found.")))?;
            Ok(ok(Value::Array(
                a.locations
                    .iter()
                    .filter(|l| l.is_active)
                    .map(|l| json!({"id": l.id, "name": l.name, "accountId": a.id, "isMain": l.is_main}))
                    .collect(),
            )))
        }
        Route::AccountContacts(id) if get => account_contacts(db, *id, c.params),
        Route::ContactsSearch if get => contacts_search(db, c.params),
        Route::ContactsSummary if get => contacts_summary(db, c.params),
        Route::Tickets if get => tickets_list(db, c.params),
        Route::Tickets if post => create_ticket(db, c),
        Route::TicketsSearch if post => {
            let v: Value = serde_json::from_slice(c.body).map_err(|e| {
                Fail::validation(400, vec![format!("The request body is not valid JSON: {e}")])
            })?;
            tickets_list(db, &Params::from_search_body(&v))
        }
        Route::Ticket(id) if get => {
            let t = ticket(db, *id)?;
            Ok(ok(db.ticket_json(t)))
        }
        Route::Ticket(id) if c.method == Method::PUT => put_ticket(db, *id, c),
        Route::Ticket(id) if c.method == Method::PATCH => patch_ticket(db, *id, c),
        Route::TicketNotes(id) if get => {
            let t = ticket(db, *id)?;
            let (size, number) = c.params.paging(DEFAULT_PAGE_SIZE)?;
            let notes: Vec<Value> = page(&t.notes, size, number)
                .iter()
                .map(|n| db.note_json(n))
                .collect();
            Ok(ok(Value::Array(notes)))
        }
        Route::TicketNotes(id) if post => add_note(db, *id, c),
        Route::TicketResolve(id) if post => resolve(db, *id, c),
        Route::Queues if get => Ok(ok(items_json(&db.queues, false))),
        Route::Statuses if get => Ok(ok(Value::Array(
            db.statuses
                .iter()
                .map(|s| {
                    json!({"id": s.id, "name": s.name, "fontColor": "#FFFFFF", "color": s.color,
                           "statusOrder": s.order, "typeId": s.type_id,
                           "isSystemStatus": i32::from(s.is_system), "slaEventId": null,
                           "isActive": s.is_active})
                })
                .collect(),
        ))),
        Route::Priorities if get => Ok(ok(Value::Array(
            db.priorities
                .iter()
                .map(|p| json!({"id": p.id, "name": p.name, "color": "#F0AD4E", "isDefault": p.is_default}))
                .collect(),
        ))),
        Route::IssueTypes if get => {
            let name = c.params.get("Filter.Name").map(str::to_lowercase);
            let items: Vec<Item> = db
                .issue_types
                .iter()
                .filter(|i| name.as_ref().is_none_or(|n| i.name.to_lowercase().contains(n)))
                .cloned()
                .collect();
            Ok(ok(items_json(&items, false)))
        }
        Route::SubIssueTypes(id) if get => {
            if !db.issue_types.iter().any(|i| i.id == *id) {
                return Err(Fail::not_found(format!("Issue type with id {id} was not found.")));
            }
            Ok(ok(Value::Array(
                db.sub_issue_types
                    .iter()
                    .filter(|s| s.issue_type_ids.contains(id))
                    .map(|s| json!({"id": s.id, "name": s.name}))
                    .collect(),
            )))
        }
        Route::Slas if get => Ok(ok(items_json(&db.slas, true))),
        Route::WorkTypes if get => Ok(ok(Value::Array(
            db.work_types.iter().map(|w| json!({"id": w.id, "name": w.name})).collect(),
        ))),
        Route::ContractsLookup if get => contracts_lookup(db, c.params),
        Route::ContractsSummary if get => billing::contracts_summary(db, c.params),
        Route::RecurringServices(k) if post => {
            billing::add_recurring_services(db, c.config, *k, c.body)
        }
        Route::ServicesLookup if get => billing::services_lookup(db, c.params),
        Route::ServicesCreate if post => billing::create_service(db, c.config, c.body),
        Route::Service(s) if get => billing::get_service(db, *s),
        Route::RelatedServicesSearch(s) if post => billing::related_services(db, *s, c.body),
        Route::RelatedServicesBulkUpdate(s) if post => {
            billing::bulk_update(db, c.config, *s, c.body)
        }
        // Unknown table names answer an empty list. [?]
        Route::Lookup(t) | Route::TenantLookup(t) if get => Ok(ok(items_json(db.table(t), true))),
        _ => Err(method_not_allowed(c.method)),
    }
}

/// `GET /v2/finance/contracts/lookup` (`GetContractLookups`): `Ids`, `AccountId`, `Name`
/// (contains) and `ExcludeExpiredContracts` (those past their end date); unpaged.
fn contracts_lookup(db: &Db, p: &Params) -> Result<Response, Fail> {
    let ids = p.ids("Ids")?;
    let account = p.int("AccountId")?;
    let name = p.get("Name").map(str::to_lowercase);
    let exclude_expired = p.bool("ExcludeExpiredContracts")?.unwrap_or(false);
    let today = now_text().get(..10).unwrap_or_default().to_string();
    let items: Vec<Value> = db
        .contracts
        .iter()
        .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| account.is_none_or(|a| c.account_id == a))
        .filter(|c| contains(&c.name, name.as_deref()))
        .filter(|c| !(exclude_expired && c.expired(&today)))
        .map(|c| {
            json!({"id": c.id, "name": c.name, "isDefault": c.is_default, "slaId": c.sla_id,
                   "slaName": name_of_sla(db, c.sla_id), "isActive": c.is_active,
                   "endDate": c.end_date})
        })
        .collect();
    Ok(ok(Value::Array(items)))
}

fn name_of_sla(db: &Db, id: Option<i64>) -> Value {
    id.and_then(|id| db.slas.iter().find(|s| s.id == id))
        .map_or(Value::Null, |s| Value::String(s.name.clone()))
}

fn items_json(items: &[Item], with_default: bool) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| {
                let mut v = json!({"id": i.id, "name": i.name, "isActive": i.is_active});
                if with_default {
                    v["isDefault"] = json!(i.is_default);
                }
                v
            })
            .collect(),
    )
}

pub(super) fn contains(hay: &str, needle: Option<&str>) -> bool {
    needle.is_none_or(|n| hay.to_lowercase().contains(&n.trim().to_lowercase()))
}

fn account_summary(db: &Db, a: &Account) -> Value {
    json!({
        "id": a.id,
        "createdBy": 1,
        "createdOn": a.created_on,
        "modifiedBy": null,
        "modifiedOn": null,
        "parentId": null,
        "accountCode": a.code,
        "accountTypeId": a.type_id,
        "accountType": a.type_name,
        "accountName": a.name,
        "businessTypeId": null,
        "businessType": null,
        "serviceTypeId": null,
        "serviceType": null,
        "accountManagerId": null,
        "accountManagerUserName": null,
        "currencyId": 1,
        "currencyName": "US Dollar",
        "creditLimit": 0.0,
        "netDays": 30.0,
        "salesTaxItemId": null,
        "salesTaxItemName": null,
        "website": null,
        "description": null,
        "classId": null,
        "className": null,
        "isActive": a.is_active,
        "isBilling": true,
        "acquiredDate": null,
        "tenantName": db.tenant_name,
        "locations": a.locations.iter().map(|l| location_json(a, l)).collect::<Vec<_>>(),
    })
}

fn location_json(a: &Account, l: &super::store::Location) -> Value {
    let address = json!({
        "id": l.id * 10, "address1": "1 Main Street", "address2": null, "city": l.city,
        "state": null, "zipCode": "12345", "countryId": 1, "country": "United States",
        "phone": null, "fax": null, "latitude": null, "longitude": null,
        "emailAddress": null, "isMain": true, "isBilling": true, "addressTypeId": 1,
        "addressType": "Main",
    });
    json!({
        "id": l.id, "createdBy": 1, "createdOn": a.created_on, "modifiedBy": null,
        "modifiedOn": null, "locationName": l.name, "isMain": l.is_main,
        "isActive": l.is_active, "timeZoneId": 1, "dateFormatId": 1, "timeFormatId": 1,
        "addresses": [address],
    })
}

fn accounts_summary(db: &Db, p: &Params) -> Result<Response, Fail> {
    let (size, number) = p.paging(DEFAULT_PAGE_SIZE)?;
    let active = p.bool("Filter.IsActive")?;
    let type_id = p.int("Filter.AccountTypeId")?;
    let matching: Vec<&Account> = db
        .accounts
        .iter()
        .filter(|a| {
            contains(&a.name, p.get("Filter.AccountName"))
                && contains(&a.code, p.get("Filter.AccountCode"))
                && contains(&a.type_name, p.get("Filter.AccountTypeName"))
                && type_id.is_none_or(|t| a.type_id == t)
                && active.is_none_or(|x| a.is_active == x)
        })
        .collect();
    let mut sorted = matching.clone();
    sort_by(&mut sorted, p.get("Sort"), |a, f| match f {
        "accountname" => Some(Value::String(a.name.to_lowercase())),
        "accountcode" => Some(Value::String(a.code.to_lowercase())),
        "id" => Some(json!(a.id)),
        _ => None,
    });
    let items = page(&sorted, size, number)
        .iter()
        .map(|a| account_summary(db, a))
        .collect();
    Ok(paged(items, matching.len()))
}

/// `Sort=Field [asc|desc]`. [?] The syntax is undocumented; unknown fields keep id order.
fn sort_by<T>(items: &mut [T], sort: Option<&str>, key: impl Fn(&T, &str) -> Option<Value>) {
    let Some(sort) = sort else { return };
    let mut parts = sort.split_whitespace();
    let field = parts.next().unwrap_or_default().to_ascii_lowercase();
    let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
    let cmp = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (x, y) => x.to_string().cmp(&y.to_string()),
    };
    if items.first().and_then(|i| key(i, &field)).is_none() {
        return;
    }
    items.sort_by(|a, b| {
        let o = cmp(
            &key(a, &field).unwrap_or(Value::Null),
            &key(b, &field).unwrap_or(Value::Null),
        );
        if desc { o.reverse() } else { o }
    });
}

fn accounts_lookup(db: &Db, p: &Params) -> Result<Response, Fail> {
    let ids = p.ids("Filter.Ids")?;
    let with_inactive = p.bool("Filter.WithInactiveAccounts")?.unwrap_or(false);
    let (size, number) = p.paging(usize::MAX)?;
    let matching: Vec<Value> = db
        .accounts
        .iter()
        .filter(|a| {
            contains(&a.name, p.get("Filter.Name"))
                && (with_inactive || a.is_active)
                && ids.as_ref().is_none_or(|i| i.contains(&a.id))
        })
        .map(|a| json!({"id": a.id, "name": a.name, "tenantName": db.tenant_name, "isActive": a.is_active}))
        .collect();
    Ok(ok(Value::Array(page(&matching, size, number))))
}

fn account_contacts(db: &Db, account_id: i64, p: &Params) -> Result<Response, Fail> {
    let a = db
        .account(account_id)
        .ok_or_else(|| Fail::not_found(format!("Account with id {account_id} was not found.")))?;
    let location = p.int("Filter.LocationId")?;
    let (size, number) = p.paging(usize::MAX)?;
    let matching: Vec<Value> = db
        .contacts
        .iter()
        .filter(|c| {
            c.account_id == a.id
                && c.is_active
                && contains(&c.name(), p.get("Filter.Name"))
                && location.is_none_or(|l| c.location_id == l)
        })
        .map(|c| {
            json!({"id": c.id, "name": c.name(), "locationId": c.location_id,
                   "locationName": db.location(a.id, c.location_id).map(|l| l.name.clone()),
                   "phone": null, "emailAddress": c.email})
        })
        .collect();
    Ok(ok(Value::Array(page(&matching, size, number))))
}

fn contact_matches(db: &Db, c: &Contact, p: &Params) -> Result<bool, Fail> {
    let ids = p.ids("Filter.Ids")?;
    let account_ids = p.ids("Filter.AccountIds")?;
    let account_id = p.int("Filter.AccountId")?;
    let location = p.int("Filter.LocationId")?;
    let active = p.bool("Filter.IsActive")?;
    let poc = p.bool("Filter.IsPoc")?;
    let account_name = db
        .account(c.account_id)
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let location_name = db
        .location(c.account_id, c.location_id)
        .map(|l| l.name.clone())
        .unwrap_or_default();
    Ok(ids.as_ref().is_none_or(|i| i.contains(&c.id))
        && account_ids
            .as_ref()
            .is_none_or(|i| i.contains(&c.account_id))
        && account_id.is_none_or(|a| a == c.account_id)
        && location.is_none_or(|l| l == c.location_id)
        && active.is_none_or(|a| a == c.is_active)
        && poc.is_none_or(|x| x == c.is_poc)
        && contains(&account_name, p.get("Filter.AccountName"))
        && contains(&location_name, p.get("Filter.LocationName"))
        && contains(&c.first_name, p.get("Filter.FirstName"))
        && contains(&c.last_name, p.get("Filter.LastName"))
        && contains(&c.job_title, p.get("Filter.JobTitle"))
        && contains(&c.email, p.get("Filter.EmailAddress"))
        && contains(&c.email, p.get("Filter.Email")))
}

fn contacts_search(db: &Db, p: &Params) -> Result<Response, Fail> {
    let (size, number) = p.paging(DEFAULT_PAGE_SIZE)?;
    let mut matching = Vec::new();
    for c in &db.contacts {
        if contact_matches(db, c, p)? {
            matching.push(json!({
                "id": c.id,
                "accountId": c.account_id,
                "accountName": db.account(c.account_id).map(|a| a.name.clone()),
                "locationId": c.location_id,
                "locationName": db.location(c.account_id, c.location_id).map(|l| l.name.clone()),
                "firstName": c.first_name,
                "lastName": c.last_name,
                "jobTitle": c.job_title,
                "emailAddress": c.email,
                "isPoc": c.is_poc,
                "isActive": c.is_active,
                "hasClientPortalAccess": false,
            }));
        }
    }
    Ok(ok(Value::Array(page(&matching, size, number))))
}

fn contacts_summary(db: &Db, p: &Params) -> Result<Response, Fail> {
    let (size, number) = p.paging(DEFAULT_PAGE_SIZE)?;
    let mut matching = Vec::new();
    for c in &db.contacts {
        if contact_matches(db, c, p)? {
            matching.push(json!({
                "id": c.id, "createdBy": 1, "createdOn": "2025-03-04T09:00:00Z",
                "modifiedBy": null, "modifiedOn": null,
                "accountId": c.account_id,
                "accountName": db.account(c.account_id).map(|a| a.name.clone()),
                "locationId": c.location_id,
                "locationName": db.location(c.account_id, c.location_id).map(|l| l.name.clone()),
                "firstName": c.first_name, "lastName": c.last_name, "jobTitle": c.job_title,
                "isPoc": c.is_poc, "isActive": c.is_active, "effectiveDate": null,
                "isBillable": false, "canRecieveInvoices": false,
                "emails": [{"id": c.id * 10, "emailAddress": c.email, "emailTypeId": 1,
                            "emailType": "Work", "isDefault": true}],
                "phones": [],
            }));
        }
    }
    let total = matching.len();
    Ok(paged(page(&matching, size, number), total))
}

fn ticket(db: &Db, id: i64) -> Result<&Ticket, Fail> {
    db.tickets
        .get(&id)
        .ok_or_else(|| Fail::not_found(format!("Ticket with id {id} was not found.")))
}

fn names_match(list: Option<&str>, name: Option<String>) -> bool {
    list.is_none_or(|l| {
        let name = name.unwrap_or_default().to_lowercase();
        l.split(',').any(|n| n.trim().to_lowercase() == name)
    })
}

fn tickets_list(db: &Db, p: &Params) -> Result<Response, Fail> {
    let (size, number) = p.paging(DEFAULT_PAGE_SIZE)?;
    let exclude_completed = p.int("Filter.ExcludeCompleted")?.unwrap_or(0) != 0;
    let account_ids = p.ids("Filter.AccountIds")?;
    let contact = p.int("Filter.ContactId")?;
    let location = p.int("Filter.AccountLocationId")?;
    let sources = p.ids("Filter.SourceIds")?;
    let date = |name: &str| -> Result<Option<String>, Fail> {
        match p.get(name) {
            None => Ok(None),
            Some(v) => chrono::DateTime::parse_from_rfc3339(v)
                .map(|d| {
                    Some(
                        d.with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    )
                })
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map(|d| Some(format!("{}T00:00:00Z", d.format("%Y-%m-%d"))))
                })
                .map_err(|_| {
                    Fail::validation(
                        400,
                        vec![format!("The value '{v}' is not valid for {name}.")],
                    )
                }),
        }
    };
    let (from, to) = (date("Filter.OpenDateFrom")?, date("Filter.OpenDateTo")?);
    let mut matching: Vec<&Ticket> = db
        .tickets
        .values()
        .filter(|t| {
            let account = db.account(t.account_id);
            let json = db.ticket_json(t);
            let name = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
            contains(&t.title, p.get("Filter.Title"))
                && contains(&t.details, p.get("Filter.Details"))
                && contains(&t.number, p.get("Filter.TicketNumber"))
                && contains(
                    account.map_or("", |a| a.name.as_str()),
                    p.get("Filter.Account"),
                )
                && contains(
                    account.map_or("", |a| a.code.as_str()),
                    p.get("Filter.AccountCode"),
                )
                && contains(
                    &name("contactName").unwrap_or_default(),
                    p.get("Filter.ContactName"),
                )
                && contains(
                    &name("locationName").unwrap_or_default(),
                    p.get("Filter.LocationName"),
                )
                && names_match(p.get("Filter.StatusNames"), name("statusName"))
                && names_match(p.get("Filter.QueueNames"), name("queueName"))
                && names_match(p.get("Filter.PriorityNames"), name("priorityName"))
                && names_match(p.get("Filter.TicketTypeNames"), name("typeName"))
                && names_match(p.get("Filter.IssueTypeNames"), name("issueTypeName"))
                && names_match(p.get("Filter.SubIssueTypeNames"), name("subIssueTypeName"))
                && names_match(p.get("Filter.ServiceLevelAgreementNames"), name("slaName"))
                && (!exclude_completed || !db.is_closed(t))
                && account_ids
                    .as_ref()
                    .is_none_or(|a| a.contains(&t.account_id))
                && contact.is_none_or(|c| t.contact_id == Some(c))
                && location.is_none_or(|l| t.location_id == l)
                && sources.as_ref().is_none_or(|s| s.contains(&t.source_id))
                && from.as_ref().is_none_or(|f| t.open_date >= *f)
                && to.as_ref().is_none_or(|x| t.open_date <= *x)
        })
        .collect();
    sort_by(&mut matching, p.get("Sort"), |t, f| match f {
        "id" => Some(json!(t.id)),
        "opendate" => Some(Value::String(t.open_date.clone())),
        "title" => Some(Value::String(t.title.to_lowercase())),
        "ticketnumber" => Some(Value::String(t.number.clone())),
        _ => None,
    });
    let total = matching.len();
    let items = page(&matching, size, number)
        .iter()
        .map(|t| db.ticket_list_json(t))
        .collect();
    Ok(paged(items, total))
}

/// The ticket fields a `TicketInputDto` sets.
struct TicketInput {
    title: String,
    details: String,
    account_id: i64,
    location_id: i64,
    contact_id: Option<i64>,
    queue_id: Option<i64>,
    status_id: i64,
    priority_id: i64,
    type_id: i64,
    issue_type_id: Option<i64>,
    sub_issue_type_id: Option<i64>,
    source_id: i64,
    sla_id: Option<i64>,
    contract_id: Option<i64>,
    assignee_id: Option<i64>,
    work_type_id: Option<i64>,
    open_date: String,
    due_date: Option<String>,
}

fn exists(items: &[Item], id: i64) -> bool {
    items.iter().any(|i| i.id == id)
}

/// Read and validate a `TicketInputDto` as BMS does: required fields, types, then the ids.
fn ticket_input(db: &Db, config: &Config, body: &[u8]) -> Result<TicketInput, Fail> {
    let b = Body::parse(body)?;
    let mut e = Vec::new();
    let title = b.string("Title", &mut e).filter(|s| !s.trim().is_empty());
    let details = b.string("Details", &mut e).filter(|s| !s.trim().is_empty());
    let account_id = b.int("AccountId", &mut e);
    let location_id = b.int("LocationId", &mut e);
    let status_id = b.int("StatusId", &mut e);
    let priority_id = b.int("PriorityId", &mut e);
    let type_id = b.int("TypeId", &mut e);
    let source_id = b.int("SourceId", &mut e);
    let open_date = b.date("OpenDate", &mut e);
    let due_date = b.date("DueDate", &mut e);
    let contact_id = b.int("ContactId", &mut e);
    let queue_id = b.int("QueueId", &mut e);
    let issue_type_id = b.int("IssueTypeId", &mut e);
    let sub_issue_type_id = b.int("SubIssueTypeId", &mut e);
    let sla_id = b.int("SLAId", &mut e);
    let contract_id = b.int("ContractId", &mut e);
    let assignee_id = b.int("AssigneeId", &mut e);
    let work_type_id = b.int("WorkTypeId", &mut e);
    for (name, missing) in [
        ("Title", title.is_none()),
        ("Details", details.is_none()),
        ("AccountId", account_id.is_none()),
        ("LocationId", location_id.is_none()),
        ("OpenDate", open_date.is_none()),
        ("PriorityId", priority_id.is_none()),
        ("SourceId", source_id.is_none()),
        ("StatusId", status_id.is_none()),
        ("TypeId", type_id.is_none()),
    ] {
        if missing && !e.iter().any(|m| m.ends_with(&format!("$.{name}"))) {
            e.push(format!("The {name} field is required."));
        }
    }
    if !e.is_empty() {
        return Err(Fail::validation(config.validation_status, e));
    }
    let (Some(title), Some(details), Some(account_id), Some(location_id), Some(open_date)) =
        (title, details, account_id, location_id, open_date)
    else {
        return Err(Fail::validation(config.validation_status, e));
    };
    let (Some(priority_id), Some(source_id), Some(status_id), Some(type_id)) =
        (priority_id, source_id, status_id, type_id)
    else {
        return Err(Fail::validation(config.validation_status, e));
    };
    if title.chars().count() > config.title_max {
        e.push(format!(
            "The field Title must be a string with a maximum length of {}.",
            config.title_max
        ));
    }
    match db.account(account_id) {
        None => e.push(format!("Account with id {account_id} does not exist.")),
        Some(a) if !a.is_active => e.push(format!("Account '{}' is inactive.", a.name)),
        Some(a) => {
            if !a
                .locations
                .iter()
                .any(|l| l.id == location_id && l.is_active)
            {
                e.push(format!(
                    "Location with id {location_id} does not belong to account '{}'.",
                    a.name
                ));
            }
            if let Some(c) = contact_id {
                match db.contact(c) {
                    Some(ct) if ct.account_id == a.id && ct.is_active => {}
                    Some(ct) if ct.account_id == a.id => {
                        e.push(format!("Contact '{}' is inactive.", ct.name()))
                    }
                    _ => e.push(format!(
                        "Contact with id {c} does not belong to account '{}'.",
                        a.name
                    )),
                }
            }
        }
    }
    if !db.statuses.iter().any(|s| s.id == status_id && s.is_active) {
        e.push(format!(
            "Status with id {status_id} does not exist or is inactive."
        ));
    }
    if !exists(&db.priorities, priority_id) {
        e.push(format!("Priority with id {priority_id} does not exist."));
    }
    if !db
        .table(&db.ticket_type_table)
        .iter()
        .any(|i| i.id == type_id && i.is_active)
    {
        e.push(format!(
            "Ticket type with id {type_id} does not exist or is inactive."
        ));
    }
    let source_ok = if db.table(&db.source_table).is_empty() {
        (0..=9).contains(&source_id)
    } else {
        exists(db.table(&db.source_table), source_id)
    };
    if !source_ok {
        e.push(format!("Source with id {source_id} does not exist."));
    }
    if let Some(q) = queue_id
        && !db.queues.iter().any(|i| i.id == q && i.is_active)
    {
        e.push(format!("Queue with id {q} does not exist or is inactive."));
    }
    if let Some(i) = issue_type_id
        && !db.issue_types.iter().any(|x| x.id == i && x.is_active)
    {
        e.push(format!(
            "Issue type with id {i} does not exist or is inactive."
        ));
    }
    if let Some(s) = sub_issue_type_id {
        match (db.sub_issue_types.iter().find(|x| x.id == s), issue_type_id) {
            (None, _) => e.push(format!("Sub-issue type with id {s} does not exist.")),
            (Some(_), None) => e.push("A sub-issue type needs an issue type (IssueTypeId).".into()),
            (Some(x), Some(i)) if !x.issue_type_ids.contains(&i) => e.push(format!(
                "Sub-issue type '{}' does not belong to issue type {i}.",
                x.name
            )),
            _ => {}
        }
    }
    if let Some(s) = sla_id
        && !db.slas.iter().any(|x| x.id == s && x.is_active)
    {
        e.push(format!("SLA with id {s} does not exist or is inactive."));
    }
    if let Some(k) = contract_id {
        match (
            db.contracts.iter().find(|x| x.id == k),
            db.account(account_id),
        ) {
            (None, _) => e.push(format!("Contract with id {k} does not exist.")),
            (Some(x), Some(a)) if x.account_id != a.id => e.push(format!(
                "Contract with id {k} does not belong to account '{}'.",
                a.name
            )),
            _ => {}
        }
    }
    if let Some(w) = work_type_id
        && !exists(&db.work_types, w)
    {
        e.push(format!("Work type with id {w} does not exist."));
    }
    if !e.is_empty() {
        return Err(Fail::validation(config.validation_status, e));
    }
    Ok(TicketInput {
        title,
        details,
        account_id,
        location_id,
        contact_id,
        queue_id,
        status_id,
        priority_id,
        type_id,
        issue_type_id,
        sub_issue_type_id,
        source_id,
        sla_id,
        contract_id,
        assignee_id,
        work_type_id,
        open_date,
        due_date,
    })
}

fn apply(db: &Db, t: &mut Ticket, i: TicketInput) {
    let now = now_text();
    if t.status_id != i.status_id {
        t.last_status_update = now.clone();
    }
    t.title = i.title;
    t.details = i.details;
    t.account_id = i.account_id;
    t.location_id = i.location_id;
    t.contact_id = i.contact_id;
    t.queue_id = i.queue_id;
    t.status_id = i.status_id;
    t.priority_id = i.priority_id;
    t.type_id = i.type_id;
    t.issue_type_id = i.issue_type_id;
    t.sub_issue_type_id = i.sub_issue_type_id;
    t.source_id = i.source_id;
    t.sla_id = i.sla_id;
    t.contract_id = i.contract_id;
    t.assignee_id = i.assignee_id;
    t.work_type_id = i.work_type_id;
    t.open_date = i.open_date;
    t.due_date = i.due_date;
    t.modified_on = now.clone();
    completion(db, t, &now);
}

/// A status of the completed type sets `completedDate`; another clears it.
fn completion(db: &Db, t: &mut Ticket, now: &str) {
    let completed = db
        .status(t.status_id)
        .is_some_and(|s| s.type_id == STATUS_TYPE_COMPLETED);
    if completed && t.completed_date.is_none() {
        t.completed_date = Some(now.to_string());
    } else if !completed && t.completed_date.is_some() {
        t.completed_date = None;
        t.reopened_date = Some(now.to_string());
    }
}

fn create_ticket(db: &mut Db, c: &Ctx<'_>) -> Result<Response, Fail> {
    let input = ticket_input(db, c.config, c.body)?;
    let id = db.next_ticket_id;
    db.next_ticket_id += 1;
    let now = now_text();
    let mut t = Ticket {
        id,
        number: format!("T{}.{:04}", chrono::Utc::now().format("%Y%m%d"), id - 1000),
        title: String::new(),
        details: String::new(),
        account_id: 0,
        location_id: 0,
        contact_id: None,
        queue_id: None,
        status_id: 0,
        priority_id: 0,
        type_id: 0,
        issue_type_id: None,
        sub_issue_type_id: None,
        source_id: 0,
        sla_id: None,
        contract_id: None,
        assignee_id: None,
        work_type_id: None,
        open_date: String::new(),
        due_date: None,
        completed_date: None,
        reopened_date: None,
        created_on: now.clone(),
        modified_on: now.clone(),
        last_status_update: now,
        created_by_name: "PSA Bridge API".into(),
        notes: Vec::new(),
    };
    apply(db, &mut t, input);
    t.reopened_date = None;
    let out = db.ticket_json(&t);
    db.tickets.insert(id, t);
    Ok(ok(out))
}

fn put_ticket(db: &mut Db, id: i64, c: &Ctx<'_>) -> Result<Response, Fail> {
    ticket(db, id)?;
    let input = ticket_input(db, c.config, c.body)?;
    let mut t = db
        .tickets
        .get(&id)
        .cloned()
        .ok_or_else(|| Fail::not_found("gone"))?;
    apply(db, &mut t, input);
    let out = db.ticket_json(&t);
    db.tickets.insert(id, t);
    Ok(ok(out))
}

/// `PATCH` with a JSON-Patch document: `replace` (or `add`) of the ticket's scalar fields.
fn patch_ticket(db: &mut Db, id: i64, c: &Ctx<'_>) -> Result<Response, Fail> {
    let current = ticket(db, id)?.clone();
    let ops: Vec<Value> = match serde_json::from_slice(c.body) {
        Ok(Value::Array(a)) => a,
        _ => {
            return Err(Fail::validation(
                c.config.validation_status,
                vec!["The body must be a JSON-Patch document (an array of operations).".into()],
            ));
        }
    };
    // Rebuild the input DTO from the ticket, apply the operations, validate it whole.
    let mut dto = serde_json::Map::new();
    let mut set = |k: &str, v: Value| {
        dto.insert(k.to_ascii_lowercase(), v);
    };
    set("Title", json!(current.title));
    set("Details", json!(current.details));
    set("AccountId", json!(current.account_id));
    set("LocationId", json!(current.location_id));
    set("ContactId", json!(current.contact_id));
    set("QueueId", json!(current.queue_id));
    set("StatusId", json!(current.status_id));
    set("PriorityId", json!(current.priority_id));
    set("TypeId", json!(current.type_id));
    set("IssueTypeId", json!(current.issue_type_id));
    set("SubIssueTypeId", json!(current.sub_issue_type_id));
    set("SourceId", json!(current.source_id));
    set("SLAId", json!(current.sla_id));
    set("ContractId", json!(current.contract_id));
    set("AssigneeId", json!(current.assignee_id));
    set("WorkTypeId", json!(current.work_type_id));
    set("OpenDate", json!(current.open_date));
    set("DueDate", json!(current.due_date));
    for op in &ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_ascii_lowercase();
        if !dto.contains_key(&path) {
            return Err(Fail::validation(
                c.config.validation_status,
                vec![format!(
                    "The target location specified by path '/{path}' was not found."
                )],
            ));
        }
        match kind.as_str() {
            "replace" | "add" => {
                dto.insert(path, op.get("value").cloned().unwrap_or(Value::Null));
            }
            "remove" => {
                dto.insert(path, Value::Null);
            }
            other => {
                return Err(Fail::validation(
                    c.config.validation_status,
                    vec![format!("The operation '{other}' is not supported.")],
                ));
            }
        }
    }
    let bytes = serde_json::to_vec(&Value::Object(dto)).unwrap_or_default();
    let input = ticket_input(db, c.config, &bytes)?;
    let mut t = current;
    apply(db, &mut t, input);
    let out = db.ticket_json(&t);
    db.tickets.insert(id, t);
    Ok(ok(out))
}

fn add_note(db: &mut Db, id: i64, c: &Ctx<'_>) -> Result<Response, Fail> {
    ticket(db, id)?;
    let b = Body::parse(c.body)?;
    let mut e = Vec::new();
    let details = b.string("Details", &mut e).filter(|s| !s.trim().is_empty());
    let internal = b.bool("IsInternal", &mut e);
    let type_id = b.int("TypeId", &mut e);
    let note_date = b.date("NoteDate", &mut e);
    let status_id = b.int("StatusId", &mut e);
    for (name, missing) in [
        ("Details", details.is_none()),
        ("IsInternal", internal.is_none()),
        ("NoteDate", note_date.is_none()),
        ("TypeId", type_id.is_none()),
    ] {
        if missing && !e.iter().any(|m| m.ends_with(&format!("$.{name}"))) {
            e.push(format!("The {name} field is required."));
        }
    }
    if let Some(t) = type_id
        && !db
            .table(&db.note_type_table)
            .iter()
            .any(|i| i.id == t && i.is_active)
    {
        e.push(format!(
            "Note type with id {t} does not exist or is inactive."
        ));
    }
    if let Some(s) = status_id
        && !db.statuses.iter().any(|x| x.id == s && x.is_active)
    {
        e.push(format!("Status with id {s} does not exist or is inactive."));
    }
    if !e.is_empty() {
        return Err(Fail::validation(c.config.validation_status, e));
    }
    let note = Note {
        id: db.next_note_id,
        details: details.unwrap_or_default(),
        is_internal: internal.unwrap_or(true),
        type_id: type_id.unwrap_or(1),
        note_date: note_date.unwrap_or_else(now_text),
        created_by_name: "PSA Bridge API".into(),
    };
    db.next_note_id += 1;
    let out = db.note_json(&note);
    let mut t = db
        .tickets
        .get(&id)
        .cloned()
        .ok_or_else(|| Fail::not_found("gone"))?;
    t.notes.push(note);
    t.modified_on = now_text();
    if let Some(s) = status_id {
        if s != t.status_id {
            t.last_status_update = now_text();
        }
        t.status_id = s;
        completion(db, &mut t, &now_text());
    }
    db.tickets.insert(id, t);
    Ok(ok(out))
}

/// Resolve: the ticket takes `StatusId` (the tenant's completed status when 0 or absent),
/// gets its `completedDate`, and the comment is recorded as a note.
fn resolve(db: &mut Db, id: i64, c: &Ctx<'_>) -> Result<Response, Fail> {
    ticket(db, id)?;
    let b = Body::parse(c.body)?;
    let mut e = Vec::new();
    let comment = b.string("Comment", &mut e).filter(|s| !s.trim().is_empty());
    let status = b.int("StatusId", &mut e).filter(|s| *s != 0);
    let internal = b.bool("IsInternal", &mut e).unwrap_or(false);
    if comment.is_none() && !e.iter().any(|m| m.ends_with("$.Comment")) {
        e.push("The Comment field is required.".into());
    }
    let status = status.unwrap_or(db.default_close_status);
    if !db.statuses.iter().any(|s| s.id == status && s.is_active) {
        e.push(format!(
            "Status with id {status} does not exist or is inactive."
        ));
    }
    if !e.is_empty() {
        return Err(Fail::validation(c.config.validation_status, e));
    }
    let now = now_text();
    let note = Note {
        id: db.next_note_id,
        details: comment.unwrap_or_default(),
        is_internal: internal,
        type_id: 1,
        note_date: now.clone(),
        created_by_name: "PSA Bridge API".into(),
    };
    db.next_note_id += 1;
    let mut t = db
        .tickets
        .get(&id)
        .cloned()
        .ok_or_else(|| Fail::not_found("gone"))?;
    if t.status_id != status {
        t.last_status_update = now.clone();
    }
    t.status_id = status;
    t.completed_date.get_or_insert(now.clone());
    t.modified_on = now;
    t.notes.push(note);
    let out = db.ticket_json(&t);
    db.tickets.insert(id, t);
    Ok(ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_case_insensitively_to_templates() {
        let r = |p: &str| {
            let segs: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
            route(&segs)
        };
        assert_eq!(
            r("/V2/ServiceDesk/Tickets/1001/Notes/"),
            Some((
                Route::TicketNotes(1001),
                "/v2/servicedesk/tickets/{ticketId}/notes"
            ))
        );
        assert_eq!(
            r("/v2/system/lookup/TicketType"),
            Some((
                Route::Lookup("TicketType".into()),
                "/v2/system/lookup/{tableName}"
            ))
        );
        assert_eq!(
            r("/v2/admin/finance/services/services"),
            Some((Route::ServicesCreate, "/v2/admin/finance/services/services"))
        );
        assert_eq!(
            r("/v2/Admin/Finance/Services/77/RelatedServices/Search"),
            Some((
                Route::RelatedServicesSearch(77),
                "/v2/admin/finance/services/{serviceId}/relatedservices/search"
            ))
        );
        assert_eq!(
            r("/v2/finance/contracts/recurringservices/44/services"),
            Some((
                Route::RecurringServices(44),
                "/v2/finance/contracts/recurringservices/{contractId}/services"
            ))
        );
        assert_eq!(r("/v2/admin/finance/services/seat"), None);
        assert_eq!(r("/v2/servicedesk/tickets/abc"), None);
        assert_eq!(r("/v1/servicedesk/tickets"), None);
        assert_eq!(r("/"), None);
    }
}
