//! SCIM 2.0 (RFC 7643/7644) decisions with no I/O: what a PATCH does to a stored user, how
//! the identity providers' quirks are read, what a list filter asks for, and whether an
//! identity provider may deprovision a member.
//!
//! Identity providers do not all speak the RFC to the letter. Entra sends `"Replace"` and the
//! string `"False"`; Okta sends `replace` with no path and an object value. Both are accepted
//! here so the web layer never has to know who is calling.

use serde_json::{Map, Value};

use crate::Role;

/// The core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// A SCIM error: the HTTP status, and the `scimType` keyword RFC 7644 §3.12 defines for 400s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    fn bad(scim_type: &'static str, detail: impl Into<String>) -> ScimError {
        ScimError {
            status: 400,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }
}

/// Read a SCIM boolean the way the identity providers send it: JSON `true`/`false`, or the
/// strings `"true"`/`"false"` in any case (Entra's `"False"`). Anything else is not a boolean.
pub fn coerce_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A PATCH operation's verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchVerb {
    Add,
    Replace,
    Remove,
}

impl PatchVerb {
    /// `add`, `replace` or `remove` in any case (Entra capitalises them).
    pub fn parse(op: &str) -> Option<PatchVerb> {
        match op.to_ascii_lowercase().as_str() {
            "add" => Some(PatchVerb::Add),
            "replace" => Some(PatchVerb::Replace),
            "remove" => Some(PatchVerb::Remove),
            _ => None,
        }
    }
}

/// Attributes the server owns: a client can neither set nor remove them.
const SERVER_OWNED: [&str; 3] = ["id", "meta", "schemas"];

/// Attributes every user has (the schema marks them required): `remove` on them is refused.
const ALWAYS_PRESENT: [&str; 2] = ["userName", "active"];

/// Strip a leading core-schema URN from a path or attribute name (`urn:…:User:userName`).
fn without_core_urn(path: &str) -> &str {
    path.strip_prefix(USER_SCHEMA)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(path)
}

/// Find the stored key matching `name` case-insensitively (attribute names are case-insensitive).
fn key_of(resource: &Map<String, Value>, name: &str) -> String {
    resource
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

/// Normalise a value written to `attribute`: `active` becomes a JSON boolean.
fn normalised(attribute: &str, value: Value) -> Result<Value, ScimError> {
    if attribute.eq_ignore_ascii_case("active") {
        return coerce_bool(&value)
            .map(Value::Bool)
            .ok_or_else(|| ScimError::bad("invalidValue", "active must be a boolean"));
    }
    Ok(value)
}

/// Merge `value` into `resource[attribute]` the way `add` does: arrays are appended to
/// (skipping values already present), objects merged member by member, others replaced.
fn add_into(resource: &mut Map<String, Value>, attribute: &str, value: Value) {
    let key = key_of(resource, attribute);
    match (resource.get_mut(&key), value) {
        (Some(Value::Array(existing)), Value::Array(new)) => {
            for v in new {
                if !existing.contains(&v) {
                    existing.push(v);
                }
            }
        }
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                existing.insert(k, v);
            }
        }
        (_, value) => {
            resource.insert(key, value);
        }
    }
}

/// A path of a PATCH operation, as far as this server supports them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatchPath {
    /// A top-level attribute (`displayName`, `emails`).
    Attribute(String),
    /// A sub-attribute of a complex attribute (`name.givenName`).
    Sub(String, String),
    /// A value filter on a multi-valued attribute, optionally with a sub-attribute:
    /// `emails[type eq "work"].value`.
    Filtered {
        attribute: String,
        filter_attribute: String,
        filter_value: String,
        sub: Option<String>,
    },
}

fn parse_patch_path(path: &str) -> Result<PatchPath, ScimError> {
    let path = without_core_urn(path.trim());
    let invalid = || ScimError::bad("invalidPath", format!("unsupported path '{path}'"));
    if let Some((attribute, rest)) = path.split_once('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(invalid)?;
        let sub = match after {
            "" => None,
            s => Some(s.strip_prefix('.').ok_or_else(invalid)?.to_string()),
        };
        let Filter::Eq {
            attribute: filter_attribute,
            value: filter_value,
        } = parse_filter(inner).map_err(|_| invalid())?;
        return Ok(PatchPath::Filtered {
            attribute: attribute.to_string(),
            filter_attribute,
            filter_value,
            sub,
        });
    }
    if path.is_empty() || path.contains(' ') {
        return Err(invalid());
    }
    Ok(match path.split_once('.') {
        Some((a, s)) => PatchPath::Sub(a.to_string(), s.to_string()),
        None => PatchPath::Attribute(path.to_string()),
    })
}

