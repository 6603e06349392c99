//! Our own TOML reader (`src/parse/fast.rs`, issue 28) gives the plan the `toml` crate gives,
//! spans included, or declines; it never accepts a plan the `toml` crate rejects. So every
//! error, its span, code and help is still the `toml` crate's.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use meshplan::{Source, parse};
use proptest::prelude::*;

#[path = "support/files.rs"]
mod files;
#[path = "support/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

fn source(text: &str) -> Source {
    Source::new("plan.toml", text)
}

/// `Some(plan)` from our reader must be exactly the `toml` crate's plan (`Debug` of
/// `raw::Plan`: every value and span); `None` is the fallback. Returns whether it read the plan.
fn agrees(text: &str) -> bool {
    let source = source(text);
    let whole = parse::whole(&source);
    match parse::fast(&source) {
        Some(fast) => {
            let whole = whole.unwrap_or_else(|err| {
                panic!("our reader took a plan the toml crate rejects: {err}\n{text}")
            });
            assert_eq!(format!("{fast:#?}"), format!("{whole:#?}"), "{text}");
            true
        }
        None => false,
    }
}

#[test]
fn every_shipped_plan_and_fixture_reads_the_same() {
    let files = files::plans_and_fixtures();
    let mut read = 0;
    for (file, text) in &files {
        let ok = agrees(text);
        if ok {
            read += 1;
        }
        // Every shipped plan is read by our reader, not left to the fallback.
        if file.parent().is_some_and(|d| d.ends_with("plans")) {
            assert!(ok, "{} was left to the toml crate", file.display());
        }
    }
    assert!(
        read > files.len() / 2,
        "only {read} of {} read",
        files.len()
    );
}

#[test]
fn a_synthetic_plan_with_services_reads_the_same() {
    let mut shape = synthetic::Shape::large(120, 600, 12);
    shape.services = 240;
    assert!(agrees(&synthetic::plan(&shape)), "left to the toml crate");
    let mut shape = synthetic::Shape::large(7, 30, 2);
    shape.services = 9;
    shape.helm = true;
    shape.gitops = Some("flux");
    assert!(agrees(&synthetic::plan(&shape)), "left to the toml crate");
}

const MESH: &str = "[mesh]\nid = \"m\"\n[mesh.istio]\nversion = \"1.24.2\"\n";
const CLUSTER: &str = "[[cluster]]\nname = \"a\"\nrole = \"primary\"\nnetwork = \"n\"\npod_cidr = \"10.0.0.0/16\"\nservice_cidr = \"10.1.0.0/16\"\n";
const SERVICE: &str = "[[service]]\nname = \"s\"\nnamespace = \"ns\"\nclusters = [\"a\"]\n";

