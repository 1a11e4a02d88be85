//! The parser's view of the tokens: lookahead over a lazily filled buffer, keyword matching
//! as ClickHouse's `ParserKeyword` does it (bare words only, any letter case), the error for
//! the token the parse stopped at, and the rendering of the checked tokens.

use super::Rejection;
use super::lexer::{Kind, Lexer, Token, ident_text};

/// Tokens of one statement, read as far as the parser has looked.
#[derive(Debug)]
pub struct Cursor<'s> {
    pub src: &'s str,
    lexer: Lexer<'s>,
    tokens: Vec<Token>,
    pub pos: usize,
    /// Indices of function-name tokens, rendered without a space before their `(`.
    calls: Vec<usize>,
}

impl<'s> Cursor<'s> {
    pub fn new(src: &'s str) -> Self {
        Cursor { src, lexer: Lexer::new(src), tokens: Vec::with_capacity(32), pos: 0, calls: Vec::new() }
    }

    /// The token `n` places ahead of the current one.
    pub fn peek_at(&mut self, n: usize) -> Token {
        while self.tokens.len() <= self.pos + n {
            let t = self.lexer.next_token();
            self.tokens.push(t);
            if matches!(t.kind, Kind::End | Kind::Bad(_)) {
                // Nothing after the end or a refused token: it repeats.
                while self.tokens.len() <= self.pos + n {
                    self.tokens.push(t);
                }
            }
        }
        self.tokens[self.pos + n]
    }

    pub fn peek(&mut self) -> Token {
        self.peek_at(0)
    }

    pub fn kind(&mut self) -> Kind {
        self.peek().kind
    }

    pub fn kind_at(&mut self, n: usize) -> Kind {
        self.peek_at(n).kind
    }

    /// The token at an absolute index (already read).
    pub fn token(&self, index: usize) -> Token {
        self.tokens[index]
    }

    pub fn advance(&mut self) -> Token {
        let t = self.peek();
        self.pos += 1;
        t
    }

    /// Consumes a token of `kind`.
    pub fn eat(&mut self, kind: Kind) -> bool {
        if self.kind() == kind {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, kind: Kind, what: &str) -> Result<Token, Rejection> {
        if self.kind() == kind { Ok(self.advance()) } else { Err(self.error(what)) }
    }

    /// Whether the token `n` ahead is the bare word `word` (any letter case).
    pub fn is_kw_at(&mut self, n: usize, word: &str) -> bool {
        let t = self.peek_at(n);
        t.kind == Kind::Word && self.src[t.start..t.end].eq_ignore_ascii_case(word)
    }

    pub fn is_kw(&mut self, word: &str) -> bool {
        self.is_kw_at(0, word)
    }

    /// Whether the next tokens are the bare words of `phrase` (`"ORDER BY"`).
    pub fn is_phrase(&mut self, phrase: &str) -> bool {
        phrase.split(' ').enumerate().all(|(i, w)| self.is_kw_at(i, w))
    }

    /// Consumes the bare words of `phrase` if they come next.
    pub fn kw(&mut self, phrase: &str) -> bool {
        if self.is_phrase(phrase) {
            self.pos += phrase.split(' ').count();
            true
        } else {
            false
        }
    }

    /// Consumes the first of `phrases` that comes next; whether one did.
    pub fn kw_any(&mut self, phrases: &[&str]) -> bool {
        phrases.iter().any(|p| self.kw(p))
    }

    pub fn expect_kw(&mut self, phrase: &str) -> Result<(), Rejection> {
        if self.kw(phrase) { Ok(()) } else { Err(self.error(phrase)) }
    }

    /// The current bare word in upper case, if it is one.
    pub fn word_upper(&mut self) -> Option<String> {
        let t = self.peek();
        (t.kind == Kind::Word).then(|| self.src[t.start..t.end].to_ascii_uppercase())
    }

    pub fn is_ident(&mut self) -> bool {
        matches!(self.kind(), Kind::Word | Kind::Quoted)
    }

    /// Consumes an identifier (bare or quoted) and returns its name.
    pub fn ident(&mut self, what: &str) -> Result<&'s str, Rejection> {
        if self.is_ident() {
            let t = self.advance();
            Ok(ident_text(self.src, &t))
        } else {
            Err(self.error(what))
        }
    }

