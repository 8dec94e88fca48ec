//! One page of a partner's clients, searched, filtered and ordered by the database, so that a
//! portal page costs the same at 20 clients as at 20,000: the page's rows and one count are
//! read, never the whole list.

use crate::config::{Client, MAPPING_COLUMNS, MappingRow, clients_of_rows, mapping_of_row};
use crate::db::{Store, like_contains, with_read};
use crate::error::StoreError;

/// Which clients a page lists.
#[derive(Debug, Clone, Default)]
pub struct ClientFilter {
    /// Part of the client's id or name, any case (ASCII case on SQLite); empty: every client.
    pub search: String,
    /// `Some(true)`: only clients mapped on at least one connection; `Some(false)`: only
    /// clients mapped nowhere.
    pub mapped: Option<bool>,
    /// Only these clients (an empty list lists nothing).
    pub among: Option<Vec<String>>,
    /// Never these clients.
    pub excluding: Vec<String>,
}

/// A page of clients, ordered by name (then id), and how many match in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientPage {
    pub clients: Vec<Client>,
    pub total: i64,
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// The clients of `partner` that `filter` selects, `limit` of them from `offset`.
    pub async fn client_page(
        &self,
        partner: &str,
        filter: &ClientFilter,
        offset: i64,
        limit: i64,
    ) -> Result<ClientPage, StoreError> {
        if filter.among.as_ref().is_some_and(Vec::is_empty) {
            return Ok(ClientPage::default());
        }
        // $1 partner, $2 search pattern; then the among list, then the excluded list.
        let mut conditions = vec![
            "c.partner_id = $1".to_string(),
            "($2 = '' OR lower(c.name) LIKE $2 ESCAPE '\\' OR lower(c.id) LIKE $2 ESCAPE '\\')"
                .to_string(),
        ];
        let mapped = "EXISTS (SELECT 1 FROM mappings m WHERE m.partner_id = c.partner_id AND m.client_id = c.id)";
        match filter.mapped {
            Some(true) => conditions.push(mapped.to_string()),
            Some(false) => conditions.push(format!("NOT {mapped}")),
            None => {}
        }
        let mut next = 3;
        let among: &[String] = filter.among.as_deref().unwrap_or(&[]);
        if filter.among.is_some() {
            conditions.push(format!("c.id IN ({})", placeholders(next, among.len())));
            next += among.len();
        }
        if !filter.excluding.is_empty() {
            conditions.push(format!(
                "c.id NOT IN ({})",
                placeholders(next, filter.excluding.len())
            ));
            next += filter.excluding.len();
        }
        let where_ = conditions.join(" AND ");
        let pattern = if filter.search.trim().is_empty() {
            String::new()
        } else {
            like_contains(&filter.search.trim().to_lowercase())
        };
        let count_sql = format!("SELECT COUNT(*) FROM clients c WHERE {where_}");
        // The page is cut first, then joined with its mappings (a client's rows adjacent).
        let page_sql = format!(
            "SELECT c.id, c.name, c.created_at, m.connection_id FROM \
             (SELECT c.partner_id, c.id, c.name, c.created_at FROM clients c WHERE {where_} \
              ORDER BY lower(c.name), c.id LIMIT ${next} OFFSET ${}) c \
             LEFT JOIN mappings m ON m.partner_id = c.partner_id AND m.client_id = c.id \
             ORDER BY lower(c.name), c.id, m.connection_id",
            next + 1
        );
        with_read!(self, pool => {
            let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql))
                .bind(partner)
                .bind(&pattern);
            let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql))
                .bind(partner)
                .bind(&pattern);
            for id in among.iter().chain(&filter.excluding) {
                count = count.bind(id);
                page = page.bind(id);
            }
            let total = count.fetch_one(pool).await?;
            let rows = page
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(pool)
                .await?;
            Ok(ClientPage {
                clients: clients_of_rows(&rows)?,
                total,
            })
        })
    }

    /// The mappings of these clients, on every connection (ordered by client, then connection).
    pub async fn mappings_of(
        &self,
        partner: &str,
        clients: &[String],
    ) -> Result<Vec<MappingRow>, StoreError> {
        if clients.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {MAPPING_COLUMNS} FROM mappings WHERE partner_id = $1 AND client_id IN ({}) \
             ORDER BY client_id, connection_id",
            placeholders(2, clients.len())
        );
        with_read!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(partner);
            for c in clients {
                q = q.bind(c);
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter().map(mapping_of_row).collect::<Result<Vec<_>, StoreError>>()
        })
    }
}