/// TOML the reader takes: each must equal the `toml` crate's plan.
fn taken() -> Vec<String> {
    vec![
        // Comments, blank lines, CRLF, tabs, trailing whitespace.
        format!("# top\n\n{MESH}  # indented comment\t\n\n{CLUSTER}"),
        format!("{MESH}{CLUSTER}").replace('\n', "\r\n"),
        format!(
            "\t[mesh]  # c\n\tid\t=\t\"m\" # c\n[ mesh . istio ]\nversion = \"1.24.2\"\n[[ cluster ]]\nname = \"a\"\nrole = \"primary\"\nnetwork = \"n\"\npod_cidr = \"10.0.0.0/16\"\nservice_cidr = \"10.1.0.0/16\""
        ),
        // Escapes, literal strings, unicode, quoted keys.
        format!(
            "{CLUSTER}[mesh]\nid = \"m\\u00e9\\t\\\"q\\\" \\\\ \\U0001F600 \\b\\f\\r\\n\"\ntrust_domain = 'C:\\lit\"eral'\n[mesh.istio]\nversion = \"1.24.2\" # é ü 😀\n"
        ),
        format!("{MESH}{CLUSTER}region = \"région-ü\"\n\"zone\" = 'z'\n'subzone' = \"\"\n"),
        // Inline tables, arrays across lines with comments and a trailing comma.
        format!(
            "{MESH}{CLUSTER}[cluster.lb]\nvia = \"cloud\"\nannotations = {{ \"a.b/c\" = \"x\", 'd' = \"y\" }}\n{SERVICE}port = 80\nfailover = [ {{from = \"r1\", to = \"r2\"}},{{ from = \"r2\" , to = \"r1\" }} ]\n"
        ),
        format!("{MESH}{CLUSTER}{SERVICE}port = 80\n").replace(
            "clusters = [\"a\"]",
            "clusters = [ # first\n  \"a\", # a\n\n  'b',\n]",
        ),
        format!("{MESH}{CLUSTER}[cluster.metallb]\naddresses = []\ninterfaces = [ ]\n"),
        // Integers and booleans.
        format!(
            "{MESH}{CLUSTER}{SERVICE}port = 0\n[service.outlier]\nconsecutive_5xx = -0\nmax_ejection_percent = 9223372036854775807\n"
        ),
        format!("{MESH}{CLUSTER}{SERVICE}port = -9223372036854775808\n"),
        format!(
            "{MESH}{CLUSTER}[[cluster.node]]\nname = \"n0\"\ncontrol_plane = true\n[[cluster.node]]\nname = \"n1\"\ncontrol_plane = false#c\n"
        ),
        // Arrays of tables, and an implicit table (its span is its key's).
        format!(
            "{MESH}{CLUSTER}[cluster.lb.annotations]\nx = \"y\"\n{}",
            CLUSTER.replace("\"a\"", "\"b\"")
        ),
        format!("{MESH}{CLUSTER}[cluster.\"lb\".annotations]\nx = \"y\"\n"),
        format!("{MESH}{CLUSTER}[cluster . 'lb' . annotations]\nx = \"y\"\n"),
        // Tables in any order.
        format!(
            "{SERVICE}port = 1\n{CLUSTER}[[network]]\nid = \"n\"\n{MESH}[[network]]\nid = \"o\"\n"
        ),
        format!(
            "{MESH}{CLUSTER}[cluster.lb]\nvia = \"metallb\"\n[cluster.metallb]\naddresses = [\"10.0.0.1-10.0.0.9\"]\n[[cluster.node]]\nname = \"n\"\n"
        ),
        // No newline at the end, and an empty plan around it.
        format!("{MESH}{CLUSTER}").trim_end().to_owned(),
    ]
}

/// TOML the reader leaves to the `toml` crate (valid or not): it must decline, not differ.
fn declined() -> Vec<String> {
    vec![
        // Dotted keys, multi-line strings, other escapes, other numbers.
        format!("[mesh]\nid = \"m\"\nistio.version = \"1.24.2\"\n{CLUSTER}"),
        format!("{MESH}{CLUSTER}region = \"\"\"\nr\"\"\"\n"),
        format!("{MESH}{CLUSTER}region = '''r'''\n"),
        format!("{MESH}{CLUSTER}region = \"\\e\"\n"),
        format!("{MESH}{CLUSTER}region = \"\\x41\"\n"),
        format!("{MESH}{CLUSTER}region = \"\\ud800\"\n"),
        format!("{MESH}{CLUSTER}{SERVICE}port = +80\n"),
        format!("{MESH}{CLUSTER}{SERVICE}port = 8_080\n"),
        format!("{MESH}{CLUSTER}{SERVICE}port = 0x50\n"),
        format!("{MESH}{CLUSTER}{SERVICE}port = 080\n"),
        format!("{MESH}{CLUSTER}{SERVICE}port = 80.0\n"),
        format!("{MESH}{CLUSTER}{SERVICE}port = 9223372036854775808\n"),
        format!("{MESH}{CLUSTER}{SERVICE}port = 1979-05-27\n"),
        // A table defined after its implicit use, inline tables over lines or with a trailing
        // comma (TOML 1.1).
        format!("[mesh.istio]\nversion = \"1.24.2\"\n[mesh]\nid = \"m\"\n{CLUSTER}"),
        format!("{MESH}{CLUSTER}[cluster.lb]\nannotations = {{\n  a = \"b\" }}\n"),
        format!("{MESH}{CLUSTER}[cluster.lb]\nannotations = {{ a = \"b\", }}\n"),
        // Errors: the toml crate reports them.
        format!("{MESH}{CLUSTER}name = \"b\"\n"),
        format!("{MESH}[mesh]\nid = \"n\"\n{CLUSTER}"),
        format!("{MESH}{CLUSTER}region = \"a\" zone = \"b\"\n"),
        format!("{MESH}{CLUSTER}region = \"a\u{1}\"\n"),
        format!("{MESH}{CLUSTER}# a \u{7f} in a comment\n"),
        format!("{MESH}{CLUSTER}region = \"r\"\rzone = \"z\"\n"),
        format!("{MESH}{CLUSTER}[cluster.lb]\nannotations = {{ a = \"b\", a = \"c\" }}\n"),
        format!("{MESH}{CLUSTER}[cluster]\nname = \"x\"\n"),
        format!("{MESH}cluster = []\n{CLUSTER}"),
        format!(
            "{MESH}{CLUSTER}[cluster.lb]\nannotations = {{ a = \"b\" }}\n[cluster.lb.annotations]\nc = \"d\"\n"
        ),
        format!("{MESH}{CLUSTER}[[cluster.lb]]\nvia = \"cloud\"\n"),
        format!("{MESH}{CLUSTER}[[ cluster ] ]\n"),
        format!("{MESH}{CLUSTER}rolle = \"primary\"\n"),
        format!("{MESH}{CLUSTER}role = \"primery\"\n"),
        format!("{MESH}{CLUSTER}[cluster.lb]\nvia = {{ cloud = 1 }}\n"),
        format!("\u{feff}{MESH}{CLUSTER}"),
        format!("{MESH}{CLUSTER}").replace("[[cluster]]", "[[cluster]"),
        format!("{MESH}{CLUSTER}").replace("\"a\"", "\"a"),
        String::new(),
    ]
}

