//! The text form: a hand-written lexer and recursive-descent parser with positions.
//!
//! Positions are 0-based character offsets, not byte offsets: filters are full of Chinese, and an editor underlines
//! characters. Errors name what was expected and what was found, in words a marketer can act on.

use serde_json::Number;

use super::{
    Behaviour, Cmp, Condition, ConsentState, DateOperand, FieldRef, Filter, Literal, Measure, Operand, Period,
    PropertyTest, RelativeDay, RelativeRange, TagMode, Test, Unit, Window,
};

/// A text that is not a filter: where (0-based character offset) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct FilterParseError {
    pub position: usize,
    pub message: String,
}

/// How deeply a filter may nest, counting the filter itself as the first level. The text form spends a level per
/// `(` and per `not`, the JSON form one per `and`, `or` and `not` object; written either way, a tree of the same
/// depth fits both. The limit keeps the recursive parser's stack small whatever the input.
pub(super) const MAX_DEPTH: usize = 64;

pub fn parse(text: &str) -> Result<Filter, FilterParseError> {
    let (tokens, end) = lex(text);
    let mut parser = Parser { tokens, end, next: 0, depth: 1 };
    if parser.peek().kind == Kind::End {
        return Err(parser.error_here("the filter is empty; write a condition such as country = \"中国\""));
    }
    let filter = parser.or_expression()?;
    match parser.peek().kind {
        Kind::End => Ok(filter),
        Kind::Close => Err(parser.error_here("this \")\" closes no \"(\"")),
        _ => Err(parser.unexpected("\"and\", \"or\" or the end of the text")),
    }
}

const COMPARISONS: &str = "a comparison (=, !=, <, <=, >, >=)";
const OPERATORS: &str = "an operator (=, !=, <, <=, >, >=, contains, starts_with, ends_with, matches, in, not in, \
                         contains_any, contains_all, between, is empty, is not empty, during, anniversary)";
const VALUE: &str = "a value (a \"string\", a number, true, false, today, yesterday or tomorrow)";
const LITERAL: &str = "a value (a \"string\", a number, true or false)";
const DATE: &str = "a date (\"YYYY-MM-DD\") or today, yesterday, tomorrow";
const RANGE: &str = "a range (today, yesterday, tomorrow, last N days, next N weeks, this month, ...)";
const OPERATOR_WORDS: [&str; 12] = [
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "in",
    "not",
    "contains_any",
    "contains_all",
    "is",
    "between",
    "during",
    "anniversary",
];
const FUNCTIONS: &str =
    "tag, tag_any, tag_all, tag_none, stage_reached, in_segment, has_identity, consent, count, first and last";

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// A keyword, field name, property name or bare key: ASCII letters, digits, `_` and `.`, not starting with a
    /// digit or `.`. Keywords are compared without regard to case; names keep the case they were written in.
    Word(String),
    /// A double-quoted string, escapes resolved.
    Text(String),
    Number(Number),
    Cmp(Cmp),
    Open,
    Close,
    Comma,
    /// What the lexer could not read; the parser reports it when it gets there.
    Invalid(String),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    position: usize,
}

