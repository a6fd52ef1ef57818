//! The escaping filters of the template environment: each writes a value into one file
//! format so that it stays data, whatever string reaches it (an inventory `vars` value,
//! a secret, a name), or refuses it with an error the renderer reports at the
//! template's expression. See the filter table in docs/catalogue.md.
//!
//! | filter | writes | refuses |
//! |---|---|---|
//! | `shell` | one POSIX shell word, single-quoted; a list: one word per item | a NUL byte |
//! | `py` | a Python literal (str, int, float, True/False/None, list, dict), ASCII only | inf, NaN, bytes, objects |
//! | `json` (= `tojson`) | JSON | - |
//! | `toml_string` | a TOML basic string `"..."` | - |
//! | `rsyslog_param` | a RainerScript parameter value `"..."` (`name="..."` of an object) | control characters |
//! | `rsyslog_expr` | a RainerScript string constant in an expression (`set $.x = "...";`) | control characters |
//! | `mycnf_string` | a MySQL/MariaDB option-file value `"..."` | control characters but `\t \n \r \b` |
//! | `sql_string` | a MariaDB string literal `'...'` | - |
//! | `haproxy_arg` | one haproxy argument: bare if it is a [`word`], else single-quoted | control characters |
//! | `line_value` | the value as it is | control characters, a trailing backslash |
//! | `word` | the value as it is | anything but ASCII letters, digits and `. _ - : / +`; empty |
//!
//! A refused value's error message starts with [`REFUSED`] and shows the value escaped
//! (a secret's value is never shown).

use std::sync::Arc;

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, Value};

/// How the message of every refusal starts (the renderer shows such a message as it
/// is, with a help about changing the value).
pub(super) const REFUSED: &str = "unsafe value";

/// The characters a [`word`] may hold besides ASCII letters and digits.
const WORD_PUNCTUATION: &str = "._-:/+";

/// Registers the filters in `env`. `secrets` are the values never shown in an error.
pub(super) fn register(env: &mut Environment<'static>, secrets: Vec<String>) {
    let secrets: Arc<Vec<String>> =
        Arc::new(secrets.into_iter().filter(|s| !s.is_empty()).collect());
    let s = Arc::clone(&secrets);
    env.add_filter("shell", move |v: &Value| shell(v, &s));
    let s = Arc::clone(&secrets);
    env.add_filter("py", move |v: &Value| py(v, &s));
    env.add_filter("json", minijinja::filters::tojson);
    let s = Arc::clone(&secrets);
    env.add_filter("toml_string", move |v: &Value| {
        text("toml_string", v, &s).map(|t| toml_string(&t))
    });
    let s = Arc::clone(&secrets);
    env.add_filter("rsyslog_param", move |v: &Value| {
        rsyslog_string("rsyslog_param", v, &s)
    });
    let s = Arc::clone(&secrets);
    env.add_filter("rsyslog_expr", move |v: &Value| {
        rsyslog_string("rsyslog_expr", v, &s)
    });
    let s = Arc::clone(&secrets);
    env.add_filter("mycnf_string", move |v: &Value| mycnf_string(v, &s));
    let s = Arc::clone(&secrets);
    env.add_filter("sql_string", move |v: &Value| {
        text("sql_string", v, &s).map(|t| sql_string(&t))
    });
    let s = Arc::clone(&secrets);
    env.add_filter("haproxy_arg", move |v: &Value| haproxy_arg(v, &s));
    let s = Arc::clone(&secrets);
    env.add_filter("line_value", move |v: &Value| line_value(v, &s));
    let s = secrets;
    env.add_filter("word", move |v: &Value| word(v, &s));
}

/// The refusal of `value` by `filter`: `why` completes "the value ...".
fn refuse(filter: &str, value: &str, why: &str, secrets: &[String]) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{REFUSED} for `{filter}`: {} {why}", shown(value, secrets)),
    )
}

