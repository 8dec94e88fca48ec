//! What every list endpoint does with its records: `conditions`, `childConditions`,
//! `customFieldConditions`, `orderBy`, `fields`, `page`/`pageSize` (or forward-only paging
//! with `pageId`), and the `Link` header, whose URLs end in `page=N` as clients' regexes
//! expect.

use std::cmp::Ordering;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::conditions;
use super::errors::ApiError;
use super::store::id_of;

/// Query parameters, names case-insensitive, in the order sent.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }
}

/// Paging limits from the configuration.
pub struct Paging {
    pub default_size: u32,
    pub max_size: u32,
}

fn number(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    p.get(name)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!("The value '{v}' is not valid for {name}."))
            })
        })
        .transpose()
}

/// The records that pass `conditions`, `childConditions` and `customFieldConditions`.
pub fn filter(rows: Vec<Value>, p: &Params) -> Result<Vec<Value>, ApiError> {
    let parse = |name: &str| {
        p.get(name)
            .map(|c| {
                conditions::parse(c)
                    .map_err(|e| ApiError::BadRequest(format!("{name} is invalid: {e}")))
            })
            .transpose()
    };
    let cond = parse("conditions")?;
    let child = parse("childConditions")?;
    let custom = parse("customFieldConditions")?;
    Ok(rows
        .into_iter()
        .filter(|r| cond.as_ref().is_none_or(|c| c.matches(r)))
        .filter(|r| child.as_ref().is_none_or(|c| c.matches_child(r)))
        .filter(|r| {
            custom.as_ref().is_none_or(|c| {
                r.get("customFields")
                    .and_then(Value::as_array)
                    .is_some_and(|fs| fs.iter().any(|f| c.matches(f)))
            })
        })
        .collect())
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').try_fold(v, |cur, seg| {
        cur.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(seg))
            .map(|(_, v)| v)
    })
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Sort by `orderBy` (`name asc, id desc`); ties (and no `orderBy`) by id.
pub fn order(rows: &mut [Value], p: &Params) -> Result<(), ApiError> {
    let mut keys: Vec<(String, bool)> = Vec::new();
    if let Some(o) = p.get("orderBy") {
        for part in o.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut words = part.split_whitespace();
            let field = words.next().unwrap_or_default().to_string();
            let desc = match words.next() {
                None => false,
                Some(d) if d.eq_ignore_ascii_case("asc") => false,
                Some(d) if d.eq_ignore_ascii_case("desc") => true,
                Some(d) => {
                    return Err(ApiError::BadRequest(format!(
                        "orderBy is invalid: '{d}' is not asc or desc"
                    )));
                }
            };
            keys.push((field, desc));
        }
    }
    rows.sort_by(|a, b| {
        for (field, desc) in &keys {
            let o = cmp_values(at(a, field), at(b, field));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        id_of(a).cmp(&id_of(b))
    });
    Ok(())
}

/// Keep only the `fields` asked for (`id,name,company/name`).
pub fn project(v: Value, p: &Params) -> Value {
    let Some(fields) = p.get("fields") else {
        return v;
    };
    let mut out = Map::new();
    for f in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let segs: Vec<&str> = f.split('/').collect();
        let Some(found) = at(&v, f) else {
            continue;
        };
        // Rebuild the nesting, with the record's own key spelling.
        let mut cur = &v;
        let mut names = Vec::new();
        for s in &segs {
            let Some((k, next)) = cur
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(s)))
            else {
                break;
            };
            names.push(k.clone());
            cur = next;
        }
        let mut slot = &mut out;
        for (i, name) in names.iter().enumerate() {
            if i + 1 == names.len() {
                slot.insert(name.clone(), found.clone());
            } else {
                let entry = slot
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                match entry.as_object_mut() {
                    Some(m) => slot = m,
                    None => break,
                }
            }
        }
    }
    Value::Object(out)
}

/// The URL of another page: the request's parameters in their order, `pageSize` and then
/// `page` (or `pageId`) last.
fn page_url(self_url: &str, p: &Params, size: u32, last_param: (&str, i64)) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &p.0 {
        if ["page", "pagesize", "pageid"]
            .iter()
            .any(|x| k.eq_ignore_ascii_case(x))
        {
            continue;
        }
        ser.append_pair(k, v);
    }
    ser.append_pair("pageSize", &size.to_string());
    ser.append_pair(last_param.0, &last_param.1.to_string());
    format!("{self_url}?{}", ser.finish())
}

