//! tantivy collectors over fast fields: the exact-count + top-N-by-id page, sets of operation ids,
//! value counts for facets, and per-bucket state counts for insights.
//!
//! Each reads only columnar fast fields, so collecting a million hits costs milliseconds; a page
//! reads ids only near its end, found through per-segment id bounds (`IdBlocks`) that a reader
//! warmer keeps for every live segment.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, ColumnIndex, StrColumn};
use tantivy::index::SegmentId;
use tantivy::{DocId, Score, Searcher, SearcherGeneration, SegmentOrdinal, SegmentReader, Warmer};

/// A numeric fast field. Read straight from its values when every document has one (ids,
/// times): going through the column index for each hit cost as much as the value itself.
#[derive(Clone)]
struct FastColumn<T> {
    column: Column<T>,
    full: bool,
}

type U64Column = FastColumn<u64>;

impl<T: PartialOrd + Copy + Debug + Send + Sync + Default + 'static> FastColumn<T> {
    fn new(column: Column<T>) -> FastColumn<T> {
        let full = matches!(column.index, ColumnIndex::Full);
        FastColumn { column, full }
    }

    /// The value of `doc`, if it has one.
    #[inline]
    fn value(&self, doc: DocId) -> Option<T> {
        if self.full {
            Some(self.column.values.get_val(doc))
        } else {
            self.column.first(doc)
        }
    }

    #[inline]
    fn get(&self, doc: DocId) -> T {
        self.value(doc).unwrap_or_default()
    }

    /// The values of documents `start..start + out.len()`.
    fn read_range(&self, start: DocId, out: &mut [T]) {
        if self.full {
            self.column.values.get_range(u64::from(start), out);
        } else {
            for (doc, value) in (start..).zip(out.iter_mut()) {
                *value = self.get(doc);
            }
        }
    }
}

fn open_u64(segment: &SegmentReader, name: &str) -> tantivy::Result<U64Column> {
    Ok(FastColumn::new(segment.fast_fields().u64(name)?))
}

/// A column only some kinds of document have, which a segment may lack altogether.
fn open_u64_opt(segment: &SegmentReader, name: &str) -> tantivy::Result<Option<U64Column>> {
    Ok(segment.fast_fields().column_opt(name)?.map(FastColumn::new))
}

fn join(hi: u64, lo: u64) -> u128 {
    (u128::from(hi) << 64) | u128::from(lo)
}

#[derive(Clone)]
struct IdColumns {
    id_hi: U64Column,
    id_lo: U64Column,
    op_hi: U64Column,
    op_lo: U64Column,
    /// Messages' sequence numbers; absent from a segment of operations only.
    seq: Option<U64Column>,
}

impl IdColumns {
    fn open(segment: &SegmentReader) -> tantivy::Result<IdColumns> {
        Ok(IdColumns {
            id_hi: open_u64(segment, "id_hi")?,
            id_lo: open_u64(segment, "id_lo")?,
            op_hi: open_u64(segment, "op_hi")?,
            op_lo: open_u64(segment, "op_lo")?,
            seq: open_u64_opt(segment, super::schema::SEQ)?,
        })
    }

    /// A message's sequence number (0 for an operation).
    fn seq(&self, doc: DocId) -> u64 {
        self.seq.as_ref().map_or(0, |c| c.get(doc))
    }

    fn id(&self, doc: DocId) -> u128 {
        join(self.id_hi.get(doc), self.id_lo.get(doc))
    }

    fn op(&self, doc: DocId) -> u128 {
        join(self.op_hi.get(doc), self.op_lo.get(doc))
    }

    /// The operation ids of `docs` (at most `BATCH`), calling `each(doc, op)` in order. Reading a
    /// batch from each column in one call lets the CPU wait for several cache misses at once:
    /// per-hit reads of these random 64-bit values were a third of a search for the operations
    /// whose messages match.
    fn for_each_op(&self, docs: &[DocId], mut each: impl FnMut(DocId, u128)) {
        if !(self.op_hi.full && self.op_lo.full) {
            for &doc in docs {
                each(doc, self.op(doc));
            }
            return;
        }
        let (mut hi, mut lo) = ([0u64; BATCH], [0u64; BATCH]);
        for chunk in docs.chunks(BATCH) {
            let n = chunk.len();
            self.op_hi.column.values.get_vals(chunk, &mut hi[..n]);
            self.op_lo.column.values.get_vals(chunk, &mut lo[..n]);
            for (i, &doc) in chunk.iter().enumerate() {
                each(doc, join(hi[i], lo[i]));
            }
        }
    }
}

