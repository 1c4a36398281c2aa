//! Matches in context: where a text query matched inside one stored text, as a short fragment
//! with highlight ranges, so the dashboard can show *why* a row is a hit.
//!
//! The text is the one the index searched (`index::message_text` / `index::operation_text`),
//! re-read from the store (the index stores no text), and it is tokenized by the same analyzer the
//! index uses (tantivy's `default`: split on non-alphanumerics, drop tokens over 40 bytes,
//! lowercase), so a range covers exactly the tokens the query matched. Phrases and multi-token
//! words match at adjacent positions, as in the index.
//!
//! Must not: produce markup. Ranges are character offsets into `text`; the client renders both
//! as text.

use serde::Serialize;
use tantivy::tokenizer::{TextAnalyzer, TokenizerManager};

use crate::index::query::{Atom, TextQuery};
use crate::model::Id;

/// The most characters of context a snippet shows.
pub const FRAGMENT_CHARS: usize = 200;
/// Characters kept before the first match, so it reads in context.
const LEAD_CHARS: usize = 60;

/// Where a snippet's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnippetSource {
    /// The operation's own text (message, error, integration, connection, script, provider).
    Operation,
    /// One of its messages (text, error, request method and URL, response status).
    Message,
}

/// A fragment of the matching text and where in it the query's terms are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Snippet {
    pub source: SnippetSource,
    /// The message the fragment is from (`source` = `message`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Id>,
    /// At most 200 characters of the text around its first match, as stored (never markup).
    pub text: String,
    /// `[start, end)` ranges of matched terms, in characters (Unicode scalar values) from the
    /// start of `text`, ascending and not overlapping.
    pub highlights: Vec<[usize; 2]>,
    /// Whether text was cut before `text` starts.
    pub truncated_start: bool,
    /// Whether text was cut after `text` ends.
    pub truncated_end: bool,
}

/// One token: its position in the stream and its byte range in the text.
struct Tok {
    position: usize,
    from: usize,
    to: usize,
    text: String,
}

fn analyzer() -> TextAnalyzer {
    TokenizerManager::default()
        .get("default")
        .expect("tantivy always registers `default`")
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Tok> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(t) = stream.next() {
        out.push(Tok {
            position: t.position,
            from: t.offset_from,
            to: t.offset_to,
            text: t.text.clone(),
        });
    }
    out
}

/// Byte ranges where `atom` occurs among `text_tokens`.
fn occurrences(
    analyzer: &mut TextAnalyzer,
    atom: &Atom,
    text_tokens: &[Tok],
) -> Vec<(usize, usize)> {
    let (words, prefix) = match atom {
        Atom::Word(w) | Atom::Phrase(w) => (w, false),
        Atom::Prefix(p) => (p, true),
    };
    let wanted: Vec<String> = tokens(analyzer, words)
        .into_iter()
        .map(|t| t.text)
        .collect();
    let Some(last) = wanted.len().checked_sub(1) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for start in 0..text_tokens.len() {
        let Some(window) = text_tokens.get(start..start + wanted.len()) else {
            break;
        };
        let matches = window
            .iter()
            .zip(&wanted)
            .enumerate()
            .all(|(k, (tok, want))| {
                let adjacent = tok.position == window[0].position + k;
                let same = if prefix && k == last {
                    tok.text.starts_with(want.as_str())
                } else {
                    tok.text == *want
                };
                adjacent && same
            });
        if matches {
            found.push((window[0].from, window[last].to));
        }
    }
    found
}

