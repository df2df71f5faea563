//! The few RFC 8941 structured-field shapes PKA headers use, parsed
//! strictly: a dictionary member by label, an inner list of quoted
//! component names with `;req`, and signature parameters. Anything the
//! profile does not allow is an error, never skipped: a verifier that
//! ignores what it does not understand can be fooled by it.

use super::security;
use crate::aid::AidError;

/// Calls `visit` with each character of `input` outside sf-strings (the
/// quotes themselves excluded), with its byte offset.
fn outside_strings(input: &str, mut visit: impl FnMut(usize, char)) {
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in input.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else {
            visit(i, c);
        }
    }
}

/// `input` split at the characters `at` accepts (outside strings), trimmed,
/// empty pieces dropped.
fn split_outside_strings(input: &str, mut at: impl FnMut(char) -> bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    outside_strings(input, |i, c| {
        if at(c) {
            parts.push(input[start..i].trim());
            start = i + c.len_utf8();
        }
    });
    parts.push(input[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// Splits a dictionary at top-level commas (outside strings and inner lists).
fn members(input: &str) -> Vec<&str> {
    let mut depth = 0i32;
    split_outside_strings(input, |c| {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        c == ',' && depth == 0
    })
}

/// The value of dictionary member `label` (exact, lowercase). A second
/// member with that label, or one differing only in case, is refused.
pub(super) fn member<'a>(header: &'a str, label: &str) -> Result<&'a str, AidError> {
    let mut found = None;
    for part in members(header) {
        let Some((name, value)) = part.split_once('=') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case(label) {
            if name != label || found.is_some() {
                return Err(security(format!("duplicate or miscased `{label}` member")));
            }
            found = Some(value.trim());
        }
    }
    found.ok_or_else(|| security(format!("no `{label}` member")))
}

/// The items of an inner list body (between the parentheses), split at
/// whitespace outside strings.
pub(super) fn inner_list(input: &str) -> Vec<&str> {
    split_outside_strings(input, char::is_whitespace)
}

/// One signature parameter: its raw text (as signed) and its value with the
/// quotes of an sf-string removed; `None` for a bare parameter (`created`
/// in `Accept-Signature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Param {
    pub(super) name: String,
    pub(super) value: Option<String>,
}

/// The parameters after an inner list: `;name=value` repeated. Only the
/// six names of the profile are allowed, each at most once.
pub(super) fn params(raw: &str) -> Result<Vec<Param>, AidError> {
    const ALLOWED: [&str; 6] = ["nonce", "keyid", "alg", "created", "expires", "tag"];
    let bytes = raw.as_bytes();
    let mut out: Vec<Param> = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= bytes.len() {
            return Ok(out);
        }
        if bytes[i] != b';' {
            return Err(security("malformed Signature-Input parameters"));
        }
        i += 1;
        skip_ws(&mut i);
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_*.-".contains(&bytes[i])) {
            i += 1;
        }
        let name = &raw[start..i];
        if name.is_empty() {
            return Err(security("a Signature-Input parameter without a name"));
        }
        if !ALLOWED.contains(&name) {
            return Err(security(format!("unsupported Signature-Input parameter `{name}`")));
        }
        if out.iter().any(|p| p.name == name) {
            return Err(security(format!("duplicate Signature-Input parameter `{name}`")));
        }
        skip_ws(&mut i);
        if i >= bytes.len() || bytes[i] != b'=' {
            out.push(Param { name: name.to_owned(), value: None });
            continue;
        }
        i += 1;
        skip_ws(&mut i);
        let value_start = i;
        if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut escaped = false;
            let mut closed = false;
            while i < bytes.len() {
                let c = bytes[i];
                i += 1;
                match c {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => {
                        closed = true;
                        break;
                    }
                    _ => {}
                }
            }
            if !closed {
                return Err(security(format!("unterminated string in parameter `{name}`")));
            }
        } else {
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
        }
        let value = raw[value_start..i].trim();
        out.push(Param { name: name.to_owned(), value: Some(unquote(value)) });
    }
}

/// An sf-string's content (escapes resolved), or the text itself when it
/// is not quoted (tokens, integers).
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of parameter `name`, if present with a value.
pub(super) fn get<'a>(params: &'a [Param], name: &str) -> Option<&'a str> {
    params.iter().find(|p| p.name == name).and_then(|p| p.value.as_deref())
}

/// An sf-binary (`:base64:`) as bytes.
pub(super) fn binary(raw: &str) -> Result<Vec<u8>, AidError> {
    use base64ct::Encoding as _;
    let inner = raw
        .trim()
        .strip_prefix(':')
        .and_then(|v| v.strip_suffix(':'))
        .ok_or_else(|| security("the Signature value is not a byte sequence (:base64:)"))?;
    base64ct::Base64::decode_vec(inner.trim()).map_err(|_| security("the Signature value is not valid base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_members_ignore_commas_in_strings_and_lists() {
        let header = r#"other=("a" "b,c");x="1,2", aid-pka=("@status");tag="t""#;
        assert_eq!(member(header, "aid-pka").unwrap(), r#"("@status");tag="t""#);
        assert!(member(r#"aid-pka=1, aid-pka=2"#, "aid-pka").is_err());
        assert!(member(r#"AID-PKA=1"#, "aid-pka").is_err());
        assert!(member(r#"sig=1"#, "aid-pka").is_err());
    }

    #[test]
    fn params_are_strict() {
        let p = params(r#";created=1;keyid="a\"b";alg="ed25519""#).unwrap();
        assert_eq!(get(&p, "keyid"), Some("a\"b"));
        assert_eq!(get(&p, "created"), Some("1"));
        assert!(params(";created=1;created=2").is_err());
        assert!(params(";foo=1").is_err());
        assert!(params(r#";nonce="open"#).is_err());
        assert!(params("created=1").is_err());
        let bare = params(";created;expires").unwrap();
        assert_eq!(bare[0], Param { name: "created".into(), value: None });
    }

    #[test]
    fn binary_needs_colons_and_base64() {
        assert_eq!(binary(":AAE=:").unwrap(), vec![0, 1]);
        assert!(binary("AAE=").is_err());
        assert!(binary(":*:").is_err());
    }
}