/// Documents per batched column read (tantivy hands collectors blocks of 64).
const BATCH: usize = 64;

/// Documents per block of `IdBlocks`.
const BLOCK_SHIFT: u32 = 8;
const BLOCK_DOCS: usize = 1 << BLOCK_SHIFT;

/// The smallest and largest id of each block of `BLOCK_DOCS` documents (deleted ones included)
/// of one segment, and the blocks in the order a page visits them: what lets a page stop once
/// no block left can hold a hit that ranks. Documents are added in id order, so a segment is a
/// few ascending runs (one per merged segment) and a page reads a few hundred ids instead of
/// one per hit; any order stays correct, only slower.
pub struct IdBlocks {
    min: Vec<u128>,
    max: Vec<u128>,
    /// Blocks by their largest id, descending: the visiting order of a newest-first page.
    by_max_desc: Vec<u32>,
    /// Blocks by their smallest id, ascending: the visiting order of an oldest-first page.
    by_min_asc: Vec<u32>,
}

impl IdBlocks {
    fn compute(segment: &SegmentReader, columns: &IdColumns) -> IdBlocks {
        let max_doc = segment.max_doc();
        let mut min = Vec::new();
        let mut max = Vec::new();
        let (mut hi, mut lo) = (vec![0u64; BLOCK_DOCS], vec![0u64; BLOCK_DOCS]);
        for start in (0..max_doc).step_by(BLOCK_DOCS) {
            let n = (max_doc - start).min(BLOCK_DOCS as u32) as usize;
            columns.id_hi.read_range(start, &mut hi[..n]);
            columns.id_lo.read_range(start, &mut lo[..n]);
            let ids = hi[..n].iter().zip(&lo[..n]).map(|(h, l)| join(*h, *l));
            let (lowest, highest) = ids.fold((u128::MAX, 0), |(lowest, highest), id| {
                (lowest.min(id), highest.max(id))
            });
            min.push(lowest);
            max.push(highest);
        }
        let mut by_max_desc: Vec<u32> = (0..max.len() as u32).collect();
        by_max_desc.sort_unstable_by(|a, b| max[*b as usize].cmp(&max[*a as usize]));
        let mut by_min_asc: Vec<u32> = (0..min.len() as u32).collect();
        by_min_asc.sort_unstable_by_key(|b| min[*b as usize]);
        IdBlocks {
            min,
            max,
            by_max_desc,
            by_min_asc,
        }
    }
}

/// What a search reads of one segment before its first hit: its id columns, opened (opening a
/// column decodes its block headers, a third of a one-hit search's CPU when done per query), and
/// their `IdBlocks`.
pub struct SegmentIds {
    columns: IdColumns,
    blocks: IdBlocks,
}

/// The `SegmentIds` of every live segment. A reader reload computes them for new segments (as a
/// tantivy warmer, on the indexer's thread), so searches find them ready.
#[derive(Default)]
pub struct IdBlocksCache {
    by_segment: Mutex<HashMap<SegmentId, Arc<SegmentIds>>>,
}

impl IdBlocksCache {
    fn get(&self, segment: &SegmentReader) -> tantivy::Result<Arc<SegmentIds>> {
        let id = segment.segment_id();
        let lock = || self.by_segment.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ids) = lock().get(&id) {
            return Ok(ids.clone());
        }
        let columns = IdColumns::open(segment)?;
        let blocks = IdBlocks::compute(segment, &columns);
        let ids = Arc::new(SegmentIds { columns, blocks });
        lock().insert(id, ids.clone());
        Ok(ids)
    }
}

impl Warmer for IdBlocksCache {
    /// Never fails: a reload (the indexer's commit) must not fail over this; a search that
    /// cannot compute the bounds fails on its own.
    fn warm(&self, searcher: &Searcher) -> tantivy::Result<()> {
        for segment in searcher.segment_readers() {
            if let Err(e) = self.get(segment) {
                tracing::warn!(error = %e, segment = %segment.segment_id(), "reading id bounds failed");
            }
        }
        Ok(())
    }

