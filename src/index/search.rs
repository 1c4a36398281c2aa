//! Queries over a reader snapshot: operations, messages, facet values and insight buckets.
//!
//! Results are ids with exact totals; callers load the records from the store. An operation
//! matches a text query when its own text does or when one of its messages does.

use std::ops::Bound as RangeBound;
use std::sync::Arc;

use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;
use tantivy::Term;

use super::collect::{Bound, OpSet, OperationIds, StateBuckets, TopIds, ValueCounts};
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
    pub end_user_ids: Vec<String>,
    /// `key:value`; tags of one key are OR-ed, different keys AND-ed.
    pub tags: Vec<String>,
    /// W3C trace ids (32 lowercase hex digits) of the traces operations were started in.
    pub trace_ids: Vec<String>,
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
    /// `from`/`to` (and insight buckets) by when operations started, not when they were
    /// recorded; operations only.
    pub by_start: bool,
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
    /// For message hits, each one's sequence number in the store (as `ids`); 0 for operations.
    pub seqs: Vec<u64>,
    pub total: u64,
    pub more: bool,
}

type Clauses = Vec<(Occur, Box<dyn Query>)>;

/// Up to this many operations, a message filter on operations goes through their `op` terms;
/// beyond, every candidate message's operation is looked up in the set of them.
const OPERATION_TERMS: usize = 512;

