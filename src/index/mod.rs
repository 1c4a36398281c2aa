//! The full-text search index (tantivy), derived from the store: it can be deleted and rebuilt.
//!
//! `open` decides whether the index on disk can continue (same schema, a position the store's
//! feed still covers) or must be rebuilt; `indexer` is the one thread that writes it; `search` runs
//! queries on reader snapshots. Searching blocks: call it from `spawn_blocking`.
//!
//! Must not: be the source of truth for anything. Every hit is re-read from redb before it is shown.

mod collect;
pub mod indexer;
pub mod query;
mod schema;
pub mod search;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy};

pub use collect::Bound;
pub use schema::{message_text, operation_text};
pub use search::{Filters, Hits, Page, TypeFilter};

use crate::model::{Id, Message, Operation};
use crate::store::{FeedEntry, Store, StoreError};
use schema::Fields;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the search index is being rebuilt ({0} records so far); try again shortly")]
    Rebuilding(u64),
    #[error("{0}")]
    Query(String),
}

/// One committed write group's changes, handed from the writer to the indexer in memory, so the
/// indexer never reads back what was just written. The store's feed holds the same entry: when
/// the hand-off is full, or after a restart, the indexer reads the feed instead, with the same
/// result.
pub struct Fed {
    pub seq: u64,
    pub entry: FeedEntry,
    /// Every operation the group changed, as committed: those of `entry.operations` and the
    /// operations of `messages`.
    pub operations: HashMap<Id, Operation>,
    /// The messages the group stored, each chunk with the sequence number of its first (the
    /// others follow it one by one): those after the index's message position up to
    /// `entry.messages_through` (read back from the store: those retention has not removed since).
    pub messages: Vec<(u64, Arc<[Message]>)>,
}

impl Fed {
    fn message_count(&self) -> usize {
        self.messages.iter().map(|(_, chunk)| chunk.len()).sum()
    }
}

/// Most messages the hand-off holds; past it the writer leaves entries to the feed (the indexer
/// is behind, rebuilding, or stopped), so memory stays bounded.
const HANDOFF_MESSAGES: usize = 50_000;
const HANDOFF_ENTRIES: usize = 4_096;

#[derive(Default)]
struct Handoff {
    entries: VecDeque<Fed>,
    messages: usize,
}

/// What the writer and the indexer share: the indexed position, a wake-up signal and the
/// hand-off of committed changes.
pub struct IndexShared {
    /// The newest feed sequence whose changes are committed in the index.
    pub indexed_seq: AtomicU64,
    /// False while the index is rebuilt from the store.
    pub ready: AtomicBool,
    pub rebuild_progress: AtomicU64,
    /// Set when the indexer must finish what the feed holds and stop.
    pub stopping: AtomicBool,
    wake: SyncSender<()>,
    handoff: Mutex<Handoff>,
}

impl IndexShared {
    /// Offers a committed group's changes to the indexer; dropped when the hand-off is full.
    pub fn hand_off(&self, fed: Fed) {
        let mut handoff = self.handoff.lock().expect("not poisoned");
        if handoff.entries.len() >= HANDOFF_ENTRIES
            || handoff.messages + fed.message_count() > HANDOFF_MESSAGES
        {
            return;
        }
        handoff.messages += fed.message_count();
        handoff.entries.push_back(fed);
    }

    /// The handed-off entry right after `seq`, if there is one; older entries are dropped.
    fn take_after(&self, seq: u64) -> Option<Fed> {
        let mut handoff = self.handoff.lock().expect("not poisoned");
        while let Some(front) = handoff.entries.front() {
            if front.seq > seq + 1 {
                return None;
            }
            let fed = handoff.entries.pop_front().expect("not empty");
            handoff.messages -= fed.message_count();
            if fed.seq == seq + 1 {
                return Some(fed);
            }
        }
        None
    }

    /// Tells the indexer there is something new in the feed. Never blocks.
    pub fn wake(&self) {
        let _ = self.wake.try_send(());
    }
}

/// What the index records with each commit: its schema, the feed entry and the message (by
/// sequence number) it has taken in up to.
#[derive(Serialize, Deserialize)]
struct CommitPayload {
    schema: u32,
    seq: u64,
    #[serde(default)]
    messages: u64,
}

/// The search side of the index, cheap to share.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Also the reader's warmer, which holds it weakly.
    id_blocks: Arc<collect::IdBlocksCache>,
    pub shared: Arc<IndexShared>,
}

pub const INDEX_DIR: &str = "index";

/// No document stores a field, yet each costs its offset in the doc store (4 bytes a document):
/// zstd packs those to about a byte, where lz4 kept them nearly whole.
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: Some(3),
        }),
        ..tantivy::IndexSettings::default()
    }
}

pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(INDEX_DIR)
}

