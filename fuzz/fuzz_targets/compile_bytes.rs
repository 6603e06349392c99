//! The whole compile of arbitrary bytes: decode, parse, validate, resolve, render, and both
//! report formats. Anything but a panic is fine.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (source, checked) = meshplan::check_bytes("fuzz.toml", data);
    for finding in &checked.findings {
        let _ = meshplan::report::json(&source, finding);
        let _ = meshplan::report::human(&source, finding, meshplan::report::Style { color: false, width: 80 });
    }
    if checked.is_valid() {
        let (_, output) = meshplan::compile(&source);
        let _ = output;
    }
});