    fn garbage_collect(&self, live_generations: &[&SearcherGeneration]) {
        let mut by_segment = self.by_segment.lock().unwrap_or_else(|e| e.into_inner());
        by_segment.retain(|id, _| {
            live_generations
                .iter()
                .any(|g| g.segments().contains_key(id))
        });
    }
}

/// Where a page starts, exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    After(u128),
    Before(u128),
}

/// Hashes an id by its low half: ULIDs end in random bits (or a counter), so a multiply spreads
/// them well, at a fraction of SipHash's cost per hit.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = (id as u64 ^ (id >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A set of operation ids.
pub type OpSet = HashSet<u128, BuildHasherDefault<IdHasher>>;

/// A hit of a page: its id, its operation's, and (messages) its sequence number.
pub type PageHit = (u128, u128, u64);

/// Counts every hit whose operation is in `allow` (when given) and keeps the first `limit + 1`
/// by document id, in `ascending` or descending order, beyond `bound`.
pub struct TopIds {
    pub limit: usize,
    pub ascending: bool,
    pub bound: Option<Bound>,
    pub allow: Option<Arc<OpSet>>,
    pub blocks: Arc<IdBlocksCache>,
}

pub struct TopIdsSegment {
    ids: Arc<SegmentIds>,
    keep: usize,
    ascending: bool,
    bound: Option<Bound>,
    allow: Option<Arc<OpSet>>,
    /// Every counted hit, in doc order: ranking waits for the end, when it can start from the
    /// end the page wants and stop early.
    hits: Vec<DocId>,
}

