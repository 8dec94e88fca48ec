//! Reading requests the way ASP.NET Core binds them: query names and JSON property names in
//! any case, `Filter.X` query names for the filter DTOs, integers that must be integers.

use std::collections::BTreeMap;

use serde_json::Value;

use super::envelope::Fail;

/// Query parameters (or a search body flattened to them), names compared case-insensitively.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        )
    }

    /// A `POST …/search` body (`{PageSize, PageNumber, Sort, Filter: {…}}`) as the same names
    /// the GET variant takes (`PageSize`, `Filter.Title`, …).
    pub fn from_search_body(body: &Value) -> Params {
        let mut out = Vec::new();
        let Some(obj) = body.as_object() else {
            return Params(out);
        };
        for (k, v) in obj {
            if k.eq_ignore_ascii_case("filter") {
                if let Some(f) = v.as_object() {
                    for (fk, fv) in f {
                        push_value(&mut out, &format!("filter.{}", fk.to_ascii_lowercase()), fv);
                    }
                }
            } else {
                push_value(&mut out, &k.to_ascii_lowercase(), v);
            }
        }
        Params(out)
    }

    /// The last non-empty value of `name` (ASP.NET binds the last for scalars).
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.0
            .iter()
            .rev()
            .find(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (repeated parameters bind to `[int]`).
    pub fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.0
            .iter()
            .filter(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An integer parameter; a value that is not one is a binding error.
    pub fn int(&self, name: &str) -> Result<Option<i64>, Fail> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                Fail::validation(
                    400,
                    vec![format!("The value '{v}' is not valid for {name}.")],
                )
            }),
        }
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Fail> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v == "true" || v == "1" => Ok(Some(true)),
            Some(v) if v == "false" || v == "0" => Ok(Some(false)),
            Some(v) => Err(Fail::validation(
                400,
                vec![format!("The value '{v}' is not valid for {name}.")],
            )),
        }
    }

    /// Comma-separated ids (`Filter.AccountIds=1,2`) and repeated ones (`Filter.Ids=1&Filter.Ids=2`).
    pub fn ids(&self, name: &str) -> Result<Option<Vec<i64>>, Fail> {
        let all = self.all(name);
        if all.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for v in all {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                out.push(part.parse().map_err(|_| {
                    Fail::validation(
                        400,
                        vec![format!("The value '{part}' is not valid for {name}.")],
                    )
                })?);
            }
        }
        Ok(Some(out))
    }

    /// `(page size, page number)`, page 0 meaning page 1.
    pub fn paging(&self, default_size: usize) -> Result<(usize, usize), Fail> {
        let size = self
            .int("PageSize")?
            .filter(|n| *n > 0)
            .map_or(default_size, |n| n as usize);
        let number = self.int("PageNumber")?.unwrap_or(1).max(1) as usize;
        Ok((size, number))
    }
}

fn push_value(out: &mut Vec<(String, String)>, name: &str, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push((name.to_string(), s.clone())),
        Value::Array(a) => a.iter().for_each(|x| push_value(out, name, x)),
        other => out.push((name.to_string(), other.to_string())),
    }
}

/// One page of `items`.
pub fn page<T: Clone>(items: &[T], size: usize, number: usize) -> Vec<T> {
    items
        .iter()
        .skip(size.saturating_mul(number - 1))
        .take(size)
        .cloned()
        .collect()
}

/// A JSON object body with its property names lower-cased (System.Text.Json in ASP.NET Core is
/// configured case-insensitive).
#[derive(Debug, Default)]
pub struct Body(BTreeMap<String, Value>);

