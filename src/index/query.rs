//! The search language of the `q` parameter, parsed into a small syntax tree:
//! words (all must match), `"exact phrases"`, `prefix*`, `a OR b`, `-excluded`. Case-insensitive.
//!
//! Parsing is pure and bounded (length, clause count, prefix length), so no query can make the
//! daemon do unbounded work. Errors say at which character the problem is.

use std::fmt;

pub const MAX_QUERY_CHARS: usize = 1_000;
pub const MAX_CLAUSES: usize = 32;
pub const MIN_PREFIX_CHARS: usize = 2;

/// One searchable unit before tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Atom {
    /// A bare word; several tokens in it (e.g. `invalid_grant`) must appear adjacent.
    Word(String),
    Phrase(String),
    /// Text before a trailing `*`.
    Prefix(String),
}

/// Alternatives: one of them must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub any_of: Vec<Atom>,
    pub excluded: bool,
}

/// Every included clause must match and no excluded one may.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextQuery {
    pub clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// 1-based character position in the query.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.column, self.message)
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Atom { atom: Atom, excluded: bool },
    Or,
}

impl TextQuery {
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether at least one clause must match (a query of only exclusions matches by omission).
    pub fn has_required(&self) -> bool {
        self.clauses.iter().any(|c| !c.excluded)
    }
}

pub fn parse(text: &str) -> Result<TextQuery, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_QUERY_CHARS {
        return Err(QueryError {
            column: MAX_QUERY_CHARS + 1,
            message: format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        });
    }
    let tokens = tokenize(&chars)?;
    let mut clauses: Vec<Clause> = Vec::new();
    let mut pending_or: Option<usize> = None;
    for (column, token) in tokens {
        match token {
            Token::Or => {
                let joinable = clauses.last().is_some_and(|c| !c.excluded);
                if !joinable || pending_or.is_some() {
                    return Err(QueryError {
                        column,
                        message: "OR needs a search term on each side".into(),
                    });
                }
                pending_or = Some(column);
            }
            Token::Atom { atom, excluded } => {
                if pending_or.take().is_some() {
                    if excluded {
                        return Err(QueryError {
                            column,
                            message: "an excluded term cannot be an alternative of OR".into(),
                        });
                    }
                    clauses.last_mut().expect("checked").any_of.push(atom);
                } else {
                    clauses.push(Clause {
                        any_of: vec![atom],
                        excluded,
                    });
                }
                let atoms: usize = clauses.iter().map(|c| c.any_of.len()).sum();
                if atoms > MAX_CLAUSES {
                    return Err(QueryError {
                        column,
                        message: format!("the query has more than {MAX_CLAUSES} terms"),
                    });
                }
            }
        }
    }
    if let Some(column) = pending_or {
        return Err(QueryError {
            column,
            message: "OR needs a search term on each side".into(),
        });
    }
    Ok(TextQuery { clauses })
}

fn tokenize(chars: &[char]) -> Result<Vec<(usize, Token)>, QueryError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let excluded = chars[i] == '-';
        if excluded {
            i += 1;
            if i == chars.len() || chars[i].is_whitespace() {
                return Err(QueryError {
                    column: start + 1,
                    message: "`-` must be followed by the term to exclude, as in -timeout".into(),
                });
            }
        }
        if chars[i] == '"' {
            let open = i;
            // A quote left open is a phrase to the end of the query, as search engines read it:
            // a search box typed `"rate limi` searches while the phrase is being written.
            let close = chars[open + 1..]
                .iter()
                .position(|c| *c == '"')
                .map(|p| open + 1 + p);
            let end = close.unwrap_or(chars.len());
            let phrase: String = chars[open + 1..end].iter().collect();
            if close.is_none() && phrase.trim().is_empty() {
                // A lone opening quote (just typed) asks for nothing yet.
                i = end;
                continue;
            }
            if phrase.trim().is_empty() {
                return Err(QueryError {
                    column: open + 1,
                    message: "empty phrase".into(),
                });
            }
            tokens.push((
                start + 1,
                Token::Atom {
                    atom: Atom::Phrase(phrase),
                    excluded,
                },
            ));
            i = end + 1;
            continue;
        }
        let word_start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '"' {
            i += 1;
        }
        let word: String = chars[word_start..i].iter().collect();
        if word == "OR" && !excluded {
            tokens.push((start + 1, Token::Or));
            continue;
        }
        let atom = match word.strip_suffix('*') {
            Some(prefix) => {
                if prefix.contains('*') || prefix.chars().count() < MIN_PREFIX_CHARS {
                    return Err(QueryError {
                        column: word_start + 1,
                        message: format!(
                            "a prefix search needs at least {MIN_PREFIX_CHARS} characters before a single trailing `*`, as in rate*"
                        ),
                    });
                }
                Atom::Prefix(prefix.to_owned())
            }
            None if word.contains('*') => {
                return Err(QueryError {
                    column: word_start + 1,
                    message: "`*` is only allowed at the end of a word (prefix search)".into(),
                })
            }
            None => Atom::Word(word),
        };
        tokens.push((start + 1, Token::Atom { atom, excluded }));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(w: &str) -> Atom {
        Atom::Word(w.into())
    }

    #[test]
    fn words_phrases_prefixes_or_and_exclusion() {
        let q = parse(r#"github "rate limit" invalid_grant OR refresh* -timeout"#).unwrap();
        assert_eq!(
            q.clauses,
            vec![
                Clause {
                    any_of: vec![word("github")],
                    excluded: false
                },
                Clause {
                    any_of: vec![Atom::Phrase("rate limit".into())],
                    excluded: false
                },
                Clause {
                    any_of: vec![word("invalid_grant"), Atom::Prefix("refresh".into())],
                    excluded: false
                },
                Clause {
                    any_of: vec![word("timeout")],
                    excluded: true
                },
            ]
        );
        assert!(parse("   ").unwrap().is_empty());
        assert!(!parse("-x").unwrap().has_required());
        assert_eq!(
            parse("a or b").unwrap().clauses.len(),
            3,
            "only uppercase OR is an operator"
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let at = |q: &str| parse(q).unwrap_err().column;
        assert_eq!(at("OR github"), 1);
        assert_eq!(at("github OR"), 8);
        assert_eq!(at("a OR OR b"), 6);
        assert_eq!(at("a -"), 3);
        assert_eq!(at("x*"), 1);
        assert_eq!(at("ra*te"), 1);
        assert_eq!(at(r#"a """#), 3);
        let many = vec!["w"; MAX_CLAUSES + 1].join(" ");
        assert!(parse(&many).unwrap_err().message.contains("more than"));
        assert!(parse(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(parse("a OR -b").is_err());
    }

    #[test]
    fn an_unclosed_quote_is_a_phrase_to_the_end() {
        let phrase = |q: &str| parse(q).unwrap().clauses;
        assert_eq!(
            phrase(r#"error "rate limi"#),
            vec![
                Clause {
                    any_of: vec![word("error")],
                    excluded: false
                },
                Clause {
                    any_of: vec![Atom::Phrase("rate limi".into())],
                    excluded: false
                },
            ]
        );
        assert_eq!(
            phrase(r#"-"rate limit"#),
            vec![Clause {
                any_of: vec![Atom::Phrase("rate limit".into())],
                excluded: true
            }]
        );
        assert!(
            parse(r#"""#).unwrap().is_empty(),
            "a lone quote asks for nothing yet"
        );
        assert_eq!(phrase(r#"github ""#).len(), 1);
    }
}
