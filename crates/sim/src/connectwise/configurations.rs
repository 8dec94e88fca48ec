//! Configurations (`company/configurations`): a company's devices, and the configuration types
//! (`company/configurations/types`) every one of them must have.
//!
//! A `Configuration` needs `name` (at most 100 characters), `type` (an active configuration
//! type) and `company` (an existing company), as ConnectWise requires. The text fields keep
//! ConnectWise's lengths (`tagNumber`, `ipAddress`, `macAddress`, `modelNumber` at most 50,
//! `serialNumber`, `osType`, `osInfo` at most 250); a longer value is refused with
//! `InvalidLength`. `status` defaults to the tenant's "Active" configuration status and
//! `activeFlag` to true. The published GET subset has no `Configuration` model and no status
//! list, so the simulator keeps the properties named in ConnectWise's API reference
//! ([`WRITABLE`]), knows the two shipped statuses ([`STATUSES`]), ignores anything else in a
//! create and refuses a patch of it. Updates are JSON Patch arrays, as every ConnectWise PATCH.

use serde_json::{Map, Value, json};

use super::errors::{ApiError, FieldError};
use super::store::*;
use super::tickets::{apply_json_patch, describe, find_ref};

/// Configuration types of the tenant (`id`, `name`, inactive).
pub const TYPES: &[(i64, &str, bool)] = &[
    (1, "Managed Workstation", false),
    (2, "Managed Server", false),
    (3, "Network Device", false),
    (4, "Legacy Device", true),
];
/// The seeded type the demo's connection pushes assets as.
pub const MANAGED_WORKSTATION_TYPE: i64 = 1;
/// Configuration statuses of the tenant (`id`, `name`): ConnectWise ships these two.
pub const STATUSES: &[(i64, &str)] = &[(1, "Active"), (2, "Inactive")];

const NAME_MAX: usize = 100;
/// Text properties and their longest value.
const LENGTHS: &[(&str, usize)] = &[
    ("tagNumber", 50),
    ("ipAddress", 50),
    ("macAddress", 50),
    ("modelNumber", 50),
    ("serialNumber", 250),
    ("osType", 250),
    ("osInfo", 250),
];
/// The `Configuration` properties a client may write; the rest are computed or ignored.
const WRITABLE: &[&str] = &[
    "name",
    "type",
    "status",
    "company",
    "contact",
    "site",
    "locationId",
    "businessUnitId",
    "deviceIdentifier",
    "serialNumber",
    "modelNumber",
    "tagNumber",
    "purchaseDate",
    "installationDate",
    "warrantyExpirationDate",
    "vendorNotes",
    "notes",
    "macAddress",
    "lastLoginName",
    "billFlag",
    "backupSuccesses",
    "backupIncomplete",
    "backupFailed",
    "backupRestores",
    "ipAddress",
    "defaultGateway",
    "osType",
    "osInfo",
    "cpuSpeed",
    "ram",
    "localHardDrives",
    "activeFlag",
    "managementLink",
    "remoteLink",
    "mobileGuid",
    "questions",
    "customFields",
];
/// Properties the API owns; a patch of them is refused as read-only.
const READ_ONLY: &[&str] = &["id", "_info", "companyLocationId", "lastBackupDate"];
/// Ids of created configurations start here.
const FIRST_ID: i64 = 100;

/// The configuration types as the API answers them.
pub fn types(db: &Db) -> Vec<Value> {
    TYPES
        .iter()
        .map(|(id, name, inactive)| {
            json!({"id": id, "name": name, "inactiveFlag": inactive, "systemFlag": false,
                   "_info": {"lastUpdated": "2025-01-06T09:00:00Z", "updatedBy": "admin1",
                             "self_href": db.href(&format!("company/configurations/types/{id}"))}})
        })
        .collect()
}

/// The configurations as the API answers them, in id order.
pub fn all(db: &Db) -> Vec<Value> {
    db.table(CONFIGURATIONS).values().map(clean).collect()
}

