//! How findings are shown: miette's graphical report for people, JSON Lines for CI bots.
//!
//! Pure functions from findings to text; `main.rs` decides where the text goes.

use std::fmt;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError,
    MietteSpanContents, Severity, SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;

use crate::diagnostic::Error;
use crate::source::{LineIndex, Source};
use crate::terminal;

/// A finding with the part of the plan it points at, as miette reads them: the message, help
/// and labels with control characters escaped, the labels moved onto the [`Excerpt`].
struct Located<'a> {
    finding: &'a Error,
    excerpt: Excerpt<'a>,
}

impl fmt::Debug for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.finding, f)
    }
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&terminal::text(&self.finding.to_string()))
    }
}

impl std::error::Error for Located<'_> {}

impl Diagnostic for Located<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.finding.code()
    }
    fn severity(&self) -> Option<Severity> {
        self.finding.severity()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let help = self.finding.help()?.to_string();
        Some(Box::new(terminal::text(&help).into_owned()))
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.excerpt.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.excerpt.labels.iter().cloned()))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.excerpt)
    }
}

/// Lines of context miette shows above and below a label.
const CONTEXT_LINES: usize = 1;
/// A line longer than this (in characters) is cut to windows around the labels on it.
pub const LONG_LINE: usize = 256;
/// Characters kept on either side of a label's start and end on a long line.
const WINDOW: usize = 40;
/// Characters kept of a long line no label starts or ends on.
const HEAD: usize = 2 * WINDOW;
/// What stands for the characters left out of a long line.
const ELISION: &str = "…";

/// The lines a finding's labels point at, cut to size, in an offset space of its own.
///
/// miette's graphical handler prints each line of a snippet whole, panics on a label past
/// column 65,535 (review R4), and reading a span from the whole plan text scans it from the
/// start (quadratic in findings, review R3). So each finding is rendered from an excerpt:
/// blocks of whole lines around its labels, each line longer than [`LONG_LINE`] cut to windows
/// around the labels' ends; line numbers and the `[file:line:column]` header stay the plan's.
/// Characters that would act on the terminal are shown as `?`, byte for byte, so offsets hold.
struct Excerpt<'a> {
    /// The plan's name, safe for a terminal.
    name: String,
    text: &'a str,
    index: &'a LineIndex,
    blocks: Vec<Block>,
    /// The finding's labels, in the excerpt's offsets.
    labels: Vec<LabeledSpan>,
}

/// Consecutive lines of the plan, as shown.
struct Block {
    /// Where the block starts in the excerpt's offsets.
    base: usize,
    /// 0-based line of the plan the block starts on.
    first_line: usize,
    text: String,
    /// Parts of the plan the text holds: the plan's bytes and where they start in `text`.
    pieces: Vec<(Range<usize>, usize)>,
}

impl Block {
    /// The block-relative offset of a plan offset; one left out maps to the next piece kept.
    fn to_local(&self, offset: usize) -> usize {
        self.pieces
            .iter()
            .find(|(plan, _)| offset <= plan.end)
            .map_or(self.text.len(), |(plan, at)| {
                at + offset.saturating_sub(plan.start)
            })
    }

    /// The plan offset of a block-relative offset (inside an elision: the next piece's start).
    fn to_plan(&self, local: usize) -> usize {
        self.pieces
            .iter()
            .find(|(plan, at)| local <= at + plan.len())
            .map_or_else(
                || self.pieces.last().map_or(0, |(plan, _)| plan.end),
                |(plan, at)| plan.start + local.saturating_sub(*at),
            )
    }
}