    pub fn name_of(&self, token: &Token) -> &'s str {
        ident_text(self.src, token)
    }

    /// The refusal for the current token: its own reason if the lexer refused it.
    pub fn error(&mut self, expected: &str) -> Rejection {
        let t = self.peek();
        match t.kind {
            Kind::Bad(reason) => Rejection::Ambiguous(reason),
            Kind::End => Rejection::Unparseable(format!("expected {expected} at the end of the query")),
            _ => {
                let text: String = self.src[t.start..t.end].chars().take(40).collect();
                Rejection::Unparseable(format!("expected {expected} at offset {}, found `{text}`", t.start))
            }
        }
    }

    /// Marks the token at `index` as a function name (for rendering).
    pub fn mark_call(&mut self, index: usize) {
        self.calls.push(index);
    }

    /// The source text of the tokens `from..to`, rendered as the guard forwards it: comments
    /// and layout dropped, quoted identifiers in backquotes, one space between tokens except
    /// where none can change how ClickHouse splits them.
    pub fn render(&mut self, from: usize, to: usize, out: &mut String) {
        self.calls.sort_unstable();
        let tokens = &self.tokens[from..to];
        for (i, t) in tokens.iter().enumerate() {
            let call = i > 0 && t.kind == Kind::LParen && self.calls.binary_search(&(from + i - 1)).is_ok();
            if i > 0 && !call && needs_space(&tokens[i - 1], t, i.checked_sub(2).map(|j| tokens[j].kind)) {
                out.push(' ');
            }
            match t.kind {
                Kind::Quoted => {
                    out.push('`');
                    out.push_str(&self.src[t.start + 1..t.end - 1]);
                    out.push('`');
                }
                _ => out.push_str(&self.src[t.start..t.end]),
            }
        }
    }
}

/// Whether a space separates `a` from `b` (`before_a` is the token before `a`). Tokens are
/// joined only where no lexer can read the joined text as other tokens: inside brackets,
/// before commas, around the dot of a qualified name, and a unary minus with its number.
fn needs_space(a: &Token, b: &Token, before_a: Option<Kind>) -> bool {
    if matches!(a.kind, Kind::LParen | Kind::LBracket) || matches!(b.kind, Kind::RParen | Kind::RBracket | Kind::Comma)
    {
        return false;
    }
    if b.kind == Kind::Dot && matches!(a.kind, Kind::Word | Kind::Quoted | Kind::RParen | Kind::RBracket) {
        return false;
    }
    let operand =
        |k: Option<Kind>| matches!(k, Some(Kind::Word | Kind::Quoted | Kind::Number | Kind::RParen | Kind::RBracket));
    if a.kind == Kind::Dot
        && (matches!(b.kind, Kind::Word | Kind::Quoted | Kind::Star) || (b.kind == Kind::Number && operand(before_a)))
    {
        return false;
    }
    if matches!(a.kind, Kind::Minus | Kind::Plus)
        && b.kind == Kind::Number
        && before_a.is_none_or(|k| matches!(k, Kind::LParen | Kind::LBracket | Kind::Comma))
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(src: &str) -> String {
        let mut c = Cursor::new(src);
        let mut n = 0;
        while c.peek_at(n).kind != Kind::End {
            n += 1;
        }
        let mut out = String::new();
        c.render(0, n, &mut out);
        out
    }

    #[test]
    fn renders_tokens_without_comments() {
        assert_eq!(rendered("SELECT  a.b,\"c\" -- x\n FROM /* y */ `t`"), "SELECT a.b, `c` FROM `t`");
        assert_eq!(rendered("VALUES (-1, 'a''b'), (+2.5,-3)"), "VALUES (-1, 'a''b'), (+2.5, -3)");
        // Never joined: a minus after an operand, strings, numbers and dots.
        assert_eq!(rendered("5 - -1, 'a' 'b', 1 . 5, x.1, (x).a"), "5 - - 1, 'a' 'b', 1 .5, x.1, (x).a");
        assert_eq!(rendered("(. 5)"), "(. 5)");
        assert_eq!(rendered("5--1\n"), "5");
    }

    #[test]
    fn keywords_are_bare_words_in_any_case() {
        let mut c = Cursor::new("order By `select` x");
        assert!(c.kw("ORDER BY"));
        assert!(!c.is_kw("select"), "a quoted word is never a keyword");
        assert_eq!(c.ident("name").unwrap(), "select");
        assert_eq!(c.word_upper().as_deref(), Some("X"));
    }
}
