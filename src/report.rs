//! How findings are shown: miette's graphical report for people, JSON Lines for CI bots.
//!
//! Pure functions from findings to text; `main.rs` decides where the text goes.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError,
    MietteSpanContents, Severity, SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;

use crate::diagnostic::Error;
use crate::source::Source;

/// A finding with the plan's text attached, so labels can show the plan's lines.
struct Located<'a> {
    finding: &'a Error,
    source: PlanText,
}

/// The plan's text as miette reads it. miette's own `str` source reports, as a snippet's line
/// count, the lines from the start of the file, which makes it print every line between two
/// labels however far apart (two clusters 500 lines apart would print 500 lines); this
/// reports the snippet's own line count so distant labels get separate snippets.
struct PlanText {
    name: String,
    text: Arc<str>,
}

impl SourceCode for PlanText {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner =
            self.text
                .as_ref()
                .read_span(span, context_lines_before, context_lines_after)?;
        let lines = inner.data().iter().filter(|&&b| b == b'\n').count() + 1;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            lines,
        )))
    }
}

impl fmt::Debug for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.finding, f)
    }
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.finding, f)
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
        self.finding.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.finding.labels()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
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
        .with_links(false);
    let located = Located {
        finding,
        source: PlanText {
            name: source.name.clone(),
            text: Arc::clone(&source.text),
        },
    };
    let mut out = String::new();
    match handler.render_report(&mut out, &located) {
        Ok(()) => out,
        // Rendering into a String cannot fail on I/O; fall back to the plain message.
        Err(_) => format!("{}: {finding}\n", finding.code_str()),
    }
}

/// One line: `plans/x.toml: 2 errors, 1 warning`.
pub fn summary(plan: &str, findings: &[Error]) -> String {
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
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