impl Collector for TopIds {
    type Fruit = (u64, Vec<PageHit>);
    type Child = TopIdsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(TopIdsSegment {
            ids: self.blocks.get(segment)?,
            keep: self.limit + 1,
            ascending: self.ascending,
            bound: self.bound,
            allow: self.allow.clone(),
            hits: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<(u64, Vec<PageHit>)>) -> tantivy::Result<Self::Fruit> {
        let count = fruits.iter().map(|f| f.0).sum();
        let mut all: Vec<PageHit> = fruits.into_iter().flat_map(|f| f.1).collect();
        if self.ascending {
            all.sort_unstable();
        } else {
            all.sort_unstable_by(|a, b| b.cmp(a));
        }
        all.truncate(self.limit + 1);
        Ok((count, all))
    }
}

impl TopIdsSegment {
    /// The best `keep` hits inside the bound, as (rank, doc); the rank is the id, or its
    /// complement for a descending page, so smaller is always better.
    fn best(&self) -> Vec<(u128, DocId)> {
        let (blocks, columns) = (&self.ids.blocks, &self.ids.columns);
        let rank = |id: u128| if self.ascending { id } else { !id };
        // A max-heap: its top is the worst hit kept.
        let mut kept: BinaryHeap<(u128, DocId)> = BinaryHeap::with_capacity(self.keep);
        let consider = |kept: &mut BinaryHeap<(u128, DocId)>, doc: DocId| {
            let worst = (kept.len() == self.keep)
                .then(|| kept.peek().map(|w| w.0))
                .flatten();
            if let Some(worst) = worst {
                // The high half decides nearly always: read the low one only on a tie.
                let high = rank(join(columns.id_hi.get(doc), 0)) >> 64;
                if high > worst >> 64 {
                    return;
                }
            }
            let id = columns.id(doc);
            let outside = match self.bound {
                Some(Bound::After(after)) => id <= after,
                Some(Bound::Before(before)) => id >= before,
                None => false,
            };
            match worst {
                _ if outside => {}
                // Replacing the top sifts once; a push and a pop would sift twice.
                Some(worst) if rank(id) < worst => {
                    if let Some(mut top) = kept.peek_mut() {
                        *top = (rank(id), doc);
                    }
                }
                Some(_) => {}
                None => kept.push((rank(id), doc)),
            }
        };
        // Few hits: read them all rather than look for their blocks.
        if self.hits.len() <= 2 * self.keep {
            for &doc in &self.hits {
                consider(&mut kept, doc);
            }
            return kept.into_vec();
        }
        let order = if self.ascending {
            &blocks.by_min_asc
        } else {
            &blocks.by_max_desc
        };
        for &block in order {
            let (min, max) = (blocks.min[block as usize], blocks.max[block as usize]);
            let best_possible = if self.ascending { min } else { !max };
            // Blocks come best first: once one cannot beat the worst kept, none after it can.
            if kept.len() == self.keep && kept.peek().is_some_and(|w| best_possible >= w.0) {
                break;
            }
            let beyond = match self.bound {
                Some(Bound::After(after)) => max <= after,
                Some(Bound::Before(before)) => min >= before,
                None => false,
            };
            if beyond {
                continue;
            }
            let first_doc = block << BLOCK_SHIFT;
            let start = self.hits.partition_point(|d| *d < first_doc);
            let end = self.hits[start..].partition_point(|d| *d < first_doc + BLOCK_DOCS as u32);
            for &doc in &self.hits[start..start + end] {
                consider(&mut kept, doc);
            }
        }
        kept.into_vec()
    }
}

impl SegmentCollector for TopIdsSegment {
    type Fruit = (u64, Vec<PageHit>);

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(allow) = &self.allow {
            if !allow.contains(&self.ids.columns.op(doc)) {
                return;
            }
        }
        self.hits.push(doc);
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        match &self.allow {
            None => self.hits.extend_from_slice(docs),
            Some(allow) => {
                let hits = &mut self.hits;
                self.ids.columns.for_each_op(docs, |doc, op| {
                    if allow.contains(&op) {
                        hits.push(doc);
                    }
                });
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let kept = self
            .best()
            .into_iter()
            .map(|(rank, doc)| {
                let id = if self.ascending { rank } else { !rank };
                let columns = &self.ids.columns;
                (id, columns.op(doc), columns.seq(doc))
            })
            .collect();
        (self.hits.len() as u64, kept)
    }
}

/// The set of operation ids of every hit.
pub struct OperationIds {
    pub segments: Arc<IdBlocksCache>,
}

pub struct OperationIdsSegment {
    segment: Arc<SegmentIds>,
    ids: OpSet,
    /// The last id inserted: a message's neighbours in doc order are mostly of its operation.
    last: Option<u128>,
}

impl Collector for OperationIds {
    type Fruit = OpSet;
    type Child = OperationIdsSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(OperationIdsSegment {
            segment: self.segments.get(segment)?,
            ids: OpSet::default(),
            last: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<OpSet>) -> tantivy::Result<OpSet> {
        let mut fruits = fruits.into_iter();
        let mut all = fruits.next().unwrap_or_default();
        for f in fruits {
            all.extend(f);
        }
        Ok(all)
    }
}

impl SegmentCollector for OperationIdsSegment {
    type Fruit = OpSet;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.collect_block(&[doc]);
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        let (ids, last) = (&mut self.ids, &mut self.last);
        self.segment.columns.for_each_op(docs, |_, op| {
            if *last != Some(op) {
                ids.insert(op);
                *last = Some(op);
            }
        });
    }

    fn harvest(self) -> OpSet {
        self.ids
    }
}

/// Values with a count, in value order, packed in one buffer: a list of thousands of values
/// per segment costs two allocations, not one per value.
#[derive(Default)]
pub struct ValueList {
    bytes: Vec<u8>,
    /// Where each value ends in `bytes`, and its count.
    entries: Vec<(usize, u64)>,
}

impl ValueList {
    fn push(&mut self, value: &[u8], count: u64) {
        self.bytes.extend_from_slice(value);
        self.entries.push((self.bytes.len(), count));
    }

    fn value(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.entries[i - 1].0 };
        &self.bytes[start..self.entries[i].0]
    }