/// A list answer: filtered, ordered, one page of it, projected, with its `Link` header.
/// `self_url` is the absolute URL of the request without its query.
pub fn answer(
    rows: Vec<Value>,
    p: &Params,
    headers: &HeaderMap,
    self_url: &str,
    paging: &Paging,
) -> Result<Response, ApiError> {
    let mut rows = filter(rows, p)?;
    order(&mut rows, p)?;
    let size = match number(p, "pageSize")? {
        Some(n) if n >= 1 => (n as u32).min(paging.max_size),
        _ => paging.default_size,
    };
    let forward_only = headers
        .get("pagination-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("forward-only"));
    let mut links = Vec::new();
    let page_rows: Vec<Value> = if forward_only {
        let after = number(p, "pageId")?.unwrap_or(0);
        let rest: Vec<Value> = rows
            .into_iter()
            .filter(|r| id_of(r).is_some_and(|id| id > after))
            .collect();
        let page: Vec<Value> = rest.iter().take(size as usize).cloned().collect();
        if rest.len() > page.len()
            && let Some(last) = page.last().and_then(id_of)
        {
            links.push(format!(
                "<{}>; rel=\"next\"",
                page_url(self_url, p, size, ("pageId", last))
            ));
        }
        page
    } else {
        let page = number(p, "page")?.unwrap_or(1).max(1);
        let total = rows.len() as i64;
        let last = ((total + i64::from(size) - 1) / i64::from(size)).max(1);
        if page > 1 {
            links.push(format!(
                "<{}>; rel=\"first\"",
                page_url(self_url, p, size, ("page", 1))
            ));
            links.push(format!(
                "<{}>; rel=\"prev\"",
                page_url(self_url, p, size, ("page", (page - 1).min(last)))
            ));
        }
        if page < last {
            links.push(format!(
                "<{}>; rel=\"next\"",
                page_url(self_url, p, size, ("page", page + 1))
            ));
            links.push(format!(
                "<{}>; rel=\"last\"",
                page_url(self_url, p, size, ("page", last))
            ));
        }
        rows.into_iter()
            .skip(((page - 1) * i64::from(size)) as usize)
            .take(size as usize)
            .collect()
    };
    let body: Vec<Value> = page_rows.into_iter().map(|r| project(r, p)).collect();
    let mut r = axum::Json(Value::Array(body)).into_response();
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(", "))
    {
        r.headers_mut().insert(header::LINK, v);
    }
    Ok(r)
}

/// `/count`: `{"count": N}` of the records passing the conditions.
pub fn count(rows: Vec<Value>, p: &Params) -> Result<Response, ApiError> {
    let n = filter(rows, p)?.len();
    Ok(axum::Json(json!({ "count": n })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_the_nesting() {
        let v = json!({"id": 1, "name": "A", "company": {"id": 2, "name": "B"}, "x": 3});
        let p = Params::parse("FIELDS=id,Company/Name");
        assert_eq!(project(v, &p), json!({"id": 1, "company": {"name": "B"}}));
    }

    #[test]
    fn page_links_end_in_page() {
        let p = Params::parse("conditions=a%3D1&page=2&pagesize=10&junk=x");
        let u = page_url("http://h/v4_6_release/apis/3.0/x", &p, 10, ("page", 3));
        assert!(u.ends_with("pageSize=10&page=3"), "{u}");
        assert!(u.contains("conditions=a%3D1"), "{u}");
    }

    #[test]
    fn order_by_several_keys() {
        let mut rows = vec![
            json!({"id": 1, "name": "b"}),
            json!({"id": 2, "name": "A"}),
            json!({"id": 3, "name": "a"}),
        ];
        order(&mut rows, &Params::parse("orderBy=name desc")).unwrap();
        let ids: Vec<i64> = rows.iter().filter_map(id_of).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(order(&mut rows, &Params::parse("orderBy=name sideways")).is_err());
    }
}
