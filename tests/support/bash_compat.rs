//! What bash 3.2 (macOS's /bin/bash) lacks, found in a script's text: the generated scripts
//! must run on every bash from 3.2 to 5.x. The list is bash's CHANGES from 4.0 on, less what
//! no generated script could plausibly use; each entry names the release that added it.
//!
//! The scan works on the code only: comments and single-quoted strings (literal text for
//! bash) are blanked first. It is a lint, not a parser: it errs on the side of refusing, and
//! the opt-in run under real old bashes (tests/install_trace.rs) backs it.

/// Each violation: `line number: what, and since which bash`.
pub fn violations(script: &str) -> Vec<String> {
    let code = code_only(script);
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        for problem in line_problems(line) {
            found.push(format!("line {}: {problem}", number + 1));
        }
    }
    found
}

/// Words (commands, builtins, variables) that bash 3.2 does not have.
const WORDS: &[(&str, &str)] = &[
    ("mapfile", "mapfile (bash 4.0)"),
    ("readarray", "readarray (bash 4.0)"),
    ("coproc", "coproc (bash 4.0)"),
    ("BASHPID", "$BASHPID (bash 4.0)"),
    ("EPOCHSECONDS", "$EPOCHSECONDS (bash 5.0)"),
    ("EPOCHREALTIME", "$EPOCHREALTIME (bash 5.0)"),
    ("SRANDOM", "$SRANDOM (bash 5.1)"),
    ("BASH_ARGV0", "$BASH_ARGV0 (bash 5.0)"),
    (
        "shopt",
        "shopt options such as globstar, lastpipe, inherit_errexit (bash 4.0-4.4)",
    ),
];

/// Operators and forms, as text.
const TEXTS: &[(&str, &str)] = &[
    (";&", "case fall-through ;& / ;;& (bash 4.0)"),
    ("&>>", "&>> (bash 4.0)"),
    ("|&", "|& (bash 4.0)"),
    ("wait -n", "wait -n (bash 4.3)"),
    ("wait -p", "wait -p (bash 5.1)"),
    ("wait -f", "wait -f (bash 5.0)"),
    (
        "printf -v",
        "printf -v into arrays and its quirks before 4.1; use $(...)",
    ),
    ("[[ -v", "[[ -v ]] (bash 4.2)"),
    ("[ -v", "test -v (bash 4.2)"),
    ("test -v", "test -v (bash 4.2)"),
    ("%(", "printf %(...)T (bash 4.2)"),
    ("read -i", "read -i (bash 4.0)"),
];

/// `declare`/`local`/`typeset` attributes bash 3.2 lacks.
const ATTRIBUTES: &[(char, &str)] = &[
    ('A', "associative arrays (bash 4.0)"),
    ('n', "namerefs (bash 4.3)"),
    ('l', "the lowercase attribute (bash 4.0)"),
    ('u', "the uppercase attribute (bash 4.0)"),
    ('g', "declare -g (bash 4.2)"),
];

fn line_problems(line: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .collect();
    for (word, what) in WORDS {
        if words.contains(word) {
            problems.push((*what).to_owned());
        }
    }
    for (text, what) in TEXTS {
        if line.contains(text) {
            problems.push((*what).to_owned());
        }
    }
    problems.extend(attribute_problems(line));
    problems.extend(fd_variable_problems(line));
    problems.extend(brace_problems(line));
    problems.extend(expansion_problems(line));
    problems
}

fn attribute_problems(line: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let tokens: Vec<&str> = line.split_whitespace().collect();
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(
            *token,
            "declare" | "local" | "typeset" | "readonly" | "export"
        ) {
            continue;
        }
        for option in tokens[i + 1..].iter().take_while(|t| t.starts_with('-')) {
            if *option == "-" {
                problems.push(format!("`{token} -` (bash 4.4)"));
            }
            for (flag, what) in ATTRIBUTES {
                if option[1..].contains(*flag) {
                    problems.push(format!("{token} {option}: {what}"));
                }
            }
        }
    }
    problems
}