fn refuse_server_owned(attribute: &str) -> Result<(), ScimError> {
    if SERVER_OWNED
        .iter()
        .any(|a| a.eq_ignore_ascii_case(attribute))
    {
        return Err(ScimError::bad(
            "mutability",
            format!("{attribute} is set by the server"),
        ));
    }
    Ok(())
}

fn element_matches(element: &Value, filter_attribute: &str, filter_value: &str) -> bool {
    element
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(filter_attribute))
        })
        .is_some_and(|(_, v)| match v {
            Value::String(s) => s.eq_ignore_ascii_case(filter_value),
            Value::Bool(b) => filter_value.parse::<bool>().ok() == Some(*b),
            _ => false,
        })
}

/// Apply one PATCH operation (RFC 7644 §3.5.2) to a stored user's attributes.
///
/// `path` absent means `value` is an object of attributes (Okta's deactivation). `remove`
/// needs a path. Attribute names compare case-insensitively and `active` is coerced to a JSON
/// boolean, so Entra's `{"op":"Replace","path":"active","value":"False"}` works.
pub fn apply_patch(
    resource: &mut Map<String, Value>,
    op: &str,
    path: Option<&str>,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let verb = PatchVerb::parse(op)
        .ok_or_else(|| ScimError::bad("invalidSyntax", format!("unknown op '{op}'")))?;
    let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
        if verb == PatchVerb::Remove {
            return Err(ScimError::bad("noTarget", "remove needs a path"));
        }
        let Some(Value::Object(attributes)) = value else {
            return Err(ScimError::bad(
                "invalidValue",
                "an operation without a path needs an object value",
            ));
        };
        for (name, v) in attributes {
            let name = without_core_urn(&name).to_string();
            // `{"name.givenName": "A"}` or `{"emails[type eq \"work\"].value": …}`: a path as a key.
            if name.contains(['.', '[']) {
                apply_patch(resource, op, Some(&name), Some(v))?;
                continue;
            }
            refuse_server_owned(&name)?;
            let v = normalised(&name, v)?;
            if verb == PatchVerb::Replace {
                let key = key_of(resource, &name);
                resource.insert(key, v);
            } else {
                add_into(resource, &name, v);
            }
        }
        return Ok(());
    };
    let path = parse_patch_path(path)?;
    let value_needed = || ScimError::bad("invalidValue", "this operation needs a value");
    match path {
        PatchPath::Attribute(name) => {
            refuse_server_owned(&name)?;
            let key = key_of(resource, &name);
            match verb {
                PatchVerb::Remove
                    if ALWAYS_PRESENT.iter().any(|a| a.eq_ignore_ascii_case(&name)) =>
                {
                    return Err(ScimError::bad(
                        "invalidValue",
                        format!(
                            "{name} is required and cannot be removed (send active false to deactivate)"
                        ),
                    ));
                }
                PatchVerb::Remove => {
                    resource.remove(&key);
                }
                PatchVerb::Replace => {
                    let v = normalised(&name, value.ok_or_else(value_needed)?)?;
                    resource.insert(key, v);
                }
                PatchVerb::Add => {
                    let v = normalised(&name, value.ok_or_else(value_needed)?)?;
                    add_into(resource, &name, v);
                }
            }
        }
        PatchPath::Sub(name, sub) => {
            refuse_server_owned(&name)?;
            let key = key_of(resource, &name);
            let entry = resource
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(complex) = entry else {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!("{name} is not a complex attribute"),
                ));
            };
            let sub_key = key_of(complex, &sub);
            match verb {
                PatchVerb::Remove => {
                    complex.remove(&sub_key);
                }
                PatchVerb::Add | PatchVerb::Replace => {
                    complex.insert(sub_key, value.ok_or_else(value_needed)?);
                }
            }
        }
        PatchPath::Filtered {
            attribute,
            filter_attribute,
            filter_value,
            sub,
        } => {
            refuse_server_owned(&attribute)?;
            let key = key_of(resource, &attribute);
            let entry = resource
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(elements) = entry else {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!("{attribute} is not multi-valued"),
                ));
            };
            let matching = |e: &Value| element_matches(e, &filter_attribute, &filter_value);
            match (verb, sub) {
                (PatchVerb::Remove, None) => elements.retain(|e| !matching(e)),
                (PatchVerb::Remove, Some(sub)) => {
                    for e in elements.iter_mut().filter(|e| matching(e)) {
                        if let Value::Object(o) = e {
                            let k = key_of(o, &sub);
                            o.remove(&k);
                        }
                    }
                }
                (_, sub) => {
                    let v = value.ok_or_else(value_needed)?;
                    let mut found = false;
                    for e in elements.iter_mut().filter(|e| matching(e)) {
                        found = true;
                        match (&sub, e) {
                            (Some(sub), Value::Object(o)) => {
                                let k = key_of(o, sub);
                                o.insert(k, v.clone());
                            }
                            (None, e) => *e = v.clone(),
                            _ => {}
                        }
                    }
                    // Entra adds a work email with `emails[type eq "work"].value`: create
                    // the element the filter describes when none matches.
                    if !found {
                        let mut element = Map::new();
                        element.insert(filter_attribute.clone(), Value::String(filter_value));
                        match (sub, v) {
                            (Some(sub), v) => {
                                element.insert(sub, v);
                            }
                            (None, Value::Object(o)) => element.extend(o),
                            (None, _) => {
                                return Err(ScimError::bad(
                                    "invalidValue",
                                    "a filtered path without a sub-attribute needs an object",
                                ));
                            }
                        }
                        elements.push(Value::Object(element));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A list filter this server answers: one equality comparison (RFC 7644 §3.4.2.2), which is
/// what identity providers send to look a user up before creating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `attribute eq "value"`; `attribute` may be `emails.value`, or written
    /// `emails[type eq "work"].value` which is read as `emails.value` with the type noted.
    Eq { attribute: String, value: String },
}

/// Parse a filter: `userName eq "alice@example.com"`, `externalId eq "00u1"`,
/// `emails[type eq "work"].value eq "a@b.c"`, `id eq "12"`. Other operators are refused with
/// `invalidFilter` rather than answered wrongly.
pub fn parse_filter(text: &str) -> Result<Filter, ScimError> {
    let invalid = |why: &str| ScimError::bad("invalidFilter", format!("{why}: '{text}'"));
    let text = text.trim();
    // The attribute path ends at the first space outside brackets.
    let mut depth = 0i32;
    let mut end = None;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ' ' if depth == 0 => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or_else(|| invalid("expected 'attribute eq \"value\"'"))?;
    let attribute_path = without_core_urn(&text[..end]);
    let rest = text[end..].trim_start();
    let (operator, operand) = rest
        .split_once(' ')
        .ok_or_else(|| invalid("expected an operator and a value"))?;
    if !operator.eq_ignore_ascii_case("eq") {
        return Err(invalid("only the eq operator is supported"));
    }
    let operand = operand.trim();
    let value: Value =
        serde_json::from_str(operand).map_err(|_| invalid("the value must be a JSON literal"))?;
    let value = match value {
        Value::String(s) => s,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(invalid("the value must be a string, number or boolean")),
    };
    // `emails[type eq "work"].value` compares the email value, whatever its type.
    let attribute = match attribute_path.split_once('[') {
        Some((a, rest)) => {
            let (_, after) = rest
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '['"))?;
            format!("{a}{after}")
        }
        None => attribute_path.to_string(),
    };
    if attribute.is_empty() || attribute.contains(['"', '(', ')']) {
        return Err(invalid("expected an attribute name"));
    }
    Ok(Filter::Eq { attribute, value })
}

/// What a list filter selects on, in terms the store can query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    UserName(String),
    ExternalId(String),
    Email(String),
    Id(String),
}

/// Map a parsed filter to a store lookup; attributes this server does not index are refused
/// with `invalidFilter`.
pub fn lookup_of(filter: &Filter) -> Result<Lookup, ScimError> {
    let Filter::Eq { attribute, value } = filter;
    let value = value.clone();
    match attribute.to_ascii_lowercase().as_str() {
        "username" => Ok(Lookup::UserName(value)),
        "externalid" => Ok(Lookup::ExternalId(value)),
        "emails" | "emails.value" => Ok(Lookup::Email(value)),
        "id" => Ok(Lookup::Id(value)),
        _ => Err(ScimError::bad(
            "invalidFilter",
            format!(
                "filtering on {attribute} is not supported (userName, externalId, emails.value, id)"
            ),
        )),
    }
}

/// Why an identity provider may not deprovision a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeprovisionRefusal {
    #[error(
        "the Primary user cannot be deactivated or removed by the identity provider; hand Primary to another member first"
    )]
    Primary,
    #[error(
        "the last active Security Admin cannot be deactivated or removed by the identity provider; make another member Security Admin first"
    )]
    LastSecurityAdmin,
}

