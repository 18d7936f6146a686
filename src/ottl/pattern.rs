//! `IsMatch`'s patterns: Go's regular expressions (RE2 syntax, `regexp.Compile`, matched
//! unanchored as `MatchString`) on the Rust regex crate.
//!
//! The two read the same syntax almost everywhere. Where they part, a pattern is either
//! rewritten so Rust matches what Go matches, or refused, so that no accepted pattern matches
//! differently:
//!
//! - Rewritten: Go's `\d`, `\s`, `\w` (and `\D`, `\S`, `\W`) are ASCII classes and its `\b`,
//!   `\B` ASCII word boundaries; Rust's are Unicode. They become `[0-9]`, `[\t\n\f\r ]`,
//!   `[0-9A-Za-z_]` and `(?-u:\b)`. Case folding under `(?i)` applies to them in both.
//! - Refused, because Go reads them as literal text or rejects them while Rust gives them a
//!   meaning: a `[` inside a class (Rust nests classes), `&&`, `--`, `~~` inside a class (Rust's
//!   set operations), `\<`, `\>` and `\b{…}` (Rust's word-edge assertions), `\u` escapes, the
//!   `x`, `R` and `u` flags, a lone `\1`…`\7` (Go: an unsupported backreference), capture names
//!   that are not word characters, and repetition counts above Go's 1000.
//! - Refused because Rust does not read them: `\Q…\E`, `\C`, and a `{` that does not start a
//!   repetition (Go reads it literally; write `\{`).
//!
//! The compiled program is bounded by [`REGEX_SIZE_MAX`](super::REGEX_SIZE_MAX).

use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::ast::parse::ParserBuilder;
use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassPerlKind, ClassSetItem, Flag, FlagsItemKind, GroupKind,
    HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
};

use super::{ParseErrorKind, REGEX_NEST_MAX, REGEX_SIZE_MAX};

/// Go's `maxRepeat`: the largest count in `{n}`, `{n,}` or `{n,m}`.
const REPEAT_MAX: u32 = 1000;

/// Compiles Go-syntax `pattern`.
pub(crate) fn compile(pattern: &str) -> Result<Regex, ParseErrorKind> {
    let ast = ParserBuilder::new()
        .octal(true)
        .nest_limit(REGEX_NEST_MAX)
        .build()
        .parse(pattern)
        .map_err(|err| {
            ParseErrorKind::Invalid(format!(
                "the pattern `{pattern}` does not compile: {} (Go's syntax as tailgate reads it, \
                 which has no `\\Q…\\E`, no `\\p{{^…}}` and no literal `{{`: write `\\{{`)",
                err.kind()
            ))
        })?;
    let edits = ast::visit(&ast, Check::default()).map_err(|refusal| match refusal {
        Refusal::GoRefuses(why) => {
            ParseErrorKind::Invalid(format!("the pattern `{pattern}` is not valid in Go: {why}"))
        }
        Refusal::ReadsDifferently(why) => {
            ParseErrorKind::Unsupported(format!("the pattern `{pattern}`: {why}"))
        }
    })?;
    let mut translated = String::with_capacity(pattern.len() + 16 * edits.len());
    let mut from = 0;
    for (span, replacement) in edits {
        translated.push_str(&pattern[from..span.start.offset]);
        translated.push_str(replacement);
        from = span.end.offset;
    }
    translated.push_str(&pattern[from..]);
    RegexBuilder::new(&translated)
        .octal(true)
        .nest_limit(REGEX_NEST_MAX)
        .size_limit(REGEX_SIZE_MAX)
        .dfa_size_limit(REGEX_SIZE_MAX)
        .build()
        .map_err(|err| {
            let reason = err.to_string();
            let reason = reason.lines().last().unwrap_or_default().trim().to_string();
            ParseErrorKind::Invalid(format!(
                "the pattern `{pattern}` does not compile: {reason}"
            ))
        })
}

/// Why a pattern is refused.
enum Refusal {
    /// Go's `regexp` refuses it too.
    GoRefuses(String),
    /// Go accepts it but reads it differently from the Rust regex crate.
    ReadsDifferently(String),
}