/// A value for an error message: escaped and quoted, at most 120 characters; a value
/// that is, or is part of, or holds a secret is not shown.
fn shown(value: &str, secrets: &[String]) -> String {
    if !value.is_empty()
        && secrets
            .iter()
            .any(|s| s.contains(value) || value.contains(s.as_str()))
    {
        return "(a secret value)".into();
    }
    let escaped = format!("{value:?}");
    if escaped.chars().count() > 120 {
        let cut: String = escaped.chars().take(117).collect();
        format!("{cut}...")
    } else {
        escaped
    }
}

/// The name of a character for an error message: `line feed (U+000A)`, `` `;` ``.
fn char_name(c: char) -> String {
    let name = match c {
        '\n' => "a line feed",
        '\r' => "a carriage return",
        '\t' => "a tab",
        '\0' => "a NUL byte",
        ' ' => "a space",
        c if c.is_control() => "a control character",
        c if c.is_whitespace() => "a white space",
        _ => return format!("`{c}` (U+{:04X})", c as u32),
    };
    format!("{name} (U+{:04X})", c as u32)
}

/// A scalar's text: a string as it is, a number or a boolean as written.
fn text(filter: &str, v: &Value, secrets: &[String]) -> Result<String, Error> {
    match v.kind() {
        ValueKind::String => Ok(v.as_str().unwrap_or_default().to_string()),
        ValueKind::Number | ValueKind::Bool => Ok(v.to_string()),
        kind => Err(refuse(
            filter,
            &v.to_string(),
            &format!("is a {kind}, not a string or a number"),
            secrets,
        )),
    }
}

/// `v`'s text, or its refusal if it holds a control character (`allowed` excepted).
fn no_control(
    filter: &str,
    v: &Value,
    allowed: &[char],
    secrets: &[String],
) -> Result<String, Error> {
    let t = text(filter, v, secrets)?;
    if let Some(c) = t.chars().find(|c| c.is_control() && !allowed.contains(c)) {
        return Err(refuse(
            filter,
            &t,
            &format!(
                "holds {}: a value of this file must stay on its line, as data",
                char_name(c)
            ),
            secrets,
        ));
    }
    Ok(t)
}

/// `shell`: one POSIX shell word per value (a list: one per item, space-separated).
fn shell(v: &Value, secrets: &[String]) -> Result<String, Error> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let mut words = Vec::new();
            for item in v.try_iter()? {
                words.push(shell_word(&text("shell", &item, secrets)?, secrets)?);
            }
            Ok(words.join(" "))
        }
        _ => shell_word(&text("shell", v, secrets)?, secrets),
    }
}

fn shell_word(s: &str, secrets: &[String]) -> Result<String, Error> {
    if s.contains('\0') {
        return Err(refuse(
            "shell",
            s,
            "holds a NUL byte (U+0000), which no shell word can hold",
            secrets,
        ));
    }
    Ok(format!("'{}'", s.replace('\'', r"'\''")))
}

/// `py`: a Python literal.
fn py(v: &Value, secrets: &[String]) -> Result<String, Error> {
    match v.kind() {
        ValueKind::None => Ok("None".into()),
        ValueKind::Bool => Ok(if v.is_true() { "True" } else { "False" }.into()),
        ValueKind::Number if v.is_integer() => Ok(v.to_string()),
        ValueKind::Number => {
            let f = f64::try_from(v.clone())?;
            if f.is_finite() {
                // `{:?}` keeps the point or exponent of a float (`1.0`, `1e-7`).
                Ok(format!("{f:?}"))
            } else {
                Err(refuse(
                    "py",
                    &f.to_string(),
                    "has no Python literal",
                    secrets,
                ))
            }
        }
        ValueKind::String => Ok(py_string(v.as_str().unwrap_or_default())),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for item in v.try_iter()? {
                items.push(py(&item, secrets)?);
            }
            Ok(format!("[{}]", items.join(", ")))
        }
        ValueKind::Map => {
            let mut items = Vec::new();
            for key in v.try_iter()? {
                let value = v.get_item(&key)?;
                items.push(format!("{}: {}", py(&key, secrets)?, py(&value, secrets)?));
            }
            Ok(format!("{{{}}}", items.join(", ")))
        }
        kind => Err(refuse(
            "py",
            &v.to_string(),
            &format!("is a {kind}, which has no Python literal"),
            secrets,
        )),
    }
}

