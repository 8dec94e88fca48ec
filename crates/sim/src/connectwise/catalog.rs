//! The product catalogue (`procurement/catalog`): the items agreement additions bill.
//!
//! A `CatalogItem` needs `identifier` (the product ID, at most 75 characters, unique in the
//! tenant), `description` (at most 60), `customerDescription`, `subcategory` and `type`
//! (ConnectWise's required fields). Product types and subcategories are tenant setup lists that
//! the published GET subset gives no endpoint for, so the simulator knows a fixed few
//! ([`PRODUCT_TYPES`], [`SUBCATEGORIES`]) and refuses references to any other, as ConnectWise
//! refuses unknown references. A second item with an identifier already in use is refused with
//! element code `ObjectExists` (the code clients special-case).

use serde_json::{Map, Value, json};

use super::errors::{ApiError, FieldError};
use super::store::*;
use super::tickets::describe;

/// Product types of the tenant (`id`, `name`).
pub const PRODUCT_TYPES: &[(i64, &str)] = &[(1, "Service"), (2, "Hardware")];
/// Product subcategories of the tenant (`id`, `name`), all under category 1 "Services".
pub const SUBCATEGORIES: &[(i64, &str)] = &[(1, "Managed Services"), (2, "Cloud Services")];
const CATEGORY: (i64, &str) = (1, "Services");

const IDENTIFIER_MAX: usize = 75;
const DESCRIPTION_MAX: usize = 60;
const CUSTOMER_DESCRIPTION_MAX: usize = 6000;
const PRODUCT_CLASSES: &[&str] = &[
    "Agreement",
    "Bundle",
    "Inventory",
    "NonInventory",
    "Service",
];
/// Optional `CatalogItem` properties a create keeps as sent (the required ones, references,
/// prices and flags are settled one by one); anything else is ignored.
const KEPT_AS_SENT: &[&str] = &[
    "serializedFlag",
    "serializedCostFlag",
    "phaseProductFlag",
    "minStockLevel",
    "priceAttribute",
    "dropShipFlag",
    "specialOrderFlag",
    "manufacturerPartNumber",
    "vendorSku",
    "notes",
    "integrationXRef",
    "recurringRevenue",
    "recurringCost",
    "recurringOneTimeFlag",
    "recurringCycleType",
    "billableOption",
    "markupPercentage",
    "markupFlag",
    "autoUpdateUnitCostFlag",
    "autoUpdateUnitPriceFlag",
    "customFields",
];
/// Ids of created items start here (seeded ones are below).
const FIRST_ID: i64 = 100;

/// An `IvItemReference`, as additions carry their product.
pub fn item_ref(db: &Db, item: &Value) -> Value {
    let id = id_of(item).unwrap_or_default();
    json!({"id": id, "identifier": item["identifier"],
           "_info": {"catalog_href": db.href(&format!("procurement/catalog/{id}"))}})
}

/// The catalogue item with this identifier (case-insensitive, as ConnectWise compares).
pub fn by_identifier<'a>(db: &'a Db, identifier: &str) -> Option<&'a Value> {
    db.table(CATALOG).values().find(|i| {
        i.get("identifier")
            .and_then(Value::as_str)
            .is_some_and(|x| x.eq_ignore_ascii_case(identifier))
    })
}

fn listed_ref(
    db: &Db,
    list: &[(i64, &str)],
    given: Option<&Value>,
    field: &str,
    href: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    let Some(given) = given.filter(|v| !v.is_null()) else {
        errors.push(FieldError::new(
            "NullValue",
            field,
            format!("The {field} field is required."),
        ));
        return None;
    };
    let wanted_name = given.get("name").and_then(Value::as_str);
    let found = list.iter().find(|(id, name)| {
        id_of(given) == Some(*id) || wanted_name.is_some_and(|n| n.eq_ignore_ascii_case(name))
    });
    match found {
        Some((id, name)) => Some(json!({"id": id, "name": name,
            "_info": {format!("{field}_href"): db.href(&format!("{href}/{id}"))}})),
        None => {
            errors.push(FieldError::new(
                "InvalidObject",
                field,
                format!("{field} {} was not found.", describe(given)),
            ));
            None
        }
    }
}

fn text_field(
    draft: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = draft
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if value.is_empty() {
        errors.push(FieldError::new(
            "NullValue",
            field,
            format!("The {field} field is required."),
        ));
        return None;
    }
    if value.chars().count() > max {
        errors.push(FieldError::new(
            "InvalidLength",
            field,
            format!("The field {field} must be a string with a maximum length of {max}."),
        ));
        return None;
    }
    Some(value.to_string())
}

fn money(draft: &Map<String, Value>, field: &str, errors: &mut Vec<FieldError>) -> f64 {
    match draft.get(field) {
        None | Some(Value::Null) => 0.0,
        Some(v) => match v.as_f64() {
            Some(n) if n >= 0.0 => n,
            _ => {
                errors.push(FieldError::new(
                    "OutOfRange",
                    field,
                    format!("The field {field} must be a number of at least 0."),
                ));
                0.0
            }
        },
    }
}