/// `exec {fd}>file`: a variable holding an allocated descriptor (bash 4.1).
fn fd_variable_problems(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    let mut problems = Vec::new();
    for (i, _) in line.match_indices('{') {
        if i > 0 && bytes[i - 1] == b'$' {
            continue;
        }
        let rest = &line[i + 1..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_len > 0
            && rest[name_len..].starts_with('}')
            && matches!(rest.as_bytes().get(name_len + 1), Some(b'<' | b'>'))
        {
            problems.push("{var}> descriptor allocation (bash 4.1)".to_owned());
        }
    }
    problems
}

/// `{1..10..2}` (a step) and `{01..10}` (zero padding) came with bash 4.0.
fn brace_problems(line: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, _) in line.match_indices("..") {
        let before = &line[..i];
        let Some(open) = before.rfind('{') else {
            continue;
        };
        let first = &before[open + 1..];
        if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit() || c == '-') {
            continue;
        }
        let after = &line[i + 2..];
        let Some(close) = after.find('}') else {
            continue;
        };
        let body = &after[..close];
        if body.contains("..") {
            problems.push("a brace expansion step {a..b..n} (bash 4.0)".to_owned());
        }
        if first.len() > 1 && first.starts_with('0') {
            problems.push("a zero-padded brace expansion {01..n} (bash 4.0)".to_owned());
        }
    }
    problems
}

/// Inside `${...}`: case modification, `@` transformations, negative subscripts, negative
/// substring lengths, and array expansions that fail under `set -u` when the array is empty
/// before bash 4.4. An array is expanded only as `${#a[@]}` or in the guard
/// `${a[@]+"${a[@]}"}`, which expands to nothing when it is empty on every bash.
fn expansion_problems(line: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        let body_start = start + 2;
        let Some(len) = closing_brace(&rest[body_start..]) else {
            break;
        };
        let body = &rest[body_start..body_start + len];
        let (problem, skip_body) = expansion_problem(body);
        problems.extend(problem);
        // A guard's alternate is checked as part of the guard; anything else is scanned for
        // nested expansions.
        rest = if skip_body {
            &rest[body_start + len + 1..]
        } else {
            &rest[body_start..]
        };
    }
    problems
}

/// The length of a `${` expansion's body, up to its matching `}`.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The problem of one expansion body, if any, and whether its body is settled.
fn expansion_problem(body: &str) -> (Option<String>, bool) {
    let (prefix, rest) = match body.chars().next() {
        Some(c @ ('#' | '!')) => (Some(c), &body[1..]),
        _ => (None, body),
    };
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if name_len == 0 {
        return (None, false); // ${#}, ${@}, ${*} and friends
    }
    let after_name = &rest[name_len..];
    let (subscript, operator) = match after_name.strip_prefix('[') {
        Some(inner) => match inner.find(']') {
            Some(end) => (Some(&inner[..end]), &inner[end + 1..]),
            None => (None, after_name),
        },
        None => (None, after_name),
    };
    if let Some(index) = subscript
        && index.trim_start().starts_with('-')
    {
        return (
            Some("a negative array subscript (bash 4.3)".to_owned()),
            false,
        );
    }
    if operator.starts_with(',') || operator.starts_with('^') {
        return (
            Some("case modification ${x,,} / ${x^^} (bash 4.0)".to_owned()),
            false,
        );
    }
    if operator.starts_with('@') && !(prefix == Some('!') && operator == "@") {
        return (
            Some("a ${x@Q}-style transformation (bash 4.4)".to_owned()),
            false,
        );
    }
    if negative_length(operator) {
        return (
            Some("a negative substring length ${x:o:-n} (bash 4.2)".to_owned()),
            false,
        );
    }
    if matches!(subscript, Some("@" | "*")) {
        if prefix == Some('#') {
            return (None, false);
        }
        let guarded = prefix.is_none() && operator.starts_with('+');
        if guarded {
            return (None, true);
        }
        return (
            Some(
                "an array expanded without the ${a[@]+\"${a[@]}\"} guard: empty, it is an unbound variable under set -u before bash 4.4"
                    .to_owned(),
            ),
            false,
        );
    }
    (None, false)
}

