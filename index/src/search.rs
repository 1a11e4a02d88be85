//! [`Searcher`]: tantivy query syntax over the day indexes, newest first, with highlights and
//! stable cursors.
//!
//! - Days: only the day folders that intersect `[from, to)` (and lie at or before the
//!   cursor) are opened, newest first; because a document lives in the day of its `time`,
//!   concatenating per-day results is already globally ordered, and the search stops as soon
//!   as a page is full.
//! - Order: `(time, event_id)` descending, a total order, so the cursor (the key of the last
//!   hit, base64) continues exactly after it, whatever is indexed in between: newer
//!   documents sort before the cursor and never shift a page.
//! - Readers are cached per day and reloaded on each search (so commits show up at once);
//!   folders that retention removed are forgotten.
//!
//! - A day folder whose index is still being created (no `meta.json` yet) is not there yet.
//!
//! Search is blocking (tantivy I/O and CPU): call it from `spawn_blocking`.

use crate::IndexError;
use crate::collector::{Key, NewestFirst};
use crate::day::{self, Day};
use crate::schema::{self, DEFAULT_FIELDS, Fields};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatelog_model::UnixMillis;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use tantivy::collector::Count;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::schema::{Field, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

/// Default and maximum page sizes.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// One search: `GET /v1/search?q=&from=&to=&limit=&cursor=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    /// tantivy query syntax; empty matches everything.
    pub q: String,
    /// Inclusive.
    pub from: Option<UnixMillis>,
    /// Exclusive.
    pub to: Option<UnixMillis>,
    /// 0 means [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`].
    pub limit: usize,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One matching decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub event_id: String,
    pub time: UnixMillis,
    pub principal: String,
    pub decision: String,
    pub resource: String,
    pub action: String,
    pub status: u16,
    /// `(field, html)` for `query`, `reason`, `resource` where the query matched; matches
    /// are wrapped in `<b>`, the rest is HTML-escaped.
    pub highlights: Vec<(String, String)>,
    /// Selects this decision's row in ClickHouse.
    pub clickhouse_sql: String,
}

/// One page of hits, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    pub hits: Vec<Hit>,
    /// Pass back as `cursor` for the next page; `None` when this page is the last.
    pub next_cursor: Option<String>,
}

struct DayReader {
    index: Index,
    reader: IndexReader,
}

impl std::fmt::Debug for DayReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayReader").finish_non_exhaustive()
    }
}

/// Searches the index directory. Cheap to share (`&self`), blocking.
#[derive(Debug)]
pub struct Searcher {
    dir: PathBuf,
    database: String,
    fields: Fields,
    readers: Mutex<BTreeMap<Day, DayReader>>,
}

/// Encodes a cursor: base64url of `time:event_id`.
pub fn encode_cursor(key: &Key) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", key.0, key.1))
}

/// Decodes a cursor written by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<Key, IndexError> {
    let bad = |why: &str| IndexError::BadCursor(format!("{why}: {cursor:?}"));
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad("not base64url"))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let (time, event_id) = text.split_once(':').ok_or_else(|| bad("no separator"))?;
    let time = time.parse().map_err(|_| bad("bad time"))?;
    Ok((time, event_id.to_owned()))
}

/// `SELECT * FROM <db>.decisions WHERE event_id = '<id>'`, with the id quoted for SQL.
pub fn clickhouse_sql(database: &str, event_id: &str) -> String {
    let id = event_id.replace('\\', "\\\\").replace('\'', "\\'");
    let db = if database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        database.to_owned()
    } else {
        format!("`{}`", database.replace('`', "``"))
    };
    format!("SELECT * FROM {db}.decisions WHERE event_id = '{id}'")
}