/// `POST /procurement/catalog`: check and store a new item; the stored item.
pub fn create(db: &mut Db, body: &Value, member: &str) -> Result<Value, ApiError> {
    let Some(given) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "The request body must be a catalog item object.".into(),
        ));
    };
    let mut errors = Vec::new();
    let identifier = text_field(given, "identifier", IDENTIFIER_MAX, &mut errors);
    if let Some(identifier) = &identifier
        && by_identifier(db, identifier).is_some()
    {
        errors.push(FieldError::new(
            "ObjectExists",
            "identifier",
            format!("The identifier {identifier} is already in use."),
        ));
    }
    let description = text_field(given, "description", DESCRIPTION_MAX, &mut errors);
    let customer_description = text_field(
        given,
        "customerDescription",
        CUSTOMER_DESCRIPTION_MAX,
        &mut errors,
    );
    let subcategory = listed_ref(
        db,
        SUBCATEGORIES,
        given.get("subcategory"),
        "subcategory",
        "procurement/subcategories",
        &mut errors,
    );
    let product_type = listed_ref(
        db,
        PRODUCT_TYPES,
        given.get("type"),
        "type",
        "procurement/types",
        &mut errors,
    );
    let product_class = match given.get("productClass").and_then(Value::as_str) {
        None => "NonInventory".to_string(),
        Some(c) => match PRODUCT_CLASSES.iter().find(|k| k.eq_ignore_ascii_case(c)) {
            Some(k) => k.to_string(),
            None => {
                errors.push(FieldError::new(
                    "InvalidField",
                    "productClass",
                    format!(
                        "productClass must be one of {}.",
                        PRODUCT_CLASSES.join(", ")
                    ),
                ));
                String::new()
            }
        },
    };
    let price = money(given, "price", &mut errors);
    let cost = money(given, "cost", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid("catalogItem", errors));
    }
    let id = db.next_id(CATALOG, FIRST_ID);
    let mut item: Map<String, Value> = given
        .iter()
        .filter_map(|(k, v)| {
            let known = KEPT_AS_SENT.iter().find(|w| w.eq_ignore_ascii_case(k))?;
            Some((known.to_string(), v.clone()))
        })
        .collect();
    let flag_of = |k: &str| given.get(k).and_then(Value::as_bool).unwrap_or(false);
    let fields = json!({
        "id": id, "identifier": identifier, "description": description,
        "customerDescription": customer_description, "subcategory": subcategory,
        "type": product_type, "productClass": product_class, "price": price, "cost": cost,
        "inactiveFlag": flag_of("inactiveFlag"), "recurringFlag": flag_of("recurringFlag"),
        "taxableFlag": flag_of("taxableFlag"),
        "category": {"id": CATEGORY.0, "name": CATEGORY.1,
                     "_info": {"category_href": db.href(&format!("procurement/categories/{}", CATEGORY.0))}},
        "unitOfMeasure": {"id": 1, "name": "Each",
                          "_info": {"unitOfMeasure_href": db.href("procurement/unitOfMeasures/1")}},
        "_info": db.info(member, None),
    });
    if let Value::Object(f) = fields {
        item.extend(f);
    }
    let item = Value::Object(item);
    db.put(CATALOG, item.clone());
    Ok(clean(&item))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(identifier: &str) -> Value {
        json!({"identifier": identifier, "description": "Seat", "customerDescription": "Seat",
               "subcategory": {"id": 1}, "type": {"id": 1}, "price": 2.5, "cost": 1.0})
    }

    fn field_errors(e: ApiError) -> Vec<(&'static str, String)> {
        match e {
            ApiError::Invalid { errors, .. } => {
                errors.into_iter().map(|e| (e.code, e.field)).collect()
            }
            other => panic!("expected InvalidObject, got {other:?}"),
        }
    }

    #[test]
    fn identifiers_are_unique_regardless_of_case() {
        let mut db = Db::empty("http://sim/apis/3.0");
        let item = create(&mut db, &body("SAAS-SEC"), "api").unwrap();
        assert_eq!(item["price"], json!(2.5));
        assert_eq!(item["productClass"], json!("NonInventory"));
        let refused = create(&mut db, &body("saas-sec"), "api").unwrap_err();
        assert_eq!(
            field_errors(refused),
            vec![("ObjectExists", "identifier".to_string())]
        );
    }

    #[test]
    fn required_fields_and_known_references_are_checked() {
        let mut db = Db::empty("http://sim/apis/3.0");
        let refused = create(
            &mut db,
            &json!({"identifier": "X".repeat(76), "description": "d", "type": {"id": 9},
                    "price": -1}),
            "api",
        )
        .unwrap_err();
        assert_eq!(
            field_errors(refused),
            vec![
                ("InvalidLength", "identifier".to_string()),
                ("NullValue", "customerDescription".to_string()),
                ("NullValue", "subcategory".to_string()),
                ("InvalidObject", "type".to_string()),
                ("OutOfRange", "price".to_string()),
            ]
        );
        assert!(db.table(CATALOG).is_empty());
    }
}