    /// (value, count) in value order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        (0..self.entries.len()).map(|i| {
            // Only whole UTF-8 values are pushed.
            let value = std::str::from_utf8(self.value(i)).unwrap_or_default();
            (value, self.entries[i].1)
        })
    }

    /// Merges lists in value order into one, adding the counts of equal values: pairwise, in
    /// rounds, so each entry takes part in log2(lists) two-way merges (one comparison per step;
    /// a heap over all the lists cost several comparisons and moves per entry, and dominated
    /// facets over a dozen segments).
    fn merge(lists: Vec<ValueList>) -> ValueList {
        let mut round = lists;
        while round.len() > 1 {
            let mut next = Vec::with_capacity(round.len().div_ceil(2));
            let mut lists = round.into_iter();
            while let Some(a) = lists.next() {
                next.push(match lists.next() {
                    Some(b) => ValueList::merge_two(&a, &b),
                    None => a,
                });
            }
            round = next;
        }
        round.pop().unwrap_or_default()
    }

    fn merge_two(a: &ValueList, b: &ValueList) -> ValueList {
        let mut out = ValueList {
            bytes: Vec::with_capacity(a.bytes.len().max(b.bytes.len())),
            entries: Vec::with_capacity(a.entries.len().max(b.entries.len())),
        };
        let (mut i, mut j) = (0, 0);
        while i < a.entries.len() && j < b.entries.len() {
            let (x, y) = (a.value(i), b.value(j));
            match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    out.push(x, a.entries[i].1);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(y, b.entries[j].1);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push(x, a.entries[i].1 + b.entries[j].1);
                    i += 1;
                    j += 1;
                }
            }
        }
        for k in i..a.entries.len() {
            out.push(a.value(k), a.entries[k].1);
        }
        for k in j..b.entries.len() {
            out.push(b.value(k), b.entries[k].1);
        }
        out
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
    /// Scratch for a block of hits: the hits that have values, their rows, the rows' ordinals.
    docs: Vec<DocId>,
    rows: Vec<u32>,
    ords: Vec<u64>,
}

impl Collector for ValueCounts {
    type Fruit = ValueList;
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
            docs: Vec::new(),
            rows: Vec::new(),
            ords: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<ValueList>) -> tantivy::Result<ValueList> {
        Ok(ValueList::merge(fruits))
    }
}

impl SegmentCollector for ValueCountsSegment {
    type Fruit = ValueList;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.collect_block(&[doc]);
    }

    /// A block of hits at once: the column index turns sorted documents into rows in one pass
    /// (one lookup per hit, a binary search in a sparse block, was a fifth of facets).
    fn collect_block(&mut self, docs: &[DocId]) {
        let Some(column) = &self.column else {
            return;
        };
        let ords = column.ords();
        self.docs.clear();
        self.rows.clear();
        ords.row_ids_for_docs(docs, &mut self.docs, &mut self.rows);
        self.ords.clear();
        self.ords.resize(self.rows.len(), 0);
        ords.values.get_vals(&self.rows, &mut self.ords);
        for &ord in &self.ords {
            if let Some(n) = self.counts.get_mut(ord as usize) {
                *n += 1;
            }
        }
    }

    fn harvest(self) -> Self::Fruit {
        let Some(column) = &self.column else {
            return ValueList::default();
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
        let mut out = ValueList::default();
        let mut counts = counts.into_iter();
        // Terms of a str column are whole UTF-8 values; `ValueList::iter` checks them once, after
        // the merge, rather than once per segment here.
        let found = column.dictionary().sorted_ords_to_term_cb(&ords, |term| {
            out.push(term, counts.next().unwrap_or(0));
        });
        if let Err(e) = found {
            tracing::warn!(error = %e, "reading facet values failed");
        }
        out
    }
}

/// Counts per time bucket and state code, for hits whose `time_field` (`created`, `started`) is
/// in `[from, from + interval * buckets)`.
pub struct StateBuckets {
    pub time_field: &'static str,
    pub from: i64,
    pub interval: i64,
    pub buckets: usize,
    pub states: usize,
}

