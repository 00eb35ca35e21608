//! What persist reads off a raw SQL statement without parsing it: whether
//! it may write, and which tables it names. The shared cache uses this to
//! invalidate what a raw statement may have changed.

/// Whether a raw statement may write: anything but a plain `SELECT` (a
/// `WITH` may wrap a data-modifying statement, so it counts as a write when
/// it names one).
pub(crate) fn might_write(sql: &str) -> bool {
    let mut words = sql_words(sql);
    match words.next().map(|w| w.to_ascii_uppercase()) {
        Some(w) if w == "SELECT" || w == "VALUES" => false,
        Some(w) if w == "WITH" => words.any(|w| {
            ["INSERT", "UPDATE", "DELETE", "MERGE"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
        }),
        _ => true,
    }
}

/// The tables a statement names after `UPDATE`, `INTO`, `FROM`, `JOIN` or
/// `TABLE` (unquoted, without a schema).
pub(crate) fn named_tables(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = sql_words(sql).peekable();
    while let Some(w) = words.next() {
        let names_table = ["UPDATE", "INTO", "FROM", "JOIN", "TABLE"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k));
        if names_table && let Some(next) = words.peek() {
            let name = next.rsplit('.').next().unwrap_or(next);
            let name = name.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']');
            if !name.is_empty() {
                out.push(name.to_owned());
            }
        }
    }
    out
}

/// The words of a statement (identifiers, keywords and quoted names), with
/// string literals and comments left out.
fn sql_words(sql: &str) -> impl Iterator<Item = String> + '_ {
    let mut words = Vec::new();
    let mut chars = sql.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A string literal ('' escapes a quote).
                while let Some(c) = chars.next() {
                    if c == '\'' && chars.peek() != Some(&'\'') {
                        break;
                    }
                    if c == '\'' {
                        chars.next();
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut star = false;
                for c in chars.by_ref() {
                    if star && c == '/' {
                        break;
                    }
                    star = c == '*';
                }
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '.' | '"' | '`' | '$') => word.push(c),
            _ => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
        }
        if matches!(c, '\'' | '-' | '/') && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.into_iter()
}

#[cfg(test)]
mod tests {
    use super::{might_write, named_tables};

    #[test]
    fn raw_statements_that_write() {
        assert!(!might_write("SELECT * FROM products WHERE id = ?"));
        assert!(!might_write("  select 1"));
        assert!(might_write("UPDATE products SET stock = 0 RETURNING *"));
        assert!(might_write("-- note\nDELETE FROM products"));
        assert!(might_write(
            "WITH x AS (UPDATE products SET stock = 1 RETURNING *) SELECT * FROM x"
        ));
        assert!(!might_write(
            "WITH x AS (SELECT 'update' AS u) SELECT * FROM x"
        ));
    }

    #[test]
    fn tables_a_statement_names() {
        assert_eq!(
            named_tables("UPDATE \"shop\".\"products\" SET a = 'from x' RETURNING *"),
            ["products"]
        );
        assert_eq!(
            named_tables("INSERT INTO `orders` SELECT * FROM carts JOIN lines ON 1=1"),
            ["orders", "carts", "lines"]
        );
    }
}
