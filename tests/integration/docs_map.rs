//! The map from documented promise to test (docs/SAFETY.md, ARCHITECTURE.md). A promise is:
//! every data row of a table in docs/SAFETY.md; every list item in its quick-exit section;
//! every paragraph of either file that starts with `**Architecture invariant:**` or
//! `**Promise:**`. Each must name, beside it, the test(s) guarding it after `Test:` or
//! `Tests:`, as backticked paths (`exit::wipe_leaves_no_rows_for_the_device`, the path
//! `cargo test` prints, without `::sqlite`/`::postgres`). Every test named after `Test:`
//! anywhere in those files must exist in the source tree as a test function.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Paragraphs, list items and table rows of a Markdown file, each with the heading above.
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut current = String::new();
    let mut in_code = false;
    let flush = |current: &mut String, heading: &str, out: &mut Vec<(String, String)>| {
        if !current.trim().is_empty() {
            out.push((heading.to_owned(), current.trim().to_owned()));
        }
        current.clear();
    };
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            flush(&mut current, &heading, &mut out);
            continue;
        }
        if in_code {
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(h) = trimmed.strip_prefix('#') {
            flush(&mut current, &heading, &mut out);
            heading = h.trim_start_matches('#').trim().to_owned();
        } else if trimmed.is_empty() {
            flush(&mut current, &heading, &mut out);
        } else if trimmed.starts_with('|') || trimmed.starts_with("- ") {
            // Each row and each list item is its own block.
            flush(&mut current, &heading, &mut out);
            current.push_str(trimmed);
            if trimmed.starts_with('|') {
                flush(&mut current, &heading, &mut out);
            }
        } else {
            current.push(' ');
            current.push_str(trimmed);
        }
    }
    flush(&mut current, &heading, &mut out);
    out
}