fn type_ref(db: &Db, given: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let Some(given) = given.filter(|v| !v.is_null()) else {
        errors.push(FieldError::new(
            "NullValue",
            "type",
            "The type field is required.",
        ));
        return None;
    };
    let wanted = given.get("name").and_then(Value::as_str);
    let found = TYPES.iter().find(|(id, name, _)| {
        id_of(given) == Some(*id) || wanted.is_some_and(|n| n.eq_ignore_ascii_case(name))
    });
    match found {
        Some((id, name, false)) => Some(json!({"id": id, "name": name,
            "_info": {"type_href": db.href(&format!("company/configurations/types/{id}"))}})),
        Some(_) => {
            errors.push(FieldError::new(
                "InvalidObject",
                "type",
                format!("type {} is inactive.", describe(given)),
            ));
            None
        }
        None => {
            errors.push(FieldError::new(
                "InvalidObject",
                "type",
                format!("type {} was not found.", describe(given)),
            ));
            None
        }
    }
}

fn status_ref(db: &Db, given: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let given = given.filter(|v| !v.is_null());
    let wanted = given.and_then(|g| g.get("name")).and_then(Value::as_str);
    let found = match given {
        None => STATUSES.first(),
        Some(g) => STATUSES.iter().find(|(id, name)| {
            id_of(g) == Some(*id) || wanted.is_some_and(|n| n.eq_ignore_ascii_case(name))
        }),
    };
    match found {
        Some((id, name)) => Some(json!({"id": id, "name": name,
            "_info": {"status_href": db.href(&format!("company/configurations/statuses/{id}"))}})),
        None => {
            errors.push(FieldError::new(
                "InvalidObject",
                "status",
                format!(
                    "status {} was not found.",
                    given.map(describe).unwrap_or_default()
                ),
            ));
            None
        }
    }
}

/// Check a draft configuration and complete its references and defaults.
fn settle(db: &Db, draft: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    match draft.get("name").and_then(Value::as_str).map(str::trim) {
        None | Some("") => errors.push(FieldError::new(
            "NullValue",
            "name",
            "The name field is required.",
        )),
        Some(n) if n.chars().count() > NAME_MAX => errors.push(FieldError::new(
            "InvalidLength",
            "name",
            format!("The field name must be a string with a maximum length of {NAME_MAX}."),
        )),
        Some(_) => {}
    }
    for (field, max) in LENGTHS {
        match draft.get(*field) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => errors.push(FieldError::new(
                "InvalidField",
                field,
                format!("The field {field} must be a string."),
            )),
        }
        if draft
            .get(*field)
            .and_then(Value::as_str)
            .is_some_and(|v| v.chars().count() > *max)
        {
            errors.push(FieldError::new(
                "InvalidLength",
                field,
                format!("The field {field} must be a string with a maximum length of {max}."),
            ));
        }
    }
    let kind = type_ref(db, draft.get("type"), &mut errors);
    let status = status_ref(db, draft.get("status"), &mut errors);
    let company = match draft.get("company").filter(|v| !v.is_null()) {
        None => {
            errors.push(FieldError::new(
                "NullValue",
                "company",
                "The company field is required.",
            ));
            None
        }
        Some(given) => match find_ref(db, COMPANIES, given, None) {
            Some(c) => Some(db.company_ref(c)),
            None => {
                errors.push(FieldError::new(
                    "InvalidObject",
                    "company",
                    format!("company {} was not found.", describe(given)),
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid("configuration", errors));
    }
    for (key, value) in [("type", kind), ("status", status), ("company", company)] {
        if let Some(v) = value {
            draft.insert(key.into(), v);
        }
    }
    if !draft.get("activeFlag").is_some_and(Value::is_boolean) {
        draft.insert("activeFlag".into(), json!(true));
    }
    Ok(())
}

/// `POST /company/configurations`: check and store a new configuration; the stored record.
pub fn create(db: &mut Db, body: &Value, member: &str) -> Result<Value, ApiError> {
    let Some(given) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "The request body must be a configuration object.".into(),
        ));
    };
    let mut draft: Map<String, Value> = given
        .iter()
        .filter_map(|(k, v)| {
            let known = WRITABLE.iter().find(|w| w.eq_ignore_ascii_case(k))?;
            Some((known.to_string(), v.clone()))
        })
        .collect();
    settle(db, &mut draft)?;
    let id = db.next_id(CONFIGURATIONS, FIRST_ID);
    draft.insert("id".into(), json!(id));
    draft.insert("_info".into(), Value::Object(db.info(member, None)));
    let record = Value::Object(draft);
    db.put(CONFIGURATIONS, record.clone());
    Ok(clean(&record))
}

