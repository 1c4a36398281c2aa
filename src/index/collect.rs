//! tantivy collectors over fast fields: the exact-count + top-N-by-id page, sets of operation ids,
//! value counts for facets, and per-bucket state counts for insights.
//!
//! Each reads only columnar fast fields, so collecting a million hits costs milliseconds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

fn join(hi: Option<u64>, lo: Option<u64>) -> u128 {
    (u128::from(hi.unwrap_or(0)) << 64) | u128::from(lo.unwrap_or(0))
}

struct IdColumns {
    id_hi: Column<u64>,
    id_lo: Column<u64>,
    op_hi: Column<u64>,
    op_lo: Column<u64>,
}

impl IdColumns {
    fn open(segment: &SegmentReader) -> tantivy::Result<IdColumns> {
        let ff = segment.fast_fields();
        Ok(IdColumns {
            id_hi: ff.u64("id_hi")?,
            id_lo: ff.u64("id_lo")?,
            op_hi: ff.u64("op_hi")?,
            op_lo: ff.u64("op_lo")?,
        })
    }

    fn id(&self, doc: DocId) -> u128 {
        join(self.id_hi.first(doc), self.id_lo.first(doc))
    }

    fn op(&self, doc: DocId) -> u128 {
        join(self.op_hi.first(doc), self.op_lo.first(doc))
    }
}

/// Where a page starts, exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    After(u128),
    Before(u128),
}

/// Counts every hit whose operation is in `allow` (when given) and keeps the first `limit + 1`
/// by document id, in `ascending` or descending order, beyond `bound`.
pub struct TopIds {
    pub limit: usize,
    pub ascending: bool,
    pub bound: Option<Bound>,
    pub allow: Option<Arc<HashSet<u128>>>,
}

pub struct TopIdsSegment {
    columns: IdColumns,
    keep: usize,
    ascending: bool,
    bound: Option<Bound>,
    allow: Option<Arc<HashSet<u128>>>,
    count: u64,
    /// Candidate hits as (rank, doc): the rank is the id, or its complement for a descending
    /// page, so smaller is always better. Trimmed to the best `keep` whenever it fills up.
    candidates: Vec<(u128, DocId)>,
    /// The worst rank kept by the last trim: a hit ranked past it cannot make the page.
    threshold: Option<u128>,
}

/// Candidates gathered between two trims, per kept hit. Hits mostly arrive in id order, so in a
/// newest-first page nearly every hit beats the worst kept one: a heap would pop and push on
/// each, while a trim every few hundred hits is one linear selection.
const TRIM_FACTOR: usize = 4;

impl TopIdsSegment {
    fn trim(&mut self) {
        if self.candidates.len() > self.keep {
            self.candidates.select_nth_unstable(self.keep - 1);
            self.candidates.truncate(self.keep);
        }
        self.threshold = self.candidates.iter().map(|c| c.0).max();
    }
}

impl Collector for TopIds {
    type Fruit = (u64, Vec<(u128, u128)>);
    type Child = TopIdsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(TopIdsSegment {
            columns: IdColumns::open(segment)?,
            keep: self.limit + 1,
            ascending: self.ascending,
            bound: self.bound,
            allow: self.allow.clone(),
            count: 0,
            candidates: Vec::with_capacity((self.limit + 1) * TRIM_FACTOR),
            threshold: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<(u64, Vec<(u128, u128)>)>) -> tantivy::Result<Self::Fruit> {
        let count = fruits.iter().map(|f| f.0).sum();
        let mut all: Vec<(u128, u128)> = fruits.into_iter().flat_map(|f| f.1).collect();
        if self.ascending {
            all.sort_unstable();
        } else {
            all.sort_unstable_by(|a, b| b.cmp(a));
        }
        all.truncate(self.limit + 1);
        Ok((count, all))
    }
}

impl SegmentCollector for TopIdsSegment {
    type Fruit = (u64, Vec<(u128, u128)>);

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(allow) = &self.allow {
            if !allow.contains(&self.columns.op(doc)) {
                return;
            }
        }
        self.count += 1;
        let id = self.columns.id(doc);
        match self.bound {
            Some(Bound::After(after)) if id <= after => return,
            Some(Bound::Before(before)) if id >= before => return,
            _ => {}
        }
        let rank = if self.ascending { id } else { !id };
        if self.threshold.is_some_and(|worst| rank >= worst) {
            return;
        }
        self.candidates.push((rank, doc));
        if self.candidates.len() >= self.keep * TRIM_FACTOR {
            self.trim();
        }
    }