/// Opens the index in `data_dir/index`, or prepares a rebuild when it is missing, of another schema
/// version, or no longer continuous with the store's feed. Returns the search handle and the
/// indexer, which must then be started with `indexer::spawn`.
pub fn open(
    data_dir: &Path,
    store: Arc<Store>,
) -> Result<(Arc<SearchIndex>, indexer::Indexer), IndexError> {
    let dir = index_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let (schema, fields) = schema::build();
    let (first_seq, last_seq, last_message) = {
        let read = store.read()?;
        let (first, last) = read.feed_bounds()?;
        (first, last, read.last_message_seq()?)
    };
    let existing =
        if Index::exists(&MmapDirectory::open(&dir).map_err(tantivy::TantivyError::from)?)
            .unwrap_or(false)
        {
            let index = Index::open_in_dir(&dir)?;
            let payload = index
                .load_metas()?
                .payload
                .and_then(|p| serde_json::from_str::<CommitPayload>(&p).ok());
            match payload {
                Some(p)
                    if p.schema == schema::SCHEMA_VERSION
                        && index.schema() == schema
                        && p.seq <= last_seq
                        && p.messages <= last_message
                        && (p.seq == last_seq || first_seq <= p.seq + 1) =>
                {
                    Some((index, p.seq, p.messages))
                }
                other => {
                    tracing::warn!(
                        found = other
                            .map(|p| format!("schema {} at {}", p.schema, p.seq))
                            .unwrap_or_else(|| "no position".into()),
                        store_feed = last_seq,
                        "search index cannot continue; rebuilding it from the store"
                    );
                    None
                }
            }
        } else {
            None
        };
    let (index, start_seq, start_message, rebuild) = match existing {
        Some((index, seq, message)) => (index, seq, message, false),
        None => {
            std::fs::remove_dir_all(&dir)?;
            std::fs::create_dir_all(&dir)?;
            let index = Index::builder()
                .schema(schema)
                .settings(index_settings())
                .create_in_dir(&dir)?;
            if store.read()?.operation_count()? == 0 {
                // Nothing to rebuild: start at the feed's end, ready at once.
                let mut writer: tantivy::IndexWriter<tantivy::TantivyDocument> =
                    index.writer_with_num_threads(1, 15_000_000)?;
                let mut prepared = writer.prepare_commit()?;
                prepared.set_payload(
                    &serde_json::to_string(&CommitPayload {
                        schema: schema::SCHEMA_VERSION,
                        seq: last_seq,
                        messages: last_message,
                    })
                    .expect("payload serializes"),
                );
                prepared.commit()?;
                writer.wait_merging_threads()?;
                (index, last_seq, last_message, false)
            } else {
                (index, 0, 0, true)
            }
        }
    };
    let id_blocks = Arc::new(collect::IdBlocksCache::default());
    let warmer: Arc<dyn tantivy::Warmer> = id_blocks.clone();
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .warmers(vec![Arc::downgrade(&warmer)])
        .try_into()?;
    let (wake, woken): (SyncSender<()>, Receiver<()>) = std::sync::mpsc::sync_channel(1);
    let shared = Arc::new(IndexShared {
        indexed_seq: AtomicU64::new(start_seq),
        ready: AtomicBool::new(!rebuild),
        rebuild_progress: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        wake,
        handoff: Mutex::new(Handoff::default()),
    });
    let search = Arc::new(SearchIndex {
        index: index.clone(),
        reader: reader.clone(),
        fields,
        id_blocks,
        shared: shared.clone(),
    });
    let indexer = indexer::Indexer::new(
        index,
        reader,
        fields,
        store,
        shared,
        woken,
        (start_seq, start_message),
        rebuild,
    )?;
    Ok((search, indexer))
}

impl SearchIndex {
    /// Segments in the index as of the reader's last reload (after the indexer's last commit).
    pub fn segment_count(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    fn check_ready(&self) -> Result<(), IndexError> {
        if self.shared.ready.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(IndexError::Rebuilding(
                self.shared.rebuild_progress.load(Ordering::Relaxed),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> IndexShared {
        let (wake, _) = std::sync::mpsc::sync_channel(1);
        IndexShared {
            indexed_seq: AtomicU64::new(0),
            ready: AtomicBool::new(true),
            rebuild_progress: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            wake,
            handoff: Mutex::new(Handoff::default()),
        }
    }

    fn fed(seq: u64, messages: usize) -> Fed {
        let message = crate::model::Message {
            id: Id(2),
            operation_id: Id(1),
            kind: crate::model::MessageType::Log,
            level: crate::model::Level::Info,
            source: crate::model::Source::User,
            message: "m".into(),
            request: None,
            response: None,
            duration_ms: None,
            retry: None,
            error: None,
            meta: None,
            created_at: crate::model::Timestamp(0),
        };
        Fed {
            seq,
            entry: FeedEntry::default(),
            operations: HashMap::new(),
            messages: vec![(1, vec![message; messages].into())],
        }
    }

    #[test]
    fn the_hand_off_gives_only_the_next_entry_and_drops_older_ones() {
        let shared = shared();
        for seq in [3, 4, 6] {
            shared.hand_off(fed(seq, 1));
        }
        // The indexer is at 1: entry 2 was not handed off, so it reads the feed.
        assert!(shared.take_after(1).is_none());
        // Having read 2 and 3 from the feed, 3 is dropped and 4 is next.
        assert_eq!(shared.take_after(3).map(|f| f.seq), Some(4));
        // 5 is missing again: 6 stays until the indexer is past 5.
        assert!(shared.take_after(4).is_none());
        assert_eq!(shared.take_after(5).map(|f| f.seq), Some(6));
        assert!(shared.take_after(6).is_none());
        assert_eq!(shared.handoff.lock().unwrap().messages, 0);
    }

    #[test]
    fn a_full_hand_off_leaves_entries_to_the_feed() {
        let shared = shared();
        shared.hand_off(fed(1, HANDOFF_MESSAGES - 10));
        shared.hand_off(fed(2, 20)); // would pass the bound: left to the feed
        shared.hand_off(fed(3, 10));
        assert_eq!(shared.take_after(0).map(|f| f.seq), Some(1));
        assert!(shared.take_after(1).is_none());
        assert_eq!(shared.take_after(2).map(|f| f.seq), Some(3));
    }
}
