//! The disk cap (`retention.max_disk`): how much opslog holds, and how much of the oldest data
//! to remove when that is above the cap.
//!
//! What is counted is what is live: the store's rows (`Store::stored_bytes_estimate`) and what
//! the index's files hold on disk. Not the store file's length: the file does not shrink when
//! rows leave it (its freed pages take the next writes instead), so its length stays where the
//! most data once was, and keeping what is live under the cap keeps it from growing again.
//!
//! The rows take more room in the file than their bytes (pages are not full; a large row gets a
//! whole power-of-two run of pages). How much more is learnt from the file itself: it only grows
//! when it is full, so at each growth the length it had, over the rows' bytes, is the overhead.
//! Removal starts a little below the cap and goes a little further, so it runs in batches.

use std::path::Path;

/// The overhead assumed until the store file has grown once under watch.
const INITIAL_OVERHEAD: f64 = 1.5;
/// Files smaller than this are mostly redb's own tables: their growth says nothing.
const CALIBRATE_FROM: u64 = 4 << 20;

/// The cap and what it learnt of the store file's overhead. Pure: the caller measures.
#[derive(Debug, Clone)]
pub struct Cap {
    max: u64,
    /// Bytes of file per byte of rows.
    overhead: f64,
    file_len: Option<u64>,
}

/// One measurement of the data dir.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// The store's rows, estimated.
    pub rows: u64,
    /// The store file's length.
    pub file_len: u64,
    /// What the index's files hold on disk.
    pub index: u64,
}

impl Cap {
    pub fn new(max: u64) -> Cap {
        Cap {
            max,
            overhead: INITIAL_OVERHEAD,
            file_len: None,
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// What the cap counts: the rows with their overhead, and the index.
    pub fn held(&self, m: Measured) -> u64 {
        (m.rows as f64 * self.overhead) as u64 + m.index
    }

    /// Learns from `m` and says how many bytes of the oldest rows to remove: enough to go from
    /// above 95 % of the cap down to 90 %.
    pub fn to_remove(&mut self, m: Measured) -> Option<u64> {
        if let Some(before) = self.file_len {
            if m.file_len > before && before >= CALIBRATE_FROM && m.rows > 0 {
                self.overhead = (before as f64 / m.rows as f64).clamp(1.0, 4.0);
            }
        }
        self.file_len = Some(m.file_len);
        let held = self.held(m);
        let (high, low) = (self.max - self.max / 20, self.max - self.max / 10);
        (held > high).then(|| ((held - low) as f64 / self.overhead) as u64)
    }
}

/// The bytes the files under `dir` hold on disk (their allocated blocks). Files that vanish
/// while it is counted (the index merges segments) are skipped.
pub fn size_on_disk(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(rows: u64, file_len: u64) -> Measured {
        Measured {
            rows,
            file_len,
            index: 0,
        }
    }

    #[test]
    fn removes_down_to_ninety_percent_once_above_ninety_five() {
        let mut cap = Cap::new(15_000_000);
        // 1.5 bytes of file per byte of row until the file has grown under watch.
        assert_eq!(cap.to_remove(measured(9_000_000, 16 << 20)), None);
        assert_eq!(
            cap.to_remove(measured(9_500_000, 16 << 20)),
            None,
            "at 95 %"
        );
        assert_eq!(
            cap.to_remove(measured(10_000_000, 16 << 20)),
            Some(1_000_000)
        );
    }

    #[test]
    fn the_overhead_is_learnt_when_the_file_grows() {
        let mut cap = Cap::new(100 << 20);
        assert_eq!(cap.to_remove(measured(10 << 20, 32 << 20)), None);
        // The file doubled: it was full at 32 MiB holding about 16 MiB of rows.
        assert_eq!(cap.to_remove(measured(16 << 20, 64 << 20)), None);
        assert_eq!(cap.held(measured(16 << 20, 64 << 20)), 32 << 20);
        let m = measured(50 << 20, 64 << 20);
        assert_eq!(cap.held(m), 100 << 20);
        let rows = cap.to_remove(m).unwrap();
        assert_eq!(rows, (10 << 20) / 2, "from 100 % to 90 %, in bytes of rows");
        // A small file's growth teaches nothing.
        let mut fresh = Cap::new(100 << 20);
        fresh.to_remove(measured(1_000, 1 << 20));
        fresh.to_remove(measured(2_000, 2 << 20));
        assert_eq!(fresh.held(measured(2_000, 2 << 20)), 3_000);
    }

    #[test]
    fn counts_blocks_of_every_file_below() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("index")).unwrap();
        std::fs::write(dir.path().join("index/seg"), vec![7u8; 64 * 1024]).unwrap();
        std::fs::write(dir.path().join("db"), vec![1u8; 8 * 1024]).unwrap();
        // A file with a hole: its length is not what it holds.
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        let size = size_on_disk(dir.path()).unwrap();
        assert!((72 * 1024..1 << 20).contains(&size), "{size}");
        assert_eq!(size_on_disk(&dir.path().join("gone")).unwrap(), 0);
    }
}
