//! The tantivy schema: one document per [`AccessDecision`], and the tokenizers it needs.
//!
//! | field | indexed as | stored | fast |
//! | --- | --- | --- | --- |
//! | `principal` | `keyword` (whole value, lower-cased): `principal:alice@example.com` is exact | yes | |
//! | `principal_text` | `default` words, so a bare `alice` finds `alice@example.com` | | |
//! | `resource`, `query`, `reason`, `host`, `path`, `user_agent`, `policy` | `default` words with positions (phrases) | yes | |
//! | `action`, `decision`, `country`, `client_ip`, `dataset`, `roles`, `tenant` | `keyword` | yes | `decision` |
//! | `event_id`, `ray_id`, `request_id` | `raw` (exact, case kept) | yes | `event_id` |
//! | `time` (i64 epoch ms), `status`, `rows_read` (u64) | numbers (`status:403`, `time:[a TO b]`) | `time`, `status` | yes |
//!
//! `keyword` is tantivy's raw tokenizer followed by a lower-caser, registered on every index
//! this crate opens (tokenizers are not persisted). Bare words search [`DEFAULT_FIELDS`].

use gatelog_model::AccessDecision;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};
use tantivy::{Index, TantivyDocument};

/// Name of the whole-value, lower-cased tokenizer.
pub const KEYWORD: &str = "keyword";

/// Fields searched by words without a `field:` prefix.
pub const DEFAULT_FIELDS: &[&str] =
    &["principal", "principal_text", "resource", "query", "reason", "user_agent", "host", "path"];

/// Field handles of the decision schema.
#[derive(Debug, Clone)]
pub struct Fields {
    pub schema: Schema,
    pub event_id: Field,
    pub time: Field,
    pub principal: Field,
    pub principal_text: Field,
    pub resource: Field,
    pub action: Field,
    pub decision: Field,
    pub query: Field,
    pub reason: Field,
    pub host: Field,
    pub path: Field,
    pub user_agent: Field,
    pub country: Field,
    pub client_ip: Field,
    pub dataset: Field,
    pub policy: Field,
    pub roles: Field,
    pub ray_id: Field,
    pub request_id: Field,
    pub tenant: Field,
    pub status: Field,
    pub rows_read: Field,
}

fn text(tokenizer: &str, stored: bool) -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(tokenizer)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let options = TextOptions::default().set_indexing_options(indexing);
    if stored { options.set_stored() } else { options }
}

impl Fields {
    /// Builds the schema.
    pub fn new() -> Fields {
        let mut b = Schema::builder();
        let words = |stored| text("default", stored);
        let keyword = || text(KEYWORD, true);
        let number = || NumericOptions::default().set_indexed().set_fast();
        Fields {
            event_id: b.add_text_field("event_id", (STRING | STORED).set_fast("raw")),
            time: b.add_i64_field("time", number().set_stored()),
            principal: b.add_text_field("principal", keyword()),
            principal_text: b.add_text_field("principal_text", words(false)),
            resource: b.add_text_field("resource", words(true)),
            action: b.add_text_field("action", keyword()),
            decision: b.add_text_field("decision", keyword().set_fast("raw")),
            query: b.add_text_field("query", words(true)),
            reason: b.add_text_field("reason", words(true)),
            host: b.add_text_field("host", words(true)),
            path: b.add_text_field("path", words(true)),
            user_agent: b.add_text_field("user_agent", words(true)),
            country: b.add_text_field("country", keyword()),
            client_ip: b.add_text_field("client_ip", keyword()),
            dataset: b.add_text_field("dataset", keyword()),
            policy: b.add_text_field("policy", words(true)),
            roles: b.add_text_field("roles", keyword()),
            ray_id: b.add_text_field("ray_id", STRING | STORED),
            request_id: b.add_text_field("request_id", STRING | STORED),
            tenant: b.add_text_field("tenant", keyword()),
            status: b.add_u64_field("status", number().set_stored()),
            rows_read: b.add_u64_field("rows_read", number()),
            schema: b.build(),
        }
    }
}

impl Default for Fields {
    fn default() -> Self {
        Fields::new()
    }
}

/// Registers the tokenizers the schema names. Call on every [`Index`] opened or created.
pub fn register_tokenizers(index: &Index) {
    let keyword = TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).build();
    index.tokenizers().register(KEYWORD, keyword);
}

impl Fields {
    /// The document for one decision, and a rough size in bytes (for commit thresholds).
    pub fn document(&self, d: &AccessDecision) -> (TantivyDocument, u64) {
        let mut doc = TantivyDocument::new();
        let mut bytes = 64u64;
        let mut put = |field: Field, value: &str| {
            if !value.is_empty() {
                doc.add_text(field, value);
                bytes += value.len() as u64;
            }
        };
        put(self.event_id, &d.event_id);
        put(self.principal, &d.principal);
        put(self.principal_text, &d.principal);
        put(self.resource, &d.resource);
        put(self.action, &d.action);
        put(self.decision, d.decision.as_str());
        put(self.query, &d.query);
        put(self.reason, &d.reason);
        put(self.host, &d.host);
        put(self.path, &d.path);
        put(self.user_agent, &d.user_agent);
        put(self.country, &d.country);
        put(self.client_ip, &d.client_ip);
        put(self.dataset, &d.dataset);
        put(self.policy, &d.policy);
        put(self.ray_id, &d.ray_id);
        put(self.request_id, &d.request_id);
        put(self.tenant, &d.tenant);
        for role in &d.roles {
            put(self.roles, role);
        }
        doc.add_i64(self.time, d.time.0);
        doc.add_u64(self.status, u64::from(d.status));
        doc.add_u64(self.rows_read, d.rows_read);
        (doc, bytes)
    }
}