/// May an identity provider deactivate or remove a member with `role`, when the partner has
/// `other_active_security_admins` other active Security Admins?
///
/// A compromised or misconfigured identity provider must not be able to lock a partner out:
/// the Primary user and the last active Security Admin are the break-glass accounts.
pub fn may_deprovision(
    role: Role,
    other_active_security_admins: usize,
) -> Result<(), DeprovisionRefusal> {
    match role {
        Role::Primary => Err(DeprovisionRefusal::Primary),
        Role::SecurityAdmin if other_active_security_admins == 0 => {
            Err(DeprovisionRefusal::LastSecurityAdmin)
        }
        _ => Ok(()),
    }
}

/// Pagination of a list (RFC 7644 §3.4.2.4): `startIndex` is 1-based and values below 1 mean
/// 1; `count` below 0 means 0 and is capped at `max`. Returns (offset, limit).
pub fn page(start_index: Option<i64>, count: Option<i64>, max: i64) -> (i64, i64) {
    let offset = start_index.unwrap_or(1).max(1) - 1;
    let limit = count.unwrap_or(max).clamp(0, max);
    (offset, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn user() -> Map<String, Value> {
        json!({"userName": "alice@msp-a.test", "active": true,
               "emails": [{"value": "alice@msp-a.test", "type": "work", "primary": true}]})
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn okta_deactivation_without_a_path_sets_active_false() {
        let mut u = user();
        apply_patch(&mut u, "replace", None, Some(json!({"active": false}))).unwrap();
        assert_eq!(u["active"], json!(false));
        assert_eq!(u["userName"], json!("alice@msp-a.test"));
    }

    #[test]
    fn paths_as_keys_of_a_pathless_value() {
        let mut u = user();
        apply_patch(
            &mut u,
            "replace",
            None,
            Some(
                json!({"name.givenName": "Alice", "emails[type eq \"work\"].value": "a@x.test",
                        "urn:ietf:params:scim:schemas:core:2.0:User:displayName": "A"}),
            ),
        )
        .unwrap();
        assert_eq!(u["name"]["givenName"], json!("Alice"));
        assert_eq!(u["emails"][0]["value"], json!("a@x.test"));
        assert_eq!(u["displayName"], json!("A"));
    }

    #[test]
    fn entra_capitalised_op_and_string_boolean() {
        let mut u = user();
        apply_patch(&mut u, "Replace", Some("active"), Some(json!("False"))).unwrap();
        assert_eq!(u["active"], json!(false));
        apply_patch(&mut u, "REPLACE", Some("active"), Some(json!("True"))).unwrap();
        assert_eq!(u["active"], json!(true));
        assert!(apply_patch(&mut u, "Replace", Some("active"), Some(json!("maybe"))).is_err());
    }

    #[test]
    fn filtered_paths_update_or_create_the_element() {
        let mut u = user();
        apply_patch(
            &mut u,
            "replace",
            Some("emails[type eq \"work\"].value"),
            Some(json!("new@msp-a.test")),
        )
        .unwrap();
        assert_eq!(u["emails"][0]["value"], json!("new@msp-a.test"));
        apply_patch(
            &mut u,
            "Add",
            Some("emails[type eq \"home\"].value"),
            Some(json!("home@x.test")),
        )
        .unwrap();
        assert_eq!(
            u["emails"][1],
            json!({"type": "home", "value": "home@x.test"})
        );
        apply_patch(&mut u, "remove", Some("emails[type eq \"home\"]"), None).unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn sub_attributes_urns_and_removal() {
        let mut u = user();
        apply_patch(&mut u, "add", Some("name.givenName"), Some(json!("Alice"))).unwrap();
        assert_eq!(u["name"]["givenName"], json!("Alice"));
        apply_patch(
            &mut u,
            "replace",
            Some("urn:ietf:params:scim:schemas:core:2.0:User:displayName"),
            Some(json!("A")),
        )
        .unwrap();
        assert_eq!(u["displayName"], json!("A"));
        apply_patch(&mut u, "remove", Some("displayname"), None).unwrap();
        assert!(!u.contains_key("displayName"));
        assert!(apply_patch(&mut u, "remove", None, None).is_err());
        let err = apply_patch(&mut u, "Remove", Some("active"), None).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidValue"));
        assert!(apply_patch(&mut u, "remove", Some("userName"), None).is_err());
        assert_eq!(u["active"], json!(true));
        assert!(apply_patch(&mut u, "replace", Some("id"), Some(json!("x"))).is_err());
        assert!(apply_patch(&mut u, "move", Some("active"), Some(json!(true))).is_err());
    }

    #[test]
    fn add_appends_to_arrays_without_duplicates() {
        let mut u = user();
        let work = json!([{"value": "alice@msp-a.test", "type": "work", "primary": true}]);
        apply_patch(&mut u, "add", Some("emails"), Some(work.clone())).unwrap();
        assert_eq!(u["emails"], work);
        apply_patch(
            &mut u,
            "add",
            Some("emails"),
            Some(json!([{"value": "b@c.d"}])),
        )
        .unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn filters_that_identity_providers_send() {
        let f = |t: &str| lookup_of(&parse_filter(t).unwrap()).unwrap();
        assert_eq!(
            f("userName eq \"alice@msp-a.test\""),
            Lookup::UserName("alice@msp-a.test".into())
        );
        assert_eq!(
            f("externalId eq \"00u1\""),
            Lookup::ExternalId("00u1".into())
        );
        assert_eq!(
            f("emails[type eq \"work\"].value eq \"a@b.c\""),
            Lookup::Email("a@b.c".into())
        );
        assert_eq!(f("USERNAME EQ \"x\""), Lookup::UserName("x".into()));
        assert_eq!(f("id eq \"7\""), Lookup::Id("7".into()));
        let err = parse_filter("userName co \"a\"").unwrap_err();
        assert_eq!(err.scim_type, Some("invalidFilter"));
        assert!(parse_filter("userName").is_err());
        assert!(parse_filter("userName eq alice").is_err());
        assert!(lookup_of(&parse_filter("title eq \"x\"").unwrap()).is_err());
    }

    #[test]
    fn the_primary_and_the_last_security_admin_are_protected() {
        assert_eq!(
            may_deprovision(Role::Primary, 5),
            Err(DeprovisionRefusal::Primary)
        );
        assert_eq!(
            may_deprovision(Role::SecurityAdmin, 0),
            Err(DeprovisionRefusal::LastSecurityAdmin)
        );
        assert_eq!(may_deprovision(Role::SecurityAdmin, 1), Ok(()));
        for r in [Role::Admin, Role::Technician, Role::ReadOnly] {
            assert_eq!(may_deprovision(r, 0), Ok(()));
        }
    }

    #[test]
    fn paging() {
        assert_eq!(page(None, None, 100), (0, 100));
        assert_eq!(page(Some(0), Some(-3), 100), (0, 0));
        assert_eq!(page(Some(11), Some(500), 100), (10, 100));
    }

    proptest! {
        #[test]
        fn booleans_in_any_case(b: bool, mask in proptest::collection::vec(any::<bool>(), 5)) {
            let text: String = b.to_string().chars().zip(mask.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c }).collect();
            prop_assert_eq!(coerce_bool(&Value::String(text)), Some(b));
            prop_assert_eq!(coerce_bool(&Value::Bool(b)), Some(b));
        }

        #[test]
        fn ops_in_any_case(i in 0usize..3, mask in proptest::collection::vec(any::<bool>(), 7)) {
            let (name, verb) = [("add", PatchVerb::Add), ("replace", PatchVerb::Replace), ("remove", PatchVerb::Remove)][i];
            let text: String = name.chars().zip(mask.iter())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c }).collect();
            prop_assert_eq!(PatchVerb::parse(&text), Some(verb));
        }

        #[test]
        fn a_quoted_value_round_trips_through_the_filter(v in "[ -~]{0,40}") {
            let text = format!("userName eq {}", Value::String(v.clone()));
            prop_assert_eq!(lookup_of(&parse_filter(&text).unwrap()).unwrap(), Lookup::UserName(v));
        }

        #[test]
        fn replace_then_get_returns_the_value(attr in "[a-z][a-zA-Z]{0,10}", v in "[ -~]{0,20}") {
            prop_assume!(!["id", "meta", "schemas", "active"].contains(&attr.to_ascii_lowercase().as_str()));
            let mut u = user();
            apply_patch(&mut u, "replace", Some(&attr), Some(Value::String(v.clone()))).unwrap();
            prop_assert_eq!(&u[&key_of(&u, &attr)], &Value::String(v));
        }

        #[test]
        fn only_primary_and_a_lone_security_admin_are_refused(i in 0usize..5, others in 0usize..4) {
            let role = Role::ALL[i];
            let refused = may_deprovision(role, others).is_err();
            prop_assert_eq!(refused, role == Role::Primary || (role == Role::SecurityAdmin && others == 0));
        }
    }
}