impl Searcher {
    /// A searcher over `dir`; hits link to rows of `database`.decisions.
    pub fn open(dir: &Path, database: &str) -> Searcher {
        Searcher {
            dir: dir.to_owned(),
            database: database.to_owned(),
            fields: Fields::new(),
            readers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs a search. `IndexError::BadQuery` / `BadCursor` are the caller's fault (400).
    pub fn search(&self, req: &SearchRequest) -> Result<SearchPage, IndexError> {
        let limit = match req.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let before = req.cursor.as_deref().map(decode_cursor).transpose()?;
        let from = req.from.map(|t| t.0);
        let to = req.to.map(|t| t.0);
        let all = day::list_days(&self.dir)?;
        self.forget_missing(&all);
        let days = all
            .into_iter()
            .filter(|(d, _)| from.is_none_or(|f| d.end().0 > f))
            .filter(|(d, _)| to.is_none_or(|t| d.start().0 < t))
            .filter(|(d, _)| before.as_ref().is_none_or(|(t, _)| d.start().0 <= *t));

        // One more than a page, to know whether there is a next one.
        let mut hits = Vec::new();
        let mut more = false;
        for (day, path) in days.rev().filter(|(_, path)| is_ready(path)) {
            let want = limit + 1 - hits.len();
            let (index, searcher) = self.day_searcher(day, &path)?;
            let query = self.parse(&index, &req.q)?;
            let collector = NewestFirst { limit: want, from, to, before: before.clone() };
            let found = searcher.search(&*query, &collector).map_err(IndexError::tantivy(&path))?;
            if found.is_empty() {
                continue;
            }
            let generators = self.snippet_generators(&searcher, &*query, &path)?;
            for (key, address) in found {
                if hits.len() == limit {
                    more = true;
                    break;
                }
                let doc: TantivyDocument = searcher.doc(address).map_err(IndexError::tantivy(&path))?;
                hits.push(self.hit(&doc, &key, &generators));
            }
            if more {
                break;
            }
        }
        let next_cursor = match hits.last() {
            Some(last) if more => Some(encode_cursor(&(last.time.0, last.event_id.clone()))),
            _ => None,
        };
        Ok(SearchPage { hits, next_cursor })
    }

    /// How many documents match `q` in `[from, to)`, across all days (no cursor, no limit).
    pub fn count(&self, q: &str, from: Option<UnixMillis>, to: Option<UnixMillis>) -> Result<u64, IndexError> {
        let all = day::list_days(&self.dir)?;
        self.forget_missing(&all);
        let mut total = 0u64;
        for (day, path) in all.into_iter().filter(|(_, path)| is_ready(path)) {
            if from.is_some_and(|f| day.end() <= f) || to.is_some_and(|t| day.start() >= t) {
                continue;
            }
            let (index, searcher) = self.day_searcher(day, &path)?;
            let query = self.parse(&index, q)?;
            let query: Box<dyn Query> = match (from, to) {
                (None, None) => query,
                _ => {
                    let lower =
                        from.map_or(Bound::Unbounded, |f| Bound::Included(Term::from_field_i64(self.fields.time, f.0)));
                    let upper =
                        to.map_or(Bound::Unbounded, |t| Bound::Excluded(Term::from_field_i64(self.fields.time, t.0)));
                    let range: Box<dyn Query> = Box::new(RangeQuery::new(lower, upper));
                    Box::new(BooleanQuery::new(vec![(Occur::Must, query), (Occur::Must, range)]))
                }
            };
            total += searcher.search(&*query, &Count).map_err(IndexError::tantivy(&path))? as u64;
        }
        Ok(total)
    }

    fn parse(&self, index: &Index, q: &str) -> Result<Box<dyn Query>, IndexError> {
        if q.trim().is_empty() || q.trim() == "*" {
            return Ok(Box::new(AllQuery));
        }
        let defaults = DEFAULT_FIELDS.iter().filter_map(|name| self.fields.schema.get_field(name).ok()).collect();
        let mut parser = QueryParser::for_index(index, defaults);
        parser.set_conjunction_by_default();
        parser.parse_query(q).map_err(|e| IndexError::BadQuery(e.to_string()))
    }

    fn day_searcher(&self, day: Day, path: &Path) -> Result<(Index, tantivy::Searcher), IndexError> {
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = match readers.entry(day) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let index = Index::open_in_dir(path).map_err(IndexError::tantivy(path))?;
                schema::register_tokenizers(&index);
                let reader = index
                    .reader_builder()
                    .reload_policy(ReloadPolicy::Manual)
                    .try_into()
                    .map_err(IndexError::tantivy(path))?;
                slot.insert(DayReader { index, reader })
            }
        };
        entry.reader.reload().map_err(IndexError::tantivy(path))?;
        Ok((entry.index.clone(), entry.reader.searcher()))
    }

    fn forget_missing(&self, present: &[(Day, PathBuf)]) {
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        let before = readers.len();
        readers.retain(|day, _| present.iter().any(|(d, _)| d == day));
        if readers.len() != before {
            tracing::debug!(forgotten = before - readers.len(), "forgot readers of dropped days");
        }
    }

    fn snippet_generators(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        path: &Path,
    ) -> Result<Vec<(&'static str, Field, SnippetGenerator)>, IndexError> {
        let mut out = Vec::new();
        for (name, field) in
            [("query", self.fields.query), ("reason", self.fields.reason), ("resource", self.fields.resource)]
        {
            let generator = SnippetGenerator::create(searcher, query, field).map_err(IndexError::tantivy(path))?;
            out.push((name, field, generator));
        }
        Ok(out)
    }

    fn hit(&self, doc: &TantivyDocument, key: &Key, generators: &[(&'static str, Field, SnippetGenerator)]) -> Hit {
        let f = &self.fields;
        let text = |field: Field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let status = doc.get_first(f.status).and_then(|v| v.as_u64()).unwrap_or_default();
        let highlights = generators
            .iter()
            .filter_map(|(name, _, generator)| {
                let snippet = generator.snippet_from_doc(doc);
                (!snippet.highlighted().is_empty()).then(|| ((*name).to_owned(), snippet.to_html()))
            })
            .collect();
        Hit {
            event_id: key.1.clone(),
            time: UnixMillis(key.0),
            principal: text(f.principal),
            decision: text(f.decision),
            resource: text(f.resource),
            action: text(f.action),
            status: u16::try_from(status).unwrap_or(u16::MAX),
            highlights,
            clickhouse_sql: clickhouse_sql(&self.database, &key.1),
        }
    }
}

/// Whether a day folder holds an index yet (its creator writes `meta.json` last).
fn is_ready(path: &Path) -> bool {
    path.join("meta.json").is_file()
}
