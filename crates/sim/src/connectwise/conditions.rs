//! ConnectWise's `conditions` / `childConditions` query language: a parser and an evaluator
//! over JSON records.
//!
//! Grammar (keywords case-insensitive):
//!
//! ```text
//! expr       := and ( "or" and )*
//! and        := unary ( "and" unary )*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
//! field      := name ( "/" name )*          (company/id, communicationItems/value)
//! op         := = | != | <> | < | <= | > | >= | contains | like | not like | not contains
//! value      := "string" | 'string' | number | true | false | null | [date]
//! ```
//!
//! Strings compare case-insensitively (ConnectWise sits on a case-insensitive SQL Server
//! collation); `like` takes `%` (any run) and `_` (one character). A path through an array
//! matches when any member matches; a `childConditions` expression whose fields all start with
//! the same array is evaluated member by member, so that two comparisons must hold on the same
//! member.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// A literal in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Date(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    NotContains,
    Like,
    NotLike,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Vec<String>, Op, Lit),
    In(Vec<String>, Vec<Lit>, bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Date(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<(usize, Tok)>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push((start, Tok::Comma));
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                i += 1;
                let mut text = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated string at position {start}")),
                        Some('\\') if chars.get(i + 1).is_some() => {
                            text.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            // A doubled quote stands for itself.
                            if chars.get(i + 1) == Some(&quote) {
                                text.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push((start, Tok::Str(text)));
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or_else(|| format!("unterminated date at position {start}"))?;
                out.push((start, Tok::Date(chars[i + 1..i + end].iter().collect())));
                i += end + 1;
            }
            '=' => {
                out.push((start, Tok::Op("=")));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push((start, Tok::Op("!=")));
                i += 2;
            }
            '<' => {
                let (op, len) = match chars.get(i + 1) {
                    Some('=') => ("<=", 2),
                    Some('>') => ("!=", 2),
                    _ => ("<", 1),
                };
                out.push((start, Tok::Op(op)));
                i += len;
            }
            '>' => {
                let (op, len) = match chars.get(i + 1) {
                    Some('=') => (">=", 2),
                    _ => (">", 1),
                };
                out.push((start, Tok::Op(op)));
                i += len;
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | '+' | '@') => {
                let mut w = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_alphanumeric() || matches!(ch, '_' | '/' | '.' | '-' | '+' | '@' | ':')
                    {
                        w.push(ch);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push((start, Tok::Word(w)));
            }
            other => return Err(format!("unexpected '{other}' at position {start}")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.len, |(p, _)| *p)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn keyword_at(&self, offset: usize, k: &str) -> bool {
        matches!(self.toks.get(self.at + offset), Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case(k))
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at position {}", self.pos()))
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.at += 1;
            let e = self.or()?;
            if self.peek() != Some(&Tok::RParen) {
                return self.err("expected ')'");
            }
            self.at += 1;
            return Ok(e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let field = match self.peek() {
            Some(Tok::Word(w)) if !is_keyword(w) => w.clone(),
            _ => return self.err("expected a field name"),
        };
        let path: Vec<String> = field.split('/').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return self.err("bad field name");
        }
        self.at += 1;
        // not in / not like / not contains
        if self.keyword("not") {
            let negated_in = self.keyword_at(1, "in");
            let negated_like = self.keyword_at(1, "like");
            let negated_contains = self.keyword_at(1, "contains");
            self.at += 2;
            if negated_in {
                return Ok(Expr::In(path, self.list()?, true));
            }
            let op = if negated_like {
                Op::NotLike
            } else if negated_contains {
                Op::NotContains
            } else {
                self.at -= 2;
                return self.err("expected 'in', 'like' or 'contains' after 'not'");
            };
            return Ok(Expr::Cmp(path, op, self.value()?));
        }
        if self.keyword("in") {
            self.at += 1;
            return Ok(Expr::In(path, self.list()?, false));
        }
        let op = match self.peek() {
            Some(Tok::Op(o)) => match *o {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("contains") => Op::Contains,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like,
            _ => return self.err("expected an operator"),
        };
        self.at += 1;
        Ok(Expr::Cmp(path, op, self.value()?))
    }

    fn list(&mut self) -> Result<Vec<Lit>, String> {
        if self.peek() != Some(&Tok::LParen) {
            return self.err("expected '(' after 'in'");
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            out.push(self.value()?);
            match self.peek() {
                Some(Tok::Comma) => self.at += 1,
                Some(Tok::RParen) => {
                    self.at += 1;
                    return Ok(out);
                }
                _ => return self.err("expected ',' or ')'"),
            }
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        let lit = match self.peek() {
            Some(Tok::Str(s)) => Lit::Str(s.clone()),
            Some(Tok::Date(d)) => match parse_date(d) {
                Some(d) => Lit::Date(d),
                None => return self.err(&format!("'{d}' is not a date")),
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Some(Tok::Word(w)) => match w.parse::<f64>() {
                Ok(n) => Lit::Num(n),
                Err(_) => return self.err(&format!("'{w}' is not a value (quote strings)")),
            },
            _ => return self.err("expected a value"),
        };
        self.at += 1;
        Ok(lit)
    }
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not", "in", "like", "contains"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

/// A date as ConnectWise writes them (`2026-01-01T00:00:00Z`), or a bare day.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(d.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// Parse a `conditions` string.
pub fn parse(s: &str) -> Result<Expr, String> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err("the expression is empty".into());
    }
    let mut p = Parser {
        toks,
        at: 0,
        len: s.len(),
    };
    let e = p.or()?;
    if p.at != p.toks.len() {
        return p.err("unexpected text");
    }
    Ok(e)
}

/// The values at `path` in `v` (more than one when the path crosses an array).
fn values_at<'a>(v: &'a Value, path: &[String]) -> Vec<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return vec![v];
    };
    match v {
        Value::Array(items) => items.iter().flat_map(|i| values_at(i, path)).collect(),
        Value::Object(m) => {
            let found = m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(first))
                .map(|(_, v)| v);
            match found {
                Some(inner) => values_at(inner, rest),
                None => vec![],
            }
        }
        _ => vec![],
    }
}

fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    // Iterative wildcard match with backtracking on the last '%'.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compare one value with a literal.
fn compare(v: &Value, op: Op, lit: &Lit) -> bool {
    use std::cmp::Ordering;
    if let Lit::Null = lit {
        return match op {
            Op::Eq => v.is_null(),
            Op::Ne => !v.is_null(),
            _ => false,
        };
    }
    if v.is_null() {
        // SQL: a comparison with NULL is unknown, so false (`!=` included).
        return false;
    }
    match op {
        Op::Contains | Op::NotContains | Op::Like | Op::NotLike => {
            let Some(text) = as_text(v) else {
                return false;
            };
            let pat = match lit {
                Lit::Str(s) => s.clone(),
                Lit::Num(n) => n.to_string(),
                Lit::Bool(b) => b.to_string(),
                Lit::Date(d) => d.to_rfc3339(),
                Lit::Null => String::new(),
            };
            let hit = match op {
                Op::Contains | Op::NotContains => text.to_lowercase().contains(&pat.to_lowercase()),
                _ => like(&text, &pat),
            };
            if matches!(op, Op::NotContains | Op::NotLike) {
                !hit
            } else {
                hit
            }
        }
        _ => {
            let ord: Option<Ordering> = match (v, lit) {
                (Value::Number(n), Lit::Num(x)) => n.as_f64().and_then(|n| n.partial_cmp(x)),
                (Value::String(s), Lit::Num(x)) => {
                    s.parse::<f64>().ok().and_then(|n| n.partial_cmp(x))
                }
                (Value::Bool(b), Lit::Bool(x)) => Some(b.cmp(x)),
                (Value::String(s), Lit::Date(d)) => parse_date(s).map(|s| s.cmp(d)),
                (Value::String(s), Lit::Str(x)) => match (parse_date(s), parse_date(x)) {
                    (Some(a), Some(b)) if s.len() > 9 && x.len() > 9 => Some(a.cmp(&b)),
                    _ => Some(s.to_lowercase().cmp(&x.to_lowercase())),
                },
                (Value::Number(n), Lit::Str(x)) => Some(n.to_string().cmp(x)),
                (Value::Bool(b), Lit::Str(x)) => Some(b.to_string().cmp(&x.to_lowercase())),
                _ => None,
            };
            match (op, ord) {
                (Op::Eq, Some(o)) => o == Ordering::Equal,
                (Op::Ne, Some(o)) => o != Ordering::Equal,
                (Op::Ne, None) => true,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Ge, Some(o)) => o != Ordering::Less,
                _ => false,
            }
        }
    }
}