/// A Python string literal like `repr()`'s (single quotes unless the text holds `'`
/// and no `"`), every character outside printable ASCII escaped: one line of ASCII.
fn py_string(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// A TOML basic string: `\\`, `\"` and every control character escaped.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\u{8}' => out.push_str(r"\b"),
            '\u{c}' => out.push_str(r"\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A RainerScript (rsyslog) string: `"..."` with `\\` and `\"`; in an expression
/// (`rsyslog_expr`) `$` too is escaped (rsyslogd refuses a bare one there, and refuses
/// `\$` in an object's parameter).
fn rsyslog_string(filter: &str, v: &Value, secrets: &[String]) -> Result<String, Error> {
    let t = no_control(filter, v, &[], secrets)?;
    let mut out = String::with_capacity(t.len() + 2);
    out.push('"');
    for c in t.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '$' if filter == "rsyslog_expr" => out.push_str(r"\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// A value of a MySQL/MariaDB option file, double-quoted: `#` inside is data, and
/// `\\ \" \t \n \r \b` are the escapes mysqld's option parser reads.
fn mycnf_string(v: &Value, secrets: &[String]) -> Result<String, Error> {
    let t = no_control("mycnf_string", v, &['\t', '\n', '\r', '\u{8}'], secrets)?;
    let mut out = String::with_capacity(t.len() + 2);
    out.push('"');
    for c in t.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\u{8}' => out.push_str(r"\b"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// A MariaDB string literal (default SQL mode: backslash escapes).
fn sql_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '\0' => out.push_str(r"\0"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\u{1a}' => out.push_str(r"\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// One haproxy argument: bare when it is a word, else in single quotes (where nothing
/// is interpreted; a `'` is written `'\''`, as in a shell).
fn haproxy_arg(v: &Value, secrets: &[String]) -> Result<String, Error> {
    let t = no_control("haproxy_arg", v, &[], secrets)?;
    if !t.is_empty() && t.chars().all(is_word_char) {
        Ok(t)
    } else {
        Ok(format!("'{}'", t.replace('\'', r"'\''")))
    }
}

/// `line_value`: the value as it is, on one line.
fn line_value(v: &Value, secrets: &[String]) -> Result<String, Error> {
    let t = no_control("line_value", v, &[], secrets)?;
    if t.ends_with('\\') {
        return Err(refuse(
            "line_value",
            &t,
            "ends with a backslash, which several of these formats read as a line continuation",
            secrets,
        ));
    }
    Ok(t)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || WORD_PUNCTUATION.contains(c)
}

/// `word`: the value as it is, one bare token of a space-separated line.
fn word(v: &Value, secrets: &[String]) -> Result<String, Error> {
    let t = text("word", v, secrets)?;
    if t.is_empty() {
        return Err(refuse(
            "word",
            &t,
            "is empty, where the file needs one word",
            secrets,
        ));
    }
    if let Some(c) = t.chars().find(|c| !is_word_char(*c)) {
        return Err(refuse(
            "word",
            &t,
            &format!(
                "holds {}: a word of this file is ASCII letters, digits and `{}` only",
                char_name(c),
                WORD_PUNCTUATION
                    .chars()
                    .map(String::from)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            secrets,
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment<'static> {
        let mut env = Environment::new();
        register(&mut env, vec!["s3cr\net".into()]);
        env
    }

    fn render(expr: &str, v: Value) -> Result<String, Error> {
        env().render_str(
            &format!("{{{{ v | {expr} }}}}"),
            minijinja::context! { v => v },
        )
    }

    #[test]
    fn shell_quotes_each_word() {
        assert_eq!(render("shell", Value::from("a'b")).unwrap(), r"'a'\''b'");
        assert_eq!(render("shell", Value::from("")).unwrap(), "''");
        assert_eq!(render("shell", Value::from(3)).unwrap(), "'3'");
        assert_eq!(
            render("shell", Value::from(vec!["/dev/sdb", "$(x) y"])).unwrap(),
            "'/dev/sdb' '$(x) y'"
        );
        assert_eq!(
            render("shell", Value::from(Vec::<String>::new())).unwrap(),
            ""
        );
        let e = render("shell", Value::from("a\0b")).unwrap_err();
        assert!(e.to_string().contains("NUL byte"), "{e}");
    }

    #[test]
    fn py_writes_python_literals() {
        assert_eq!(render("py", Value::from("member")).unwrap(), "'member'");
        assert_eq!(render("py", Value::from("it's")).unwrap(), "\"it's\"");
        assert_eq!(
            render("py", Value::from("a'\"\\\n\u{7f}é\u{1F600}")).unwrap(),
            r#"'a\'"\\\n\x7f\xe9\U0001f600'"#
        );
        assert_eq!(render("py", Value::from(true)).unwrap(), "True");
        assert_eq!(render("py", Value::from(())).unwrap(), "None");
        assert_eq!(render("py", Value::from(2.0)).unwrap(), "2.0");
        assert_eq!(render("py", Value::from(7)).unwrap(), "7");
        assert_eq!(
            render(
                "py",
                Value::from(minijinja::value::Serde(
                    serde_json::json!({"k": [1, null, false]})
                ))
            )
            .unwrap(),
            "{'k': [1, None, False]}"
        );
        assert!(render("py", Value::from(f64::NAN)).is_err());
    }

    #[test]
    fn line_formats() {
        assert_eq!(
            render("line_value", Value::from("a #;$ b")).unwrap(),
            "a #;$ b"
        );
        let e = render("line_value", Value::from("1m\nbind *:1")).unwrap_err();
        assert!(
            e.to_string()
                .contains(r#""1m\nbind *:1" holds a line feed (U+000A)"#),
            "{e}"
        );
        assert!(render("line_value", Value::from("a\\")).is_err());
        assert!(render("line_value", Value::from("a\rb")).is_err());
        assert_eq!(render("word", Value::from("br-ex")).unwrap(), "br-ex");
        let e = render("word", Value::from("eth0 }")).unwrap_err();
        assert!(e.to_string().contains("a space (U+0020)"), "{e}");
        assert!(render("word", Value::from("")).is_err());
        assert_eq!(render("haproxy_arg", Value::from("p-1")).unwrap(), "p-1");
        assert_eq!(
            render("haproxy_arg", Value::from("a'# b")).unwrap(),
            r"'a'\''# b'"
        );
    }

    #[test]
    fn quoted_formats() {
        assert_eq!(
            render("toml_string", Value::from("a\"\\\n\u{7f}")).unwrap(),
            r#""a\"\\\n\u007F""#
        );
        assert_eq!(
            render("rsyslog_param", Value::from(r#"a"\$"#)).unwrap(),
            r#""a\"\\$""#
        );
        assert_eq!(
            render("rsyslog_expr", Value::from(r#"a"\$"#)).unwrap(),
            r#""a\"\\\$""#
        );
        assert!(render("rsyslog_param", Value::from("a\nb")).is_err());
        assert_eq!(
            render("mycnf_string", Value::from("a\"#\\\n")).unwrap(),
            r##""a\"#\\\n""##
        );
        assert_eq!(
            render("sql_string", Value::from("a'\\\n\0")).unwrap(),
            r"'a\'\\\n\0'"
        );
        assert_eq!(render("json", Value::from("a\"")).unwrap(), r#""a\"""#);
    }

    #[test]
    fn secrets_are_never_shown() {
        let e = render("line_value", Value::from("s3cr\net")).unwrap_err();
        assert!(!e.to_string().contains("s3cr"), "{e}");
        assert!(e.to_string().contains("(a secret value)"), "{e}");
    }
}
