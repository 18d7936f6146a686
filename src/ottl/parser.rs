//! From tokens to a typed expression, by the Collector's grammar (contrib `pkg/ottl`
//! `grammar.go`) restricted to tailgate's subset.
//!
//! ```text
//! condition  = term { "or" term }
//! term       = value { "and" value }
//! value      = [ "not" ] ( "(" condition ")" | comparison | "true" | "false" | call )
//! comparison = operand op operand          (a path against a literal, in either order)
//! operand    = path | string | [ "+" | "-" ] number | "true" | "false" | "nil" | ENUM
//! call       = "IsMatch" "(" path "," string ")" | "IsRootSpan" "(" ")"
//! ```
//!
//! As in the Collector, `and` binds tighter than `or`, `not` applies to one value (so `not not
//! x` is a syntax error), and constant parts are folded as its parser folds them: a comparison
//! of two literals becomes its answer, `false and x` and `x and false` become `false` (so `x` is
//! never evaluated, and cannot fail), `true or x` becomes `true`, and `true`/`false` drop out of
//! `and`/`or` lists otherwise. Everything else the Collector accepts but the subset lacks (math,
//! other converters, lists, maps, bytes literals, two paths compared, …) is refused with
//! [`ParseErrorKind::Unsupported`]; what the Collector refuses too is
//! [`ParseErrorKind::Invalid`].

use super::lexer::{lex, Tok, Token};
use super::path::{resolve, Key, Path, Segment};
use super::value::compare;
use super::{
    pattern, ContextKind, Expr, Literal, ParseError, ParseErrorKind, CONDITION_LEN_MAX,
    NESTING_DEPTH_MAX,
};

/// Parses one condition written for `context`.
pub(crate) fn parse(src: &str, context: ContextKind) -> Result<Expr, ParseError> {
    if src.len() > CONDITION_LEN_MAX {
        return Err(ParseError::new(
            0,
            ParseErrorKind::Invalid(format!(
                "the condition is {} bytes long; at most {CONDITION_LEN_MAX} are allowed",
                src.len()
            )),
        ));
    }
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        context,
        depth: 0,
    };
    if p.toks.is_empty() {
        return Err(ParseError::new(
            0,
            ParseErrorKind::Invalid("the condition is empty".to_string()),
        ));
    }
    let expr = p.condition()?;
    if let Some(t) = p.peek() {
        return Err(p.invalid_at(
            t.at,
            format!("{} after a complete condition", t.tok.describe()),
        ));
    }
    Ok(expr)
}

