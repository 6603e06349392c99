//! A plan parsed in pieces (`[[cluster]]` tables on every core, issue 28) is the plan a parse
//! of the whole text gives, spans included; and wherever the pieces cannot give that, the whole
//! text is parsed instead, so every error is the one a whole-text parse reports.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is a test failure with its location

use meshplan::{Source, parse};

#[path = "support/files.rs"]
mod files;
#[path = "support/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

fn source(text: &str) -> Source {
    Source::new("plan.toml", text)
}

/// `Some(plan)` from the pieces must be exactly the whole-text plan (spans included); `None`
/// is the fallback. Returns whether the pieces gave the plan.
fn agrees(text: &str) -> bool {
    let source = source(text);
    let whole = parse::whole(&source);
    match parse::in_pieces(&source, 1) {
        Some(pieces) => {
            let whole = whole.unwrap_or_else(|err| {
                panic!("pieces parsed a plan the whole text rejects: {err}\n{text}")
            });
            assert_eq!(format!("{pieces:#?}"), format!("{whole:#?}"));
            // And `parse` (which cuts only large plans) gives the same plan.
            assert_eq!(
                format!("{:#?}", parse::parse(&source).unwrap()),
                format!("{whole:#?}")
            );
            true
        }
        None => false,
    }
}

#[test]
fn every_shipped_plan_and_fixture_parses_the_same_in_pieces() {
    let files = files::plans_and_fixtures();
    let mut cut = 0;
    for (_, text) in &files {
        if agrees(text) {
            cut += 1;
        }
    }
    // The shipped plans are cut (not all left to the fallback).
    let plans = files
        .iter()
        .filter(|(file, _)| file.parent().is_some_and(|d| d.ends_with("plans")));
    for (file, text) in plans {
        assert!(
            parse::in_pieces(&source(text), 1).is_some(),
            "{} was not parsed in pieces",
            file.display()
        );
    }
    assert!(cut > files.len() / 2, "only {cut} of {} cut", files.len());
}

#[test]
fn a_synthetic_plan_with_services_parses_the_same_in_pieces() {
    let mut shape = synthetic::Shape::large(120, 600, 12);
    shape.services = 240;
    let text = synthetic::plan(&shape);
    assert!(
        agrees(&text),
        "the synthetic plan fell back to the whole text"
    );
    // 120 clusters: `parse` itself takes the pieces.
    assert!(parse::in_pieces(&source(&text), 64).is_some());
}

const MESH: &str = "[mesh]\nid = \"m\"\n[mesh.istio]\nversion = \"1.24.2\"\n";
const CLUSTER: &str = "[[cluster]]\nname = \"a\"\nrole = \"primary\"\nnetwork = \"n\"\n";

#[test]
fn a_header_inside_a_multi_line_string_is_not_cut_at() {
    let text = format!(
        "{MESH}[[cluster]]\nname = \"\"\"\n[[cluster]]\n\"\"\"\nrole = \"primary\"\nnetwork = \"n\"\n"
    );
    assert!(!agrees(&text));
    let text = format!("{MESH}{CLUSTER}[cluster.lb]\nnote = '''\n[mesh]\n'''\n");
    assert!(!agrees(&text));
}

#[test]
fn tables_the_pieces_cannot_join_fall_back_to_the_whole_text() {
    // `[mesh.istio]` after the clusters: two pieces define `mesh`.
    let text = format!(
        "[mesh]\nid = \"m\"\n{CLUSTER}[mesh.istio]\nversion = \"1.24.2\"\n{}",
        CLUSTER.replace("\"a\"", "\"b\"")
    );
    assert!(!agrees(&text));
    // A quoted `cluster` header, and a `cluster` key before the first `[[cluster]]`.
    assert!(!agrees(&format!(
        "{MESH}[[\"cluster\"]]\nname = \"z\"\n{CLUSTER}"
    )));
    assert!(!agrees(&format!("cluster = []\n{MESH}{CLUSTER}")));
    // A `[cluster]` table after an array of them is an error either way.
    assert!(!agrees(&format!(
        "{MESH}{CLUSTER}[cluster]\nname = \"x\"\n"
    )));
}

#[test]
fn an_error_in_one_piece_is_the_whole_text_error() {
    let mut shape = synthetic::Shape::large(80, 160, 4);
    shape.services = 0;
    let text = synthetic::plan(&shape).replacen("role = ", "rolle = ", 40);
    let source = source(&text);
    assert!(parse::in_pieces(&source, 1).is_none());
    let whole = format!("{:?}", parse::whole(&source).unwrap_err());
    let parsed = format!("{:?}", parse::parse(&source).unwrap_err());
    assert_eq!(parsed, whole);
    assert!(whole.contains("rolle"), "{whole}");
}