/// `:offset:-length`.
fn negative_length(operator: &str) -> bool {
    let Some(substring) = operator.strip_prefix(':') else {
        return false;
    };
    if substring.starts_with(['-', '=', '?', '+']) {
        return false; // ${x:-default} and friends
    }
    substring
        .split_once(':')
        .is_some_and(|(_, length)| length.trim_start().starts_with('-'))
}

/// The script with comments and single-quoted strings blanked (their text is never bash
/// syntax), lines kept in place. Double-quoted text is kept: expansions happen there.
fn code_only(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    let mut single = false;
    let mut double = false;
    let mut comment = false;
    let mut previous = '\n';
    let mut escaped = false;
    for c in script.chars() {
        if c == '\n' {
            comment = false;
            out.push('\n');
            previous = c;
            escaped = false;
            continue;
        }
        if comment {
            continue;
        }
        if single {
            if c == '\'' {
                single = false;
                out.push('\'');
            } else {
                out.push(' ');
            }
            previous = c;
            continue;
        }
        if escaped {
            escaped = false;
            out.push(c);
            previous = c;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '\'' if !double => single = true,
            '"' => double = !double,
            '#' if !double && (previous.is_whitespace() || previous == '\n') => {
                comment = true;
                continue;
            }
            _ => {}
        }
        out.push(c);
        previous = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::violations;

    #[test]
    fn every_listed_construct_is_refused() {
        for script in [
            "declare -A votes",
            "local -A seen=()",
            "local -n ref=x",
            "declare -g x=1",
            "mapfile -t lines <f",
            "readarray lines",
            "coproc cat",
            "case $x in a) echo ;& b) echo ;; esac",
            "case $x in a) echo ;;& esac",
            "cmd &>>log",
            "cmd |& tee log",
            "echo \"${x,,}\"",
            "echo \"${x^^}\"",
            "echo \"${x@Q}\"",
            "echo \"${a[-1]}\"",
            "for p in \"${problems[@]}\"; do :; done",
            "echo \"${a[*]}\"",
            "echo \"${!a[@]}\"",
            "wait -n",
            "printf -v x '%s' y",
            "[[ -v x ]]",
            "exec {fd}>file",
            "echo {1..10..2}",
            "echo {01..10}",
            "echo \"${x:1:-1}\"",
            "shopt -s globstar",
            "local -",
            "echo $EPOCHSECONDS",
            "printf '%s' \"$(date)\" \"%(%F)T\"",
        ] {
            assert!(!violations(script).is_empty(), "accepted: {script}");
        }
    }

    #[test]
    fn what_bash_3_2_has_is_accepted() {
        for script in [
            "declare -a list",
            "local x=\"${1:-}\" y=\"${2:-default}\"",
            "echo \"${#a[@]}\"",
            "for p in ${problems[@]+\"${problems[@]}\"}; do :; done",
            "set -- \"$@\" x",
            "echo \"${x#*=}\" \"${x%/*}\" \"${x/a/b}\" \"${x:1:2}\"",
            "echo 'declare -A is only text here; so is ${x,,} and ;&'",
            "# a comment may say mapfile or ${a[@]}",
            "echo \"${!prefix@}\"",
            "x+=\"more\"",
            "local -r x=1",
            "grep -q x <<<\"$y\"",
            "case $x in a) echo ;; esac",
            "echo {a,b} {1..3}",
            "echo \"$((x + 1))\"",
        ] {
            assert_eq!(violations(script), Vec::<String>::new(), "{script}");
        }
    }
}
