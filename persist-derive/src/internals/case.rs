//! Case conversion of `rename_all`, and of default table and constant names.
//!
//! Field names are taken as written in snake_case and variant names in
//! Pascal, as serde_derive's `RenameRule` does.

use self::RenameRule::*;

/// A `rename_all` value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RenameRule {
    /// `snake_case`.
    Snake,
    /// `camelCase`.
    Camel,
    /// `Pascal`.
    Pascal,
    /// `SCREAMING_SNAKE_CASE`.
    ScreamingSnake,
    /// `kebab-case`.
    Kebab,
    /// `SCREAMING-KEBAB-CASE`.
    ScreamingKebab,
    /// `lowercase`.
    Lower,
    /// `UPPERCASE`.
    Upper,
}

static RULES: &[(&str, RenameRule)] = &[
    ("snake_case", Snake),
    ("camelCase", Camel),
    ("PascalCase", Pascal),
    ("SCREAMING_SNAKE_CASE", ScreamingSnake),
    ("kebab-case", Kebab),
    ("SCREAMING-KEBAB-CASE", ScreamingKebab),
    ("lowercase", Lower),
    ("UPPERCASE", Upper),
];

impl RenameRule {
    /// The rule named `s`, if any.
    pub fn from_str(s: &str) -> Option<Self> {
        RULES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, rule)| *rule)
    }

    /// The accepted values, for an error message.
    pub fn valid_values() -> String {
        RULES
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Applies the rule to a snake_case field name.
    pub fn apply_to_field(self, field: &str) -> String {
        match self {
            Snake | Lower => field.to_owned(),
            Upper | ScreamingSnake => field.to_ascii_uppercase(),
            Kebab => field.replace('_', "-"),
            ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
            Pascal | Camel => {
                let mut out = String::new();
                let mut capitalize = self == Pascal;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        out.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        out.push(ch);
                    }
                }
                out
            }
        }
    }

    /// Applies the rule to a Pascal variant name.
    pub fn apply_to_variant(self, variant: &str) -> String {
        match self {
            Pascal => variant.to_owned(),
            Lower => variant.to_ascii_lowercase(),
            Upper => variant.to_ascii_uppercase(),
            Camel => {
                let mut chars = variant.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            }
            Snake => to_snake_case(variant),
            ScreamingSnake => to_snake_case(variant).to_ascii_uppercase(),
            Kebab => to_snake_case(variant).replace('_', "-"),
            ScreamingKebab => to_snake_case(variant)
                .to_ascii_uppercase()
                .replace('_', "-"),
        }
    }
}

/// `OrderLine` → `order_line`; a snake_case name is returned unchanged.
pub fn to_snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.char_indices() {
        if ch.is_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// `balance_cents` → `BALANCE_CENTS`, the name of a column constant.
pub fn to_screaming_snake_case(name: &str) -> String {
    to_snake_case(name).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let cases = [
            (Snake, "balance_cents"),
            (Camel, "balanceCents"),
            (Pascal, "BalanceCents"),
            (ScreamingSnake, "BALANCE_CENTS"),
            (Kebab, "balance-cents"),
            (ScreamingKebab, "BALANCE-CENTS"),
            (Lower, "balance_cents"),
            (Upper, "BALANCE_CENTS"),
        ];
        for (rule, expected) in cases {
            assert_eq!(rule.apply_to_field("balance_cents"), expected, "{rule:?}");
        }
    }

    #[test]
    fn variants() {
        let cases = [
            (Snake, "on_hold"),
            (Camel, "onHold"),
            (Pascal, "OnHold"),
            (ScreamingSnake, "ON_HOLD"),
            (Kebab, "on-hold"),
            (ScreamingKebab, "ON-HOLD"),
            (Lower, "onhold"),
            (Upper, "ONHOLD"),
        ];
        for (rule, expected) in cases {
            assert_eq!(rule.apply_to_variant("OnHold"), expected, "{rule:?}");
        }
    }

    #[test]
    fn every_documented_value_parses() {
        let documented = [
            "snake_case",
            "camelCase",
            "PascalCase",
            "SCREAMING_SNAKE_CASE",
            "kebab-case",
            "SCREAMING-KEBAB-CASE",
            "lowercase",
            "UPPERCASE",
        ];
        for name in documented {
            assert!(RenameRule::from_str(name).is_some(), "{name}");
        }
        assert_eq!(RenameRule::valid_values(), documented.join(", "));
    }

    #[test]
    fn names() {
        assert_eq!(to_snake_case("OrderLine"), "order_line");
        assert_eq!(to_snake_case("Account"), "account");
        assert_eq!(to_screaming_snake_case("balance_cents"), "BALANCE_CENTS");
        assert_eq!(to_screaming_snake_case("createdAt"), "CREATED_AT");
    }
}
