//! Splitting a condition into tokens by the Collector's lexer rules (contrib `pkg/ottl`
//! `grammar.go`, `buildLexer`).
//!
//! The Collector's lexer tries its rules in a fixed order at each position and takes the first
//! that matches; whitespace (`[\t\n\f\r ]`) separates tokens and is dropped. The keyword rules
//! (`nil`, `not`, `or`, `and`, `true`, `false`, `_`) need an ASCII word boundary on both sides,
//! so `notes` and `nil_x` are names; a number rule runs before the name rules, so `5abc` is the
//! number 5 followed by the name `abc`. Tokens keep their byte offset for error messages.

use super::{ParseError, ParseErrorKind};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// One token; text-carrying tokens borrow from the condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tok<'s> {
    /// `0x…`, a bytes literal.
    Bytes,
    /// A float literal as written (`1.5`, `.5`, `1.`, `1.5e3`).
    Float(&'s str),
    /// An integer literal as written (digits only; the sign is an operator).
    Int(&'s str),
    /// A string literal with its quotes and escapes, as written.
    Str(&'s str),
    Nil,
    Not,
    Or,
    And,
    Cmp(CmpOp),
    /// `=>`, a lambda's arrow.
    Arrow,
    /// `+` or `-`.
    AddSub(u8),
    /// `*` or `/`.
    MulDiv,
    Bool(bool),
    /// `=`, a named argument's.
    Equal,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Colon,
    Comma,
    Dot,
    LBracket,
    RBracket,
    /// `[A-Z][A-Z0-9_]*`: an enum symbol, or part of a converter's name.
    Upper(&'s str),
    /// `[a-z][a-z0-9_]*`: a path segment, or part of an editor's name.
    Lower(&'s str),
    /// `_`, a lambda's blank parameter.
    Underscore,
}

impl Tok<'_> {
    /// How the token reads in a message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Bytes => "a bytes literal".to_string(),
            Tok::Float(s) | Tok::Int(s) => format!("`{s}`"),
            Tok::Str(s) => format!("the string {s}"),
            Tok::Nil => "`nil`".to_string(),
            Tok::Not => "`not`".to_string(),
            Tok::Or => "`or`".to_string(),
            Tok::And => "`and`".to_string(),
            Tok::Cmp(op) => format!("`{}`", op.as_str()),
            Tok::Arrow => "`=>`".to_string(),
            Tok::AddSub(c) => format!("`{}`", *c as char),
            Tok::MulDiv => "`*` or `/`".to_string(),
            Tok::Bool(b) => format!("`{b}`"),
            Tok::Equal => "`=`".to_string(),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::LBrace => "`{`".to_string(),
            Tok::RBrace => "`}`".to_string(),
            Tok::Colon => "`:`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::Dot => "`.`".to_string(),
            Tok::LBracket => "`[`".to_string(),
            Tok::RBracket => "`]`".to_string(),
            Tok::Upper(s) | Tok::Lower(s) => format!("`{s}`"),
            Tok::Underscore => "`_`".to_string(),
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Token<'s> {
    pub(crate) tok: Tok<'s>,
    pub(crate) at: usize,
}

/// The tokens of `src`, in order.
pub(crate) fn lex(src: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'\t' | b'\n' | b'\x0c' | b'\r' | b' ') {
            i += 1;
            continue;
        }
        let at = i;
        let (tok, len) = next(src, i)?;
        out.push(Token { tok, at });
        i += len;
    }
    Ok(out)
}

/// Go's `\w`: an ASCII word byte.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn digits(b: &[u8], from: usize) -> usize {
    b[from..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// The token at `i` and its length, trying the Collector's rules in its order.
fn next(src: &str, i: usize) -> Result<(Tok<'_>, usize), ParseError> {
    let b = src.as_bytes();
    let rest = &b[i..];
    // Bytes: `0x[a-fA-F0-9]+`.
    if rest.starts_with(b"0x") && rest.get(2).is_some_and(u8::is_ascii_hexdigit) {
        let len = 2 + rest[2..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        return Ok((Tok::Bytes, len));
    }
    // Float: `(\d+\.\d*|\d*\.\d+)([eE][-+]?\d+)?`, then Int: `\d+`.
    let whole = digits(b, i);
    let mantissa = if whole > 0 && rest.get(whole) == Some(&b'.') {
        Some(whole + 1 + digits(b, i + whole + 1))
    } else if whole == 0 && rest.first() == Some(&b'.') && digits(b, i + 1) > 0 {
        Some(1 + digits(b, i + 1))
    } else {
        None
    };
    if let Some(mut len) = mantissa {
        if matches!(rest.get(len), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(rest.get(len + 1), Some(b'-' | b'+')));
            let exp = digits(b, i + len + 1 + sign);
            if exp > 0 {
                len += 1 + sign + exp;
            }
        }
        return Ok((Tok::Float(&src[i..i + len]), len));
    }
    if whole > 0 {
        return Ok((Tok::Int(&src[i..i + whole]), whole));
    }
    // String: `"(\\.|[^\\"])*"`, where `.` is any character but a newline.
    if rest[0] == b'"' {
        let mut j = 1;
        loop {
            match rest.get(j) {
                None => {
                    return Err(ParseError::new(
                        i,
                        ParseErrorKind::Invalid("this string has no closing `\"`".to_string()),
                    ))
                }
                Some(b'"') => return Ok((Tok::Str(&src[i..i + j + 1]), j + 1)),
                Some(b'\\') => match rest.get(j + 1) {
                    Some(b'\n') | None => {
                        return Err(ParseError::new(
                            i + j,
                            ParseErrorKind::Invalid(
                                "a `\\` in a string must escape a character on the same line"
                                    .to_string(),
                            ),
                        ))
                    }
                    // Skip the escaped character whole (it may be several bytes).
                    Some(_) => {
                        j += 1 + src[i + j + 1..].chars().next().map_or(1, char::len_utf8);
                    }
                },
                Some(_) => j += 1,
            }
        }
    }
    let boundary_before = i == 0 || !is_word(b[i - 1]);
    let keyword = |word: &str| {
        boundary_before
            && rest.starts_with(word.as_bytes())
            && rest.get(word.len()).is_none_or(|&c| !is_word(c))
    };
    for (word, tok) in [
        ("nil", Tok::Nil),
        ("not", Tok::Not),
        ("or", Tok::Or),
        ("and", Tok::And),
    ] {
        if keyword(word) {
            return Ok((tok, word.len()));
        }
    }
    let two = rest.get(..2);
    let op = match two {
        Some(b"==") => Some((CmpOp::Eq, 2)),
        Some(b"!=") => Some((CmpOp::Ne, 2)),
        Some(b">=") => Some((CmpOp::Ge, 2)),
        Some(b"<=") => Some((CmpOp::Le, 2)),
        _ => match rest[0] {
            b'>' => Some((CmpOp::Gt, 1)),
            b'<' => Some((CmpOp::Lt, 1)),
            _ => None,
        },
    };
    if let Some((op, len)) = op {
        return Ok((Tok::Cmp(op), len));
    }
    if two == Some(b"=>") {
        return Ok((Tok::Arrow, 2));
    }
    match rest[0] {
        c @ (b'+' | b'-') => return Ok((Tok::AddSub(c), 1)),
        b'*' | b'/' => return Ok((Tok::MulDiv, 1)),
        _ => {}
    }
    for (word, value) in [("true", true), ("false", false)] {
        if keyword(word) {
            return Ok((Tok::Bool(value), word.len()));
        }
    }
    let punct = match rest[0] {
        b'=' => Some(Tok::Equal),
        b'(' => Some(Tok::LParen),
        b')' => Some(Tok::RParen),
        b'{' => Some(Tok::LBrace),
        b'}' => Some(Tok::RBrace),
        b':' => Some(Tok::Colon),
        b',' => Some(Tok::Comma),
        b'.' => Some(Tok::Dot),
        b'[' => Some(Tok::LBracket),
        b']' => Some(Tok::RBracket),
        _ => None,
    };
    if let Some(tok) = punct {
        return Ok((tok, 1));
    }
    if rest[0].is_ascii_uppercase() {
        let len = 1 + rest[1..]
            .iter()
            .take_while(|&&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
            .count();
        return Ok((Tok::Upper(&src[i..i + len]), len));
    }
    if rest[0].is_ascii_lowercase() {
        let len = 1 + rest[1..]
            .iter()
            .take_while(|&&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            .count();
        return Ok((Tok::Lower(&src[i..i + len]), len));
    }
    if keyword("_") {
        return Ok((Tok::Underscore, 1));
    }
    let c = src[i..].chars().next().unwrap_or_default();
    Err(ParseError::new(
        i,
        ParseErrorKind::Invalid(format!("`{c}` is not part of OTTL")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok<'_>> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_follow_the_collector_rules() {
        assert_eq!(toks("1.5"), [Tok::Float("1.5")]);
        assert_eq!(toks(".5 1."), [Tok::Float(".5"), Tok::Float("1.")]);
        assert_eq!(toks("2.5e-3"), [Tok::Float("2.5e-3")]);
        // No exponent without a point: the Int rule takes the digits.
        assert_eq!(toks("1e5"), [Tok::Int("1"), Tok::Lower("e5")]);
        assert_eq!(toks("1.5e"), [Tok::Float("1.5"), Tok::Lower("e")]);
        assert_eq!(toks("0x1F"), [Tok::Bytes]);
        assert_eq!(toks("0x"), [Tok::Int("0"), Tok::Lower("x")]);
        assert_eq!(toks("-5"), [Tok::AddSub(b'-'), Tok::Int("5")]);
    }

    #[test]
    fn keywords_need_word_boundaries() {
        assert_eq!(
            toks("not notes nil_x nil true trueish and or"),
            [
                Tok::Not,
                Tok::Lower("notes"),
                Tok::Lower("nil_x"),
                Tok::Nil,
                Tok::Bool(true),
                Tok::Lower("trueish"),
                Tok::And,
                Tok::Or
            ]
        );
        // A number before a keyword leaves no boundary.
        assert_eq!(toks("5nil"), [Tok::Int("5"), Tok::Lower("nil")]);
        assert_eq!(toks("not("), [Tok::Not, Tok::LParen]);
    }

    #[test]
    fn names_split_by_case() {
        assert_eq!(
            toks("IsMatch(SPAN_KIND_SERVER)"),
            [
                Tok::Upper("I"),
                Tok::Lower("s"),
                Tok::Upper("M"),
                Tok::Lower("atch"),
                Tok::LParen,
                Tok::Upper("SPAN_KIND_SERVER"),
                Tok::RParen
            ]
        );
        assert_eq!(
            toks("resource.attributes[\"a\"]"),
            [
                Tok::Lower("resource"),
                Tok::Dot,
                Tok::Lower("attributes"),
                Tok::LBracket,
                Tok::Str("\"a\""),
                Tok::RBracket
            ]
        );
    }

    #[test]
    fn operators_and_strings() {
        assert_eq!(
            toks("a==\"x\\\"y\"!=>=<=<>=>"),
            [
                Tok::Lower("a"),
                Tok::Cmp(CmpOp::Eq),
                Tok::Str("\"x\\\"y\""),
                Tok::Cmp(CmpOp::Ne),
                Tok::Cmp(CmpOp::Ge),
                Tok::Cmp(CmpOp::Le),
                Tok::Cmp(CmpOp::Lt),
                Tok::Cmp(CmpOp::Ge),
                Tok::Cmp(CmpOp::Gt)
            ]
        );
        assert_eq!(toks("\"é\\é\""), [Tok::Str("\"é\\é\"")]);
        let err = lex("name == \"open").unwrap_err();
        assert_eq!(err.at, 8);
        assert!(lex("name == \"a\\\nb\"").is_err());
        assert!(lex("name ~ 1").is_err());
        // Go's `\s` has no vertical tab.
        assert!(lex("a\x0bb").is_err());
    }
}