fn is_table_separator(row: &str) -> bool {
    row.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// The promises of a file: `(heading, block)`.
fn promises(file: &str, text: &str) -> Vec<(String, String)> {
    let all = blocks(text);
    let mut out = Vec::new();
    let mut previous_was_table = false;
    for (heading, block) in all {
        let is_row = block.starts_with('|');
        let header_row = is_row && !previous_was_table;
        previous_was_table = is_row;
        let promise = if file.ends_with("SAFETY.md") {
            (is_row && !header_row && !is_table_separator(&block))
                || (block.starts_with("- ") && heading.starts_with("Quick exit"))
                || block.starts_with("**Promise:**")
        } else {
            block.starts_with("**Architecture invariant:**") || block.starts_with("**Promise:**")
        };
        if promise {
            out.push((heading, block));
        }
    }
    out
}

/// The backticked test paths right after each `Test:`/`Tests:` in a block: a list of
/// backticked names separated by commas or "and", each possibly followed by a remark in
/// parentheses; the list ends at the first other text.
fn named_tests(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = block;
    while let Some(at) = rest.find("Test:").or_else(|| rest.find("Tests:")) {
        let marker = if rest[at..].starts_with("Tests:") {
            6
        } else {
            5
        };
        rest = &rest[at + marker..];
        loop {
            let t = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            let t = t.strip_prefix("and ").unwrap_or(t);
            if let Some(after) = t.strip_prefix('`') {
                let Some(end) = after.find('`') else { break };
                let name = &after[..end];
                if name.contains("::") && !name.contains(' ') {
                    out.push(name.to_owned());
                }
                rest = &after[end + 1..];
            } else if let Some(after) = t.strip_prefix('(') {
                let Some(end) = after.find(')') else { break };
                rest = &after[end + 1..];
            } else {
                rest = t;
                break;
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// Whether `path` (`module::...::function`) is a test function in the tree: a file whose
/// path contains the first module segment defines `fn function`, marked as a test (an
/// attribute with `test` just above it, or listed in that file's `on_both!`).
fn test_exists(files: &[(PathBuf, String)], path: &str) -> bool {
    let segments: Vec<&str> = path.split("::").collect();
    let (Some(function), Some(module)) = (segments.last(), segments.first()) else {
        return false;
    };
    files.iter().any(|(file, text)| {
        let in_module = file
            .components()
            .any(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs") == *module);
        if !in_module {
            return false;
        }
        let lines: Vec<&str> = text.lines().collect();
        lines.iter().enumerate().any(|(i, line)| {
            let l = line.trim_start();
            let defines = [format!("fn {function}("), format!("fn {function}<")]
                .iter()
                .any(|d| l.starts_with(d) || l.contains(&format!(" {d}")));
            if !defines {
                return false;
            }
            let attribute_above = lines[i.saturating_sub(4)..i]
                .iter()
                .any(|a| a.trim_start().starts_with("#[") && a.contains("test"));
            let in_on_both = text.split("on_both!(").skip(1).any(|tail| {
                tail.split(')')
                    .next()
                    .unwrap_or_default()
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .any(|n| n == *function)
            });
            attribute_above || in_on_both
        })
    })
}

#[test]
fn every_documented_promise_names_a_test_that_exists() {
    let mut paths = Vec::new();
    for dir in ["proto", "server", "client", "tests"] {
        rust_files(&root().join(dir), &mut paths);
    }
    let files: Vec<(PathBuf, String)> = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    assert!(files.len() > 20, "the source tree was found");
    let mut problems = Vec::new();
    let mut total = 0;
    for file in ["docs/SAFETY.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let found = promises(file, &text);
        assert!(!found.is_empty(), "{file} has promises");
        // Names given beside anything else (a bullet of the code map, a paragraph) must
        // exist too.
        let promised: Vec<String> = found.iter().map(|(_, b)| b.clone()).collect();
        for (heading, block) in blocks(&text) {
            if promised.contains(&block) {
                continue;
            }
            for t in named_tests(&block) {
                if !test_exists(&files, &t) {
                    problems.push(format!(
                        "{file} ({heading}): `{t}` is not a test in the tree"
                    ));
                }
            }
        }
        for (heading, block) in found {
            total += 1;
            let tests = named_tests(&block);
            let short: String = block.chars().take(90).collect();
            if tests.is_empty() {
                problems.push(format!("{file} ({heading}): no test named for: {short}"));
            }
            for t in tests {
                if !test_exists(&files, &t) {
                    problems.push(format!(
                        "{file} ({heading}): `{t}` is not a test in the tree"
                    ));
                }
            }
        }
    }
    assert!(total >= 20, "only {total} promises found");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_missing_and_unknown_tests() {
    let doc = "# Quick exit\n\n- wipe deletes everything. Test: `exit::wipe_leaves_no_rows_for_the_device`\n\
               - hide holds delivery.\n\n| a | b |\n|---|---|\n| row | Test: `nope::not_a_test` |\n";
    let found = promises("docs/SAFETY.md", doc);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        named_tests(&found[0].1),
        ["exit::wipe_leaves_no_rows_for_the_device"]
    );
    assert!(named_tests(&found[1].1).is_empty());
    let files = vec![(
        PathBuf::from("tests/integration/exit.rs"),
        "async fn wipe_leaves_no_rows_for_the_device(b: Backend) {}\non_both!(wipe_leaves_no_rows_for_the_device);\nfn helper() {}\n"
            .to_owned(),
    )];
    assert!(test_exists(
        &files,
        "exit::wipe_leaves_no_rows_for_the_device"
    ));
    assert!(!test_exists(&files, "exit::helper"), "not a test");
    assert!(!test_exists(&files, "nope::not_a_test"));
    assert!(
        !test_exists(&files, "push::wipe_leaves_no_rows_for_the_device"),
        "wrong module"
    );
    let arch = "**Architecture invariant:** x.\n\n**Architecture invariant:** y. Test: `a::b`\n";
    assert_eq!(promises("ARCHITECTURE.md", arch).len(), 2);
    // A list ends at the first other text; remarks in parentheses are skipped.
    assert_eq!(
        named_tests("Tests: `a::b` (see `c`), `d::e` and `f::g`. Then `X::Y` is code."),
        ["a::b", "d::e", "f::g"]
    );
}

/// Files a contributor gets with a clone, as git tracks them.
fn tracked_files() -> Vec<PathBuf> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git ls-files");
    assert!(out.status.success());
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect()
}

/// The repository stands alone: nothing in it sends a contributor to a document outside it.
/// The first four migrations are exempt (a migration is never edited once it has run);
/// docs/THREAT_MODEL.md maps their references.
#[test]
fn the_repository_cites_no_document_outside_it() {
    let exempt = |p: &Path| {
        let s = p.to_string_lossy();
        s.starts_with("migrations/")
            && ["0001_", "0002_", "0003_", "0004_"].iter().any(|n| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(n))
            })
    };
    // Spelled in two halves so that this file does not match itself.
    let outside = [concat!("../", "shared"), concat!("DESIGN", ".md")];
    let mut offenders = Vec::new();
    for path in tracked_files() {
        if exempt(&path) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root().join(&path)) else {
            continue; // binary
        };
        for needle in outside {
            if text.contains(needle) {
                offenders.push(format!("{}: {needle}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
