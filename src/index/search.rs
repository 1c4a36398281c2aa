//! Queries over a reader snapshot: operations, messages, facet values and insight buckets.
//!
//! Results are ids with exact totals; callers load the records from the store. An operation
//! matches a text query when its own text does or when one of its messages does.

use std::collections::{HashMap, HashSet};
use std::ops::Bound as RangeBound;
use std::sync::Arc;

use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;
use tantivy::Term;

use super::collect::{Bound, OperationIds, StateBuckets, TopIds, ValueCounts};
use super::query::{Atom, TextQuery};
use super::schema::{self, KIND_MESSAGE, KIND_OPERATION};
use super::{IndexError, SearchIndex};
use crate::model::{Id, Level, MessageType, OpState, OpType, Timestamp};

/// `sync` or `sync:run`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TypeFilter {
    pub kind: OpType,
    pub action: Option<String>,
}

/// Filters; each list is OR within itself, and all lists AND together. Empty means no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    pub types: Vec<TypeFilter>,
    pub states: Vec<OpState>,
    pub integrations: Vec<String>,
    pub connection_ids: Vec<String>,
    pub scripts: Vec<String>,
    /// Messages only.
    pub levels: Vec<Level>,
    /// Messages only.
    pub message_types: Vec<MessageType>,
    /// Creation time, inclusive.
    pub from: Option<Timestamp>,
    /// Creation time, exclusive.
    pub to: Option<Timestamp>,
    /// Messages of this operation only.
    pub operation: Option<Id>,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: usize,
    pub ascending: bool,
    pub bound: Option<Bound>,
}

/// One page of ids (document id, operation id), the exact number of matches, and whether more
/// follow this page.
#[derive(Debug, Clone, PartialEq)]
pub struct Hits {
    pub ids: Vec<(Id, Id)>,
    pub total: u64,
    pub more: bool,
}

type Clauses = Vec<(Occur, Box<dyn Query>)>;

fn term(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

fn any_of<'a>(field: Field, values: impl IntoIterator<Item = &'a str>) -> Option<Box<dyn Query>> {
    let terms: Clauses = values
        .into_iter()
        .map(|v| (Occur::Should, term(field, v)))
        .collect();
    (!terms.is_empty()).then(|| Box::new(BooleanQuery::new(terms)) as Box<dyn Query>)
}

