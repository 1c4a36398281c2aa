//! The baseline: SQLite with FTS5 (bundled), driven in-process with the same workload and the same
//! acknowledgement rule as opslog — a write returns only after the transaction holding it has
//! committed with `synchronous=FULL` in WAL mode.
//!
//! To be fair to SQLite it gets what a careful embedder would build: one writer thread with group
//! commit (concurrent writers would only fight over its single write lock), prepared statements, a
//! contentless FTS5 table (the text is stored once, in `messages`), indexes for every filter of the
//! query set, and queries that let FTS5 and the indexes do the work (rowid-ordered FTS paging,
//! covering indexes for counts). It is spared opslog's extra work: no JSON, no HTTP, no per-message
//! operation counters.
//!
//! Must not: be used for anything but the benchmark.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use anyhow::Context;
use rusqlite::{params, Connection, OpenFlags};

use super::drive::{Target, TargetClient};
use super::workload::{MessageSpec, OperationSpec};
use super::QueryCase;

/// The most requests one SQLite transaction carries (as opslog's writer).
const MAX_GROUP: usize = 1024;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE operations (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    integration TEXT,
    connection_id TEXT,
    script TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX operations_integration_state ON operations (integration, state);
CREATE INDEX operations_connection ON operations (connection_id);
CREATE INDEX operations_created_state ON operations (created_at, state);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    operation_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    level TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    message TEXT,
    method TEXT,
    url TEXT,
    status INTEGER,
    duration_ms INTEGER
);
CREATE INDEX messages_operation ON messages (operation_id);
CREATE INDEX messages_level_created ON messages (level, created_at);
CREATE VIRTUAL TABLE messages_fts USING fts5 (text, content = '', columnsize = 0);
";

enum Write {
    Operation(OperationSpec, SyncSender<i64>),
    Messages(Vec<(i64, MessageSpec)>, SyncSender<()>),
    /// Operations with their messages (`OperationSpec::messages`).
    Whole(Vec<OperationSpec>, SyncSender<()>),
}

/// An SQLite database in `dir` with its writer thread.
pub struct Sqlite {
    pub path: PathBuf,
    tx: Option<SyncSender<Write>>,
    writer: Option<JoinHandle<rusqlite::Result<()>>>,
}