#[test]
fn toml_edge_cases_read_the_same_or_are_declined() {
    for text in taken() {
        assert!(agrees(&text), "declined:\n{text}");
    }
    for text in declined() {
        assert!(!agrees(&text), "taken:\n{text}");
    }
}

#[test]
fn deep_nesting_is_left_to_the_toml_crate_without_overflowing_the_stack() {
    for (open, close) in [("[", "]"), ("{ a = ", " }")] {
        // Deeper than the reader goes, far deeper than the stack allows it to recurse.
        for depth in [40, 200_000] {
            let text = format!(
                "{MESH}{CLUSTER}[cluster.lb]\nannotations = {}{}\n",
                open.repeat(depth),
                close.repeat(depth)
            );
            assert!(parse::fast(&source(&text)).is_none(), "{open} x {depth}");
        }
    }
    // Shallow nesting is read, then declined by `raw::Plan` (a list of lists is no plan's):
    // the toml crate reports it.
    let text = format!("{MESH}{CLUSTER}{SERVICE}port = 80\nclusters = [[[\"a\"]]]\n");
    assert!(!agrees(&text));
}

#[test]
fn a_plan_with_an_error_is_reported_as_the_toml_crate_reports_it() {
    let mut shape = synthetic::Shape::large(80, 160, 4);
    shape.services = 0;
    let text = synthetic::plan(&shape).replacen("role = ", "rolle = ", 40);
    let source = source(&text);
    assert!(parse::fast(&source).is_none());
    let whole = format!("{:?}", parse::whole(&source).unwrap_err());
    assert_eq!(format!("{:?}", parse::parse(&source).unwrap_err()), whole);
    assert!(whole.contains("rolle"), "{whole}");
}

/// Bytes that matter to TOML's grammar, and a few that TOML forbids.
const INTERESTING: &[&str] = &[
    "\"",
    "'",
    "\\",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ".",
    ",",
    "#",
    "\n",
    "\r",
    "\r\n",
    "\t",
    " ",
    "0",
    "1",
    "-",
    "+",
    "_",
    "e",
    "x",
    ":",
    "\u{0}",
    "\u{7f}",
    "é",
    "\u{1F600}",
    "\"\"\"",
    "'''",
    "\\u",
    "true",
    "a.b",
    "= 1",
    "[x]",
    "[[cluster]]",
];

fn mutate(text: &str, edits: &[(usize, usize, bool)]) -> String {
    let mut text = text.to_owned();
    for &(at, which, replace) in edits {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        if replace && at < text.len() {
            let next = text[at..].chars().next().map_or(0, char::len_utf8);
            text.replace_range(at..at + next, INTERESTING[which % INTERESTING.len()]);
        } else {
            text.insert_str(at, INTERESTING[which % INTERESTING.len()]);
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any plan or fixture with a few of TOML's special bytes inserted or replaced anywhere:
    /// our reader gives the `toml` crate's plan or declines.
    #[test]
    fn mutated_plans_read_the_same_or_are_declined(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<bool>()), 1..4),
    ) {
        let files = files::plans_and_fixtures();
        let (_, text) = &files[file.index(files.len())];
        agrees(&mutate(text, &edits));
    }
}