impl SearchIndex {
    fn base(&self, kind: u64, env: &str) -> Clauses {
        vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.kind, kind),
                    IndexRecordOption::Basic,
                )),
            ),
            (Occur::Must, term(self.fields.env, env)),
        ]
    }

    /// Filters on what an operation never changes: valid for operation and message documents.
    fn add_context_filters(&self, clauses: &mut Clauses, f: &Filters) {
        let fields = &self.fields;
        let types = any_of_types(fields.op_type, fields.type_action, &f.types);
        let lists = [
            types,
            any_of(
                fields.integration,
                f.integrations.iter().map(String::as_str),
            ),
            any_of(
                fields.connection_id,
                f.connection_ids.iter().map(String::as_str),
            ),
            any_of(fields.script, f.scripts.iter().map(String::as_str)),
        ];
        clauses.extend(lists.into_iter().flatten().map(|q| (Occur::Must, q)));
    }

    fn add_time_filter(&self, clauses: &mut Clauses, f: &Filters) {
        if f.from.is_none() && f.to.is_none() {
            return;
        }
        let lower = f.from.map_or(RangeBound::Unbounded, |t| {
            RangeBound::Included(Term::from_field_i64(self.fields.created, t.millis()))
        });
        let upper = f.to.map_or(RangeBound::Unbounded, |t| {
            RangeBound::Excluded(Term::from_field_i64(self.fields.created, t.millis()))
        });
        clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
    }

    fn operation_clauses(&self, env: &str, f: &Filters) -> Clauses {
        let mut clauses = self.base(KIND_OPERATION, env);
        self.add_context_filters(&mut clauses, f);
        if let Some(q) = any_of(self.fields.state, f.states.iter().map(|s| s.as_str())) {
            clauses.push((Occur::Must, q));
        }
        self.add_time_filter(&mut clauses, f);
        clauses
    }

    /// Compiles the text query into clauses on the `text` field.
    fn text_clauses(&self, q: &TextQuery) -> Result<Clauses, IndexError> {
        let mut out = Clauses::new();
        for clause in &q.clauses {
            let alternatives = clause
                .any_of
                .iter()
                .map(|atom| self.atom_query(atom))
                .collect::<Result<Vec<_>, _>>()?;
            let query: Box<dyn Query> = if alternatives.len() == 1 {
                alternatives.into_iter().next().expect("one")
            } else {
                Box::new(BooleanQuery::new(
                    alternatives
                        .into_iter()
                        .map(|q| (Occur::Should, q))
                        .collect(),
                ))
            };
            let occur = if clause.excluded {
                Occur::MustNot
            } else {
                Occur::Must
            };
            out.push((occur, query));
        }
        if !q.has_required() && !out.is_empty() {
            out.push((Occur::Must, Box::new(AllQuery)));
        }
        Ok(out)
    }

    fn atom_query(&self, atom: &Atom) -> Result<Box<dyn Query>, IndexError> {
        let text = match atom {
            Atom::Word(t) | Atom::Phrase(t) | Atom::Prefix(t) => t,
        };
        let mut analyzer = self.index.tokenizer_for_field(self.fields.text)?;
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(Term::from_field_text(self.fields.text, &token.text));
        }
        if terms.is_empty() {
            return Err(IndexError::Query(format!(
                "`{text}` has no letters or digits to search for"
            )));
        }
        Ok(match atom {
            Atom::Prefix(_) => {
                let mut q = PhrasePrefixQuery::new(terms);
                q.set_max_expansions(64);
                Box::new(q)
            }
            _ if terms.len() == 1 => Box::new(TermQuery::new(
                terms.pop().expect("one"),
                IndexRecordOption::Basic,
            )),
            _ => Box::new(PhraseQuery::new(terms)),
        })
    }

    fn searcher(&self) -> Result<tantivy::Searcher, IndexError> {
        self.check_ready()?;
        Ok(self.reader.searcher())
    }

    /// Operations of `env`, newest first unless `page.ascending`.
    pub fn operations(
        &self,
        env: &str,
        f: &Filters,
        text: Option<&TextQuery>,
        page: Page,
    ) -> Result<Hits, IndexError> {
        let searcher = self.searcher()?;
        let filters = self.operation_clauses(env, f);
        let text = text.filter(|t| !t.is_empty());
        let (query, allow) = match text {
            None => (BooleanQuery::new(filters), None),
            Some(t) => {
                // Operations whose own text matches, and operations with a matching message.
                let mut own = self.operation_clauses(env, f);
                own.extend(self.text_clauses(t)?);
                let mut ids = searcher.search(&BooleanQuery::new(own), &OperationIds)?;
                let mut via_messages = self.base(KIND_MESSAGE, env);
                self.add_context_filters(&mut via_messages, f);
                via_messages.extend(self.text_clauses(t)?);
                ids.extend(searcher.search(&BooleanQuery::new(via_messages), &OperationIds)?);
                (BooleanQuery::new(filters), Some(Arc::new(ids)))
            }
        };
        self.page(&searcher, &query, page, allow)
    }

    /// Messages of `env`, newest first unless `page.ascending`. A state filter applies to each
    /// message's operation.
    pub fn messages(
        &self,
        env: &str,
        f: &Filters,
        text: Option<&TextQuery>,
        page: Page,
    ) -> Result<Hits, IndexError> {
        let searcher = self.searcher()?;
        let mut clauses = self.base(KIND_MESSAGE, env);
        self.add_context_filters(&mut clauses, f);
        self.add_time_filter(&mut clauses, f);
        let levels = any_of(self.fields.level, f.levels.iter().map(|l| l.as_str()));
        let types = any_of(
            self.fields.message_type,
            f.message_types.iter().map(|t| t.as_str()),
        );
        clauses.extend(levels.into_iter().chain(types).map(|q| (Occur::Must, q)));
        if let Some(op) = f.operation {
            clauses.push((Occur::Must, term(self.fields.op, &op.to_string())));
        }
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            clauses.extend(self.text_clauses(t)?);
        }
        let allow = if f.states.is_empty() {
            None
        } else {
            let mut ops = self.base(KIND_OPERATION, env);
            self.add_context_filters(&mut ops, f);
            if let Some(q) = any_of(self.fields.state, f.states.iter().map(|s| s.as_str())) {
                ops.push((Occur::Must, q));
            }
            Some(Arc::new(
                searcher.search(&BooleanQuery::new(ops), &OperationIds)?,
            ))
        };
        self.page(&searcher, &BooleanQuery::new(clauses), page, allow)
    }

    fn page(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        page: Page,
        allow: Option<Arc<HashSet<u128>>>,
    ) -> Result<Hits, IndexError> {
        let collector = TopIds {
            limit: page.limit,
            ascending: page.ascending,
            bound: page.bound,
            allow,
        };
        let (total, mut ids) = searcher.search(query, &collector)?;
        let more = ids.len() > page.limit;
        ids.truncate(page.limit);
        Ok(Hits {
            ids: ids.into_iter().map(|(id, op)| (Id(id), Id(op))).collect(),
            total,
            more,
        })
    }

    /// Values of `field` (integration, connection_id or script) over the operations matching
    /// `f`, most frequent first, keeping those starting with `prefix` (case-insensitive).
    pub fn facet_values(
        &self,
        env: &str,
        field: &'static str,
        prefix: &str,
        f: &Filters,
        limit: usize,
    ) -> Result<(Vec<(String, u64)>, usize), IndexError> {
        let searcher = self.searcher()?;
        let query = BooleanQuery::new(self.operation_clauses(env, f));
        let counts: HashMap<String, u64> = searcher.search(&query, &ValueCounts { field })?;
        let prefix = prefix.to_lowercase();
        let mut values: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(v, _)| v.to_lowercase().starts_with(&prefix))
            .collect();
        let distinct = values.len();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        values.truncate(limit);
        Ok((values, distinct))
    }

    /// Operations per time bucket and state: `counts[bucket][state code]`.
    pub fn state_buckets(
        &self,
        env: &str,
        f: &Filters,
        from: Timestamp,
        interval_ms: i64,
        buckets: usize,
    ) -> Result<Vec<Vec<u64>>, IndexError> {
        let searcher = self.searcher()?;
        let query = BooleanQuery::new(self.operation_clauses(env, f));
        let states = OpState::ALL.len();
        let flat = searcher.search(
            &query,
            &StateBuckets {
                from: from.millis(),
                interval: interval_ms,
                buckets,
                states,
            },
        )?;
        Ok(flat.chunks(states).map(<[u64]>::to_vec).collect())
    }
}

fn any_of_types(
    op_type: Field,
    type_action: Field,
    types: &[TypeFilter],
) -> Option<Box<dyn Query>> {
    let clauses: Clauses = types
        .iter()
        .map(|t| match &t.action {
            Some(action) => (
                Occur::Should,
                term(type_action, &format!("{}:{action}", t.kind)),
            ),
            None => (Occur::Should, term(op_type, t.kind.as_str())),
        })
        .collect();
    (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
}

/// The state code the insight buckets are indexed by.
pub fn state_code(state: OpState) -> usize {
    schema::state_code(state) as usize
}