impl<'a> Excerpt<'a> {
    fn of(source: &'a Source, finding: &Error) -> Self {
        let text: &str = &source.text;
        let index = source.line_index();
        let spans: Vec<LabeledSpan> = finding.labels().into_iter().flatten().collect();
        let bounds: Vec<Range<usize>> = spans.iter().map(|l| clamp(text, l)).collect();
        let mut excerpt = Excerpt {
            name: terminal::text(&source.name).into_owned(),
            text,
            index,
            blocks: Vec::new(),
            labels: Vec::new(),
        };
        let ends: Vec<usize> = bounds.iter().flat_map(|b| [b.start, b.end]).collect();
        let mut base = 0;
        for lines in line_blocks(index, &bounds) {
            let block = excerpt.block(base, lines, &ends);
            // One unused offset between blocks, so that no span reaches from one to the next.
            base += block.text.len() + 1;
            excerpt.blocks.push(block);
        }
        excerpt.labels = spans
            .iter()
            .zip(&bounds)
            .map(|(label, plan)| {
                let start = excerpt.to_excerpt(plan.start);
                let end = excerpt.to_excerpt(plan.end).max(start);
                let text = label.label().map(|t| terminal::text(t).into_owned());
                let span = SourceSpan::from(start..end);
                if label.primary() {
                    LabeledSpan::new_primary_with_span(text, span)
                } else {
                    LabeledSpan::new_with_span(text, span)
                }
            })
            .collect();
        excerpt
    }

    fn block(&self, base: usize, lines: Range<usize>, ends: &[usize]) -> Block {
        let mut block = Block {
            base,
            first_line: lines.start,
            text: String::new(),
            pieces: Vec::new(),
        };
        for line in lines {
            let bytes = self.index.line(line);
            let body = bytes.start..line_body_end(self.text, &bytes);
            let windows = if is_long(&self.text[body.clone()]) {
                windows(self.text, &body, ends)
            } else {
                vec![body.clone()]
            };
            if windows.first().is_some_and(|w| w.start > body.start) {
                block.text.push_str(ELISION);
            }
            for (i, window) in windows.iter().enumerate() {
                if i > 0 {
                    block.text.push_str(ELISION);
                }
                // The line break belongs to the last window when it reaches the line's end.
                let end = if window.end == body.end {
                    bytes.end
                } else {
                    window.end
                };
                block.pieces.push((window.start..end, block.text.len()));
                push_shown(&mut block.text, &self.text[window.start..end]);
            }
            if windows.last().is_some_and(|w| w.end < body.end) {
                block.text.push_str(ELISION);
                block.pieces.push((body.end..bytes.end, block.text.len()));
                push_shown(&mut block.text, &self.text[body.end..bytes.end]);
            }
        }
        block
    }

    /// A plan offset in the excerpt's offsets.
    fn to_excerpt(&self, offset: usize) -> usize {
        let line = self.index.line_of(offset);
        self.blocks
            .iter()
            .rfind(|b| b.first_line <= line)
            .map_or(0, |b| b.base + b.to_local(offset))
    }

    fn block_at(&self, span: &SourceSpan) -> Option<&Block> {
        let end = span.offset() + span.len();
        self.blocks
            .iter()
            .find(|b| b.base <= span.offset() && end <= b.base + b.text.len())
    }
}

/// A label's bytes, inside the text, widened to whole characters (a label on an invalid byte
/// covers the replacement character shown for it).
fn clamp(text: &str, label: &LabeledSpan) -> Range<usize> {
    let mut start = label.offset().min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = label.offset().saturating_add(label.len()).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end.max(start)
}

