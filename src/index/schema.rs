//! The tantivy schema: one index holding two kinds of documents, operations and messages.
//!
//! A message document is lean: its text, level, type, time, its own id and sequence number (which
//! names it in the store), and only the parts of its operation a join needs (environment, the
//! operation's id as a term and as columns). Filters on an operation's attributes (type,
//! integration, connection, script, end user, tags, state) are matched on operation documents,
//! and messages are then kept by their operation (`search`). Changing a field here is a schema
//! change: bump `SCHEMA_VERSION` and the index is rebuilt.
//!
//! Nothing is scored (results are ordered by id), so no field keeps field norms, and nothing is
//! stored: every byte here is a term, a posting or a fast value a query needs. Times are columns
//! only (range queries read columns), never terms.

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
};
use tantivy::TantivyDocument;

use crate::model::{Message, OpState, Operation};

/// 2: no field norms, no per-message `doc_id` term (about 25 bytes less per message).
/// 3: operation text in `op_text`, so a text clause alone says which kind a query wants;
///    `state_code` on every document (`NO_STATE` on messages), so it reads without an index.
///    (The codes: `state_code`; a new state needs a new schema version.)
/// 4: `started` on operation documents, so insights bucket by when operations happened;
///    `end_user_id` and `tag` (`key:value`), context of both kinds (set when an operation starts).
/// 5: lean message documents (no copy of their operation's attributes, joined through `op`
///    instead), `seq` (the message's sequence number in the store), times as columns only, and
///    no field norms on `kind`: about a third of the index's bytes per message.
/// 6: `trace_id` (W3C, lowercase hex) on operations started in a trace.
pub const SCHEMA_VERSION: u32 = 6;

pub const KIND_OPERATION: u64 = 0;
pub const KIND_MESSAGE: u64 = 1;

#[derive(Clone, Copy)]
pub struct Fields {
    /// `o<ULID>` on operation documents: the term an update names. Messages never change, and
    /// retention removes them with their operation through `op`, so they carry none.
    pub doc_id: Field,
    pub kind: Field,
    pub env: Field,
    /// The operation's ULID text, on both kinds.
    pub op: Field,
    /// Sort key: the document's own id (operation or message), as two halves.
    pub id_hi: Field,
    pub id_lo: Field,
    pub op_hi: Field,
    pub op_lo: Field,
    // The operation's attributes, on operation documents only.
    pub op_type: Field,
    /// `type:action`, e.g. `sync:run`.
    pub type_action: Field,
    pub integration: Field,
    pub connection_id: Field,
    pub script: Field,
    /// The end user's id; fast, for facets.
    pub end_user_id: Field,
    /// One `key:value` term per tag; fast, for facets.
    pub tag: Field,
    /// The trace an operation was started in (its `trace_context`), as 32 hex digits; absent
    /// when it has none (a derived trace id is not indexed).
    pub trace_id: Field,
    pub state: Field,
    /// On every document, `NO_STATE` on messages: a column with a value per document reads
    /// straight from its values, which made insights twice as fast.
    pub state_code: Field,
    /// When an operation was recorded, in ms; operations only (a message's time is `started`).
    pub created: Field,
    /// When an operation started (its creation time when it has no start), in ms; a message's
    /// creation time. Insights bucket by it, message time filters read it, and a column with a
    /// value per document reads straight from its values (insights took 6x longer with it on
    /// operations only: 1M bench, 6.2 ms against 1.0).
    pub started: Field,
    /// A message's sequence number: where the store keeps it. Messages only.
    pub seq: Field,
    pub level: Field,
    pub message_type: Field,
    /// Message text. Only messages have it, so a query with a text clause needs no `kind` clause.
    pub text: Field,
    /// Operation text (message, error, context values); only operations have it.
    pub op_text: Field,
}

pub const INTEGRATION: &str = "integration";
pub const CONNECTION_ID: &str = "connection_id";
pub const SCRIPT: &str = "script";
pub const STARTED: &str = "started";
pub const END_USER_ID: &str = "end_user_id";
pub const SEQ: &str = "seq";
pub const TAG: &str = "tag";

pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fast_u64 = NumericOptions::default().set_fast();
    // `set_indexed` keeps no field norms (the `INDEXED` flag would: a byte per document).
    let indexed_fast = NumericOptions::default().set_fast().set_indexed();
    // `STRING` without field norms: one byte per document per field, for scoring we never do.
    let keyword = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let keyword_fast = keyword.clone() | FAST;
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("default")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(false),
    );
    let fields = Fields {
        doc_id: b.add_text_field("doc_id", keyword.clone()),
        kind: b.add_u64_field("kind", indexed_fast.clone()),
        env: b.add_text_field("env", keyword.clone()),
        op: b.add_text_field("op", keyword.clone()),
        id_hi: b.add_u64_field("id_hi", fast_u64.clone()),
        id_lo: b.add_u64_field("id_lo", fast_u64.clone()),
        op_hi: b.add_u64_field("op_hi", fast_u64.clone()),
        op_lo: b.add_u64_field("op_lo", fast_u64.clone()),
        op_type: b.add_text_field("type", keyword.clone()),
        type_action: b.add_text_field("type_action", keyword.clone()),
        integration: b.add_text_field(INTEGRATION, keyword_fast.clone()),
        connection_id: b.add_text_field(CONNECTION_ID, keyword_fast.clone()),
        script: b.add_text_field(SCRIPT, keyword_fast.clone()),
        end_user_id: b.add_text_field(END_USER_ID, keyword_fast.clone()),
        tag: b.add_text_field(TAG, keyword_fast),
        trace_id: b.add_text_field("trace_id", keyword.clone()),
        state: b.add_text_field("state", keyword.clone()),
        state_code: b.add_u64_field("state_code", fast_u64.clone()),
        created: b.add_i64_field("created", fast_u64.clone()),
        started: b.add_i64_field(STARTED, fast_u64.clone()),
        seq: b.add_u64_field(SEQ, fast_u64),
        level: b.add_text_field("level", keyword.clone()),
        message_type: b.add_text_field("message_type", keyword.clone()),
        text: b.add_text_field("text", text.clone()),
        op_text: b.add_text_field("op_text", text),
    };
    (b.build(), fields)
}

/// How many state codes the schema has: one per `OpState`. The codes are stored in every
/// document, so a new state is a schema change: the assertion below stops the build until it has a
/// code in `state_code`, this number is raised and `SCHEMA_VERSION` bumped (the pinned codes in
/// `state_codes_are_pinned_to_the_schema_version` move with it).
pub const STATE_CODES: u64 = 6;
const _: () = assert!(
    OpState::ALL.len() as u64 == STATE_CODES,
    "a new OpState is an index schema change: give it a code in `state_code`, raise STATE_CODES, bump SCHEMA_VERSION"
);

/// The `state_code` of a message: past every state's.
pub const NO_STATE: u64 = STATE_CODES;

/// A state's code in the index, fixed per schema version (not its position in `OpState::ALL`,
/// which a new state could shift).
pub fn state_code(state: OpState) -> u64 {
    match state {
        OpState::Waiting => 0,
        OpState::Running => 1,
        OpState::Success => 2,
        OpState::Failed => 3,
        OpState::Timeout => 4,
        OpState::Cancelled => 5,
    }
}

pub fn doc_term_operation(id: crate::model::Id) -> String {
    format!("o{id}")
}

fn split(id: u128) -> (u64, u64) {
    ((id >> 64) as u64, id as u64)
}

/// What every document of one operation repeats, formatted once per operation.
pub struct OpContext<'a> {
    pub op: &'a Operation,
    id: String,
    type_action: String,
    trace_id: Option<String>,
}