/// `PATCH /company/configurations/{id}` with a JSON Patch array: the record after it.
pub fn patch(db: &mut Db, id: i64, body: &Value, member: &str) -> Result<Value, ApiError> {
    let Some(prev) = db.get(CONFIGURATIONS, id).cloned() else {
        return Err(ApiError::NotFound(format!(
            "Configuration with id {id} was not found."
        )));
    };
    let Value::Array(ops) = body else {
        return Err(ApiError::BadRequest(
            "The request body must be a JSON Patch array.".into(),
        ));
    };
    let mut draft = prev.as_object().cloned().unwrap_or_default();
    apply_json_patch(&mut draft, ops, |_, first| {
        if let Some(key) = READ_ONLY.iter().find(|r| r.eq_ignore_ascii_case(first)) {
            return Err(ApiError::one(
                "configuration",
                FieldError::new("ReadOnly", key, format!("{key} cannot be updated.")),
            ));
        }
        WRITABLE
            .iter()
            .find(|w| w.eq_ignore_ascii_case(first))
            .map(|w| w.to_string())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("'{first}' is not a field of a configuration."))
            })
    })?;
    settle(db, &mut draft)?;
    draft.insert(
        "_info".into(),
        Value::Object(db.info(member, prev.get("_info"))),
    );
    let record = Value::Object(draft);
    db.put(CONFIGURATIONS, record.clone());
    Ok(clean(&record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Db {
        let mut db = Db::empty("http://sim/apis/3.0");
        db.put(
            COMPANIES,
            json!({"id": 12, "identifier": "AcmeLtd", "name": "Acme Ltd"}),
        );
        db
    }

    fn codes(e: ApiError) -> Vec<(&'static str, String)> {
        match e {
            ApiError::Invalid { errors, .. } => {
                errors.into_iter().map(|e| (e.code, e.field)).collect()
            }
            other => panic!("expected InvalidObject, got {other:?}"),
        }
    }

    #[test]
    fn a_create_needs_name_active_type_and_company() {
        let mut db = db();
        let refused = create(
            &mut db,
            &json!({"type": {"id": 4}, "company": {"id": 99}, "tagNumber": "x".repeat(51)}),
            "api",
        )
        .unwrap_err();
        assert_eq!(
            codes(refused),
            vec![
                ("NullValue", "name".to_string()),
                ("InvalidLength", "tagNumber".to_string()),
                ("InvalidObject", "type".to_string()),
                ("InvalidObject", "company".to_string()),
            ]
        );
        assert!(db.table(CONFIGURATIONS).is_empty());
        let made = create(
            &mut db,
            &json!({"name": "PC-1", "type": {"id": 1}, "company": {"id": 12}, "bogus": 1}),
            "api",
        )
        .unwrap();
        assert_eq!(made["type"]["name"], "Managed Workstation");
        assert_eq!(made["status"]["name"], "Active");
        assert_eq!(made["activeFlag"], true);
        assert!(made.get("bogus").is_none());
    }

    #[test]
    fn a_patch_replaces_fields_and_refuses_read_only_ones() {
        let mut db = db();
        let made = create(
            &mut db,
            &json!({"name": "PC-1", "type": {"id": 1}, "company": {"id": 12}}),
            "api",
        )
        .unwrap();
        let id = id_of(&made).unwrap();
        let changed = patch(
            &mut db,
            id,
            &json!([{"op": "replace", "path": "osType", "value": "Windows 11"},
                    {"op": "replace", "path": "/type/id", "value": 2}]),
            "api",
        )
        .unwrap();
        assert_eq!(changed["osType"], "Windows 11");
        assert_eq!(changed["type"]["name"], "Managed Server");
        assert!(matches!(
            patch(
                &mut db,
                id,
                &json!([{"op": "replace", "path": "id", "value": 5}]),
                "api"
            ),
            Err(ApiError::Invalid { .. })
        ));
        assert!(matches!(
            patch(&mut db, 999, &json!([]), "api"),
            Err(ApiError::NotFound(_))
        ));
    }
}
