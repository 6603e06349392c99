//! The plan format as JSON Schema, derived from the same `raw` types the parser uses, for
//! editors (Taplo / Even Better TOML read it through a `#:schema` line at the top of a plan).

use crate::raw;

/// The JSON Schema of a plan, pretty-printed, ending in a newline.
pub fn plan_schema() -> String {
    let mut schema = schemars::schema_for!(raw::Plan);
    schema.insert("title".to_owned(), "meshplan plan (version 1)".into());
    schema.insert(
        "description".to_owned(),
        "A multi-cluster Istio mesh as meshplan compiles it. See docs/plan-format.md.".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