/// The 0-based lines to show: each label's lines with one more line of margin than miette's
/// context around them (so it reads its context inside a block, as it would from the whole
/// text), overlapping or touching ranges merged.
fn line_blocks(index: &LineIndex, bounds: &[Range<usize>]) -> Vec<Range<usize>> {
    let margin = CONTEXT_LINES + 1;
    let mut ranges: Vec<Range<usize>> = bounds
        .iter()
        .map(|b| {
            let first = index.line_of(b.start);
            let last = index.line_of(b.end.saturating_sub(1).max(b.start));
            first.saturating_sub(margin)..(last + margin + 1).min(index.lines())
        })
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// Where a line's text ends: before its `\n`, or its `\r\n`.
fn line_body_end(text: &str, line: &Range<usize>) -> usize {
    let body = &text[line.clone()];
    let body = body.strip_suffix('\n').unwrap_or(body);
    let body = body.strip_suffix('\r').unwrap_or(body);
    line.start + body.len()
}

fn is_long(line: &str) -> bool {
    line.len() > LONG_LINE && line.chars().nth(LONG_LINE).is_some()
}

/// The parts of a long line to show: [`WINDOW`] characters either side of each label start or
/// end on it, or its first [`HEAD`] characters when there is none; overlapping parts merged.
fn windows(text: &str, body: &Range<usize>, ends: &[usize]) -> Vec<Range<usize>> {
    let line = &text[body.clone()];
    let mut windows: Vec<Range<usize>> = ends
        .iter()
        .filter(|&&at| body.contains(&at) || at == body.end)
        .map(|&at| {
            let at = at - body.start;
            body.start + back(line, at, WINDOW)..body.start + forward(line, at, WINDOW)
        })
        .collect();
    if windows.is_empty() {
        windows.push(body.start..body.start + forward(line, 0, HEAD));
    }
    windows.sort_by_key(|w| w.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(windows.len());
    for window in windows {
        match merged.last_mut() {
            Some(last) if window.start <= last.end => last.end = last.end.max(window.end),
            _ => merged.push(window),
        }
    }
    merged
}

/// The offset `chars` characters before `at` in `line` (or its start).
fn back(line: &str, at: usize, chars: usize) -> usize {
    line[..at]
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

/// The offset `chars` characters after `at` in `line` (or its end).
fn forward(line: &str, at: usize, chars: usize) -> usize {
    line[at..]
        .char_indices()
        .nth(chars)
        .map_or(line.len(), |(i, _)| at + i)
}

/// Appends plan text as shown: a character that would act on the terminal (a control
/// character other than a tab or a line break, a bidirectional control) becomes one `?` per
/// byte, so that offsets into the text still hold.
fn push_shown(out: &mut String, text: &str) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let line_break = c == '\n' || (c == '\r' && chars.peek() == Some(&'\n'));
        if c != '\t' && !line_break && terminal::acts_on_terminal(c) {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
}

impl SourceCode for Excerpt<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let block = self.block_at(span).ok_or(MietteError::OutOfBounds)?;
        let local = SourceSpan::new((span.offset() - block.base).into(), span.len());
        let inner =
            block
                .text
                .as_str()
                .read_span(&local, context_lines_before, context_lines_after)?;
        // miette's own `str` source reports, as a snippet's line count, the lines from the
        // start of the text, which makes it print every line between two labels however far
        // apart; this reports the snippet's own, so distant labels get separate snippets.
        let lines = inner.data().iter().filter(|&&b| b == b'\n').count() + 1;
        let column = if context_lines_before == 0 {
            // The plan's column (in bytes, as miette counts), not the cut line's.
            let plan = block.to_plan(local.offset());
            plan - self.index.line(self.index.line_of(plan)).start
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new(
                (inner.span().offset() + block.base).into(),
                inner.span().len(),
            ),
            block.first_line + inner.line(),
            column,
            lines,
        )))
    }
}

/// How human reports look.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Wrap width in columns.
    pub width: usize,
}

/// Renders one finding as miette's graphical report.
pub fn human(source: &Source, finding: &Error, style: Style) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_context_lines(CONTEXT_LINES)
        .with_links(false);
    let located = Located {
        finding,
        excerpt: Excerpt::of(source, finding),
    };
    guarded(
        |out| handler.render_report(out, &located),
        || plain(source, finding),
    )
}

/// The report `render` writes, or `fallback` when it fails or panics. A panic in a report
/// handler must not cost the user the finding or turn exit 1 into 101; the excerpt keeps
/// miette within its limits, this is the last resort (the panic message still shows, as the
/// bug it is).
fn guarded(
    render: impl FnOnce(&mut String) -> fmt::Result,
    fallback: impl FnOnce() -> String,
) -> String {
    let mut out = String::new();
    match panic::catch_unwind(AssertUnwindSafe(|| render(&mut out))) {
        Ok(Ok(())) => out,
        _ => fallback(),
    }
}