    fn harvest(mut self) -> Self::Fruit {
        self.trim();
        let columns = &self.columns;
        let ascending = self.ascending;
        let kept = self
            .candidates
            .iter()
            .map(|&(rank, doc)| (if ascending { rank } else { !rank }, columns.op(doc)))
            .collect();
        (self.count, kept)
    }
}

/// The set of operation ids of every hit.
pub struct OperationIds;

pub struct OperationIdsSegment {
    columns: IdColumns,
    ids: HashSet<u128>,
}

impl Collector for OperationIds {
    type Fruit = HashSet<u128>;
    type Child = OperationIdsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(OperationIdsSegment {
            columns: IdColumns::open(segment)?,
            ids: HashSet::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashSet<u128>>) -> tantivy::Result<HashSet<u128>> {
        let mut fruits = fruits.into_iter();
        let mut all = fruits.next().unwrap_or_default();
        for f in fruits {
            all.extend(f);
        }
        Ok(all)
    }
}

impl SegmentCollector for OperationIdsSegment {
    type Fruit = HashSet<u128>;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.ids.insert(self.columns.op(doc));
    }

    fn harvest(self) -> HashSet<u128> {
        self.ids
    }
}

/// How many hits carry each value of a keyword fast field.
pub struct ValueCounts {
    pub field: &'static str,
}

pub struct ValueCountsSegment {
    column: Option<StrColumn>,
    /// Hits per term ordinal of this segment's column.
    counts: Vec<u64>,
}

impl Collector for ValueCounts {
    type Fruit = HashMap<String, u64>;
    type Child = ValueCountsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let column = segment.fast_fields().str(self.field)?;
        let terms = column.as_ref().map_or(0, |c| c.num_terms());
        Ok(ValueCountsSegment {
            column,
            counts: vec![0; terms],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashMap<String, u64>>) -> tantivy::Result<Self::Fruit> {
        let mut all = HashMap::new();
        for fruit in fruits {
            for (value, n) in fruit {
                *all.entry(value).or_insert(0) += n;
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for ValueCountsSegment {
    type Fruit = HashMap<String, u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(column) = &self.column {
            for ord in column.term_ords(doc) {
                if let Some(n) = self.counts.get_mut(ord as usize) {
                    *n += 1;
                }
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let mut out = HashMap::new();
        let Some(column) = &self.column else {
            return out;
        };
        // One sequential pass over the dictionary for all hit ordinals: looking each one up on
        // its own restarts decoding at a block boundary every time, which dominated facets.
        let (ords, counts): (Vec<u64>, Vec<u64>) = self
            .counts
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(ord, n)| (ord as u64, n))
            .unzip();
        let mut counts = counts.into_iter();
        let found = column.dictionary().sorted_ords_to_term_cb(&ords, |term| {
            let n = counts.next().unwrap_or(0);
            if let Ok(value) = std::str::from_utf8(term) {
                out.insert(value.to_owned(), n);
            }
        });
        if let Err(e) = found {
            tracing::warn!(error = %e, "reading facet values failed");
        }
        out
    }
}

/// Counts per time bucket and state code, for hits created in `[from, from + interval * buckets)`.
pub struct StateBuckets {
    pub from: i64,
    pub interval: i64,
    pub buckets: usize,
    pub states: usize,
}

pub struct StateBucketsSegment {
    created: Column<i64>,
    state: Column<u64>,
    spec: (i64, i64, usize, usize),
    counts: Vec<u64>,
}

impl Collector for StateBuckets {
    type Fruit = Vec<u64>;
    type Child = StateBucketsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        let ff = segment.fast_fields();
        Ok(StateBucketsSegment {
            created: ff.i64("created")?,
            state: ff.u64("state_code")?,
            spec: (self.from, self.interval, self.buckets, self.states),
            counts: vec![0; self.buckets * self.states],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut all = vec![0; self.buckets * self.states];
        for fruit in fruits {
            for (a, b) in all.iter_mut().zip(fruit) {
                *a += b;
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for StateBucketsSegment {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let (from, interval, buckets, states) = self.spec;
        let (Some(created), Some(state)) = (self.created.first(doc), self.state.first(doc)) else {
            return;
        };
        let offset = created - from;
        if offset < 0 {
            return;
        }
        let bucket = (offset / interval) as usize;
        let state = state as usize;
        if bucket < buckets && state < states {
            self.counts[bucket * states + state] += 1;
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.counts
    }
}