/// Walks a parsed pattern: collects the rewrites (by span, in pattern order) and stops at the
/// first construct Go refuses or reads differently.
#[derive(Default)]
struct Check {
    edits: Vec<(ast::Span, &'static str)>,
}

impl Check {
    fn literal(&mut self, lit: &ast::Literal) -> Result<(), Refusal> {
        match lit.kind {
            LiteralKind::HexFixed(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
            | LiteralKind::HexBrace(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong) => {
                Err(Refusal::GoRefuses(
                    "it has no `\\u` or `\\U` escape; write `\\x{…}`".to_string(),
                ))
            }
            // `\1`…`\7` alone: Go reads a backreference and refuses it.
            LiteralKind::Octal
                if lit.span.end.offset - lit.span.start.offset == 2 && lit.c != '\0' =>
            {
                Err(Refusal::GoRefuses(
                    "it has no backreferences like `\\1`".to_string(),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl ast::Visitor for Check {
    type Output = Vec<(ast::Span, &'static str)>;
    type Err = Refusal;

    fn finish(self) -> Result<Self::Output, Refusal> {
        let mut edits = self.edits;
        edits.sort_by_key(|(span, _)| span.start.offset);
        Ok(edits)
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), Refusal> {
        match ast {
            Ast::ClassPerl(p) => {
                self.edits
                    .push((p.span, perl_class(&p.kind, p.negated, false)));
            }
            Ast::Assertion(a) => match a.kind {
                AssertionKind::WordBoundary => self.edits.push((a.span, r"(?-u:\b)")),
                AssertionKind::NotWordBoundary => self.edits.push((a.span, r"(?-u:\B)")),
                AssertionKind::StartLine
                | AssertionKind::EndLine
                | AssertionKind::StartText
                | AssertionKind::EndText => {}
                _ => {
                    return Err(Refusal::ReadsDifferently(
                        "`\\<`, `\\>` and `\\b{…}` are literal text in Go; escape the brace \
                             or drop the backslash"
                            .to_string(),
                    ))
                }
            },
            Ast::Flags(f) => flags(&f.flags)?,
            Ast::Group(g) => match &g.kind {
                GroupKind::NonCapturing(f) => flags(f)?,
                GroupKind::CaptureName { name, .. } => {
                    if !name
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err(Refusal::GoRefuses(format!(
                            "it allows only letters, digits and `_` in a group name, not `{}`",
                            name.name
                        )));
                    }
                }
                GroupKind::CaptureIndex(_) => {}
            },
            Ast::Repetition(r) => {
                // Go's parser refuses an operator on an operator ("invalid nested repetition
                // operator"), which this one reads as the outer applied to the inner.
                if matches!(*r.ast, Ast::Repetition(_)) {
                    return Err(Refusal::GoRefuses(
                        "it does not allow a repetition of a repetition (`a+*`, `a{2}{3}`); \
                         group the inner one: `(?:a+)*`"
                            .to_string(),
                    ));
                }
                if let RepetitionKind::Range(
                    RepetitionRange::Exactly(n)
                    | RepetitionRange::AtLeast(n)
                    | RepetitionRange::Bounded(_, n),
                ) = r.op.kind
                {
                    if n > REPEAT_MAX {
                        return Err(Refusal::GoRefuses(format!(
                            "it allows repetition counts up to {REPEAT_MAX}, not {n}"
                        )));
                    }
                }
            }
            Ast::Literal(lit) => self.literal(lit)?,
            _ => {}
        }
        Ok(())
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), Refusal> {
        match item {
            ClassSetItem::Perl(p) => {
                self.edits
                    .push((p.span, perl_class(&p.kind, p.negated, true)));
            }
            ClassSetItem::Bracketed(_) => {
                return Err(Refusal::ReadsDifferently(
                    "a `[` inside a character class is a literal `[` in Go but a nested class \
                     here; write `\\[`"
                        .to_string(),
                ))
            }
            ClassSetItem::Literal(lit) => self.literal(lit)?,
            ClassSetItem::Range(r) => {
                self.literal(&r.start)?;
                self.literal(&r.end)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn visit_class_set_binary_op_pre(
        &mut self,
        _op: &ast::ClassSetBinaryOp,
    ) -> Result<(), Refusal> {
        Err(Refusal::ReadsDifferently(
            "`&&`, `--` and `~~` inside a class are literal characters in Go; escape them \
             (`\\&\\&`)"
                .to_string(),
        ))
    }
}

/// The flags Go has: `i`, `m`, `s`, `U`.
fn flags(f: &ast::Flags) -> Result<(), Refusal> {
    for item in &f.items {
        if let FlagsItemKind::Flag(flag @ (Flag::Unicode | Flag::CRLF | Flag::IgnoreWhitespace)) =
            &item.kind
        {
            let letter = match flag {
                Flag::Unicode => 'u',
                Flag::CRLF => 'R',
                _ => 'x',
            };
            return Err(Refusal::GoRefuses(format!(
                "it has no `{letter}` flag (it has i, m, s and U)"
            )));
        }
    }
    Ok(())
}

/// Go's ASCII meaning of a Perl class, written for outside or inside a bracketed class.
fn perl_class(kind: &ClassPerlKind, negated: bool, in_class: bool) -> &'static str {
    match (kind, negated, in_class) {
        (ClassPerlKind::Digit, false, false) => "[0-9]",
        (ClassPerlKind::Digit, false, true) => "0-9",
        (ClassPerlKind::Digit, true, _) => "[^0-9]",
        (ClassPerlKind::Space, false, false) => r"[\t\n\x0C\r ]",
        (ClassPerlKind::Space, false, true) => r"\t\n\x0C\r ",
        (ClassPerlKind::Space, true, _) => r"[^\t\n\x0C\r ]",
        (ClassPerlKind::Word, false, false) => "[0-9A-Za-z_]",
        (ClassPerlKind::Word, false, true) => "0-9A-Za-z_",
        (ClassPerlKind::Word, true, _) => "[^0-9A-Za-z_]",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        compile(pattern).unwrap().is_match(text.as_bytes())
    }

    fn refusal(pattern: &str) -> String {
        match compile(pattern) {
            Err(ParseErrorKind::Unsupported(why) | ParseErrorKind::Invalid(why)) => why,
            Ok(_) => panic!("`{pattern}` compiled"),
        }
    }

    #[test]
    fn perl_classes_and_boundaries_are_ascii_as_in_go() {
        assert!(matches(r"^\d+$", "123"));
        assert!(!matches(r"^\d$", "٣"), "Arabic-Indic digit");
        assert!(!matches(r"^\w$", "é"));
        assert!(matches(r"^\W$", "é"), "one rune, as Go");
        assert!(matches(r"^[\w-]+$", "a-b_c"));
        assert!(matches(r"^[^\D]$", "7"));
        assert!(!matches(r"^\s$", "\u{a0}"));
        assert!(!matches(r"^\s$", "\x0b"), "Go's \\s has no vertical tab");
        assert!(matches(r"^\s$", "\x0c"));
        // ASCII word boundary: é is not a word character.
        assert!(matches(r"\bx", "éx"));
        assert!(!matches(r"\Bx", "éx"));
        // (?i) folds the ASCII classes in Go too (K is the Kelvin sign).
        assert!(matches(r"(?i)^\w$", "\u{212a}"));
    }

    #[test]
    fn go_syntax_carries_over() {
        assert!(matches("^/pay/(card|wallet)$", "/pay/card"));
        assert!(matches("pay", "/pay/card"), "unanchored");
        assert!(matches(r"(?P<x>a)(?<y>b)", "ab"));
        assert!(matches(r"\x{41}\101\0", "AA\0"));
        assert!(matches(r"[[:alpha:]]+", "abc"));
        assert!(matches(r"(?i)ABC", "abc"));
        assert!(matches(r"a{1000}", &"a".repeat(1000)));
        assert!(matches(r"\pL", "é"));
    }

    #[test]
    fn rust_only_syntax_is_refused() {
        assert!(refusal("[a[b]]").contains("nested class"));
        assert!(refusal("[a&&b]").contains("literal characters in Go"));
        assert!(refusal(r"\<word\>").contains("literal text in Go"));
        assert!(refusal(r"\b{start}x").contains("literal text in Go"));
        assert!(refusal(r"\p{^Greek}").contains("does not compile"));
        assert!(refusal(r"\Qa.b\E").contains("does not compile"));
        assert!(refusal("(").contains("does not compile"));
    }

    #[test]
    fn what_go_refuses_is_invalid() {
        for (pattern, says) in [
            (r"\u0041", "no `\\u`"),
            ("(?x) a", "no `x` flag"),
            (r"(a)\1", "backreferences"),
            ("(?P<a.b>x)", "group name"),
            ("a{1001}", "up to 1000"),
        ] {
            match compile(pattern) {
                Err(ParseErrorKind::Invalid(why)) => assert!(why.contains(says), "{why}"),
                other => panic!("`{pattern}`: {other:?}"),
            }
        }
        assert!(matches!(
            compile("[a[b]]"),
            Err(ParseErrorKind::Unsupported(_))
        ));
    }

    #[test]
    fn program_size_is_bounded() {
        assert!(refusal(r"\pL{1000}\pL{1000}\pL{1000}").contains("does not compile"));
    }
}