/// One side of a comparison, or a bare call.
enum Operand {
    Path(Path),
    Literal(Literal),
    Call(Expr),
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token<'s>>,
    pos: usize,
    context: ContextKind,
    /// Parentheses open now.
    depth: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<Token<'s>> {
        self.toks.get(self.pos).copied()
    }

    fn peek_tok(&self) -> Option<Tok<'s>> {
        self.peek().map(|t| t.tok)
    }

    fn bump(&mut self) -> Option<Token<'s>> {
        let t = self.peek();
        self.pos += usize::from(t.is_some());
        t
    }

    /// Where the next token starts, or the end of the condition.
    fn here(&self) -> usize {
        self.peek().map_or(self.src.len(), |t| t.at)
    }

    fn invalid_at(&self, at: usize, why: String) -> ParseError {
        ParseError::new(at, ParseErrorKind::Invalid(why))
    }

    fn unsupported_at(&self, at: usize, what: impl Into<String>) -> ParseError {
        ParseError::new(at, ParseErrorKind::Unsupported(what.into()))
    }

    /// A syntax error at the next token.
    fn expected(&self, what: &str) -> ParseError {
        let found = match self.peek() {
            Some(t) => t.tok.describe(),
            None => "the end of the condition".to_string(),
        };
        self.invalid_at(self.here(), format!("expected {what}, found {found}"))
    }

    fn expect(&mut self, tok: Tok<'_>, what: &str) -> Result<Token<'s>, ParseError> {
        match self.peek() {
            Some(t) if t.tok == tok => {
                self.pos += 1;
                Ok(t)
            }
            _ => Err(self.expected(what)),
        }
    }

    fn condition(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.term()?];
        while self.peek_tok() == Some(Tok::Or) {
            self.pos += 1;
            terms.push(self.term()?);
        }
        Ok(fold_or(terms))
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let mut values = vec![self.value()?];
        while self.peek_tok() == Some(Tok::And) {
            self.pos += 1;
            values.push(self.value()?);
        }
        Ok(fold_and(values))
    }

    fn value(&mut self) -> Result<Expr, ParseError> {
        let negated = self.peek_tok() == Some(Tok::Not);
        if negated {
            self.pos += 1;
        }
        let expr = if self.peek_tok() == Some(Tok::LParen) {
            let open = self.bump().map_or(0, |t| t.at);
            if self.depth == NESTING_DEPTH_MAX {
                return Err(self.invalid_at(
                    open,
                    format!("parentheses nest deeper than {NESTING_DEPTH_MAX}"),
                ));
            }
            self.depth += 1;
            let inner = self.condition()?;
            self.depth -= 1;
            self.expect(Tok::RParen, "`)`")?;
            inner
        } else {
            self.comparison_or_constant()?
        };
        Ok(if negated {
            match expr {
                Expr::Const(b) => Expr::Const(!b),
                other => Expr::Not(Box::new(other)),
            }
        } else {
            expr
        })
    }

    fn comparison_or_constant(&mut self) -> Result<Expr, ParseError> {
        let at = self.here();
        let left = self.operand()?;
        let Some(Tok::Cmp(op)) = self.peek_tok() else {
            return match left {
                Operand::Literal(Literal::Bool(b)) => Ok(Expr::Const(b)),
                Operand::Call(call) => Ok(call),
                Operand::Path(_)
                    if matches!(
                        self.peek_tok(),
                        None | Some(Tok::And | Tok::Or | Tok::RParen)
                    ) =>
                {
                    Err(self.invalid_at(
                        at,
                        "a path alone is not a condition; compare it (`== true`)".to_string(),
                    ))
                }
                Operand::Path(_) => Err(self.expected("a comparison operator")),
                Operand::Literal(_) => Err(self.expected("a comparison operator")),
            };
        };
        self.pos += 1;
        let right_at = self.here();
        let right = self.operand()?;
        match (left, right) {
            (Operand::Literal(a), Operand::Literal(b)) => {
                Ok(Expr::Const(compare(&a.value(), &b.value(), op)))
            }
            (Operand::Path(path), Operand::Literal(literal)) => {
                Ok(Expr::Compare(Box::new(super::Comparison {
                    path,
                    op,
                    literal,
                    path_left: true,
                })))
            }
            (Operand::Literal(literal), Operand::Path(path)) => {
                Ok(Expr::Compare(Box::new(super::Comparison {
                    path,
                    op,
                    literal,
                    path_left: false,
                })))
            }
            (Operand::Path(_), Operand::Path(_)) => {
                Err(self.unsupported_at(at, "comparing two paths; compare a path with a literal"))
            }
            (Operand::Call(_), _) => Err(self.unsupported_at(
                at,
                "comparing a converter's result; write `IsMatch(…)` or `not IsMatch(…)` alone",
            )),
            (_, Operand::Call(_)) => Err(self.unsupported_at(
                right_at,
                "comparing a converter's result; write `IsMatch(…)` or `not IsMatch(…)` alone",
            )),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let Some(t) = self.peek() else {
            return Err(self.expected("a value"));
        };
        let operand = match t.tok {
            Tok::Nil => {
                self.pos += 1;
                Operand::Literal(Literal::Nil)
            }
            Tok::Bool(b) => {
                self.pos += 1;
                Operand::Literal(Literal::Bool(b))
            }
            Tok::Str(raw) => {
                self.pos += 1;
                Operand::Literal(Literal::Str(unquote(raw, t.at)?.into_bytes().into()))
            }
            Tok::Int(_) | Tok::Float(_) => Operand::Literal(self.number(false)?),
            Tok::AddSub(sign) => {
                self.pos += 1;
                match self.peek_tok() {
                    Some(Tok::Int(_) | Tok::Float(_)) => {
                        Operand::Literal(self.number(sign == b'-')?)
                    }
                    Some(Tok::AddSub(_)) | None => {
                        return Err(self.expected("a number after the sign"))
                    }
                    _ => {
                        return Err(
                            self.unsupported_at(t.at, "arithmetic; only a number may carry a sign")
                        )
                    }
                }
            }
            Tok::Upper(_) => self.upper()?,
            Tok::Lower(_) => self.path_or_editor()?,
            Tok::Bytes => return Err(self.unsupported_at(t.at, "bytes literals (`0x…`)")),
            Tok::LBracket => return Err(self.unsupported_at(t.at, "list literals")),
            Tok::LBrace => return Err(self.unsupported_at(t.at, "map literals")),
            Tok::LParen => {
                return Err(self.unsupported_at(t.at, "arithmetic (a parenthesized value)"))
            }
            _ => return Err(self.expected("a value")),
        };
        if let Some(
            next @ Token {
                tok: Tok::AddSub(_) | Tok::MulDiv,
                ..
            },
        ) = self.peek()
        {
            return Err(self.unsupported_at(next.at, "arithmetic (`+`, `-`, `*`, `/`)"));
        }
        Ok(operand)
    }

    /// An integer or float literal at the next token, negated when `negative`.
    fn number(&mut self, negative: bool) -> Result<Literal, ParseError> {
        let t = self.bump().expect("a number token");
        match t.tok {
            Tok::Int(text) => {
                // The Collector reads integers with Go's `ParseInt(s, 0, 64)`: a leading zero
                // makes the rest octal. Refused rather than read in a way nobody means.
                if text.len() > 1 && text.starts_with('0') {
                    return Err(self.unsupported_at(
                        t.at,
                        format!(
                            "the integer `{text}`: the Collector reads a leading zero as octal; \
                             write it without the zero"
                        ),
                    ));
                }
                let value: i64 = text.parse().map_err(|_| {
                    self.invalid_at(
                        t.at,
                        format!("the integer `{text}` does not fit in 64 bits"),
                    )
                })?;
                Ok(Literal::Int(if negative { -value } else { value }))
            }
            Tok::Float(text) => {
                let value = parse_float(text).ok_or_else(|| {
                    self.invalid_at(t.at, format!("the number `{text}` is out of range"))
                })?;
                Ok(Literal::Float(if negative { -value } else { value }))
            }
            _ => unreachable!("number() called on {:?}", t.tok),
        }
    }

    /// An uppercase name: an enum symbol, or a converter call.
    fn upper(&mut self) -> Result<Operand, ParseError> {
        let start = self.pos;
        let at = self.here();
        let mut name = String::new();
        while let Some(Tok::Upper(part) | Tok::Lower(part)) = self.peek_tok() {
            name.push_str(part);
            self.pos += 1;
        }
        if self.peek_tok() == Some(Tok::LParen) {
            return self.call(&name, at).map(Operand::Call);
        }
        if self.pos - start != 1 {
            return Err(self.invalid_at(at, format!("`{name}` is neither an enum nor a call")));
        }
        if self.context == ContextKind::Resource {
            return Err(self.invalid_at(at, format!("`{name}`: the resource context has no enums")));
        }
        let value = if self.context == ContextKind::Metric {
            metric_enum_value(&name).ok_or_else(|| {
                self.invalid_at(
                    at,
                    format!(
                        "`{name}` is not an enum of the metric context (METRIC_DATA_TYPE_NONE, \
                         _GAUGE, _SUM, _HISTOGRAM, _EXPONENTIAL_HISTOGRAM, _SUMMARY; \
                         AGGREGATION_TEMPORALITY_UNSPECIFIED, _DELTA, _CUMULATIVE)"
                    ),
                )
            })?
        } else if self.context == ContextKind::Log {
            severity_value(&name).ok_or_else(|| {
                self.invalid_at(
                    at,
                    format!(
                        "`{name}` is not an enum of the log context (SEVERITY_NUMBER_UNSPECIFIED, \
                         SEVERITY_NUMBER_TRACE … SEVERITY_NUMBER_FATAL4)"
                    ),
                )
            })?
        } else {
            enum_value(&name).ok_or_else(|| {
                self.invalid_at(
                    at,
                    format!(
                        "`{name}` is not an enum of this context (SPAN_KIND_UNSPECIFIED, \
                         SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, \
                         SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER, STATUS_CODE_UNSET, \
                         STATUS_CODE_OK, STATUS_CODE_ERROR)"
                    ),
                )
            })?
        };
        Ok(Operand::Literal(Literal::Int(value)))
    }

    /// A converter call, its name read and the `(` next.
    fn call(&mut self, name: &str, at: usize) -> Result<Expr, ParseError> {
        let expr = match name {
            "IsMatch" => {
                self.expect(Tok::LParen, "`(`")?;
                self.no_named_argument()?;
                let target_at = self.here();
                let target = match self.operand()? {
                    Operand::Path(path) => path,
                    _ => {
                        return Err(self
                            .unsupported_at(target_at, "IsMatch on something other than a path"))
                    }
                };
                self.expect(Tok::Comma, "`,` and IsMatch's pattern")?;
                self.no_named_argument()?;
                let Some(Token {
                    tok: Tok::Str(raw),
                    at: pattern_at,
                }) = self.peek()
                else {
                    return Err(self.unsupported_at(
                        self.here(),
                        "an IsMatch pattern that is not a string literal",
                    ));
                };
                self.pos += 1;
                let pattern = unquote(raw, pattern_at)?;
                let regex =
                    pattern::compile(&pattern).map_err(|kind| ParseError::new(pattern_at, kind))?;
                self.expect(Tok::RParen, "`)` after IsMatch's two arguments")?;
                Expr::IsMatch(Box::new(super::IsMatch {
                    target,
                    pattern: pattern.into(),
                    regex,
                }))
            }
            "IsRootSpan" => {
                if self.context != ContextKind::Span {
                    let context = match self.context {
                        ContextKind::SpanEvent => "spanevent",
                        ContextKind::Resource => "resource",
                        ContextKind::Log => "log",
                        ContextKind::Metric => "metric",
                        ContextKind::Span => unreachable!("checked"),
                    };
                    return Err(self.invalid_at(
                        at,
                        format!(
                            "IsRootSpan is a span context converter; in a {context} condition \
                             it does not exist"
                        ),
                    ));
                }
                self.expect(Tok::LParen, "`(`")?;
                self.expect(Tok::RParen, "`)`: IsRootSpan takes no arguments")?;
                Expr::IsRootSpan
            }
            _ => {
                return Err(self.unsupported_at(
                    at,
                    format!("the converter `{name}` (tailgate has IsMatch and IsRootSpan)"),
                ))
            }
        };
        if self.peek_tok() == Some(Tok::LBracket) {
            return Err(self.unsupported_at(self.here(), "indexing a converter's result"));
        }
        Ok(expr)
    }

    fn no_named_argument(&self) -> Result<(), ParseError> {
        if let (Some(Tok::Lower(_)), Some(Tok::Equal)) =
            (self.peek_tok(), self.toks.get(self.pos + 1).map(|t| t.tok))
        {
            return Err(self.unsupported_at(
                self.here(),
                "named arguments; pass IsMatch's arguments in order",
            ));
        }
        Ok(())
    }

    /// A lowercase name: a path, or (refused) an editor call.
    fn path_or_editor(&mut self) -> Result<Operand, ParseError> {
        let mut segments: Vec<Segment<'s>> = Vec::new();
        loop {
            let Some(Token {
                tok: Tok::Lower(name),
                at,
            }) = self.peek()
            else {
                return Err(self.expected("a path name after `.`"));
            };
            self.pos += 1;
            if segments.is_empty() {
                if let Some(Tok::Upper(_) | Tok::Lower(_) | Tok::LParen) = self.peek_tok() {
                    return Err(self.invalid_at(
                        at,
                        format!(
                            "`{name}…` is a function call with a lowercase name: that is an \
                             editor, which conditions cannot use (converters start with an \
                             uppercase letter)"
                        ),
                    ));
                }
            }
            let mut keys = Vec::new();
            while self.peek_tok() == Some(Tok::LBracket) {
                self.pos += 1;
                let key = match self.peek() {
                    Some(Token {
                        tok: Tok::Str(raw),
                        at,
                    }) if matches!(
                        self.toks.get(self.pos + 1).map(|t| t.tok),
                        Some(Tok::RBracket)
                    ) =>
                    {
                        self.pos += 1;
                        Key::Str(unquote(raw, at)?)
                    }
                    _ => {
                        // Skip to the matching `]` so the path can still be named.
                        let mut open = 1;
                        while open > 0 {
                            match self.bump().map(|t| t.tok) {
                                Some(Tok::LBracket) => open += 1,
                                Some(Tok::RBracket) => open -= 1,
                                Some(_) => {}
                                None => return Err(self.expected("`]`")),
                            }
                        }
                        self.pos -= 1;
                        Key::Other
                    }
                };
                self.expect(Tok::RBracket, "`]`")?;
                keys.push(key);
            }
            segments.push(Segment { name, keys, at });
            if self.peek_tok() == Some(Tok::Dot) {
                self.pos += 1;
            } else {
                break;
            }
        }
        resolve(segments, self.context).map(Operand::Path)
    }
}