impl Filters {
    /// Whether a filter names operations by their attributes (not only time or the operation).
    fn names_operations(&self) -> bool {
        !(self.types.is_empty()
            && self.states.is_empty()
            && self.integrations.is_empty()
            && self.connection_ids.is_empty()
            && self.scripts.is_empty()
            && self.end_user_ids.is_empty()
            && self.tags.is_empty())
    }
}

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
    /// The clauses every query of documents of `kind` starts with. The `kind` clause is left
    /// out when another clause implies it (`kind_implied`): intersecting a clause that matches
    /// nearly every document costs a seek per hit. The `env` clause costs nothing while one
    /// environment holds everything: tantivy drops a term every document of a segment has.
    fn base(&self, kind: u64, env: &str, kind_implied: bool) -> Clauses {
        let mut clauses = vec![(Occur::Must, term(self.fields.env, env))];
        if !kind_implied {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(self.fields.kind, kind),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        clauses
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
            any_of(
                fields.end_user_id,
                f.end_user_ids.iter().map(String::as_str),
            ),
            any_of(fields.trace_id, f.trace_ids.iter().map(String::as_str)),
        ];
        clauses.extend(lists.into_iter().flatten().map(|q| (Occur::Must, q)));
        // `tags` is sorted, so the tags of one key are adjacent.
        for same_key in f
            .tags
            .chunk_by(|a, b| a.split_once(':').map(|t| t.0) == b.split_once(':').map(|t| t.0))
        {
            if let Some(q) = any_of(fields.tag, same_key.iter().map(String::as_str)) {
                clauses.push((Occur::Must, q));
            }
        }
    }

    /// `from`/`to` on operations (by record or start time) or on messages (their own time).
    fn add_time_filter(&self, clauses: &mut Clauses, f: &Filters, kind: u64) {
        if f.from.is_none() && f.to.is_none() {
            return;
        }
        let field = if f.by_start || kind == KIND_MESSAGE {
            self.fields.started
        } else {
            self.fields.created
        };
        let lower = f.from.map_or(RangeBound::Unbounded, |t| {
            RangeBound::Included(Term::from_field_i64(field, t.millis()))
        });
        let upper = f.to.map_or(RangeBound::Unbounded, |t| {
            RangeBound::Excluded(Term::from_field_i64(field, t.millis()))
        });
        clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
    }

    /// Operations of `env` with the attributes `f` asks for (type, integration, connection,
    /// script, end user, tags, state), whatever their time. `text_implies_kind`: the caller adds
    /// a clause on `op_text`, which only operations have. So does `state`.
    fn operation_filter_clauses(&self, env: &str, f: &Filters, text_implies_kind: bool) -> Clauses {
        let kind_implied = text_implies_kind || !f.states.is_empty();
        let mut clauses = self.base(KIND_OPERATION, env, kind_implied);
        self.add_context_filters(&mut clauses, f);
        if let Some(q) = any_of(self.fields.state, f.states.iter().map(|s| s.as_str())) {
            clauses.push((Occur::Must, q));
        }
        clauses
    }

    /// `operation_filter_clauses` and the time range on operations.
    fn operation_clauses(&self, env: &str, f: &Filters, text_implies_kind: bool) -> Clauses {
        let mut clauses = self.operation_filter_clauses(env, f, text_implies_kind);
        self.add_time_filter(&mut clauses, f, KIND_OPERATION);
        clauses
    }

    /// Compiles the text query into clauses on `field` (`text` or `op_text`). When the query
    /// has no required clause they match documents of both kinds.
    fn text_clauses(&self, q: &TextQuery, field: Field) -> Result<Clauses, IndexError> {
        let mut out = Clauses::new();
        for clause in &q.clauses {
            let alternatives = clause
                .any_of
                .iter()
                .map(|atom| self.atom_query(atom, field))
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

    fn atom_query(&self, atom: &Atom, field: Field) -> Result<Box<dyn Query>, IndexError> {
        let text = match atom {
            Atom::Word(t) | Atom::Phrase(t) | Atom::Prefix(t) => t,
        };
        let mut analyzer = self.index.tokenizer_for_field(field)?;
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(Term::from_field_text(field, &token.text));
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

    fn operation_ids(&self) -> OperationIds {
        OperationIds {
            segments: self.id_blocks.clone(),
        }
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
        let Some(t) = text.filter(|t| !t.is_empty()) else {
            let query = BooleanQuery::new(self.operation_clauses(env, f, false));
            return self.page(&searcher, &query, page, None);
        };
        // Operations whose own text matches, and operations with a matching message.
        let mut own = self.operation_clauses(env, f, t.has_required());
        own.extend(self.text_clauses(t, self.fields.op_text)?);
        let mut ids = searcher.search(&BooleanQuery::new(own), &self.operation_ids())?;
        let mut via_messages = self.base(KIND_MESSAGE, env, t.has_required());
        via_messages.extend(self.text_clauses(t, self.fields.text)?);
        ids.extend(searcher.search(&BooleanQuery::new(via_messages), &self.operation_ids())?);
        if !f.names_operations() && f.from.is_none() && f.to.is_none() {
            return Ok(page_of_ids(ids, page));
        }
        // The operations' own filters decide which of them count.
        let query = BooleanQuery::new(self.operation_clauses(env, f, false));
        self.page(&searcher, &query, page, Some(Arc::new(ids)))
    }

    /// Messages of `env`, newest first unless `page.ascending`. Filters on operations (type,
    /// integration, connection, script, end user, tags, state) keep the messages of the
    /// operations that match them.
    pub fn messages(
        &self,
        env: &str,
        f: &Filters,
        text: Option<&TextQuery>,
        page: Page,
    ) -> Result<Hits, IndexError> {
        let searcher = self.searcher()?;
        let text = text.filter(|t| !t.is_empty());
        // Only messages have `text`, `level` and `message_type`.
        let kind_implied = text.is_some_and(TextQuery::has_required)
            || !f.levels.is_empty()
            || !f.message_types.is_empty();
        let mut clauses = self.base(KIND_MESSAGE, env, kind_implied);
        self.add_time_filter(&mut clauses, f, KIND_MESSAGE);
        let levels = any_of(self.fields.level, f.levels.iter().map(|l| l.as_str()));
        let types = any_of(
            self.fields.message_type,
            f.message_types.iter().map(|t| t.as_str()),
        );
        clauses.extend(levels.into_iter().chain(types).map(|q| (Occur::Must, q)));
        if let Some(op) = f.operation {
            clauses.push((Occur::Must, term(self.fields.op, &op.to_string())));
        }
        if let Some(t) = text {
            clauses.extend(self.text_clauses(t, self.fields.text)?);
        }
        let mut allow = None;
        if f.names_operations() {
            let ops = BooleanQuery::new(self.operation_filter_clauses(env, f, false));
            let ids = searcher.search(&ops, &self.operation_ids())?;
            if ids.len() <= OPERATION_TERMS {
                // Few operations: their messages through each one's `op` postings.
                let ids: Vec<String> = ids.iter().map(|id| Id(*id).to_string()).collect();
                let any = any_of(self.fields.op, ids.iter().map(String::as_str))
                    .unwrap_or_else(|| Box::new(EmptyQuery));
                clauses.push((Occur::Must, any));
            } else {
                allow = Some(Arc::new(ids));
            }
        }
        self.page(&searcher, &BooleanQuery::new(clauses), page, allow)
    }

    fn page(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        page: Page,
        allow: Option<Arc<OpSet>>,
    ) -> Result<Hits, IndexError> {
        let collector = TopIds {
            limit: page.limit,
            ascending: page.ascending,
            bound: page.bound,
            allow,
            blocks: self.id_blocks.clone(),
        };
        let (total, mut hits) = searcher.search(query, &collector)?;
        let more = hits.len() > page.limit;
        hits.truncate(page.limit);
        Ok(Hits {
            ids: hits.iter().map(|(id, op, _)| (Id(*id), Id(*op))).collect(),
            seqs: hits.iter().map(|hit| hit.2).collect(),
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
        let query = BooleanQuery::new(self.operation_clauses(env, f, false));
        let counts = searcher.search(&query, &ValueCounts { field })?;
        let prefix = prefix.to_lowercase();
        let mut values: Vec<(&str, u64)> = counts
            .iter()
            .filter(|(v, _)| prefix.is_empty() || v.to_lowercase().starts_with(&prefix))
            .collect();
        let distinct = values.len();
        let order = |a: &(&str, u64), b: &(&str, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
        if values.len() > limit {
            values.select_nth_unstable_by(limit, order);
            values.truncate(limit);
        }
        values.sort_unstable_by(order);
        let values = values.into_iter().map(|(v, n)| (v.to_owned(), n)).collect();
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
        let query = BooleanQuery::new(self.operation_clauses(env, f, false));
        let states = schema::STATE_CODES as usize;
        let flat = searcher.search(
            &query,
            &StateBuckets {
                time_field: if f.by_start {
                    schema::STARTED
                } else {
                    "created"
                },
                from: from.millis(),
                interval: interval_ms,
                buckets,
                states,
            },
        )?;
        Ok(flat.chunks(states).map(<[u64]>::to_vec).collect())
    }
}

/// The page of operation ids `page` asks for, out of all of them.
fn page_of_ids(ids: OpSet, page: Page) -> Hits {
    let total = ids.len() as u64;
    let rank = |id: u128| if page.ascending { id } else { !id };
    let mut ranks: Vec<u128> = ids
        .into_iter()
        .filter(|id| match page.bound {
            Some(Bound::After(after)) => *id > after,
            Some(Bound::Before(before)) => *id < before,
            None => true,
        })
        .map(rank)
        .collect();
    let keep = page.limit + 1;
    if ranks.len() > keep {
        ranks.select_nth_unstable(keep - 1);
        ranks.truncate(keep);
    }
    ranks.sort_unstable();
    let more = ranks.len() > page.limit;
    ranks.truncate(page.limit);
    Hits {
        seqs: vec![0; ranks.len()],
        ids: ranks
            .into_iter()
            .map(|r| (Id(rank(r)), Id(rank(r))))
            .collect(),
        total,
        more,
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