impl Expr {
    /// Does `record` satisfy the expression?
    pub fn matches(&self, record: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.matches(record) && b.matches(record),
            Expr::Or(a, b) => a.matches(record) || b.matches(record),
            Expr::Not(e) => !e.matches(record),
            Expr::Cmp(path, op, lit) => {
                let vals = values_at(record, path);
                if vals.is_empty() {
                    // A missing field reads as NULL.
                    return compare(&Value::Null, *op, lit);
                }
                vals.iter().any(|v| compare(v, *op, lit))
            }
            Expr::In(path, lits, negated) => {
                let vals = values_at(record, path);
                let hit = vals
                    .iter()
                    .any(|v| lits.iter().any(|l| compare(v, Op::Eq, l)));
                hit != *negated
            }
        }
    }

    fn fields<'a>(&'a self, out: &mut Vec<&'a [String]>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Expr::Not(e) => e.fields(out),
            Expr::Cmp(p, _, _) | Expr::In(p, _, _) => out.push(p),
        }
    }

    fn strip_prefix(&self) -> Expr {
        match self {
            Expr::And(a, b) => Expr::And(Box::new(a.strip_prefix()), Box::new(b.strip_prefix())),
            Expr::Or(a, b) => Expr::Or(Box::new(a.strip_prefix()), Box::new(b.strip_prefix())),
            Expr::Not(e) => Expr::Not(Box::new(e.strip_prefix())),
            Expr::Cmp(p, op, l) => Expr::Cmp(p[1..].to_vec(), *op, l.clone()),
            Expr::In(p, l, n) => Expr::In(p[1..].to_vec(), l.clone(), *n),
        }
    }

    /// `childConditions`: when every field starts with the same array field, one member must
    /// satisfy the whole expression; otherwise as [`Expr::matches`].
    pub fn matches_child(&self, record: &Value) -> bool {
        let mut fields = Vec::new();
        self.fields(&mut fields);
        let first = fields.first().and_then(|f| f.first());
        let common = first.filter(|head| {
            fields
                .iter()
                .all(|f| f.len() > 1 && f[0].eq_ignore_ascii_case(head))
        });
        if let Some(head) = common {
            let array = record.as_object().and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(head))
                    .map(|(_, v)| v)
            });
            if let Some(Value::Array(members)) = array {
                let inner = self.strip_prefix();
                return members.iter().any(|m| inner.matches(m));
            }
        }
        self.matches(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(cond: &str, v: &Value) -> bool {
        parse(cond)
            .unwrap_or_else(|e| panic!("{cond}: {e}"))
            .matches(v)
    }

    fn contact() -> Value {
        json!({
            "id": 56, "firstName": "Bob", "inactiveFlag": false,
            "company": {"id": 12, "name": "Acme Ltd"},
            "dateEntered": "2026-03-01T10:00:00Z",
            "score": 4.5, "manager": null,
            "communicationItems": [
                {"value": "555-1234", "communicationType": "Phone"},
                {"value": "bob@acme.test", "communicationType": "Email"}
            ]
        })
    }

    #[test]
    fn comparisons_on_fields_and_nested_fields() {
        let c = contact();
        assert!(m("id=56", &c));
        assert!(m("id = 56 and inactiveFlag = false", &c));
        assert!(m("company/id=12", &c));
        assert!(
            m("company/name=\"acme ltd\"", &c),
            "strings are case-insensitive"
        );
        assert!(m("COMPANY/ID != 13", &c));
        assert!(m("id > 50 AND id >= 56 and id < 57 and id <= 56", &c));
        assert!(!m("id > 56", &c));
        assert!(m("score > 4", &c));
        assert!(m("manager = null and company != null", &c));
        assert!(!m("missing = 3", &c));
        assert!(m("missing = null", &c));
        assert!(m("dateEntered > [2026-01-01T00:00:00Z]", &c));
        assert!(!m("dateEntered < [2026-01-01]", &c));
        assert!(m("firstName <> \"Alice\"", &c));
    }

    #[test]
    fn text_operators() {
        let c = contact();
        assert!(m("firstName contains \"O\"", &c));
        assert!(m("firstName not contains \"x\"", &c));
        assert!(m("company/name like \"Acme%\"", &c));
        assert!(m("company/name like \"%ltd\"", &c));
        assert!(m("company/name like \"A_me%\"", &c));
        assert!(!m("company/name like \"Acme\"", &c));
        assert!(m("company/name not like \"Beta%\"", &c));
        assert!(m("firstName LIKE 'b%'", &c), "single quotes too");
    }

    #[test]
    fn in_lists_booleans_and_precedence() {
        let c = contact();
        assert!(m("id in (1, 2, 56)", &c));
        assert!(!m("id not in (1,2,56)", &c));
        assert!(m("firstName in (\"alice\",\"BOB\")", &c));
        assert!(m("id = 1 or id = 56 and inactiveFlag = false", &c));
        assert!(!m("(id = 1 or id = 56) and inactiveFlag = true", &c));
        assert!(m("not (id = 1)", &c));
        assert!(m("(((id=56)))", &c));
    }

    #[test]
    fn child_conditions_hold_on_one_member() {
        let c = contact();
        let e = parse(
            "communicationItems/value=\"BOB@acme.test\" AND communicationItems/communicationType=\"Email\"",
        )
        .unwrap();
        assert!(e.matches_child(&c));
        let e = parse(
            "communicationItems/value=\"555-1234\" AND communicationItems/communicationType=\"Email\"",
        )
        .unwrap();
        assert!(!e.matches_child(&c), "the phone number is not an e-mail");
        assert!(
            e.matches(&c),
            "plain conditions match any member for each comparison"
        );
    }

    #[test]
    fn strings_with_escapes_and_spaces() {
        let v = json!({"text": "He said \"hi\" to ALERT-7 today", "ref": "a b"});
        assert!(m(r#"text contains "\"hi\"""#, &v));
        assert!(m(r#"text contains "alert-7""#, &v));
        assert!(m(r#"ref = "a b""#, &v));
    }

    #[test]
    fn syntax_errors_say_where() {
        for bad in [
            "",
            "id =",
            "id 5",
            "id = 5 and",
            "(id = 5",
            "id in 5",
            "id = \"open",
            "id = bob",
            "id = [not a date]",
            "= 5",
            "id = 5 )",
            "id not 5",
        ] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(parse("id = 5 )").unwrap_err().contains("position"));
    }
}