/// The Collector's `newAndExprs`: a literal false makes the whole false, literal trues drop out.
fn fold_and(values: Vec<Expr>) -> Expr {
    if values.contains(&Expr::Const(false)) {
        return Expr::Const(false);
    }
    let mut rest: Vec<Expr> = values
        .into_iter()
        .filter(|e| *e != Expr::Const(true))
        .collect();
    match rest.len() {
        0 => Expr::Const(true),
        1 => rest.pop().expect("one value"),
        _ => Expr::And(rest.into()),
    }
}

/// The Collector's `newOrExprs`: a literal true makes the whole true, literal falses drop out.
fn fold_or(terms: Vec<Expr>) -> Expr {
    if terms.contains(&Expr::Const(true)) {
        return Expr::Const(true);
    }
    let mut rest: Vec<Expr> = terms
        .into_iter()
        .filter(|e| *e != Expr::Const(false))
        .collect();
    match rest.len() {
        0 => Expr::Const(false),
        1 => rest.pop().expect("one term"),
        _ => Expr::Or(rest.into()),
    }
}

/// The span context's enums (contrib `ctxspan.SymbolTable`), also the spanevent context's.
fn enum_value(name: &str) -> Option<i64> {
    Some(match name {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}

/// The metric context's enums (contrib `ctxmetric`: pdata's `MetricType` and
/// `AggregationTemporality`).
fn metric_enum_value(name: &str) -> Option<i64> {
    Some(match name {
        "METRIC_DATA_TYPE_NONE" => 0,
        "METRIC_DATA_TYPE_GAUGE" => 1,
        "METRIC_DATA_TYPE_SUM" => 2,
        "METRIC_DATA_TYPE_HISTOGRAM" => 3,
        "METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM" => 4,
        "METRIC_DATA_TYPE_SUMMARY" => 5,
        "AGGREGATION_TEMPORALITY_UNSPECIFIED" => 0,
        "AGGREGATION_TEMPORALITY_DELTA" => 1,
        "AGGREGATION_TEMPORALITY_CUMULATIVE" => 2,
        _ => return None,
    })
}

/// The log context's enums (contrib `ctxlog`): `SEVERITY_NUMBER_UNSPECIFIED` 0, then
/// `TRACE`, `TRACE2`…`TRACE4`, `DEBUG`…, `INFO`…, `WARN`…, `ERROR`…, `FATAL`…`FATAL4`, 1 to 24.
fn severity_value(name: &str) -> Option<i64> {
    let level = name.strip_prefix("SEVERITY_NUMBER_")?;
    if level == "UNSPECIFIED" {
        return Some(0);
    }
    let names = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let (base, step) = names.iter().enumerate().find_map(|(i, n)| {
        let step = match level.strip_prefix(n)? {
            "" => 0,
            "2" => 1,
            "3" => 2,
            "4" => 3,
            _ => return None,
        };
        Some((i as i64 * 4 + 1, step))
    })?;
    Some(base + step)
}

/// A float literal as Go's `ParseFloat` reads it; `None` when it overflows (Go refuses it).
fn parse_float(text: &str) -> Option<f64> {
    // Rust does not read `1.` or `.5` before an exponent the way Go does in every case;
    // spelled out in full, both read the same digits the same way.
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let whole = if whole.is_empty() { "0" } else { whole };
    let fraction = if fraction.is_empty() { "0" } else { fraction };
    let value: f64 = format!("{whole}.{fraction}{exponent}").parse().ok()?;
    value.is_finite().then_some(value)
}

/// A string literal's value, by Go's `strconv.UnquoteChar` applied character by character (as
/// the Collector's parser unquotes): `\a \b \f \n \r \t \v \\ \"`, `\xHH` and three-digit octal
/// escapes (each giving the code point of that value), `\uHHHH` and `\UHHHHHHHH`.
fn unquote(raw: &str, at: usize) -> Result<String, ParseError> {
    let body = &raw[1..raw.len() - 1];
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    let bad = |offset: usize, why: &str| {
        ParseError::new(
            at + 1 + offset,
            ParseErrorKind::Invalid(format!("bad escape in a string: {why}")),
        )
    };
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            return Err(bad(i, "a lone `\\`"));
        };
        let mut digits = |n: usize, radix: u32| -> Result<u32, ParseError> {
            let mut v = 0u32;
            for _ in 0..n {
                let d = chars
                    .next()
                    .and_then(|(_, c)| c.to_digit(radix))
                    .ok_or_else(|| bad(i, &format!("`\\{e}` needs {n} more digits")))?;
                v = v * radix + d;
            }
            Ok(v)
        };
        let code = match e {
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'n' => 0x0a,
            'r' => 0x0d,
            't' => 0x09,
            'v' => 0x0b,
            '\\' => 0x5c,
            '"' => 0x22,
            'x' => digits(2, 16)?,
            'u' => digits(4, 16)?,
            'U' => digits(8, 16)?,
            '0'..='7' => {
                let v = (e as u32 - '0' as u32) * 64 + digits(2, 8)?;
                if v > 255 {
                    return Err(bad(i, "an octal escape above \\377"));
                }
                v
            }
            _ => return Err(bad(i, &format!("`\\{e}` is not an escape Go knows"))),
        };
        out.push(char::from_u32(code).ok_or_else(|| bad(i, "not a Unicode scalar value"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_unquote_as_go() {
        let u = |s: &str| unquote(s, 0).unwrap();
        assert_eq!(u(r#""plain""#), "plain");
        assert_eq!(u(r#""a\"b\\c\n\t""#), "a\"b\\c\n\t");
        // \x and octal escapes give code points, as `string(rune)` in Go.
        assert_eq!(u(r#""\x41\xff\101\377""#), "A\u{ff}A\u{ff}");
        assert_eq!(u(r#""\u00e9\U0001F600""#), "é😀");
        assert_eq!(u("\"é\n\""), "é\n");
        for bad in [
            r#""\q""#,
            r#""\'""#,
            r#""\x4""#,
            r#""\400""#,
            r#""\ud800""#,
            r#""\U00110000""#,
        ] {
            assert!(unquote(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn floats_read_as_go() {
        assert_eq!(parse_float("1."), Some(1.0));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("1.e2"), Some(100.0));
        assert_eq!(parse_float(".5E-1"), Some(0.05));
        assert_eq!(parse_float("1.5e400"), None);
    }
}