impl Sqlite {
    pub fn create(dir: &Path) -> anyhow::Result<Sqlite> {
        let path = dir.join("bench.sqlite");
        let conn = Connection::open(&path).context("cannot create the SQLite database")?;
        conn.execute_batch(SCHEMA)?;
        let (tx, rx) = mpsc::sync_channel(4096);
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_groups(conn, rx))?;
        Ok(Sqlite {
            path,
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// Stops the writer and closes its connection (which checkpoints the WAL into the file).
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.tx.take();
        if let Some(w) = self.writer.take() {
            w.join()
                .map_err(|_| anyhow::anyhow!("the SQLite writer panicked"))??;
        }
        Ok(())
    }

    pub fn reader(&self) -> anyhow::Result<Connection> {
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(conn)
    }
}

fn write_groups(mut conn: Connection, rx: Receiver<Write>) -> rusqlite::Result<()> {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let tx = conn.transaction()?;
        let mut replies_ops = Vec::new();
        let mut replies_msgs = Vec::new();
        {
            let mut op_stmt = tx.prepare_cached(
                "INSERT INTO operations (type, action, state, integration, connection_id, script, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut msg_stmt = tx.prepare_cached(
                "INSERT INTO messages (operation_id, type, level, created_at, message, method, url, status, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut fts_stmt =
                tx.prepare_cached("INSERT INTO messages_fts (rowid, text) VALUES (?1, ?2)")?;
            let mut insert_op = |op: &OperationSpec| -> rusqlite::Result<i64> {
                op_stmt.execute(params![
                    op.kind,
                    "run",
                    op.state,
                    op.integration,
                    op.connection_id,
                    op.script,
                    now
                ])?;
                Ok(tx.last_insert_rowid())
            };
            let mut insert_message = |op: i64, m: &MessageSpec| -> rusqlite::Result<()> {
                msg_stmt.execute(params![
                    op,
                    m.kind,
                    m.level,
                    now,
                    m.message,
                    m.request.as_ref().map(|r| r.method),
                    m.request.as_ref().map(|r| r.url.as_str()),
                    m.response.as_ref().map(|r| r.status),
                    m.duration_ms,
                ])?;
                fts_stmt.execute(params![tx.last_insert_rowid(), m.search_text()])?;
                Ok(())
            };
            for write in group.drain(..) {
                match write {
                    Write::Operation(op, reply) => {
                        replies_ops.push((reply, insert_op(&op)?));
                    }
                    Write::Messages(batch, reply) => {
                        for (op, m) in &batch {
                            insert_message(*op, m)?;
                        }
                        replies_msgs.push(reply);
                    }
                    Write::Whole(ops, reply) => {
                        for op in &ops {
                            let id = insert_op(op)?;
                            for m in &op.messages {
                                insert_message(id, m)?;
                            }
                        }
                        replies_msgs.push(reply);
                    }
                }
            }
        }
        tx.commit()?;
        for (reply, id) in replies_ops {
            let _ = reply.send(id);
        }
        for reply in replies_msgs {
            let _ = reply.send(());
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct SqliteClient {
    tx: SyncSender<Write>,
}

impl Target for Sqlite {
    type Client = SqliteClient;
    fn client(&self) -> anyhow::Result<SqliteClient> {
        Ok(SqliteClient {
            tx: self.tx.clone().context("the SQLite writer is stopped")?,
        })
    }
}

impl TargetClient for SqliteClient {
    type OpId = i64;

    fn create_operation(&mut self, op: &OperationSpec) -> anyhow::Result<i64> {
        let (reply, answer) = mpsc::sync_channel(1);
        let mut op = op.clone();
        op.messages = Vec::new();
        self.tx.send(Write::Operation(op, reply))?;
        answer.recv().context("the SQLite writer failed")
    }

    fn append(&mut self, batch: &[(i64, MessageSpec)]) -> anyhow::Result<u64> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.send(Write::Messages(batch.to_vec(), reply))?;
        answer.recv().context("the SQLite writer failed")?;
        Ok(0)
    }

    fn create_with_messages(&mut self, ops: &[OperationSpec]) -> Option<anyhow::Result<u64>> {
        let send = || -> anyhow::Result<u64> {
            let (reply, answer) = mpsc::sync_channel(1);
            self.tx.send(Write::Whole(ops.to_vec(), reply))?;
            answer.recv().context("the SQLite writer failed")?;
            Ok(0)
        };
        Some(send())
    }
}

/// Runs one query case the way an application would show it: the exact total and the first page
/// (50 newest rows, read in full). Returns the total.
pub fn run_query(conn: &Connection, case: &QueryCase, since_ms: i64) -> anyhow::Result<u64> {
    const PAGE: i64 = 50;
    let fts_total = |q: &str| -> rusqlite::Result<u64> {
        conn.prepare_cached("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1")?
            .query_row([q], |r| r.get::<_, i64>(0).map(|n| n as u64))
    };
    let fts_page = |q: &str| -> rusqlite::Result<usize> {
        let mut stmt = conn.prepare_cached(
            "SELECT m.* FROM messages m WHERE m.id IN
               (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2)
             ORDER BY m.id DESC",
        )?;
        let rows = read_rows(stmt.query(params![q, PAGE])?);
        rows
    };
    let total = match case {
        QueryCase::Messages { fts } => {
            let total = fts_total(fts)?;
            fts_page(fts)?;
            total
        }
        QueryCase::OperationsMatching {
            fts,
            integration,
            state,
        } => {
            let filter = "(?2 IS NULL OR integration = ?2) AND (?3 IS NULL OR state = ?3)
                AND id IN (SELECT operation_id FROM messages WHERE id IN
                    (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1))";
            let total: u64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM operations WHERE {filter}"))?
                .query_row(params![fts, integration, state], |r| {
                    r.get::<_, i64>(0).map(|n| n as u64)
                })?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT * FROM operations WHERE {filter} ORDER BY id DESC LIMIT ?4"
            ))?;
            read_rows(stmt.query(params![fts, integration, state, PAGE])?)?;
            total
        }
        QueryCase::LevelSince { level } => {
            let total: u64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM messages WHERE level = ?1 AND created_at >= ?2",
                )?
                .query_row(params![level, since_ms], |r| {
                    r.get::<_, i64>(0).map(|n| n as u64)
                })?;
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM messages WHERE level = ?1 AND created_at >= ?2 ORDER BY id DESC LIMIT 1",
            )?;
            read_rows(stmt.query(params![level, since_ms])?)?;
            total
        }
        QueryCase::Connection { connection_id } => {
            let total: u64 = conn
                .prepare_cached("SELECT count(*) FROM operations WHERE connection_id = ?1")?
                .query_row([connection_id], |r| r.get::<_, i64>(0).map(|n| n as u64))?;
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM operations WHERE connection_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            read_rows(stmt.query(params![connection_id, PAGE])?)?;
            total
        }
        QueryCase::Facets => {
            // The top values with their counts, and how many distinct values there are.
            let mut stmt = conn.prepare_cached(
                "SELECT connection_id, count(*) AS n FROM operations WHERE connection_id IS NOT NULL
                 GROUP BY connection_id ORDER BY n DESC, connection_id",
            )?;
            let mut rows = stmt.query([])?;
            let mut distinct = 0;
            while let Some(row) = rows.next()? {
                if distinct < PAGE {
                    let _ = (row.get_ref(0)?, row.get_ref(1)?);
                }
                distinct += 1;
            }
            distinct as u64
        }
        QueryCase::Insights => {
            let to = now_ms();
            let from = to - 24 * 3_600_000;
            let mut stmt = conn.prepare_cached(
                "SELECT (created_at - ?1) / 3600000 AS bucket, state, count(*) FROM operations
                 WHERE created_at >= ?1 AND created_at < ?2 GROUP BY bucket, state",
            )?;
            let mut rows = stmt.query(params![from, to])?;
            let mut total = 0;
            while let Some(row) = rows.next()? {
                total += row.get::<_, i64>(2)? as u64;
            }
            total
        }
    };
    Ok(total)
}

/// Reads every column of every row, as showing them would.
fn read_rows(mut rows: rusqlite::Rows<'_>) -> rusqlite::Result<usize> {
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let columns = row.as_ref().column_count();
        for i in 0..columns {
            let _ = row.get_ref(i)?;
        }
        n += 1;
    }
    Ok(n)
}