impl<'a> OpContext<'a> {
    pub fn new(op: &'a Operation) -> OpContext<'a> {
        OpContext {
            op,
            id: op.id.to_string(),
            type_action: format!("{}:{}", op.kind, op.action),
            trace_id: op.trace_context.as_ref().map(|t| t.trace_id.to_string()),
        }
    }
}

fn add_operation_context(doc: &mut TantivyDocument, f: &Fields, ctx: &OpContext) {
    let op = ctx.op;
    let (hi, lo) = split(op.id.0);
    doc.add_text(f.env, &op.environment);
    doc.add_text(f.op, &ctx.id);
    doc.add_u64(f.op_hi, hi);
    doc.add_u64(f.op_lo, lo);
    doc.add_text(f.op_type, op.kind.as_str());
    doc.add_text(f.type_action, &ctx.type_action);
    for (field, value) in [
        (f.integration, &op.integration),
        (f.connection_id, &op.connection_id),
        (f.script, &op.script),
    ] {
        if let Some(v) = value {
            doc.add_text(field, v);
        }
    }
    if let Some(user) = &op.end_user {
        doc.add_text(f.end_user_id, &user.id);
    }
    for (key, value) in &op.tags {
        doc.add_text(f.tag, format!("{key}:{value}"));
    }
    if let Some(trace) = &ctx.trace_id {
        doc.add_text(f.trace_id, trace);
    }
}

pub fn operation_document(f: &Fields, ctx: &OpContext) -> TantivyDocument {
    let op = ctx.op;
    let mut doc = TantivyDocument::default();
    let (hi, lo) = split(op.id.0);
    doc.add_text(f.doc_id, doc_term_operation(op.id));
    doc.add_u64(f.kind, KIND_OPERATION);
    doc.add_u64(f.id_hi, hi);
    doc.add_u64(f.id_lo, lo);
    add_operation_context(&mut doc, f, ctx);
    doc.add_text(f.state, op.state.as_str());
    doc.add_u64(f.state_code, state_code(op.state));
    doc.add_i64(f.created, op.created_at.millis());
    let started = op.started_at.unwrap_or(op.created_at);
    doc.add_i64(f.started, started.millis());
    doc.add_text(f.op_text, operation_text(op));
    doc
}

/// The text an operation's own document is searched by (`op_text`); snippets are cut from it.
pub fn operation_text(op: &Operation) -> String {
    let mut text = op.message.clone();
    if let Some(e) = &op.error {
        text.push('\n');
        text.push_str(&e.message);
        if let Some(name) = &e.name {
            text.push('\n');
            text.push_str(name);
        }
    }
    for value in [&op.integration, &op.connection_id, &op.script, &op.provider]
        .into_iter()
        .flatten()
    {
        text.push('\n');
        text.push_str(value);
    }
    text
}

/// A message document: what its own filters need, and its operation's id to join through.
pub fn message_document(
    f: &Fields,
    message: &Message,
    seq: u64,
    ctx: &OpContext,
) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    let (hi, lo) = split(message.id.0);
    let (op_hi, op_lo) = split(ctx.op.id.0);
    doc.add_u64(f.kind, KIND_MESSAGE);
    doc.add_text(f.env, &ctx.op.environment);
    doc.add_text(f.op, &ctx.id);
    doc.add_u64(f.id_hi, hi);
    doc.add_u64(f.id_lo, lo);
    doc.add_u64(f.op_hi, op_hi);
    doc.add_u64(f.op_lo, op_lo);
    doc.add_u64(f.seq, seq);
    doc.add_u64(f.state_code, NO_STATE);
    doc.add_i64(f.started, message.created_at.millis());
    doc.add_text(f.level, message.level.as_str());
    doc.add_text(f.message_type, message.kind.as_str());
    doc.add_text(f.text, message_text(message));
    doc
}

/// The text a message is searched by (`text`); snippets are cut from it.
pub fn message_text(message: &Message) -> String {
    let mut text = message.message.clone();
    if let Some(e) = &message.error {
        text.push('\n');
        text.push_str(&e.message);
        if let Some(name) = &e.name {
            text.push('\n');
            text.push_str(name);
        }
    }
    if let Some(r) = &message.request {
        text.push('\n');
        text.push_str(&r.method);
        text.push(' ');
        text.push_str(&r.url);
    }
    if let Some(r) = &message.response {
        text.push('\n');
        text.push_str(&r.status.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state codes documents of this schema version carry. Changing one, or adding a state,
    /// relabels what is indexed: bump `SCHEMA_VERSION` (the index is then rebuilt) and pin the
    /// new codes here with it.
    #[test]
    fn state_codes_are_pinned_to_the_schema_version() {
        let pinned = (
            6,
            [
                (OpState::Waiting, 0),
                (OpState::Running, 1),
                (OpState::Success, 2),
                (OpState::Failed, 3),
                (OpState::Timeout, 4),
                (OpState::Cancelled, 5),
            ],
            6,
        );
        let now: Vec<(OpState, u64)> = OpState::ALL.iter().map(|&s| (s, state_code(s))).collect();
        assert_eq!(
            (SCHEMA_VERSION, now, NO_STATE),
            (pinned.0, pinned.1.to_vec(), pinned.2),
            "the index's state codes changed: bump SCHEMA_VERSION and pin the new codes"
        );
    }
}