/// A finding without its snippet: code, message, each label's place and text, help.
pub fn plain(source: &Source, finding: &Error) -> String {
    let mut out = format!(
        "{}\n\n  {} {}\n",
        finding.code_str(),
        if finding.is_error() { "×" } else { "⚠" },
        terminal::text(&finding.to_string())
    );
    let name = terminal::text(&source.name);
    for label in finding.labels().into_iter().flatten() {
        let (line, column) = source.line_column(label.offset());
        let text = terminal::text(label.label().unwrap_or_default());
        out.push_str(&format!("  at {name}:{line}:{column}: {text}\n"));
    }
    if let Some(help) = finding.help() {
        out.push_str(&format!("  help: {}\n", terminal::text(&help.to_string())));
    }
    out
}

/// One line: `plans/x.toml: 2 errors, 1 warning`.
pub fn summary(plan: &str, findings: &[Error]) -> String {
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let plan = terminal::text(plan);
    if errors == 0 && warnings == 0 {
        format!("{}: valid", plan)
    } else if errors == 0 {
        format!("{}: valid, {}", plan, plural(warnings, "warning"))
    } else {
        format!(
            "{}: invalid, {}, {}",
            plan,
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    }
}

/// A finding as CI bots read it.
#[derive(Debug, Serialize)]
pub struct JsonFinding {
    /// e.g. `meshplan::lb::outside_pool`.
    pub code: String,
    /// `error` or `warning`.
    pub severity: &'static str,
    /// One line.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
    /// The plan file, or the certificate file a `cert` finding is about.
    pub file: String,
    /// Line of the first label (1-based).
    pub line: usize,
    /// Column of the first label (1-based, in characters).
    pub column: usize,
    /// Every labelled span.
    pub labels: Vec<JsonLabel>,
}

/// A labelled span of the plan.
#[derive(Debug, Serialize)]
pub struct JsonLabel {
    /// What the label says.
    pub label: Option<String>,
    /// Start line (1-based).
    pub line: usize,
    /// Start column (1-based, characters).
    pub column: usize,
    /// End line (inclusive).
    pub end_line: usize,
    /// End column (exclusive, characters).
    pub end_column: usize,
    /// Byte offset.
    pub offset: usize,
    /// Byte length.
    pub length: usize,
}

/// Converts a finding to its JSON form.
pub fn json(source: &Source, finding: &Error) -> JsonFinding {
    let labels: Vec<JsonLabel> = finding
        .labels()
        .into_iter()
        .flatten()
        .map(|label| {
            let (line, column) = source.line_column(label.offset());
            let (end_line, end_column) = source.line_column(label.offset() + label.len());
            JsonLabel {
                label: label.label().map(str::to_owned),
                line,
                column,
                end_line,
                end_column,
                offset: label.offset(),
                length: label.len(),
            }
        })
        .collect();
    let (line, column) = labels.first().map_or((1, 1), |l| (l.line, l.column));
    JsonFinding {
        code: finding.code_str(),
        severity: if finding.is_error() {
            "error"
        } else {
            "warning"
        },
        message: finding.to_string(),
        help: finding.help().map(|h| h.to_string()),
        file: finding
            .other_file()
            .map_or_else(|| source.name.clone(), str::to_owned),
        line,
        column,
        labels,
    }
}

/// JSON Lines: one object per finding, each on its own line.
pub fn json_lines(source: &Source, findings: &[Error]) -> String {
    findings
        .iter()
        .filter_map(|f| serde_json::to_string(&json(source, f)).ok())
        .map(|line| line + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure

    use super::*;

    const STYLE: Style = Style {
        color: false,
        width: 100,
    };
    const SHIPPED: &str = include_str!("../plans/three-cloud-metallb.toml");
    const POOL: &str = "addresses = [\"10.64.30.71-10.64.30.73\"]";

    fn findings_of(text: &str) -> (Source, Vec<Error>) {
        let source = Source::new("p.toml", text);
        let findings = crate::check(&source).findings;
        (source, findings)
    }

    /// One pool on one line of 300 entries whose first and last are the same address: a
    /// `pool::overlap` finding with a label at each end of a 4 kB line.
    #[test]
    fn a_long_line_is_cut_to_windows_around_each_label() {
        let mut entries: Vec<String> = (0..300)
            .map(|i| format!("\"10.9.{}.{}/32\"", i / 250, i % 250 + 1))
            .collect();
        entries.push(entries[0].clone());
        let line = format!("addresses = [{}]", entries.join(", "));
        let (source, findings) = findings_of(&SHIPPED.replacen(POOL, &line, 1));
        let overlap = findings
            .iter()
            .find(|f| f.code_str() == "meshplan::pool::overlap")
            .unwrap();
        let shown = human(&source, overlap, STYLE);
        // Two windows of 80 characters and a label's width, not the 4 kB line.
        assert!(shown.lines().all(|l| l.chars().count() < 200), "{shown}");
        let number = SHIPPED[..SHIPPED.find(POOL).unwrap()].matches('\n').count() + 1;
        // `addresses = [` is 13 columns: the first entry starts at column 14.
        assert!(shown.contains(&format!("[p.toml:{number}:14]")), "{shown}");
        let cut = shown
            .lines()
            .find(|l| l.starts_with(&format!(" {number} │")))
            .unwrap();
        // The first label is near the line's start: one gap, between the two windows.
        assert_eq!(cut.matches(ELISION).count(), 1, "{cut}");
        assert!(
            cut.contains("│ addresses = [\"10.9.0.1/32\", \"10.9.0.2/32\""),
            "{cut}"
        );
        assert!(cut.ends_with("\"10.9.1.50/32\", \"10.9.0.1/32\"]"), "{cut}");
        // Both labels are drawn under the cut line.
        assert_eq!(shown.matches('╰').count(), 3, "{shown}");
    }

    /// The shipped plan with a pool entry that is not a CIDR, and that finding (the plan's own
    /// warnings, which its header names, come before it).
    fn bad_pool_entry() -> (Source, Error) {
        let (source, findings) = findings_of(&SHIPPED.replacen(
            POOL,
            "addresses = [\"10.64.30.71-10.64.30.73\", \"bad\"]",
            1,
        ));
        let invalid = findings
            .into_iter()
            .find(|f| f.code_str() == "meshplan::cidr::invalid")
            .unwrap();
        (source, invalid)
    }

    #[test]
    fn a_short_line_is_shown_whole() {
        let (source, invalid) = bad_pool_entry();
        let shown = human(&source, &invalid, STYLE);
        assert!(
            shown.contains("│ addresses = [\"10.64.30.71-10.64.30.73\", \"bad\"]\n"),
            "{shown}"
        );
        assert!(!shown.contains(ELISION), "{shown}");
    }

    #[test]
    fn what_would_act_on_the_terminal_is_shown_as_question_marks() {
        let (source, findings) = findings_of("# \u{1b}[2J\u{85}\r\n[mesh]\nid = \"m\"\n");
        let shown = human(&source, &findings[0], STYLE);
        assert!(!shown.contains(['\u{1b}', '\u{85}', '\r']), "{shown:?}");
        assert!(shown.contains("# ?[2J??"), "{shown}");
    }

    #[test]
    fn a_panicking_handler_falls_back_to_the_plain_report() {
        let shown = guarded(|_| panic!("a handler bug"), || "plain".to_owned());
        assert_eq!(shown, "plain");
        let shown = guarded(|_| Err(fmt::Error), || "plain".to_owned());
        assert_eq!(shown, "plain");
    }

    #[test]
    fn the_plain_report_names_each_label_place() {
        let (source, invalid) = bad_pool_entry();
        let shown = plain(&source, &invalid);
        let number = SHIPPED[..SHIPPED.find(POOL).unwrap()].matches('\n').count() + 1;
        assert!(shown.starts_with("meshplan::cidr::invalid\n"), "{shown}");
        assert!(shown.contains("× `bad` is not a CIDR"), "{shown}");
        assert!(
            shown.contains(&format!("at p.toml:{number}:41: addresses must be")),
            "{shown}"
        );
        assert!(shown.contains("help: write an address"), "{shown}");
    }
}
