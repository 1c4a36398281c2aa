//! Where a data dir's bytes are: the store (`opslog.redb`, by table) and the search index (by
//! part: columns, postings, positions, terms, doc store, norms), each as file length and as the
//! blocks the file system allocated. `opslog.redb` has holes (pages redb freed), so its length
//! swings between runs while its allocated blocks and the bytes its tables hold do not.
//!
//! Must not: open a data dir a daemon still has open (redb refuses a second writer; the figures
//! are read after the daemon stopped).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};
use serde::Serialize;

/// One part of the data dir.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Part {
    /// File lengths.
    pub bytes: u64,
    /// Blocks the file system allocated (holes left out).
    pub allocated: u64,
}

/// The data dir by part; `tables` are what each redb table holds (its rows and B-tree pages,
/// including the unused space in partly filled pages).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Split {
    pub total: Part,
    pub store: Part,
    pub index: Part,
    /// Index files by kind (`fast`, `idx`, `pos`, `term`, `store`, `fieldnorm`, `other`).
    pub index_parts: BTreeMap<String, Part>,
    /// redb tables: stored bytes plus B-tree metadata and fragmentation.
    pub tables: BTreeMap<String, u64>,
}

fn add(part: &mut Part, meta: &std::fs::Metadata) {
    part.bytes += meta.len();
    part.allocated += meta.blocks() * 512;
}

/// Measures `data_dir` (a stopped daemon's).
pub fn split(data_dir: &Path) -> Split {
    let mut out = Split::default();
    walk(data_dir, data_dir, &mut out);
    out.tables = tables(&data_dir.join("opslog.redb")).unwrap_or_default();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Split) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let path = entry.path();
        if meta.is_dir() {
            walk(root, &path, out);
            continue;
        }
        add(&mut out.total, &meta);
        let in_index = path
            .strip_prefix(root)
            .is_ok_and(|p| p.starts_with("index"));
        if in_index {
            add(&mut out.index, &meta);
            const PARTS: [&str; 6] = ["fast", "idx", "pos", "term", "store", "fieldnorm"];
            let kind = path
                .extension()
                .and_then(|e| e.to_str())
                .filter(|e| PARTS.contains(e))
                .unwrap_or("other");
            add(out.index_parts.entry(kind.into()).or_default(), &meta);
        } else if path.file_name().is_some_and(|n| n == "opslog.redb") {
            add(&mut out.store, &meta);
        }
    }
}

fn tables(path: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let db = redb::Database::open(path)?;
    let read = db.begin_read()?;
    let mut out = BTreeMap::new();
    for handle in read.list_tables()? {
        let name = handle.name().to_owned();
        let table = read.open_untyped_table(handle)?;
        let stats = table.stats()?;
        out.insert(
            name,
            stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up_to_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("index")).unwrap();
        std::fs::write(dir.path().join("index/a.fast"), vec![1u8; 5000]).unwrap();
        std::fs::write(dir.path().join("index/a.idx"), vec![1u8; 300]).unwrap();
        std::fs::write(dir.path().join("index/meta.json"), b"{}").unwrap();
        {
            let db = redb::Database::create(dir.path().join("opslog.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            let def = redb::TableDefinition::<u64, &[u8]>::new("rows");
            tx.open_table(def)
                .unwrap()
                .insert(1, [7u8; 100].as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let split = split(dir.path());
        assert_eq!(split.index.bytes, 5302);
        assert_eq!(split.index_parts["fast"].bytes, 5000);
        assert_eq!(split.index_parts["other"].bytes, 2);
        assert_eq!(split.total.bytes, split.store.bytes + split.index.bytes);
        assert!(split.total.allocated >= split.index_parts["fast"].allocated);
        assert!(split.tables["rows"] >= 100, "{:?}", split.tables);
    }
}
