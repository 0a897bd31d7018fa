//! How deeply a JSON text nests, found by one pass over its bytes with no recursion, so a body
//! of 100,000 nested arrays is refused (400) before any parser — ours or a function's — recurses
//! into it. Only nesting is checked here; whether the text is JSON at all is the parser's job.

/// Most nesting levels (arrays and objects) a request body may have.
pub const MAX_DEPTH: usize = 64;

/// Checks that `text` nests at most `max` levels deep; the error names the limit. Brackets inside
/// strings (with their escapes) do not count.
pub fn check(text: &[u8], max: usize) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(format!(
                        "the JSON nests deeper than {max} levels of arrays and objects"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_arrays_and_objects_but_not_strings() {
        assert!(check(b"[[[1]]]", 3).is_ok());
        assert!(check(b"[[[1]]]", 2).is_err());
        assert!(check(br#"{"a":{"b":[{}]}}"#, 4).is_ok());
        assert!(check(br#"{"a":{"b":[{}]}}"#, 3).is_err());
        assert!(
            check(br#"["[[[[[\"[[[", "\\"]"#, 1).is_ok(),
            "inside strings"
        );
        assert!(
            check(b"]]]][[", 2).is_ok(),
            "unbalanced text is the parser's problem"
        );
    }

    #[test]
    fn a_hundred_thousand_levels_fail_without_recursion() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = check(deep.as_bytes(), MAX_DEPTH).unwrap_err();
        assert!(err.contains("64"), "{err}");
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(check(ok.as_bytes(), MAX_DEPTH).is_ok());
    }
}