pub struct StateBucketsSegment {
    created: Option<FastColumn<i64>>,
    state: U64Column,
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
            // A segment of messages only has no `created`, and no operation to count.
            created: ff.column_opt(self.time_field)?.map(FastColumn::new),
            state: FastColumn::new(ff.u64("state_code")?),
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
        let created = self.created.as_ref().and_then(|c| c.value(doc));
        let (Some(created), Some(state)) = (created, self.state.value(doc)) else {
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

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use tantivy::query::AllQuery;
    use tantivy::{Index, IndexReader, TantivyDocument};

    use super::*;
    use crate::index::schema;

    /// Three segments, added newest first, each a few ascending runs with a shuffled stretch:
    /// the orders a page must rank correctly, however few ids it reads.
    fn shuffled_index(ids: &mut [u128], rng: &mut StdRng) -> (IndexReader, Arc<IdBlocksCache>) {
        let (schema, f) = schema::build();
        let index = Index::create_in_ram(schema);
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        ids.sort_unstable();
        let third = ids.len() / 3;
        for part in ids.chunks_mut(third).rev() {
            let stretch = part.len() / 4;
            part[stretch..2 * stretch].shuffle(rng);
            part[3 * stretch..].rotate_left(stretch / 2);
            for &id in part.iter() {
                let op = id >> 8;
                let mut doc = TantivyDocument::default();
                doc.add_u64(f.id_hi, (id >> 64) as u64);
                doc.add_u64(f.id_lo, id as u64);
                doc.add_u64(f.op_hi, (op >> 64) as u64);
                doc.add_u64(f.op_lo, op as u64);
                writer.add_document(doc).unwrap();
            }
            writer.commit().unwrap();
        }
        let cache = Arc::new(IdBlocksCache::default());
        let warmer: Arc<dyn Warmer> = cache.clone();
        let reader = index
            .reader_builder()
            .warmers(vec![Arc::downgrade(&warmer)])
            .try_into()
            .unwrap();
        (reader, cache)
    }

    #[test]
    fn pages_agree_with_sorting_every_id_in_any_doc_order() {
        let mut rng = StdRng::seed_from_u64(7);
        // Ids sharing their high half too, as ULIDs of one millisecond do.
        let mut ids: Vec<u128> = (0..6_000)
            .map(|i| {
                let hi: u64 = if i % 3 == 0 { 42 } else { rng.random() };
                (u128::from(hi) << 64) | u128::from(rng.random::<u64>())
            })
            .collect();
        let (reader, cache) = shuffled_index(&mut ids, &mut rng);
        let searcher = reader.searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let allowed: OpSet = sorted
            .iter()
            .map(|id| id >> 8)
            .filter(|op| op % 3 != 1)
            .collect();
        for case in 0..200 {
            let ascending = rng.random_bool(0.5);
            let limit = rng.random_range(1..=80);
            let pivot = sorted[rng.random_range(0..sorted.len())];
            let bound = match rng.random_range(0..3) {
                0 => None,
                1 => Some(Bound::After(pivot)),
                _ => Some(Bound::Before(pivot)),
            };
            let allow = rng.random_bool(0.3).then(|| Arc::new(allowed.clone()));
            let counted: Vec<u128> = sorted
                .iter()
                .copied()
                .filter(|id| allow.as_ref().is_none_or(|a| a.contains(&(id >> 8))))
                .collect();
            let mut expected: Vec<(u128, u128)> = counted
                .iter()
                .copied()
                .filter(|id| match bound {
                    Some(Bound::After(after)) => *id > after,
                    Some(Bound::Before(before)) => *id < before,
                    None => true,
                })
                .map(|id| (id, id >> 8))
                .collect();
            if !ascending {
                expected.reverse();
            }
            expected.truncate(limit + 1);
            let collector = TopIds {
                limit,
                ascending,
                bound,
                allow,
                blocks: cache.clone(),
            };
            let (count, page) = searcher.search(&AllQuery, &collector).unwrap();
            let page: Vec<(u128, u128)> = page.into_iter().map(|(id, op, _)| (id, op)).collect();
            assert_eq!(count, counted.len() as u64, "case {case}");
            assert_eq!(page, expected, "case {case}: {ascending} {limit} {bound:?}");
        }
    }

    #[test]
    fn value_lists_merge_in_value_order() {
        let list = |values: &[(&str, u64)]| {
            let mut l = ValueList::default();
            for (v, n) in values {
                l.push(v.as_bytes(), *n);
            }
            l
        };
        let merged = ValueList::merge(vec![
            list(&[("a", 1), ("c", 2)]),
            list(&[]),
            list(&[("b", 5), ("c", 1), ("d", 1)]),
            list(&[("a", 2)]),
            list(&[("c", 4), ("e", 1)]),
        ]);
        assert_eq!(
            merged.iter().collect::<Vec<_>>(),
            vec![("a", 3), ("b", 5), ("c", 7), ("d", 1), ("e", 1)]
        );
        assert!(ValueList::merge(Vec::new()).iter().next().is_none());
    }
}