/// Reads the whole text into tokens, stopping after the first invalid one, and returns them with the end of text.
fn lex(text: &str) -> (Vec<Token>, Token) {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        if c.is_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        let next = chars.get(at + 1).copied();
        let (kind, length) = match c {
            '(' => (Kind::Open, 1),
            ')' => (Kind::Close, 1),
            ',' => (Kind::Comma, 1),
            '=' => (Kind::Cmp(Cmp::Eq), 1),
            '!' if next == Some('=') => (Kind::Cmp(Cmp::Ne), 2),
            '<' if next == Some('=') => (Kind::Cmp(Cmp::Le), 2),
            '<' => (Kind::Cmp(Cmp::Lt), 1),
            '>' if next == Some('=') => (Kind::Cmp(Cmp::Ge), 2),
            '>' => (Kind::Cmp(Cmp::Gt), 1),
            '"' => match lex_string(&chars, &mut at) {
                Ok(text) => (Kind::Text(text), 0),
                Err(invalid) => {
                    tokens.push(invalid);
                    break;
                }
            },
            '-' | '0'..='9' => lex_number(&chars, &mut at),
            'a'..='z' | 'A'..='Z' | '_' => {
                let length = chars[at..].iter().take_while(|&&c| is_word_char(c)).count();
                (Kind::Word(chars[at..at + length].iter().collect()), length)
            }
            '!' => (Kind::Invalid("unexpected \"!\"; write != for \"not equal\" or not before a condition".into()), 0),
            c if c.is_alphabetic() => {
                (Kind::Invalid(format!("unexpected \"{c}\"; text values are written in double quotes")), 0)
            }
            c => (Kind::Invalid(format!("unexpected character \"{}\"", c.escape_debug())), 0),
        };
        at += length;
        let invalid = matches!(kind, Kind::Invalid(_));
        tokens.push(Token { kind, position: start });
        if invalid {
            break;
        }
    }
    (tokens, Token { kind: Kind::End, position: chars.len() })
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Reads a string starting at the opening quote; `at` ends after the closing quote. The error is a ready token.
fn lex_string(chars: &[char], at: &mut usize) -> Result<String, Token> {
    let open = *at;
    let invalid = |position: usize, message: String| Token { kind: Kind::Invalid(message), position };
    let unterminated = || invalid(open, "unterminated string: the \" that starts it has no closing \"".into());
    let mut text = String::new();
    *at += 1;
    loop {
        let Some(&c) = chars.get(*at) else { return Err(unterminated()) };
        *at += 1;
        match c {
            '"' => return Ok(text),
            '\\' => {
                let escape = *at - 1;
                let Some(&kind) = chars.get(*at) else { return Err(unterminated()) };
                *at += 1;
                match kind {
                    '"' => text.push('"'),
                    '\\' => text.push('\\'),
                    'n' => text.push('\n'),
                    't' => text.push('\t'),
                    'r' => text.push('\r'),
                    'u' => {
                        let message = "\\u needs four hex digits naming a character, e.g. \\u4e2d";
                        let unit = hex4(chars, at).ok_or_else(|| invalid(escape, message.into()))?;
                        let code = if (0xD800..0xDC00).contains(&unit) {
                            // A character beyond the BMP written as a UTF-16 surrogate pair: \ud83d\ude00.
                            let low = (chars.get(*at) == Some(&'\\') && chars.get(*at + 1) == Some(&'u'))
                                .then(|| {
                                    *at += 2;
                                    hex4(chars, at)
                                })
                                .flatten()
                                .filter(|low| (0xDC00..0xE000).contains(low));
                            low.map(|low| 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                        } else {
                            Some(unit)
                        };
                        text.push(code.and_then(char::from_u32).ok_or_else(|| invalid(escape, message.into()))?);
                    }
                    other => {
                        let message = format!(
                            "unknown escape \"\\{}\" in a string; the escapes are \\\" \\\\ \\n \\t \\r and \\uXXXX",
                            other.escape_debug()
                        );
                        return Err(invalid(escape, message));
                    }
                }
            }
            c => text.push(c),
        }
    }
}

fn hex4(chars: &[char], at: &mut usize) -> Option<u32> {
    let digits: String = chars.get(*at..*at + 4)?.iter().collect();
    let value = u32::from_str_radix(&digits, 16).ok().filter(|_| digits.chars().all(|c| c.is_ascii_hexdigit()))?;
    *at += 4;
    Some(value)
}

/// An optional minus, digits, an optional fraction and exponent. Integers stay integers; an integer too large for
/// 64 bits becomes a float, as in JSON.
fn lex_number(chars: &[char], at: &mut usize) -> (Kind, usize) {
    let start = *at;
    let digits_from =
        |from: usize| chars.get(from..).map_or(0, |rest| rest.iter().take_while(|c| c.is_ascii_digit()).count());
    let mut end = start + usize::from(chars[start] == '-');
    let integer_digits = digits_from(end);
    if integer_digits == 0 {
        return (Kind::Invalid("expected a digit after \"-\"".into()), 0);
    }
    end += integer_digits;
    let mut float = false;
    if chars.get(end) == Some(&'.') && digits_from(end + 1) > 0 {
        float = true;
        end += 1 + digits_from(end + 1);
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let sign = usize::from(matches!(chars.get(end + 1), Some('+' | '-')));
        let exponent_digits = digits_from(end + 1 + sign);
        if exponent_digits > 0 {
            float = true;
            end += 1 + sign + exponent_digits;
        }
    }
    let literal: String = chars[start..end].iter().collect();
    let as_float = || literal.parse::<f64>().ok().and_then(Number::from_f64);
    let number = if float {
        as_float()
    } else if literal.starts_with('-') {
        literal.parse::<i64>().ok().map(Number::from).or_else(as_float)
    } else {
        literal.parse::<u64>().ok().map(Number::from).or_else(as_float)
    };
    match number {
        Some(number) => (Kind::Number(number), end - start),
        None => (Kind::Invalid(format!("the number {literal} is too large")), 0),
    }
}

struct Parser {
    tokens: Vec<Token>,
    end: Token,
    next: usize,
    depth: usize,
}

type Parsed<T> = Result<T, FilterParseError>;

impl Parser {
    fn or_expression(&mut self) -> Parsed<Filter> {
        let mut members = vec![self.and_expression()?];
        while self.eat_word("or") {
            members.push(self.and_expression()?);
        }
        Ok(group(members, Junction::Or))
    }

    fn and_expression(&mut self) -> Parsed<Filter> {
        let mut members = vec![self.unary()?];
        while self.eat_word("and") {
            members.push(self.unary()?);
        }
        Ok(group(members, Junction::And))
    }

    fn unary(&mut self) -> Parsed<Filter> {
        if self.at_word("not") {
            self.descend()?;
            self.bump();
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner?)));
        }
        match &self.peek().kind {
            Kind::Open => {
                let open = self.peek().position;
                self.descend()?;
                self.bump();
                let inner = self.or_expression();
                self.depth -= 1;
                let inner = inner?;
                self.expect(&Kind::Close, &format!("\")\" to close the \"(\" at character {open}"))?;
                Ok(inner)
            }
            Kind::Word(_) => Ok(Filter::Cond(self.condition()?)),
            _ => Err(self.unexpected("a condition")),
        }
    }

    fn descend(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(&format!("the filter nests too deeply (at most {MAX_DEPTH} levels)")));
        }
        Ok(())
    }

    fn condition(&mut self) -> Parsed<Condition> {
        let Token { kind: Kind::Word(word), position } = self.bump() else {
            return Err(self.unexpected("a condition"));
        };
        let called = self.peek().kind == Kind::Open;
        let name = word.to_ascii_lowercase();
        match name.as_str() {
            "tag" => self.tag(TagMode::Has, &name),
            "tag_any" => self.tag(TagMode::Any, &name),
            "tag_all" => self.tag(TagMode::All, &name),
            "tag_none" => self.tag(TagMode::None, &name),
            "stage" => {
                let Kind::Cmp(op) = self.peek().kind else { return Err(self.unexpected(&after(COMPARISONS, "stage"))) };
                self.bump();
                let stage = self.key(&after("a stage key", &format!("stage {}", op.symbol())))?;
                Ok(Condition::Stage { op, stage })
            }
            "stage_reached" => self.stage_reached(),
            "in_segment" => {
                self.open(&name)?;
                let segment = match self.peek().kind.clone() {
                    Kind::Text(segment) => segment,
                    Kind::Number(id) if id.is_u64() => id.to_string(),
                    _ => return Err(self.unexpected("a segment id in double quotes, e.g. in_segment(\"12\")")),
                };
                self.bump();
                self.close()?;
                Ok(Condition::InSegment { segment })
            }
            "has_identity" => {
                self.open(&name)?;
                let kind = self.key("an identity kind, e.g. has_identity(\"wechat_openid\")")?;
                self.close()?;
                Ok(Condition::HasIdentity { kind })
            }
            "consent" => self.consent(),
            "count" => self.behaviour(Measure::Count),
            "first" => self.behaviour(Measure::First),
            "last" => self.behaviour(Measure::Last),
            "and" | "or" => Err(error(position, format!("expected a condition, found \"{word}\""))),
            _ if called => Err(error(
                position,
                format!("unknown condition \"{word}(...)\"; the conditions written so are {FUNCTIONS}"),
            )),
            _ => {
                let field = field_ref(&word).ok_or_else(|| unknown_field(&word, position))?;
                let test = self.test(&word)?;
                Ok(Condition::Field { field, test })
            }
        }
    }

    fn tag(&mut self, mode: TagMode, name: &str) -> Parsed<Condition> {
        self.open(name)?;
        let expected = "a tag path in double quotes, e.g. \"行业/制造业\"";
        let mut paths = vec![self.text(expected)?];
        while self.peek().kind == Kind::Comma {
            if mode == TagMode::Has {
                return Err(self.error_here("tag(...) takes one path; use tag_any(...) or tag_all(...) for several"));
            }
            self.bump();
            paths.push(self.text(expected)?);
        }
        self.close()?;
        Ok(Condition::Tag { mode, paths })
    }

    fn stage_reached(&mut self) -> Parsed<Condition> {
        self.open("stage_reached")?;
        let stage = self.key("a stage key, e.g. stage_reached(mql)")?;
        let since = if self.eat(&Kind::Comma) {
            self.expect_word("since", "\"since\" after the stage")?;
            Some(self.date_operand(&after(DATE, "since"))?)
        } else {
            None
        };
        self.close()?;
        Ok(Condition::StageReached { stage, since })
    }

    fn consent(&mut self) -> Parsed<Condition> {
        self.open("consent")?;
        let channel = self.key("a channel, e.g. consent(\"email\")")?;
        self.close()?;
        match self.peek().kind {
            Kind::Cmp(Cmp::Eq) => {}
            Kind::Cmp(_) => {
                return Err(self.error_here("consent(...) is compared with = only, e.g. consent(\"email\") = granted"));
            }
            _ => return Err(self.unexpected("\"=\" after \"consent(...)\"")),
        }
        self.bump();
        let state = match &self.peek().kind {
            Kind::Word(word) | Kind::Text(word) => ConsentState::parse(word),
            _ => None,
        };
        let state = state.ok_or_else(|| self.unexpected("granted, denied or unknown after \"consent(...) =\""))?;
        self.bump();
        Ok(Condition::Consent { channel, state })
    }

    fn behaviour(&mut self, measure: Measure) -> Parsed<Condition> {
        let name = measure.as_str();
        self.open(name)?;
        self.expect_word("event", &format!("\"event\" after \"{name}(\""))?;
        let event = match self.peek().kind.clone() {
            Kind::Text(event) | Kind::Word(event) => event,
            _ => return Err(self.unexpected("the event type after \"event\", e.g. event \"page_viewed\"")),
        };
        self.bump();
        let mut properties = Vec::new();
        if self.eat_word("where") {
            loop {
                let property = match self.peek().kind.clone() {
                    Kind::Word(property) | Kind::Text(property) => property,
                    _ => return Err(self.unexpected("a property name, e.g. url or \"utm source\"")),
                };
                self.bump();
                let test = self.test(&property)?;
                properties.push(PropertyTest { property, test });
                if !self.eat_word("and") {
                    break;
                }
            }
        }
        let has_window = self.eat(&Kind::Comma);
        let window = if has_window { self.window()? } else { Window::Ever };
        let expected = match (has_window, properties.is_empty()) {
            (true, _) => "\")\"",
            (false, true) => "\"where\", \",\" or \")\"",
            (false, false) => "\"and\", \",\" or \")\"",
        };
        self.expect(&Kind::Close, expected)?;
        let subject = format!("{name}(...)");
        let test = match measure {
            Measure::Count => self.count_test(&subject)?,
            Measure::First | Measure::Last => self.date_test(&subject)?,
        };
        Ok(Condition::Behaviour(Behaviour { measure, event, properties, window, test }))
    }

    fn window(&mut self) -> Parsed<Window> {
        if self.eat_word("ever") {
            Ok(Window::Ever)
        } else if self.eat_word("last") {
            let days = self.whole_number("last")?;
            let unit_ok = self.at_word("days") || (days == 1 && self.at_word("day"));
            if !unit_ok {
                return Err(self.unexpected(&after("\"days\"", &format!("last {days}"))));
            }
            self.bump();
            Ok(Window::LastDays(days))
        } else if self.eat_word("between") {
            let from = self.date_operand(&after(DATE, "between"))?;
            self.expect_word("and", "\"and\" between the two dates")?;
            let to = self.date_operand(&after(DATE, "and"))?;
            Ok(Window::Between(from, to))
        } else {
            Err(self
                .unexpected("a window (last N days, ever or between \"YYYY-MM-DD\" and \"YYYY-MM-DD\") after \",\""))
        }
    }

    fn count_test(&mut self, subject: &str) -> Parsed<Test> {
        let number = |parser: &mut Parser, after_what: &str| match parser.peek().kind.clone() {
            Kind::Number(number) => {
                parser.bump();
                Ok(Operand::Literal(Literal::Number(number)))
            }
            _ => Err(parser.unexpected(&after("a number", after_what))),
        };
        if let Kind::Cmp(op) = self.peek().kind {
            self.bump();
            return Ok(Test::Cmp(op, number(self, &format!("{subject} {}", op.symbol()))?));
        }
        if self.eat_word("between") {
            let low = number(self, &format!("{subject} between"))?;
            self.expect_word("and", "\"and\" between the two numbers")?;
            return Ok(Test::Between(low, number(self, "and")?));
        }
        Err(self.unexpected(&after(&format!("{COMPARISONS} or between"), subject)))
    }

    fn date_test(&mut self, subject: &str) -> Parsed<Test> {
        let date = |parser: &mut Parser, after_what: &str| {
            Ok(match parser.date_operand(&after(DATE, after_what))? {
                DateOperand::Text(text) => Operand::Literal(Literal::Text(text)),
                DateOperand::Day(day) => Operand::Day(day),
            })
        };
        if let Kind::Cmp(op) = self.peek().kind {
            self.bump();
            return Ok(Test::Cmp(op, date(self, &format!("{subject} {}", op.symbol()))?));
        }
        if self.eat_word("between") {
            let from = date(self, &format!("{subject} between"))?;
            self.expect_word("and", "\"and\" between the two dates")?;
            return Ok(Test::Between(from, date(self, "and")?));
        }
        if self.eat_word("during") {
            return Ok(Test::During(self.range(&format!("{subject} during"))?));
        }
        if self.eat_word("is") {
            return self.emptiness(subject);
        }
        let expected = "a date test (=, !=, <, <=, >, >=, between, during, is empty, is not empty)";
        Err(self.unexpected(&after(expected, subject)))
    }

    /// The test after a field or an event property: `= "x"`, `in ("a", "b")`, `is empty`, `during last 7 days`, ….
    fn test(&mut self, subject: &str) -> Parsed<Test> {
        if let Kind::Cmp(op) = self.peek().kind {
            self.bump();
            return Ok(Test::Cmp(op, self.operand(&format!("{subject} {}", op.symbol()))?));
        }
        let operator = match &self.peek().kind {
            Kind::Word(word) if OPERATOR_WORDS.iter().any(|known| word.eq_ignore_ascii_case(known)) => {
                word.to_ascii_lowercase()
            }
            _ => return Err(self.unexpected(&after(OPERATORS, subject))),
        };
        self.bump();
        let written = format!("{subject} {operator}");
        match operator.as_str() {
            "contains" => Ok(Test::Contains(self.text(&after("a \"string\"", &written))?)),
            "starts_with" => Ok(Test::StartsWith(self.text(&after("a \"string\"", &written))?)),
            "ends_with" => Ok(Test::EndsWith(self.text(&after("a \"string\"", &written))?)),
            "matches" => Ok(Test::Matches(self.text(&after("a regular expression in double quotes", &written))?)),
            "in" => Ok(Test::In(self.list(&written)?)),
            "not" => {
                self.expect_word("in", &after("\"in\"", &written))?;
                Ok(Test::NotIn(self.list(&format!("{subject} not in"))?))
            }
            "contains_any" => Ok(Test::ContainsAny(self.list(&written)?)),
            "contains_all" => Ok(Test::ContainsAll(self.list(&written)?)),
            "is" => self.emptiness(subject),
            "between" => {
                let low = self.operand(&written)?;
                self.expect_word("and", "\"and\" between the two values")?;
                Ok(Test::Between(low, self.operand("and")?))
            }
            "during" => Ok(Test::During(self.range(&written)?)),
            _ => Ok(Test::Anniversary(self.range(&written)?)),
        }
    }

    /// What follows `is`: `empty` or `not empty`.
    fn emptiness(&mut self, subject: &str) -> Parsed<Test> {
        if self.eat_word("empty") {
            return Ok(Test::Empty);
        }
        if self.eat_word("not") {
            self.expect_word("empty", &after("\"empty\"", &format!("{subject} is not")))?;
            return Ok(Test::NotEmpty);
        }
        Err(self.unexpected(&after("\"empty\" or \"not empty\"", &format!("{subject} is"))))
    }

    fn operand(&mut self, after_what: &str) -> Parsed<Operand> {
        if let Some(day) = self.relative_day() {
            return Ok(Operand::Day(day));
        }
        self.literal(&after(VALUE, after_what)).map(Operand::Literal)
    }

    fn literal(&mut self, expected: &str) -> Parsed<Literal> {
        let literal = match &self.peek().kind {
            Kind::Text(text) => Literal::Text(text.clone()),
            Kind::Number(number) => Literal::Number(number.clone()),
            Kind::Word(word) if word.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Kind::Word(word) if word.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Kind::Word(word) => {
                let hint = format!("; text values are written in double quotes, e.g. \"{word}\"");
                return Err(error(self.peek().position, format!("expected {expected}, found \"{word}\"{hint}")));
            }
            _ => return Err(self.unexpected(expected)),
        };
        self.bump();
        Ok(literal)
    }

    /// `(v, …)`: one value or more.
    fn list(&mut self, after_what: &str) -> Parsed<Vec<Literal>> {
        self.expect(&Kind::Open, &after("\"(\"", after_what))?;
        let mut values = vec![self.literal(LITERAL)?];
        while self.eat(&Kind::Comma) {
            values.push(self.literal(LITERAL)?);
        }
        self.expect(&Kind::Close, "\",\" or \")\" in the list")?;
        Ok(values)
    }

    fn range(&mut self, after_what: &str) -> Parsed<RelativeRange> {
        if let Some(day) = self.relative_day() {
            return Ok(RelativeRange::Day(day));
        }
        for word in ["last", "next"] {
            if self.eat_word(word) {
                let count = self.whole_number(word)?;
                let units =
                    [("days", "day", Unit::Days), ("weeks", "week", Unit::Weeks), ("months", "month", Unit::Months)];
                let unit = units
                    .iter()
                    .find(|(plural, singular, _)| self.at_word(plural) || (count == 1 && self.at_word(singular)));
                let Some(&(_, _, unit)) = unit else {
                    return Err(self.unexpected(&after("days, weeks or months", &format!("{word} {count}"))));
                };
                self.bump();
                return Ok(if word == "last" {
                    RelativeRange::Last(count, unit)
                } else {
                    RelativeRange::Next(count, unit)
                });
            }
        }
        if self.eat_word("this") {
            let periods = [("week", Period::Week), ("month", Period::Month), ("year", Period::Year)];
            let Some(&(_, period)) = periods.iter().find(|(word, _)| self.at_word(word)) else {
                return Err(self.unexpected(&after("week, month or year", "this")));
            };
            self.bump();
            return Ok(RelativeRange::This(period));
        }
        Err(self.unexpected(&after(RANGE, after_what)))
    }

    fn relative_day(&mut self) -> Option<RelativeDay> {
        let days =
            [("today", RelativeDay::Today), ("yesterday", RelativeDay::Yesterday), ("tomorrow", RelativeDay::Tomorrow)];
        let &(_, day) = days.iter().find(|(word, _)| self.at_word(word))?;
        self.bump();
        Some(day)
    }

    fn date_operand(&mut self, expected: &str) -> Parsed<DateOperand> {
        if let Some(day) = self.relative_day() {
            return Ok(DateOperand::Day(day));
        }
        self.text(expected).map(DateOperand::Text)
    }

    fn whole_number(&mut self, after_what: &str) -> Parsed<u32> {
        let count = match &self.peek().kind {
            Kind::Number(number) => number.as_u64().and_then(|count| u32::try_from(count).ok()),
            _ => None,
        };
        let count = count.ok_or_else(|| self.unexpected(&after("a whole number", after_what)))?;
        self.bump();
        Ok(count)
    }

    /// A stage key, identity kind or channel: a bare word as written, or a string.
    fn key(&mut self, expected: &str) -> Parsed<String> {
        match self.peek().kind.clone() {
            Kind::Word(key) | Kind::Text(key) => {
                self.bump();
                Ok(key)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn text(&mut self, expected: &str) -> Parsed<String> {
        let Kind::Text(text) = self.peek().kind.clone() else { return Err(self.unexpected(expected)) };
        self.bump();
        Ok(text)
    }

    fn open(&mut self, name: &str) -> Parsed<()> {
        self.expect(&Kind::Open, &after("\"(\"", name))
    }

    fn close(&mut self) -> Parsed<()> {
        self.expect(&Kind::Close, "\")\"")
    }

    fn peek(&self) -> &Token {
        self.tokens.get(self.next).unwrap_or(&self.end)
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        self.next = (self.next + 1).min(self.tokens.len());
        token
    }

    fn at_word(&self, keyword: &str) -> bool {
        matches!(&self.peek().kind, Kind::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn eat_word(&mut self, keyword: &str) -> bool {
        let found = self.at_word(keyword);
        if found {
            self.bump();
        }
        found
    }

    fn expect_word(&mut self, keyword: &str, expected: &str) -> Parsed<()> {
        if self.eat_word(keyword) { Ok(()) } else { Err(self.unexpected(expected)) }
    }

    fn eat(&mut self, kind: &Kind) -> bool {
        let found = self.peek().kind == *kind;
        if found {
            self.bump();
        }
        found
    }

    fn expect(&mut self, kind: &Kind, expected: &str) -> Parsed<()> {
        if self.eat(kind) { Ok(()) } else { Err(self.unexpected(expected)) }
    }

    /// `expected …, found …` at the next token; a token the lexer could not read reports its own problem.
    fn unexpected(&self, expected: &str) -> FilterParseError {
        let token = self.peek();
        let found = match &token.kind {
            Kind::Invalid(message) => return error(token.position, message.clone()),
            Kind::Word(word) => format!("\"{word}\""),
            Kind::Text(text) => {
                let shown: String = text.chars().take(40).collect();
                let ellipsis = if shown.len() < text.len() { "…" } else { "" };
                format!("the string \"{}{ellipsis}\"", shown.escape_debug())
            }
            Kind::Number(number) => format!("the number {number}"),
            Kind::Cmp(op) => format!("\"{}\"", op.symbol()),
            Kind::Open => "\"(\"".to_owned(),
            Kind::Close => "\")\"".to_owned(),
            Kind::Comma => "\",\"".to_owned(),
            Kind::End => "end of text".to_owned(),
        };
        error(token.position, format!("expected {expected}, found {found}"))
    }

    fn error_here(&self, message: &str) -> FilterParseError {
        error(self.peek().position, message.to_owned())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Junction {
    And,
    Or,
}

/// A group of one is its member; members that are groups of the same kind are spliced in.
fn group(members: Vec<Filter>, junction: Junction) -> Filter {
    let members = match <[Filter; 1]>::try_from(members) {
        Ok([only]) => return only,
        Err(members) => members,
    };
    let mut flat = Vec::with_capacity(members.len());
    for member in members {
        match member {
            Filter::And(inner) if junction == Junction::And => flat.extend(inner),
            Filter::Or(inner) if junction == Junction::Or => flat.extend(inner),
            other => flat.push(other),
        }
    }
    match junction {
        Junction::And => Filter::And(flat),
        Junction::Or => Filter::Or(flat),
    }
}

fn after(expected: &str, what: &str) -> String {
    format!("{expected} after \"{what}\"")
}

fn error(position: usize, message: String) -> FilterParseError {
    FilterParseError { position, message }
}

/// A field name as written: system names in any case, `fields.KEY` and `company.KEY` with the key as written.
fn field_ref(word: &str) -> Option<FieldRef> {
    match word.split_once('.') {
        Some((prefix, key)) if prefix.eq_ignore_ascii_case("fields") && !key.is_empty() => {
            Some(FieldRef::Custom(key.to_owned()))
        }
        Some((prefix, key)) if prefix.eq_ignore_ascii_case("company") && !key.is_empty() => {
            Some(FieldRef::Company(key.to_owned()))
        }
        Some(_) => None,
        None => FieldRef::parse(&word.to_ascii_lowercase()),
    }
}

fn unknown_field(word: &str, position: usize) -> FilterParseError {
    let names: Vec<&str> = FieldRef::SYSTEM.iter().map(|(name, _)| *name).collect();
    let lower = word.to_ascii_lowercase();
    let suggestion = names
        .iter()
        .map(|name| (edit_distance(&lower, name), *name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| format!(" (did you mean \"{name}\"?)"))
        .unwrap_or_default();
    let message =
        format!("unknown field \"{word}\"{suggestion}; fields are {}, or fields.KEY / company.KEY", names.join(", "));
    error(position, message)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