impl Body {
    pub fn parse(bytes: &[u8]) -> Result<Body, Fail> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(Body(
                m.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
            )),
            Ok(_) => Err(Fail::validation(
                400,
                vec!["The JSON value could not be converted to the input DTO. Path: $".into()],
            )),
            Err(e) => Err(Fail::validation(
                400,
                vec![format!("The request body is not valid JSON: {e}")],
            )),
        }
    }

    /// One element of a JSON array body, read as an object body.
    pub fn from_value(v: &Value, path: &str) -> Result<Body, Fail> {
        match v {
            Value::Object(m) => Ok(Body(
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
            )),
            _ => Err(Fail::validation(
                400,
                vec![format!(
                    "The JSON value could not be converted to the input DTO. Path: {path}"
                )],
            )),
        }
    }

    /// A `double` property: absent/null → `None`; anything but a number → a conversion error.
    pub fn number(&self, name: &str, errors: &mut Vec<String>) -> Option<f64> {
        let v = self.get(name)?;
        match v.as_f64() {
            Some(n) => Some(n),
            None => {
                errors.push(format!(
                    "The JSON value could not be converted to System.Double. Path: $.{name}"
                ));
                None
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .get(&name.to_ascii_lowercase())
            .filter(|v| !v.is_null())
    }

    /// An `int32` property: absent/null → `None`; anything but an integer → a conversion error
    /// (as System.Text.Json reports it).
    pub fn int(&self, name: &str, errors: &mut Vec<String>) -> Option<i64> {
        let v = self.get(name)?;
        match v.as_i64() {
            Some(n) if i32::try_from(n).is_ok() => Some(n),
            _ => {
                errors.push(format!(
                    "The JSON value could not be converted to System.Int32. Path: $.{name}"
                ));
                None
            }
        }
    }

    pub fn string(&self, name: &str, errors: &mut Vec<String>) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                errors.push(format!(
                    "The JSON value could not be converted to System.String. Path: $.{name}"
                ));
                None
            }
        }
    }

    pub fn bool(&self, name: &str, errors: &mut Vec<String>) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(b) => Some(*b),
            _ => {
                errors.push(format!(
                    "The JSON value could not be converted to System.Boolean. Path: $.{name}"
                ));
                None
            }
        }
    }

    /// A `date-time` property.
    pub fn date(&self, name: &str, errors: &mut Vec<String>) -> Option<String> {
        let s = self.string(name, errors)?;
        match chrono::DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&chrono::Utc))
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
                    .map(|n| n.and_utc())
            }) {
            Ok(d) => Some(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            Err(_) => {
                errors.push(format!(
                    "The JSON value could not be converted to System.DateTime. Path: $.{name}"
                ));
                None
            }
        }
    }
}

/// The fields of a form (`application/x-www-form-urlencoded` or `multipart/form-data`), names
/// lower-cased. `None` when the content type is neither.
pub fn form(content_type: &str, body: &[u8]) -> Option<BTreeMap<String, String>> {
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        return Some(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        );
    }
    if ct.starts_with("multipart/form-data") {
        let boundary = content_type.split(';').map(str::trim).find_map(|p| {
            p.split_once('=')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        })?;
        return Some(multipart(&String::from_utf8_lossy(body), &boundary));
    }
    None
}

/// The text parts of a multipart body.
fn multipart(body: &str, boundary: &str) -> BTreeMap<String, String> {
    let delimiter = format!("--{boundary}");
    let mut out = BTreeMap::new();
    for part in body.split(delimiter.as_str()) {
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        if part.starts_with("--") || part.trim().is_empty() {
            continue;
        }
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            v.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix("name=")
                    .map(|n| n.trim_matches('"').to_string())
            })
        });
        if let Some(name) = name {
            let value = value.strip_suffix("\r\n").unwrap_or(value);
            out.insert(name.to_ascii_lowercase(), value.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_case_insensitive_and_page_zero_is_one() {
        let p = Params::parse(
            "filter.accountname=Acme&PAGESIZE=5&PageNumber=0&Filter.Ids=1&Filter.Ids=2,3",
        );
        assert_eq!(p.get("Filter.AccountName"), Some("Acme"));
        assert_eq!(p.paging(100).unwrap(), (5, 1));
        assert_eq!(p.ids("Filter.Ids").unwrap(), Some(vec![1, 2, 3]));
    }

    #[test]
    fn multipart_forms_are_read() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"GrantType\"\r\n\r\npassword\r\n--XyZ\r\nContent-Disposition: form-data; name=\"UserName\"\r\n\r\nbob\r\n--XyZ--\r\n";
        let f = form("multipart/form-data; boundary=XyZ", body.as_bytes()).unwrap();
        assert_eq!(f.get("granttype").map(String::as_str), Some("password"));
        assert_eq!(f.get("username").map(String::as_str), Some("bob"));
    }
}