/// Where `query` matches `text`: the merged byte ranges of every included term's occurrences,
/// or `None` when the text does not satisfy the query (a required clause has no occurrence, or
/// an excluded one has) or the query has nothing to highlight.
pub fn match_ranges(query: &TextQuery, text: &str) -> Option<Vec<(usize, usize)>> {
    let mut analyzer = analyzer();
    let text_tokens = tokens(&mut analyzer, text);
    let mut ranges = Vec::new();
    for clause in &query.clauses {
        let found: Vec<(usize, usize)> = clause
            .any_of
            .iter()
            .flat_map(|atom| occurrences(&mut analyzer, atom, &text_tokens))
            .collect();
        match (clause.excluded, found.is_empty()) {
            (true, false) | (false, true) => return None,
            (true, true) => {}
            (false, false) => ranges.extend(found),
        }
    }
    if ranges.is_empty() {
        return None;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (from, to) in ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    Some(merged)
}

/// The snippet of `text` for `query`, or `None` when the text does not match it.
pub fn snippet(
    query: &TextQuery,
    text: &str,
    source: SnippetSource,
    message_id: Option<Id>,
) -> Option<Snippet> {
    let ranges = match_ranges(query, text)?;
    // Byte offset → character offset, for every char boundary.
    let char_at = |byte: usize| text[..byte].chars().count();
    let total = text.chars().count();
    let first = char_at(ranges[0].0);
    // The text's leading separators (an operation with no message starts with the newline
    // before its error) are not context.
    let leading = text.chars().take_while(|c| c.is_whitespace()).count();
    let start = first.saturating_sub(LEAD_CHARS).max(leading.min(first));
    let cut_before = start > leading;
    let end = (start + FRAGMENT_CHARS).min(total);
    let fragment: String = text.chars().skip(start).take(end - start).collect();
    let highlights = ranges
        .iter()
        .map(|(from, to)| (char_at(*from), char_at(*to)))
        .filter(|(from, _)| *from < end)
        .map(|(from, to)| [from - start, to.min(end) - start])
        .collect();
    Some(Snippet {
        source,
        message_id,
        text: fragment,
        highlights,
        truncated_start: cut_before,
        truncated_end: end < total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::query::parse;

    fn marked(q: &str, text: &str) -> Option<String> {
        let s = snippet(&parse(q).unwrap(), text, SnippetSource::Message, None)?;
        let chars: Vec<char> = s.text.chars().collect();
        let mut out = String::new();
        let mut at = 0;
        for [from, to] in s.highlights {
            out.extend(&chars[at..from]);
            out.push('[');
            out.extend(&chars[from..to]);
            out.push(']');
            at = to;
        }
        out.extend(&chars[at..]);
        Some(out)
    }

    #[test]
    fn words_phrases_and_prefixes_are_marked_where_the_index_matches() {
        assert_eq!(
            marked(
                r#""rate limit""#,
                "GitHub: Rate-Limit exceeded, rate later, limit"
            )
            .as_deref(),
            Some("GitHub: [Rate-Limit] exceeded, rate later, limit")
        );
        assert_eq!(
            marked("invalid_grant", "token refresh failed: invalid_grant (401)").as_deref(),
            Some("token refresh failed: [invalid_grant] (401)")
        );
        assert_eq!(
            marked("refr* 401", "token refresh failed: 401 Refreshing").as_deref(),
            Some("token [refresh] failed: [401] [Refreshing]")
        );
        assert_eq!(
            marked("timeout OR 503", "upstream 503").as_deref(),
            Some("upstream [503]")
        );
    }

    #[test]
    fn texts_that_do_not_satisfy_the_query_have_no_snippet() {
        assert_eq!(
            marked("rate limit", "rate only"),
            None,
            "every word must match"
        );
        assert_eq!(
            marked(r#""limit rate""#, "rate limit"),
            None,
            "phrase order"
        );
        assert_eq!(marked("rate -limit", "rate limit"), None, "excluded term");
        assert_eq!(marked("-limit", "rate"), None, "nothing to highlight");
        assert_eq!(marked("rat", "rate"), None, "a word is not a prefix");
    }

    #[test]
    fn ranges_count_characters_and_markup_stays_text() {
        assert_eq!(
            marked("ünïcode", "<b>ÜNÏCODE</b> ✓ ünïcode").as_deref(),
            Some("<b>[ÜNÏCODE]</b> ✓ [ünïcode]")
        );
    }

    #[test]
    fn leading_separators_are_not_context() {
        assert_eq!(
            marked("invalid_grant", "\ninvalid_grant: revoked\ngithub").as_deref(),
            Some("[invalid_grant]: revoked\ngithub")
        );
        let s = snippet(&parse("x").unwrap(), "\n x", SnippetSource::Operation, None).unwrap();
        assert!(!s.truncated_start);
    }

    #[test]
    fn long_texts_are_cut_around_the_first_match() {
        let text = format!("{} needle {}", "a ".repeat(500), "b ".repeat(500));
        let s = snippet(
            &parse("needle").unwrap(),
            &text,
            SnippetSource::Operation,
            None,
        )
        .unwrap();
        assert!(s.truncated_start && s.truncated_end);
        assert_eq!(s.text.chars().count(), FRAGMENT_CHARS);
        let [from, to] = s.highlights[0];
        assert_eq!(from, LEAD_CHARS);
        assert_eq!(
            s.text
                .chars()
                .skip(from)
                .take(to - from)
                .collect::<String>(),
            "needle"
        );
    }
}
